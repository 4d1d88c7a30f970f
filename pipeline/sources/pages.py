"""Web pages as articles: urls (fetched politely), HTML files, and feed teasers expanded to the
page they link to. All go through the one extractor (:mod:`pipeline.sources.extract`).

Inputs that cannot become an article are :class:`pipeline.sources.ingest.Rejected` with a one-line
reason (the ingest command sends them to the dead-letter topic).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from pipeline.sources.extract import ExtractError, decode_html, extract_page, page_article
from pipeline.sources.fetch import Fetcher, FetchError
from schemas import RawArticle

log = logging.getLogger(__name__)

HTML_SUFFIXES = {".html", ".htm", ".xhtml"}


def iter_urls(urls: Iterable[str], fetcher: Fetcher) -> Iterator:
    """Each url fetched and extracted: a RawArticle, or a Rejected with the reason. A page
    that has not changed since the last run (304) is skipped."""
    from pipeline.sources.ingest import Rejected

    for url, result in fetcher.fetch_many(urls):
        if isinstance(result, FetchError):
            yield Rejected(url, str(result), b"")
            continue
        if result.not_modified:
            log.info("%s: not modified since the last fetch, skipped", url)
            continue
        try:
            page = extract_page(decode_html(result.content, result.charset), result.final_url)
        except ExtractError as error:
            yield Rejected(url, str(error), result.content)
            continue
        yield page_article(
            page, result.final_url, **({"requested_url": url} if url != result.final_url else {})
        )


def html_file_article(path: Path, data: bytes):
    """An HTML file through the extractor (the page's canonical url, when it names one)."""
    from pipeline.sources.ingest import Rejected

    try:
        page = extract_page(decode_html(data))
    except ExtractError as error:
        return Rejected(str(path), str(error), data)
    return page_article(page, page.url, path=str(path))


def expand_teasers(
    articles: list[RawArticle], fetcher: Fetcher, min_words: int
) -> list[RawArticle]:
    """Feed entries shorter than ``min_words`` words with a link: the linked page's text
    replaces the teaser (kept as the extra field ``teaser``); the feed's title, source and date
    stay. A page that cannot be fetched or has no more text leaves the teaser as it was."""
    short = [a for a in articles if a.url and len(a.body.split()) < min_words]
    if not short:
        return articles
    pages = dict(fetcher.fetch_many(a.url for a in short))
    for article in short:
        result = pages.get(article.url)
        if isinstance(result, FetchError) or result is None or result.not_modified:
            if isinstance(result, FetchError):
                log.warning("teaser %s kept: %s", article.url, result)
            continue
        try:
            page = extract_page(decode_html(result.content, result.charset), result.final_url)
        except ExtractError as error:
            log.warning("teaser %s kept: %s", article.url, error)
            continue
        if len(page.text.split()) <= len(article.body.split()):
            continue
        extra = article.model_extra
        extra["teaser"] = article.body
        article.body = page.text
        if page.authors and not extra.get("authors"):
            extra["authors"] = page.authors
        if article.published_at is None and page.published_at is not None:
            article.published_at, article.published_at_origin = page.published_at, "page"
        article.title = article.title or page.title
    return articles
