"""RSS/Atom polling: feed entries as :class:`RawArticle` messages, each version sent once.

:func:`poll_feed` makes a conditional GET (``If-None-Match`` / ``If-Modified-Since`` from the
feed's :class:`FeedState`; a 304 means nothing new), parses the bytes with feedparser, and turns
every entry it has not sent yet, or whose content changed since, into an article:

- ``source`` = feed title, ``url`` = entry link, ``title``, ``body`` = the entry content (else
  its summary) with HTML reduced to plain text, ``published_at`` = published (else updated);
- extra fields ``feed_url``, ``guid`` (entry id) and ``authors``;
- the id comes from the link (:func:`pipeline.ids.article_id`), so an updated entry is sent
  again as a new version with the same id; an entry without a link is named by feed and guid.

The state (validators and one content hash per entry) lives in
``settings.data_dir / "feeds" / <sha1(url)>.json``. ``poll_feed`` only updates it in memory:
the caller saves it (atomically) once the articles are delivered, so a failed delivery is
retried on the next poll.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import httpx

from schemas import RawArticle

log = logging.getLogger(__name__)

MAX_REMEMBERED = 10_000
"""entries remembered per feed (newest kept): enough for any feed's window"""
USER_AGENT = "newspipe/0.1 (feed poller)"


class FeedError(Exception):
    """The feed URL answered, but not with an RSS/Atom document."""


# --- state -----------------------------------------------------------------------------------


@dataclass
class FeedState:
    """What was already fetched from one feed: HTTP validators and entry content hashes."""

    url: str
    etag: str | None = None
    modified: str | None = None
    entries: dict[str, str] = field(default_factory=dict)
    """entry key (guid, else link) -> hash of the content last sent"""

    @staticmethod
    def path_for(url: str, data_dir: Path) -> Path:
        return Path(data_dir) / "feeds" / f"{hashlib.sha1(url.encode('utf-8')).hexdigest()}.json"

    @classmethod
    def load(cls, url: str, data_dir: Path) -> FeedState:
        """The saved state of ``url``; a fresh one when there is none (or it is unreadable)."""
        path = cls.path_for(url, data_dir)
        try:
            saved = json.loads(path.read_text("utf-8"))
            return cls(
                url=url,
                etag=saved.get("etag"),
                modified=saved.get("modified"),
                entries=dict(saved.get("entries", {})),
            )
        except FileNotFoundError:
            return cls(url=url)
        except (OSError, ValueError, AttributeError) as error:
            log.warning("feed state %s unreadable (%s): starting afresh", path, error)
            return cls(url=url)

    def save(self, data_dir: Path) -> Path:
        """Write the state atomically (temporary file, then rename); returns its path."""
        path = self.path_for(self.url, data_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(asdict(self), out, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        return path


# --- polling ---------------------------------------------------------------------------------


def make_client(timeout: float = 20.0) -> httpx.Client:
    """The HTTP client for feeds: follows redirects, identifies itself."""
    return httpx.Client(timeout=timeout, follow_redirects=True, headers={"User-Agent": USER_AGENT})


def poll_feed(
    url: str,
    state: FeedState,
    client: httpx.Client,
    *,
    max_bytes: int | None = None,
    deadline_s: float | None = None,
) -> list[RawArticle]:
    """New or changed entries of the feed at ``url`` as articles; updates ``state`` in memory.

    Raises ``httpx.HTTPError`` when the feed cannot be fetched, :class:`FeedError` when it is
    not a feed, is larger than ``max_bytes`` (``settings.feed_max_bytes``) or is not fully
    received within ``deadline_s`` (``settings.feed_timeout_s``: a server trickling bytes
    cannot hold the poller); ``state`` is then unchanged.
    """
    from pipeline.settings import get_settings

    settings = get_settings()
    max_bytes = settings.feed_max_bytes if max_bytes is None else max_bytes
    deadline_s = settings.feed_timeout_s if deadline_s is None else deadline_s
    response, content = _fetch(client, url, _conditional_headers(state), max_bytes, deadline_s)
    if response.status_code == 304:
        return []
    response.raise_for_status()
    parsed = feedparser.parse(
        io.BytesIO(content),  # a stream: bytes would be tried as a file name first
        response_headers={
            "content-type": response.headers.get("content-type", ""),
            "content-location": str(response.url),
        },
    )
    if parsed.bozo and not parsed.entries and not parsed.get("version"):
        raise FeedError(f"not an RSS/Atom feed: {parsed.get('bozo_exception')}")
    feed_title = _plain(parsed.feed.get("title"), parsed.feed.get("title_detail"))
    source = feed_title or urlsplit(url).hostname
    articles, current = [], {}
    for entry in parsed.entries:
        try:
            article = entry_article(entry, source, url)
        except Exception as error:
            log.warning("feed %s: entry skipped (%s: %s)", url, type(error).__name__, error)
            continue
        if article is None:
            log.warning("feed %s: entry %s has no text, skipped", url, _entry_key(entry, ""))
            continue
        key = _entry_key(entry, article.body)
        current[key] = _content_hash(article)
        if state.entries.get(key) != current[key]:
            articles.append(article)
    state.etag = response.headers.get("etag")
    state.modified = response.headers.get("last-modified")
    state.entries = _remember(state.entries, current)
    return articles


def _fetch(
    client: httpx.Client, url: str, headers: dict[str, str], max_bytes: int, deadline_s: float
) -> tuple[httpx.Response, bytes]:
    """GET ``url``: the response and at most ``max_bytes`` of body, all within ``deadline_s``."""
    started = time.monotonic()
    with client.stream("GET", url, headers=headers) as response:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise FeedError(
                f"feed of {declared} bytes is over the limit of {max_bytes} (NEWS_FEED_MAX_BYTES)"
            )
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise FeedError(
                    f"feed larger than the limit of {max_bytes} bytes (NEWS_FEED_MAX_BYTES)"
                )
            if time.monotonic() - started > deadline_s:
                raise FeedError(f"feed not received within {deadline_s:g}s (NEWS_FEED_TIMEOUT_S)")
            chunks.append(chunk)
    return response, b"".join(chunks)


def _conditional_headers(state: FeedState) -> dict[str, str]:
    headers = {}
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.modified:
        headers["If-Modified-Since"] = state.modified
    return headers


def entry_article(entry: Any, source: str | None, feed_url: str) -> RawArticle | None:
    """One feed entry as an article (id set), or None when it has no text at all."""
    from pipeline.ids import article_id, normalise_url, stable_hash

    body = _entry_body(entry)
    if not body:
        return None
    article = RawArticle(
        source=source,
        url=_entry_link(entry),
        title=_plain(entry.get("title"), entry.get("title_detail")) or None,
        body=body,
        published_at=_entry_date(entry),
        feed_url=feed_url,
        guid=entry.get("id"),
        authors=_entry_authors(entry),
    )
    if article.url is None and article.guid:
        article.id = stable_hash("feed-entry", normalise_url(feed_url), article.guid)
    else:
        article.id = article_id(article)
    return article


def _entry_link(entry: Any) -> str | None:
    """The entry's web link; feedparser's fallback to a non-web guid (``urn:...``) is not one."""
    link = entry.get("link")
    return link if link and urlsplit(link).scheme in ("http", "https") else None


RSS_AUTHOR = re.compile(r"^\s*[^\s()]+@[^\s()]+\s*(?:\((?P<name>[^()]*)\))?\s*$")
"""RSS's ``email (Name)``, or a bare email"""


def _entry_authors(entry: Any) -> list[str]:
    """Author names. An RSS ``email (Name)`` is read here: feedparser cuts long domains
    (``desk@wire.example`` becomes the name ``ple``)."""
    rss_author = RSS_AUTHOR.match(entry.get("author") or "")
    if rss_author:
        name = (rss_author["name"] or "").strip()
        return [name] if name else []
    return [a["name"] for a in entry.get("authors", []) if a.get("name")]


def _entry_body(entry: Any) -> str:
    """The entry's full content when it has one (the longest part), else its summary."""
    contents = entry.get("content") or []
    if contents:
        longest = max(contents, key=lambda part: len(part.get("value", "")))
        return _plain(longest.get("value"), longest)
    return _plain(entry.get("summary"), entry.get("summary_detail"))


def _plain(value: str | None, detail: Any) -> str:
    """A feed text construct as plain text: HTML reduced, plain text stripped."""
    if not value:
        return ""
    kind = (detail or {}).get("type", "text/html")
    return html_to_text(value) if "html" in kind else value.strip()


def _entry_date(entry: Any) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    return datetime(*parsed[:6], tzinfo=UTC) if parsed else None


def _entry_key(entry: Any, body: str) -> str:
    return (
        entry.get("id")
        or entry.get("link")
        or hashlib.sha1(f"{entry.get('title', '')}\x1f{body}".encode()).hexdigest()
    )


def _content_hash(article: RawArticle) -> str:
    parts = [
        article.url,
        article.title,
        article.body,
        article.published_at.isoformat() if article.published_at else None,
    ]
    text = "\x1f".join(part or "" for part in parts)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _remember(old: dict[str, str], current: dict[str, str]) -> dict[str, str]:
    """The entries to remember: the current ones last (newest), capped at MAX_REMEMBERED."""
    merged = {key: value for key, value in old.items() if key not in current} | current
    return dict(list(merged.items())[-MAX_REMEMBERED:])


# --- HTML to text ----------------------------------------------------------------------------

PARAGRAPH_TAGS = frozenset(
    [
        "p",
        "div",
        "section",
        "article",
        "header",
        "footer",
        "aside",
        "blockquote",
        "pre",
        "figure",
        "figcaption",
        "table",
        "ul",
        "ol",
        "dl",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
    ]
)
LINE_TAGS = frozenset(["br", "hr", "li", "tr", "dt", "dd"])
HIDDEN_TAGS = frozenset(["script", "style", "noscript", "template", "head", "title"])


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment; block elements become line/paragraph breaks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._tag(tag, opening=True)

    def handle_endtag(self, tag: str) -> None:
        self._tag(tag, opening=False)

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        if tag not in HIDDEN_TAGS:
            self._tag(tag, opening=True)

    def _tag(self, tag: str, opening: bool) -> None:
        if tag in HIDDEN_TAGS:
            self.hidden = self.hidden + 1 if opening else max(0, self.hidden - 1)
        elif tag in PARAGRAPH_TAGS:
            self.parts.append("\n\n")
        elif tag in LINE_TAGS and opening:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment: tags dropped, entities decoded, paragraphs kept apart."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    lines = (line.strip() for line in "".join(extractor.parts).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
