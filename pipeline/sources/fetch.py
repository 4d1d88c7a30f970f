"""Polite, bounded page fetching.

Every request of :class:`Fetcher`:

- identifies itself (``NEWS_USER_AGENT``) and asks robots.txt first (``NEWS_FETCH_ROBOTS``):
  a disallowed page is not fetched; robots.txt answering 4xx allows all, an unreachable one (5xx,
  network error) disallows all for now (RFC 9309); its ``Crawl-delay`` lengthens the host delay;
- is bounded: a connect/read timeout (``NEWS_FETCH_TIMEOUT_S``), a size cap read as a stream
  (``NEWS_FETCH_MAX_BYTES``; a larger page is refused, not cut), at most
  ``NEWS_FETCH_MAX_REDIRECTS`` redirects (each hop asks robots.txt again);
- waits its turn: at most ``NEWS_FETCH_PER_HOST`` requests at once to one host, at least
  ``NEWS_FETCH_HOST_DELAY_S`` seconds between two request starts to one host, at most
  ``NEWS_FETCH_CONCURRENCY`` requests at once overall;
- is conditional: the ``ETag``/``Last-Modified`` of the last successful fetch of the url are
  sent back; a ``304`` means the page has not changed (:attr:`FetchResult.not_modified`).
  Validators live in ``<NEWS_DATA_DIR>/pages/`` and are saved by :meth:`Fetcher.commit` once the
  caller has delivered what it fetched (so a failed delivery fetches again).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpx

from pipeline.settings import Settings, get_settings

log = logging.getLogger(__name__)

REDIRECTS = frozenset({301, 302, 303, 307, 308})
ROBOTS_MAX_BYTES = 512_000


class FetchError(Exception):
    """A page that could not be fetched; the message is one line for a person to read."""


@dataclass
class FetchResult:
    url: str
    """the url asked for"""
    final_url: str
    status: int
    content: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def charset(self) -> str | None:
        kind = self.headers.get("content-type", "")
        for part in kind.split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                return value.strip("\"'")
        return None


class _Host:
    """Turn-taking for one host: a concurrency slot and the earliest next request start."""

    def __init__(self, slots: int):
        self.slots = threading.BoundedSemaphore(max(1, slots))
        self.lock = threading.Lock()
        self.next_start = 0.0
        self.robots: RobotFileParser | None = None
        self.robots_error: str | None = None
        self.robots_lock = threading.Lock()


class Fetcher:
    """Fetch pages politely (see the module docstring). Thread-safe; use as a context manager."""

    def __init__(self, settings: Settings | None = None, *, client: httpx.Client | None = None):
        self.settings = settings or get_settings()
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(self.settings.fetch_timeout_s),
            follow_redirects=False,  # followed here: robots.txt and the limit apply to each hop
            headers={"User-Agent": self.settings.user_agent},
        )
        self._hosts: dict[str, _Host] = {}
        self._hosts_lock = threading.Lock()
        self._overall = threading.BoundedSemaphore(max(1, self.settings.fetch_concurrency))
        self._validators: dict[str, dict[str, str]] = {}
        self._state_dir = Path(self.settings.data_dir) / "pages"

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    # --- one page ----------------------------------------------------------------------------
    def fetch(self, url: str) -> FetchResult:
        """GET ``url`` (conditional, robots-checked, bounded); raises :class:`FetchError`."""
        if urlsplit(url).scheme not in ("http", "https"):
            raise FetchError(f"not an http(s) url: {url}")
        validators = self._load_validators(url)
        current = url
        for _ in range(self.settings.fetch_max_redirects + 1):
            self._check_robots(current)
            headers = {}
            if validators.get("etag"):
                headers["If-None-Match"] = validators["etag"]
            if validators.get("last_modified"):
                headers["If-Modified-Since"] = validators["last_modified"]
            status, response_headers, content = self._get(
                current, headers, self.settings.fetch_max_bytes
            )
            if status in REDIRECTS and response_headers.get("location"):
                current = urljoin(current, response_headers["location"])
                validators = {}
                continue
            if status == 304:
                return FetchResult(url, current, status, b"", response_headers)
            if status >= 400:
                raise FetchError(f"HTTP {status} from {current}")
            found = {
                "etag": response_headers.get("etag"),
                "last_modified": response_headers.get("last-modified"),
            }
            if any(found.values()):
                with self._hosts_lock:
                    self._validators[url] = {k: v for k, v in found.items() if v}
            return FetchResult(url, current, status, content, response_headers)
        raise FetchError(f"more than {self.settings.fetch_max_redirects} redirects from {url}")

    def fetch_many(self, urls: Iterable[str]) -> Iterator[tuple[str, FetchResult | FetchError]]:
        """Fetch ``urls`` concurrently (within the limits); yields (url, result or error) in
        input order."""
        with ThreadPoolExecutor(max_workers=max(1, self.settings.fetch_concurrency)) as pool:
            futures = [(url, pool.submit(self._fetch_quietly, url)) for url in urls]
            for url, future in futures:
                yield url, future.result()

    def _fetch_quietly(self, url: str) -> FetchResult | FetchError:
        try:
            return self.fetch(url)
        except FetchError as error:
            return error

    # --- the request ---------------------------------------------------------------------------
    def _host(self, url: str) -> _Host:
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}".lower()
        with self._hosts_lock:
            if key not in self._hosts:
                self._hosts[key] = _Host(self.settings.fetch_per_host)
            return self._hosts[key]

    def _get(
        self, url: str, headers: dict[str, str], limit: int
    ) -> tuple[int, dict[str, str], bytes]:
        """One GET within the host's and the overall limits; the body read up to ``limit``."""
        host = self._host(url)
        with self._overall, host.slots:
            self._wait_turn(host)
            try:
                with self.client.stream("GET", url, headers=headers) as response:
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > limit:
                        raise FetchError(
                            f"{url}: {int(declared):,} bytes, more than the limit of "
                            f"{limit:,} (NEWS_FETCH_MAX_BYTES)"
                        )
                    chunks, size = [], 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > limit:
                            raise FetchError(
                                f"{url}: more than the limit of {limit:,} bytes "
                                "(NEWS_FETCH_MAX_BYTES)"
                            )
                        chunks.append(chunk)
                    return (
                        response.status_code,
                        {k.lower(): v for k, v in response.headers.items()},
                        b"".join(chunks),
                    )
            except httpx.TimeoutException:
                raise FetchError(
                    f"{url}: no answer within {self.settings.fetch_timeout_s:g}s "
                    "(NEWS_FETCH_TIMEOUT_S)"
                ) from None
            except httpx.HTTPError as error:
                raise FetchError(f"{url}: {type(error).__name__}: {error}") from None

    def _wait_turn(self, host: _Host) -> None:
        """Keep request starts to one host at least the host delay apart."""
        delay = self.settings.fetch_host_delay_s
        if host.robots is not None:
            crawl_delay = host.robots.crawl_delay(self.settings.user_agent)
            if crawl_delay:
                delay = max(delay, float(crawl_delay))
        with host.lock:
            now = time.monotonic()
            start = max(now, host.next_start)
            host.next_start = start + delay
        if start > now:
            time.sleep(start - now)  # our turn at this host comes at `start`

    # --- robots.txt ------------------------------------------------------------------------------
    def _check_robots(self, url: str) -> None:
        if not self.settings.fetch_robots:
            return
        host = self._host(url)
        with host.robots_lock:
            if host.robots is None and host.robots_error is None:
                self._load_robots(url, host)
        if host.robots_error:
            raise FetchError(f"{url}: robots.txt unreachable ({host.robots_error}), not fetched")
        if not host.robots.can_fetch(self.settings.user_agent, url):
            raise FetchError(f"{url}: disallowed by robots.txt")

    def _load_robots(self, url: str, host: _Host) -> None:
        robots_url = urljoin(url, "/robots.txt")
        parser = RobotFileParser(robots_url)
        try:
            status, _, content = self._get(robots_url, {}, ROBOTS_MAX_BYTES)
        except FetchError as error:
            host.robots_error = str(error)
            return
        if status >= 500:
            host.robots_error = f"HTTP {status}"
            return
        if status >= 400 or status in REDIRECTS:
            parser.parse([])  # no robots.txt: everything is allowed
        else:
            parser.parse(content.decode("utf-8", errors="replace").splitlines())
        host.robots = parser

    # --- validators ------------------------------------------------------------------------------
    def _path(self, url: str) -> Path:
        return self._state_dir / f"{hashlib.sha1(url.encode('utf-8')).hexdigest()}.json"

    def _load_validators(self, url: str) -> dict[str, str]:
        try:
            return json.loads(self._path(url).read_text("utf-8"))
        except (OSError, ValueError):
            return {}

    def commit(self) -> None:
        """Save the validators of the pages fetched so far (after they were delivered)."""
        with self._hosts_lock:
            pending, self._validators = self._validators, {}
        if pending:
            self._state_dir.mkdir(parents=True, exist_ok=True)
        for url, validators in pending.items():
            fd, tmp = tempfile.mkstemp(dir=self._state_dir, prefix=".", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(validators, out)
            os.replace(tmp, self._path(url))
