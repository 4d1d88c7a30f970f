"""Where articles come from, as they really come, to the raw topic: files and directories
(:mod:`.ingest`), RSS/Atom feeds (:mod:`.feeds`), web pages (polite fetching + main-text
extraction), WARC archives, feed teasers expanded to their pages, and the source and date an
article's own text names. See docs/sources.md."""
