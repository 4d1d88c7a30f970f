"""The producers: read inputs into :class:`RawArticle` messages and publish them to Kafka.

Inputs (:func:`iter_inputs`):

- ``.json``: one article object, or a list of them;
- ``.jsonl`` / ``.ndjson``: one article object per line (blank lines skipped);
- any other file: plain text, the whole file is the body (``source``/``url``/``title`` unset,
  the file path kept in the extra field ``path``), so a byte-identical copy gets the same id;
- directories: walked recursively in name order, hidden entries skipped.

Input that cannot become an article is never dropped: it becomes a :class:`Rejected` with a
one-line human reason and the original bytes, and :func:`publish` sends it to the dead-letter
topic (stage ``ingest``). Size limits are not checked here: the worker dead-letters oversize
bodies itself, so a 10 MB body is sent like any other.

Producer field aliases: ``text``/``content`` -> ``body``, ``link`` -> ``url``,
``date``/``published`` -> ``published_at`` (only when the canonical field is absent; the alias
then stays as an extra field). A string date is parsed with dateutil (naive means UTC); an
unparsable one does not reject the article: it is moved to the extra field
``unparsed_published_at`` and logged as a warning. An integer ``id`` is taken as its string.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import typer
from dateutil import parser as dateparser
from kafka.errors import KafkaError, KafkaTimeoutError
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.deadletter import dead_letter
from pipeline.settings import Settings, get_settings
from schemas import DeadLetter, RawArticle

log = logging.getLogger(__name__)

JSON_SUFFIXES = {".json"}
JSON_LINES_SUFFIXES = {".jsonl", ".ndjson"}
FIELD_ALIASES = {"text": "body", "content": "body", "link": "url", "date": "published_at",
                 "published": "published_at"}
NOT_TEXT = "not UTF-8 text (binary?)"
EMPTY = "empty file"
STAGE = "ingest"


@dataclass(frozen=True)
class Rejected:
    """Input that cannot become an article: where it came from, why, and its original bytes."""

    origin: str
    """file path, ``path:line`` for JSON lines, ``path[index]`` for a JSON list element"""
    reason: str
    payload: bytes


InputItem = RawArticle | Rejected


# --- reading inputs ------------------------------------------------------------------------


def iter_inputs(paths: Iterable[Path]) -> Iterator[InputItem]:
    """Every article (id set) or rejection in ``paths``, in order; directories recursively."""
    for path in paths:
        yield from _iter_path(Path(path), seen_dirs=set())


def _iter_path(path: Path, seen_dirs: set[Path]) -> Iterator[InputItem]:
    if path.is_dir():
        yield from _iter_directory(path, seen_dirs)
    elif path.is_file():
        yield from _iter_file(path)
    elif not path.exists():
        yield Rejected(str(path), "no such file or directory", b"")
    else:
        yield Rejected(str(path), "not a regular file", b"")


def _iter_directory(directory: Path, seen_dirs: set[Path]) -> Iterator[InputItem]:
    """Children in name order, hidden ones skipped; a symlink loop is walked once."""
    real = directory.resolve()
    if real in seen_dirs:
        return
    seen_dirs.add(real)
    for child in sorted(directory.iterdir(), key=lambda p: p.name):
        if not child.name.startswith("."):
            yield from _iter_path(child, seen_dirs)


def _iter_file(path: Path) -> Iterator[InputItem]:
    from pipeline.sources.pages import HTML_SUFFIXES, html_file_article
    from pipeline.sources.warc import is_warc, iter_warc

    suffix = path.suffix.lower()
    try:
        if is_warc(path):  # web archives and pages: pipeline.sources (one page extractor)
            yield from iter_warc(path)
        elif suffix in HTML_SUFFIXES:
            yield html_file_article(path, path.read_bytes())
        elif suffix in JSON_LINES_SUFFIXES:
            yield from _iter_json_lines(path)
        else:
            data = path.read_bytes()
            if suffix in JSON_SUFFIXES:
                yield from _iter_json_document(path, data)
            else:
                yield _text_article(path, data)
    except OSError as error:
        yield Rejected(str(path), f"cannot read: {error.strerror or error}", b"")


def _decode_text(data: bytes) -> str | None:
    """UTF-8 text without a byte-order mark, or None for bytes that are not text."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def _text_article(path: Path, data: bytes) -> InputItem:
    text = _decode_text(data)
    if text is None:
        return Rejected(str(path), NOT_TEXT, data)
    if not text.strip():
        return Rejected(str(path), EMPTY, data)
    return _with_id(RawArticle(body=text, path=str(path)))


def _iter_json_document(path: Path, data: bytes) -> Iterator[InputItem]:
    text = _decode_text(data)
    if text is None:
        yield Rejected(str(path), NOT_TEXT, data)
        return
    if not text.strip():
        yield Rejected(str(path), EMPTY, data)
        return
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        reason = _json_error_reason(error.lineno, error.msg, error.colno - 1)
        yield Rejected(str(path), reason, data)
        return
    if isinstance(document, list):
        if not document:
            yield Rejected(str(path), "no articles (empty JSON list)", data)
        for index, element in enumerate(document):
            payload = json.dumps(element, ensure_ascii=False).encode("utf-8")
            yield article_from_object(element, f"{path}[{index}]", payload)
    else:
        yield article_from_object(document, str(path), data)


def _iter_json_lines(path: Path) -> Iterator[InputItem]:
    """One article per non-blank line, streamed (the file is never read whole)."""
    found_any = False
    with path.open("rb") as lines:
        for lineno, raw_line in enumerate(lines, start=1):
            line = raw_line.rstrip(b"\r\n")
            text = _decode_text(line)
            if text is not None and lineno == 1:
                text = text.removeprefix("\ufeff")
            if text is not None and not text.strip():
                continue
            found_any = True
            origin = f"{path}:{lineno}"
            if text is None:
                yield Rejected(origin, NOT_TEXT, line)
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as error:
                yield Rejected(origin, _json_error_reason(lineno, error.msg, error.pos), line)
                continue
            yield article_from_object(obj, origin, line)
    if not found_any:
        yield Rejected(str(path), EMPTY, path.read_bytes())


def _json_error_reason(lineno: int, message: str, char: int) -> str:
    return f"invalid JSON at line {lineno}: {message} (char {char})"


# --- objects to articles -------------------------------------------------------------------


def article_from_object(obj: Any, origin: str, payload: bytes) -> InputItem:
    """The article a producer's JSON object describes (id set), or why it cannot be one."""
    if not isinstance(obj, dict):
        return Rejected(origin, f"expected a JSON object, got {_json_type(obj)}", payload)
    fields = _normalise_fields(obj, origin)
    body = fields.get("body")
    if isinstance(body, str) and not body.strip():
        return Rejected(origin, "field 'body' is empty", payload)
    try:
        article = RawArticle.model_validate(fields)
    except ValidationError as error:
        return Rejected(origin, validation_reason(error), payload)
    return _with_id(article)


def _normalise_fields(obj: dict, origin: str) -> dict:
    """Aliases resolved, an integer id stringified, a string date parsed (or set aside)."""
    fields = dict(obj)
    for alias, name in FIELD_ALIASES.items():
        if name not in fields and alias in fields:
            fields[name] = fields.pop(alias)
    if isinstance(fields.get("id"), int) and not isinstance(fields["id"], bool):
        fields["id"] = str(fields["id"])
    if isinstance(fields.get("id"), str) and not fields["id"].strip():
        fields["id"] = None
    if isinstance(fields.get("published_at"), str):
        value = fields.pop("published_at")
        parsed = parse_date(value)
        if parsed is None and value.strip():
            log.warning("%s: unparsable date %r kept as 'unparsed_published_at'", origin, value)
            fields["unparsed_published_at"] = value
        fields["published_at"] = parsed
    return fields


US_ZONES = {name: hours * 3600 for name, hours in {
    "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
}.items()}
"""zone abbreviations dateutil does not know by itself (RFC 822 names them)"""


def parse_date(value: str) -> datetime | None:
    """A date string in any common format (ISO 8601, RFC 2822, ...) as an aware datetime.

    ISO 8601 takes the fast path (``fromisoformat``); anything else goes to dateutil.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            with warnings.catch_warnings():  # an unknown zone name: taken as UTC, like none
                warnings.simplefilter("ignore", dateparser.UnknownTimezoneWarning)
                parsed = dateparser.parse(value, tzinfos=US_ZONES)
        except (ValueError, OverflowError):
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


EXPECTED_TYPES = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "dict_type": "an object",
    "list_type": "a list",
    "datetime_type": "a date",
    "datetime_parsing": "a date",
    "datetime_from_date_parsing": "a date",
}


def validation_reason(error: ValidationError) -> str:
    """A pydantic validation error as one short line, e.g. ``missing field 'body'``."""
    return "; ".join(_error_reason(detail) for detail in error.errors())


def _error_reason(detail: dict) -> str:
    name = ".".join(str(part) for part in detail["loc"])
    kind = detail["type"]
    if kind == "missing":
        return f"missing field '{name}'"
    if kind == "string_too_short":
        return f"field '{name}' is empty"
    if kind in EXPECTED_TYPES:
        return f"field '{name}' must be {EXPECTED_TYPES[kind]}, got {_json_type(detail['input'])}"
    return f"field '{name}': {detail['msg']}"


def _json_type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _with_id(article: RawArticle) -> RawArticle:
    from pipeline.ids import article_id  # another module's work; imported when first needed

    article.id = article_id(article)
    return article


# --- publishing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """A message the broker did not accept: its key (article id or origin) and the error."""

    key: str
    error: str


@dataclass
class IngestReport:
    """What one :func:`publish` did."""

    sent: int = 0
    """articles the broker acknowledged"""
    rejected: list[Rejected] = field(default_factory=list)
    """inputs that were not articles (each sent to the dead-letter topic)"""
    failed: list[Failure] = field(default_factory=list)
    """messages (articles or dead letters) the broker did not accept"""
    elapsed: float = 0.0
    ids: list[str] = field(default_factory=list)
    """ids of the acknowledged articles, in input order"""
    stopped: str | None = None
    """why publishing stopped before the end of the input (broker unreachable), if it did"""


class _Deliveries:
    """Delivery outcomes, filled in by the producer's I/O thread."""

    def __init__(self) -> None:
        self.article_ids: list[str] = []
        self.acked: set[int] = set()
        self.failed: list[Failure] = []

    def track(self, future: Any, key: str, article_index: int | None) -> None:
        if article_index is not None:
            future.add_callback(lambda _metadata: self.acked.add(article_index))
        future.add_errback(lambda error: self.failed.append(Failure(key, _describe(error))))


def _describe(error: BaseException) -> str:
    """``Type: message`` (Kafka errors put their type in the message already)."""
    name, text = type(error).__name__, str(error)
    return text if text.startswith(name) else f"{name}: {text}" if text else name


def publish(
    items: Iterable[InputItem],
    producer: Any,
    settings: Settings | None = None,
    progress: bool = True,
) -> IngestReport:
    """Send articles to the raw topic (keyed by id) and rejections to the dead-letter topic.

    Flushes at the end and reports what the broker acknowledged and what failed. Publishing
    stops early only when the broker cannot be reached (a metadata timeout).
    """
    settings = settings or get_settings()
    raw_topic, letter_topic = settings.topic("raw"), settings.topic("deadletter")
    report, deliveries = IngestReport(), _Deliveries()
    started = time.monotonic()
    with _progress_display(progress) as (display, task):
        for item in items:
            if isinstance(item, Rejected):
                report.rejected.append(item)
                key, topic, value = item.origin, letter_topic, _letter(item, settings)
                article_index = None
            else:
                key, topic, value = item.id, raw_topic, item
                article_index = len(deliveries.article_ids)
                deliveries.article_ids.append(item.id)
            try:
                future = producer.send(topic, key=key, value=value)
            except KafkaTimeoutError as error:
                deliveries.failed.append(Failure(key, _describe(error)))
                report.stopped = f"broker unreachable: {_describe(error)}"
                break
            except KafkaError as error:
                deliveries.failed.append(Failure(key, _describe(error)))
            else:
                deliveries.track(future, key, article_index)
            display.update(task, articles=len(deliveries.article_ids),
                           rejected=len(report.rejected))
        display.update(task, description="flushing")
        producer.flush()
    report.ids = [i for n, i in enumerate(deliveries.article_ids) if n in deliveries.acked]
    report.sent = len(report.ids)
    report.failed = list(deliveries.failed)
    report.elapsed = time.monotonic() - started
    return report


def _letter(item: Rejected, settings: Settings) -> DeadLetter:
    """The dead letter of a rejected input: error ``"<origin>: <reason>"``, key the origin.

    A payload too large for one message is cut (and the error says so).
    """
    limit = settings.max_message_bytes // 2  # base64 grows it by a third, plus the envelope
    payload, error = item.payload, f"{item.origin}: {item.reason}"
    if len(payload) > limit:
        error = f"{error} (payload cut to its first {limit} of {len(payload)} bytes)"
        payload = payload[:limit]
    return dead_letter(STAGE, error, payload, key=item.origin)


@contextmanager
def _progress_display(enabled: bool) -> Iterator[tuple[Progress, TaskID]]:
    """A spinner with running counts on stderr (only when it is a terminal and wanted)."""
    console = Console(stderr=True)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[articles]} articles, {task.fields[rejected]} rejected"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not (enabled and console.is_terminal),
    )
    with progress:
        yield progress, progress.add_task("ingesting", total=None, articles=0, rejected=0)


# --- CLI -------------------------------------------------------------------------------------


def cmd_ingest(
    paths: list[Path] = typer.Argument(
        None, exists=True, help="files or directories: .json, .jsonl/.ndjson, or plain text"
    ),
    feed: list[str] = typer.Option(None, "--feed", help="RSS/Atom feed URL (repeatable)"),
    url: list[str] = typer.Option(None, "--url", help="web page URL: fetched, main text extracted (repeatable)"),
    interval: float = typer.Option(60.0, "--interval", min=1.0, help="seconds between polls"),
    once: bool = typer.Option(False, "--once", help="poll the feeds once, then exit"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress, no summary"),
) -> None:
    """Publish articles from files/directories and/or RSS/Atom feeds to the raw topic.

    Input that is not an article goes to the dead-letter topic with the reason. Exit status 1
    when the broker did not accept a message (or, with --once, a feed could not be read).
    """
    if not paths and not feed and not url:
        raise typer.BadParameter("give files/directories to ingest, --url URL or --feed URL")
    settings = get_settings()
    console = Console()
    producer = _connect(settings, console)
    ok = True
    try:
        if paths:
            report = publish(iter_inputs(paths), producer, settings, progress=not quiet)
            if not quiet:
                print_report(report, console)
            ok = not report.failed
        if url:
            ok = _ingest_urls(url, producer, settings, console, quiet) and ok
        if feed:
            ok = _run_feeds(feed, interval, once, producer, settings, console, quiet) and ok
    finally:
        producer.close()
    if not ok:
        raise typer.Exit(1)


def _connect(settings: Settings, console: Console) -> Any:
    """A producer, once the topics exist; exit 1 with a message when no broker answers."""
    from pipeline.kafka import ensure_topics, make_producer

    try:
        ensure_topics(settings)
        return make_producer(settings)
    except KafkaError as error:
        console.print(f"[red]Kafka at {settings.kafka_bootstrap}: {_describe(error)}[/]"
                      " (is it running? newspipe up)")
        raise typer.Exit(1) from None


def _ingest_urls(urls: list[str], producer: Any, settings: Settings, console: Console, quiet: bool) -> bool:
    """Fetch and extract the pages (pipeline.sources), publish them; False on failures."""
    from pipeline.sources.fetch import Fetcher
    from pipeline.sources.pages import iter_urls

    with Fetcher(settings) as fetcher:
        report = publish(iter_urls(urls, fetcher), producer, settings, progress=not quiet)
        if not report.failed and not report.stopped:
            fetcher.commit()  # conditional GET next time: only pages that were delivered
    if not quiet:
        print_report(report, console)
    return not report.failed


def _run_feeds(
    urls: list[str],
    interval: float,
    once: bool,
    producer: Any,
    settings: Settings,
    console: Console,
    quiet: bool,
) -> bool:
    """Poll the feeds once, or every ``interval`` seconds until Ctrl-C; False on failures."""
    from pipeline.feeds import make_client

    ok = True
    with make_client() as client:
        try:
            while True:
                report, errors = feed_cycle(urls, client, producer, settings, progress=not quiet)
                for url, error in errors:
                    console.print(f"[yellow]feed {url}: {error}[/]")
                if not quiet and (once or report.sent or report.rejected or report.failed):
                    print_report(report, console)
                ok = ok and not report.failed and not (once and errors)
                if once:
                    return ok
                time.sleep(interval)
        except KeyboardInterrupt:
            return ok


def feed_cycle(
    urls: list[str], client: Any, producer: Any, settings: Settings, progress: bool = False
) -> tuple[IngestReport, list[tuple[str, str]]]:
    """Poll every feed once and publish what is new; the feed states are saved only when
    every article was delivered (else the next cycle sends them again).

    Returns the report and the feeds that could not be read, as (url, error).
    """
    import httpx

    from pipeline.feeds import FeedError, FeedState, poll_feed

    states = [FeedState.load(url, settings.data_dir) for url in urls]
    articles: list[RawArticle] = []
    errors: list[tuple[str, str]] = []
    for state in states:
        try:
            articles.extend(poll_feed(state.url, state, client))
        except (httpx.HTTPError, FeedError) as error:
            errors.append((state.url, _describe(error)))
    if articles and settings.feed_min_words > 0:  # teasers: the linked page's text instead
        from pipeline.sources.fetch import Fetcher
        from pipeline.sources.pages import expand_teasers

        with Fetcher(settings) as fetcher:
            articles = expand_teasers(articles, fetcher, settings.feed_min_words)
    report = publish(articles, producer, settings, progress=progress)
    if not report.failed and not report.stopped:
        for state in states:
            state.save(settings.data_dir)
    return report, errors


def print_report(report: IngestReport, console: Console, limit: int = 20) -> None:
    """The summary: counts, then the rejections and failures with their reasons."""
    summary = Table(title=f"ingest ({report.elapsed:.1f} s)", show_header=False)
    summary.add_row("sent", str(report.sent), style="green")
    summary.add_row("rejected", str(len(report.rejected)), style="yellow" if report.rejected else None)
    summary.add_row("failed", str(len(report.failed)), style="red" if report.failed else None)
    console.print(summary)
    if report.rejected:
        console.print(_listing("rejected (sent to the dead-letter topic)", "input", "reason",
                               [(r.origin, r.reason) for r in report.rejected], limit))
    if report.failed:
        console.print(_listing("failed deliveries", "key", "error",
                               [(f.key, f.error) for f in report.failed], limit))
    if report.stopped:
        console.print(f"[red]stopped early: {report.stopped}[/]")


def _listing(title: str, key: str, reason: str, rows: list[tuple[str, str]], limit: int) -> Table:
    table = Table(title=title)
    table.add_column(key, overflow="fold")
    table.add_column(reason, overflow="fold")
    for row in rows[:limit]:
        table.add_row(*row)
    if len(rows) > limit:
        table.add_row(f"... and {len(rows) - limit} more", "")
    return table
