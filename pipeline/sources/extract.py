"""One extractor for every web page, whatever brought it (``--url``, an ``.html`` file, a WARC
record, a feed teaser's link): trafilatura finds the main text and drops the page furniture
(navigation, cookie banners, ads, comments, related links, share buttons), and reads the
metadata: title, authors, publication date, site name.

:func:`page_article` makes the :class:`RawArticle`: ``source`` is the site name
(``source_origin="site_name"``), ``published_at`` the page's date (``published_at_origin="page"``);
the page url, description and authors are kept as extra fields.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from schemas import RawArticle

log = logging.getLogger(__name__)

MIN_WORDS = 25
"""a page whose main text has fewer words is not an article (an index page, a paywall stub)"""


class ExtractError(ValueError):
    """The page has no article text; the message says why, for a person to read."""


@dataclass
class Page:
    """What the extractor found on a page."""

    text: str
    title: str | None = None
    authors: list[str] = field(default_factory=list)
    published_at: datetime | None = None
    site_name: str | None = None
    description: str | None = None
    language: str | None = None
    url: str | None = None


def extract_page(html: str | bytes, url: str | None = None) -> Page:
    """The main text and metadata of an HTML page; raises :class:`ExtractError` when it has
    no article text."""
    import trafilatura

    if isinstance(html, bytes):
        html = decode_html(html)
    if not html.strip():
        raise ExtractError("empty page")
    document = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=False,
        include_images=False,
        favor_precision=True,
        deduplicate=False,
    )
    if document is None or not (document.text or "").strip():
        raise ExtractError("no article text found in the page")
    title = _clean(document.title)
    text = _strip_title(document.text, title)
    if len(text.split()) < MIN_WORDS:
        raise ExtractError(f"page text has {len(text.split())} words, too few for an article")
    return Page(
        text=text,
        title=title,
        authors=_authors(document.author),
        published_at=_date(document.date),
        site_name=_clean(document.sitename) or None,
        description=_clean(document.description),
        language=_clean(document.language),
        url=url or _clean(document.url),
    )


def page_article(page: Page, url: str | None = None, **extra) -> RawArticle:
    """The raw article of an extracted page (the id is set by the caller's usual rule)."""
    from pipeline.ids import article_id

    url = url or page.url
    site = page.site_name or (urlsplit(url).hostname if url else None)
    fields = {
        k: v for k, v in {"authors": page.authors, "description": page.description}.items() if v
    }
    article = RawArticle(
        url=url,
        title=page.title,
        body=page.text,
        source=site,
        source_origin="site_name" if site else None,
        published_at=page.published_at,
        published_at_origin="page" if page.published_at else None,
        language=page.language if page.language and len(page.language) == 2 else None,
        **fields,
        **extra,
    )
    article.id = article_id(article)
    return article


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w-]+)""", re.IGNORECASE)


def decode_html(data: bytes, declared: str | None = None) -> str:
    """HTML bytes as text: the declared charset (HTTP header, else ``<meta charset>``), else
    UTF-8, else Windows-1252 (which never fails)."""
    candidates = [declared] if declared else []
    meta = _META_CHARSET.search(data[:4096])
    if meta:
        candidates.append(meta.group(1).decode("ascii", "replace"))
    for encoding in [*candidates, "utf-8"]:
        try:
            return data.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("cp1252", errors="replace")


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = " ".join(str(value).split())
    return value or None


def _strip_title(text: str, title: str | None) -> str:
    """trafilatura keeps the headline as the text's first line: it is the title, not body."""
    text = text.strip()
    if title:
        first, _, rest = text.partition("\n")
        if " ".join(first.split()).casefold() == title.casefold():
            text = rest.strip()
    return text


def _authors(value: str | None) -> list[str]:
    if not value:
        return []
    names = [" ".join(name.split()) for name in re.split(r";|\band\b|\|", value)]
    return list(dict.fromkeys(name for name in names if name))


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
