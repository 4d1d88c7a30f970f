"""WARC archives (``.warc``, ``.warc.gz``; the format of Common Crawl's CC-NEWS): read record by
record with warcio, streamed (never whole in memory); every HTML ``response`` record with HTTP
status 200 goes through the page extractor (:mod:`pipeline.sources.extract`).

The record's target URI is the article url; the WARC-Date is kept as the extra field
``crawled_at`` (it is when the page was fetched, not when it was published). Other records
(requests, metadata, non-HTML responses, redirects) are skipped; an HTML page without article
text becomes a Rejected (``path#offset: reason``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from pipeline.sources.extract import ExtractError, decode_html, extract_page, page_article

log = logging.getLogger(__name__)

WARC_SUFFIXES = (".warc", ".warc.gz")
HTML_TYPES = ("text/html", "application/xhtml+xml")


def is_warc(path: Path) -> bool:
    return path.name.lower().endswith(WARC_SUFFIXES)


def iter_warc(path: Path, max_bytes: int | None = None) -> Iterator:
    """Articles (RawArticle) and rejections (Rejected) of a WARC file, in record order."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    from pipeline.sources.ingest import Rejected

    with path.open("rb") as stream:
        records = ArchiveIterator(stream)
        seen = 0
        try:
            for record in records:
                seen += record.rec_headers.get_header("WARC-Type") is not None
                if record.rec_type != "response" or record.http_headers is None:
                    continue
                kind = (record.http_headers.get_header("Content-Type") or "").lower()
                status = record.http_headers.get_statuscode()
                if status != "200" or not kind.startswith(HTML_TYPES):
                    continue
                url = record.rec_headers.get_header("WARC-Target-URI")
                content = record.content_stream()
                data = content.read(max_bytes) if max_bytes else content.read()
                origin = (
                    f"{path}#{records.get_record_offset()}"  # (after the read: it skips the rest)
                )
                charset = kind.partition("charset=")[2].strip(" \"';") or None
                try:
                    page = extract_page(decode_html(data, charset), url)
                except ExtractError as error:
                    yield Rejected(origin, f"{url}: {error}", data)
                    continue
                crawled = record.rec_headers.get_header("WARC-Date")
                yield page_article(page, url, **({"crawled_at": crawled} if crawled else {}))
        except ArchiveLoadFailed as error:
            yield Rejected(
                str(path), f"not a readable WARC archive: {' '.join(str(error).split())}", b""
            )
            return
        if not seen:
            yield Rejected(str(path), "not a readable WARC archive: no WARC records", b"")
