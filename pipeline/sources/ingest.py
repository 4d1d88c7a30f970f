"""The producers: read inputs into :class:`RawArticle` messages and publish them to Kafka.

Inputs (:func:`iter_inputs`):

- ``.json``: one article object, or a list of them;
- ``.jsonl`` / ``.ndjson``: one article object per line (blank lines skipped);
- any other file: plain text, the whole file is the body (``source``/``url``/``title`` unset,
  the file path kept in the extra field ``path``), so a byte-identical copy gets the same id;
- directories: walked recursively in name order, hidden entries skipped.

Input that cannot become an article is never dropped: it becomes a :class:`Rejected` with a
one-line human reason and the original bytes, and :func:`publish` sends it to the dead-letter
topic (stage ``ingest``). Sizes are decided here, at the door: a file over ``max_input_bytes``
(after decompression), an article over ``max_article_bytes``, a body over ``max_body_chars`` or
a field over :data:`FIELD_LIMITS` is rejected with its reason; an over-long id is hashed.

Bad input is decided, never a traceback (the whole table: ``docs/bad-input.md``): other
encodings are detected (byte-order marks, then charset-normalizer); ``.gz``/``.bz2``/``.xz``/
``.zst`` files are read as the file they hold; JSON with duplicate keys, NaN, out-of-range
numbers or nesting deeper than ``max_json_depth`` is rejected; HTML pages are rejected.

Producer field aliases: ``text``/``content`` -> ``body``, ``link`` -> ``url``,
``date``/``published`` -> ``published_at`` (only when the canonical field is absent; the alias
then stays as an extra field). A string date is parsed with dateutil (naive means UTC); an
unparsable one does not reject the article: it is moved to the extra field
``unparsed_published_at`` and logged as a warning. An integer ``id`` is taken as its string.
"""

from __future__ import annotations

import codecs
import io
import json
import logging
import math
import re
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import typer
from dateutil import parser as dateparser
from kafka.errors import KafkaError, KafkaTimeoutError
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.infra.deadletter import dead_letter
from pipeline.settings import Settings, get_settings
from schemas import DeadLetter, RawArticle

log = logging.getLogger(__name__)

JSON_SUFFIXES = {".json"}
JSON_LINES_SUFFIXES = {".jsonl", ".ndjson"}
FIELD_ALIASES = {
    "text": "body",
    "content": "body",
    "link": "url",
    "date": "published_at",
    "published": "published_at",
}
NOT_TEXT = "not text in any known encoding (binary?)"
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
    """The items of one file; a compressed file (.gz/.bz2/.xz/.zst) is read as the file it
    holds (``a.jsonl.gz`` as JSON lines). Nothing here raises: every failure is a Rejected."""
    from pipeline.sources.warc import is_warc, iter_warc

    settings = get_settings()
    if is_warc(path):  # web archives (.warc, .warc.gz): record by record, pipeline.sources
        yield from iter_warc(path)
        return
    compression = COMPRESSIONS.get(path.suffix.lower())
    inner = Path(path.stem).suffix.lower() if compression else path.suffix.lower()
    limit = settings.max_input_bytes
    try:
        with _open_input(path, compression) as stream:
            if inner in JSON_LINES_SUFFIXES:
                yield from _iter_json_lines(path, stream, settings)
                return
            data = stream.read(limit + 1)
        if len(data) > limit:
            where = " when decompressed" if compression else ""
            yield Rejected(
                str(path), f"larger than {limit} bytes{where} (NEWS_MAX_INPUT_BYTES)", data[:limit]
            )
        elif inner in JSON_SUFFIXES:
            yield from _iter_json_document(path, data, settings)
        elif inner in HTML_SUFFIXES:
            yield _html_item(path, data)
        else:
            yield _text_article(path, data, settings)
    except COMPRESSION_ERRORS as error:
        if compression is None and isinstance(error, OSError):
            yield Rejected(str(path), f"cannot read: {error.strerror or error}", b"")
        else:
            yield Rejected(str(path), f"not a valid {compression} file: {_one_line(error)}", b"")


COMPRESSIONS = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}


def _compression_errors() -> tuple[type[BaseException], ...]:
    import lzma

    import zstandard

    return (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError)


COMPRESSION_ERRORS = _compression_errors()


def _open_input(path: Path, compression: str | None) -> BinaryIO:
    """The file's bytes as a stream, decompressed on the fly (never whole in memory)."""
    if compression == "gzip":
        import gzip

        return gzip.open(path, "rb")
    if compression == "bzip2":
        import bz2

        return bz2.open(path, "rb")
    if compression == "xz":
        import lzma

        return lzma.open(path, "rb")
    if compression == "zstd":
        return io.BufferedReader(_ZstdReader(path), buffer_size=1 << 16)
    return path.open("rb")


class _ZstdReader(io.RawIOBase):
    """A zstd file as a raw stream that, unlike zstandard's reader, fails on a truncated file
    (when the frame header declares its size, as ``zstd`` and ``compress`` write it)."""

    def __init__(self, path: Path) -> None:
        import zstandard

        self._file = path.open("rb")
        try:
            self._expected = zstandard.frame_content_size(self._file.read(18))
        except zstandard.ZstdError:
            self._expected = -1  # not a zstd header: the reader raises on the first read
        self._file.seek(0)
        self._reader = zstandard.ZstdDecompressor().stream_reader(
            self._file, read_across_frames=True
        )
        self._count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        import zstandard

        data = self._reader.read(len(buffer))
        if not data and 0 <= self._count < self._expected:
            raise zstandard.ZstdError(
                f"truncated: {self._count} of {self._expected} bytes decompressed"
            )
        buffer[: len(data)] = data
        self._count += len(data)
        return len(data)

    def close(self) -> None:
        self._reader.close()
        self._file.close()
        super().close()


def _one_line(error: BaseException) -> str:
    return " ".join((str(error) or type(error).__name__).split())[:200]


BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16: its BOM starts the same way
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
TEXT_CONTROLS = {"\t", "\n", "\r", "\f", "\v"}


def decode_text(data: bytes, *, boms: bool = True) -> str | None:
    """Bytes as text, or None when they are not text.

    A byte-order mark decides (UTF-8/16/32, the mark removed); else UTF-8; else the encoding
    charset-normalizer finds (Windows-1252, Latin-1, Shift_JIS, ...). NUL bytes without a mark,
    or text that is mostly control characters, are binary. ``boms=False``: a line of a file,
    whose marks were read at the start of the file.
    """
    for bom, encoding in BOMS if boms else ():
        if data.startswith(bom):
            try:
                text = data.decode(encoding).removeprefix("\ufeff")
            except UnicodeDecodeError:
                return None
            return None if _looks_binary(text) or _garbled(text) else text
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        if b"\x00" in data:
            return None
        from charset_normalizer import from_bytes

        best = _best_match(from_bytes(data))
        if best is None:
            return None
        text = str(best)
        if not any(ch.isalpha() for ch in text[:8192]):  # a guess that reads as no words
            return None
    return None if _looks_binary(text) else text


PREFERRED_ON_TIE = ("cp1252", "utf_8", "latin_1")
"""among candidates charset-normalizer ranks equal, the most used legacy encoding wins
(Windows-1252 is the web's default for undeclared Western text)"""


def _best_match(matches):
    best = matches.best()
    if best is None:
        return None
    tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    for name in PREFERRED_ON_TIE:
        for match in tied:
            if name in (match.encoding, *match.could_be_from_charset):
                return match
    return best


def _garbled(text: str) -> bool:
    """Bytes that decode but read as noise (charset-normalizer's mess ratio)."""
    from charset_normalizer.md import mess_ratio

    return mess_ratio(text[:8192], 1.0) > 0.2


def _looks_binary(text: str) -> bool:
    sample = text[:8192]
    if "\x00" in sample:
        return True
    controls = sum(1 for ch in sample if ch < " " and ch not in TEXT_CONTROLS)
    return controls > max(8, len(sample) // 20)


def _text_article(path: Path, data: bytes, settings: Settings) -> InputItem:
    text = decode_text(data)
    if text is None:
        return Rejected(str(path), NOT_TEXT, data)
    if not text.strip():
        return Rejected(str(path), EMPTY, data)
    if _is_html(text):
        return _html_item(path, data)
    return article_from_object({"body": text, "path": str(path)}, str(path), data, settings)


def _is_html(text: str) -> bool:
    head = text.lstrip()[:512].lower()
    return head.startswith(("<!doctype html", "<html")) or (
        head.startswith("<?xml") and "<html" in head
    )


def _html_item(path: Path, data: bytes) -> InputItem:
    """An HTML page given as a file (whatever its name): the main text, title, authors and
    date through the one page extractor of ``pipeline.sources``."""
    from pipeline.sources.pages import html_file_article

    return html_file_article(path, data)


class BadJSON(ValueError):
    """JSON that parses nowhere the same way or costs without bound: rejected with a reason."""


def load_json(text: str, max_depth: int) -> Any:
    """``json.loads`` that refuses what other parsers read differently or that costs without
    bound: duplicate keys, NaN/Infinity, numbers out of range, nesting deeper than
    ``max_depth``. Raises :class:`BadJSON` (or ``json.JSONDecodeError``) with a one-line reason.
    """

    def pairs(items: list[tuple[str, Any]]) -> dict:
        obj = dict(items)
        if len(obj) != len(items):
            seen: set[str] = set()
            duplicate = next(k for k, _ in items if k in seen or seen.add(k))
            raise BadJSON(f"duplicate key {duplicate[:80]!r}")
        return obj

    def constant(name: str) -> Any:
        raise BadJSON(f"{name} is not a JSON number")

    def number(value: str) -> float:
        parsed = float(value)
        if math.isinf(parsed):
            raise BadJSON(f"number {value[:40]} is out of range")
        return parsed

    def integer(value: str) -> int:
        if len(value) > 100:
            raise BadJSON(f"integer of {len(value)} digits is out of range")
        return int(value)

    if _nesting(text) > max_depth:
        raise BadJSON(f"nested deeper than {max_depth} levels (NEWS_MAX_JSON_DEPTH)")
    try:
        return json.loads(
            text,
            object_pairs_hook=pairs,
            parse_constant=constant,
            parse_float=number,
            parse_int=integer,
        )
    except RecursionError:  # unreachable after _nesting, kept as a guard
        raise BadJSON(f"nested deeper than {max_depth} levels") from None


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def _nesting(text: str) -> int:
    """Deepest nesting of arrays/objects in JSON text (strings skipped), without parsing."""
    if "[" not in text and "{" not in text:
        return 0
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _parse_json(text: str, lineno: int | None, settings: Settings) -> tuple[Any, str | None]:
    """(object, None) or (None, reason); ``lineno``: the line of a JSON-lines file."""
    try:
        return load_json(text, settings.max_json_depth), None
    except json.JSONDecodeError as error:
        if lineno is None:
            return None, _json_error_reason(error.lineno, error.msg, error.colno - 1)
        return None, _json_error_reason(lineno, error.msg, error.pos)
    except (BadJSON, ValueError) as error:
        return None, f"invalid JSON: {_one_line(error)}"


def _iter_json_document(path: Path, data: bytes, settings: Settings) -> Iterator[InputItem]:
    text = decode_text(data)
    if text is None:
        yield Rejected(str(path), NOT_TEXT, data)
        return
    if not text.strip():
        yield Rejected(str(path), EMPTY, data)
        return
    document, reason = _parse_json(text, None, settings)
    if reason is not None:
        yield Rejected(str(path), reason, data)
        return
    if isinstance(document, list):
        if not document:
            yield Rejected(str(path), "no articles (empty JSON list)", data)
        for index, element in enumerate(document):
            payload = _dumps(element)
            yield article_from_object(element, f"{path}[{index}]", payload, settings)
    else:
        yield article_from_object(document, str(path), data, settings)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", errors="surrogatepass")


def _iter_json_lines(path: Path, stream: BinaryIO, settings: Settings) -> Iterator[InputItem]:
    """One article per non-blank line, streamed (the file is never read whole). A line
    longer than ``max_article_bytes`` is rejected without being kept whole in memory. A
    UTF-16/32 file (byte-order mark) is decoded whole first (up to ``max_input_bytes``)."""
    head = stream.read(4)
    wide = next((enc for bom, enc in BOMS if head.startswith(bom) and enc != "utf-8-sig"), None)
    if wide is not None:
        data = head + stream.read(settings.max_input_bytes)
        text = decode_text(data)
        if text is None:
            yield Rejected(str(path), NOT_TEXT, data)
            return
        lines: Iterable[bytes] = (
            line.encode("utf-8", "surrogatepass") for line in text.split("\n")
        )
    else:
        lines = _bounded_lines(_prepend(head, stream), settings.max_article_bytes)
    found_any = False
    for lineno, raw_line in enumerate(lines, start=1):
        origin = f"{path}:{lineno}"
        if isinstance(raw_line, _LongLine):
            found_any = True
            yield Rejected(
                origin,
                f"line longer than the limit of {settings.max_article_bytes} "
                "bytes (NEWS_MAX_ARTICLE_BYTES)",
                bytes(raw_line),
            )
            continue
        line = raw_line.rstrip(b"\r\n")
        if lineno == 1:
            line = line.removeprefix(codecs.BOM_UTF8)
        text = decode_text(line, boms=False) if line.strip() else ""
        if text is not None and not text.strip():
            continue
        found_any = True
        if text is None:
            yield Rejected(origin, NOT_TEXT, line)
            continue
        obj, reason = _parse_json(text, lineno, settings)
        if reason is not None:
            yield Rejected(origin, reason, line)
            continue
        yield article_from_object(obj, origin, line, settings)
    if not found_any:
        yield Rejected(str(path), EMPTY, b"")


def _prepend(head: bytes, stream: BinaryIO) -> BinaryIO:
    class _Joined(io.RawIOBase):
        def __init__(self) -> None:
            self.head = head

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            if self.head:
                n = min(len(buffer), len(self.head))
                buffer[:n], self.head = self.head[:n], self.head[n:]
                return n
            chunk = stream.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    return io.BufferedReader(_Joined(), buffer_size=1 << 16)


class _LongLine(bytes):
    """The first bytes of a line over the limit (the rest was skipped)."""


def _bounded_lines(stream: BinaryIO, limit: int) -> Iterator[bytes]:
    """Lines of at most ``limit`` bytes; a longer line is read to its end in chunks and
    yielded as a :class:`_LongLine` of its first ``limit`` bytes."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while True:  # skip the rest of the long line
                rest = stream.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            yield _LongLine(line[:limit])
            continue
        yield line


def _json_error_reason(lineno: int, message: str, char: int) -> str:
    return f"invalid JSON at line {lineno}: {message} (char {char})"


def iter_request(
    data: bytes, origin: str = "request", *, lines: bool = False, settings: Settings | None = None
) -> Iterator[InputItem]:
    """The articles of an HTTP request body (``POST /articles``) through the very readers of
    files, so the contract, limits and reasons are the same: one JSON object or a list of them,
    or (``lines``) NDJSON, one object per non-blank line (origin ``request:<line>``)."""
    settings = settings or get_settings()
    if lines:
        yield from _iter_json_lines(origin, io.BytesIO(data), settings)  # only str(origin) is used
    else:
        yield from _iter_json_document(origin, data, settings)


# --- objects to articles -------------------------------------------------------------------


FIELD_LIMITS = {"title": 2_000, "source": 500, "url": 8_192, "language": 35}
"""longest value (characters) of these string fields; longer ones are refused at ingest"""


def article_from_object(
    obj: Any, origin: str, payload: bytes, settings: Settings | None = None
) -> InputItem:
    """The article a producer's JSON object describes (id set), or why it cannot be one.

    Sizes are decided here, at the door (docs/bad-input.md): an article over
    ``max_article_bytes``, a body over ``max_body_chars``, a field over its
    :data:`FIELD_LIMITS` entry or text that is not valid Unicode is refused with a reason; an
    id over the id limit is replaced by its hash (:func:`pipeline.ids.article_id`).
    """
    settings = settings or get_settings()
    if not isinstance(obj, dict):
        return Rejected(origin, f"expected a JSON object, got {_json_type(obj)}", payload)
    if len(payload) > settings.max_article_bytes:
        return Rejected(
            origin,
            f"article of {len(payload)} bytes is over the limit of "
            f"{settings.max_article_bytes} (NEWS_MAX_ARTICLE_BYTES)",
            payload,
        )
    fields = _normalise_fields(obj, origin)
    body = fields.get("body")
    if isinstance(body, str) and not body.strip():
        return Rejected(origin, "field 'body' is empty", payload)
    reason = _size_reason(fields, settings)
    if reason is not None:
        return Rejected(origin, reason, payload)
    try:
        article = RawArticle.model_validate(fields)
    except ValidationError as error:
        return Rejected(origin, validation_reason(error), payload)
    return _with_id(article)


def _size_reason(fields: dict, settings: Settings) -> str | None:
    body = fields.get("body")
    if isinstance(body, str) and len(body) > settings.max_body_chars:
        return (
            f"field 'body' has {len(body)} characters, over the limit of "
            f"{settings.max_body_chars} (NEWS_MAX_BODY_CHARS)"
        )
    for name, limit in FIELD_LIMITS.items():
        value = fields.get(name)
        if isinstance(value, str) and len(value) > limit:
            return f"field '{name}' has {len(value)} characters, over the limit of {limit}"
    try:
        json.dumps(fields, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        return "invalid Unicode (a lone surrogate escape such as \\ud800)"
    return None


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


US_ZONES = {
    name: hours * 3600
    for name, hours in {
        "EST": -5,
        "EDT": -4,
        "CST": -6,
        "CDT": -5,
        "MST": -7,
        "MDT": -6,
        "PST": -8,
        "PDT": -7,
    }.items()
}
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
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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

    given = article.id
    article.id = article_id(article)
    if given and given.strip() != article.id:  # an over-long id was replaced by its hash
        article.original_id = given  # type: ignore[attr-defined]  (an extra field)
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
            display.update(
                task, articles=len(deliveries.article_ids), rejected=len(report.rejected)
            )
        display.update(task, description="flushing")
        deadline = settings.producer_deadline_s
        try:
            producer.flush(timeout=deadline)
        except KafkaError as error:  # the deadline passed with messages unacknowledged
            report.stopped = (
                f"the broker did not acknowledge every message within {deadline:g}s "
                f"(NEWS_PRODUCER_DEADLINE_S): {_describe(error)}"
            )
    report.ids = [i for n, i in enumerate(deliveries.article_ids) if n in deliveries.acked]
    report.sent = len(report.ids)
    report.failed = list(deliveries.failed)
    report.elapsed = time.monotonic() - started
    if report.stopped:
        report.stopped += (
            f"; {report.sent} of {len(deliveries.article_ids)} articles read so far "
            "acknowledged; run the same command again to resume (ids are "
            "deterministic: nothing is doubled)"
        )
    return report


def _letter(item: Rejected, settings: Settings) -> DeadLetter:
    """The dead letter of a rejected input: error ``"<origin>: <reason>"``, key the origin.

    A payload too large for one message is cut by :func:`pipeline.infra.deadletter.dead_letter`
    (hash and size kept; the error says so).
    """
    return dead_letter(
        STAGE,
        f"{item.origin}: {item.reason}",
        item.payload,
        key=item.origin,
        max_bytes=settings.max_message_bytes,
    )


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
        None,
        exists=True,
        help="files or directories: .json, .jsonl/.ndjson or plain text, also .gz/.bz2/.xz/.zst",
    ),
    feed: list[str] = typer.Option(None, "--feed", help="RSS/Atom feed URL (repeatable)"),
    url: list[str] = typer.Option(
        None, "--url", help="web page URL: fetched, main text extracted (repeatable)"
    ),
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
            elif report.stopped:
                Console(stderr=True).print(f"stopped early: {report.stopped}", markup=False)
            ok = not report.failed and not report.stopped
        if url:
            ok = _ingest_urls(url, producer, settings, console, quiet) and ok
        if feed:
            ok = _run_feeds(feed, interval, once, producer, settings, console, quiet) and ok
    finally:
        producer.close(timeout=5)  # unacknowledged messages were reported: do not wait on them
    if not ok:
        raise typer.Exit(1)


def _connect(settings: Settings, console: Console) -> Any:
    """A producer, once the topics exist; exit 1 with a message when no broker answers."""
    from pipeline.infra.kafka import ensure_topics, make_producer

    try:
        ensure_topics(settings)
        return make_producer(settings)
    except KafkaError as error:
        console.print(
            f"[red]Kafka at {settings.kafka_bootstrap}: {_describe(error)}[/]"
            " (is it running? newspipe up)"
        )
        raise typer.Exit(1) from None


def _ingest_urls(
    urls: list[str], producer: Any, settings: Settings, console: Console, quiet: bool
) -> bool:
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
    from pipeline.sources.feeds import make_client

    ok = True
    with make_client(timeout=settings.feed_timeout_s) as client:
        try:
            while True:
                report, errors = feed_cycle(urls, client, producer, settings, progress=not quiet)
                for url, error in errors:
                    console.print(f"[yellow]feed {url}: {error}[/]")
                if not quiet and (once or report.sent or report.rejected or report.failed):
                    print_report(report, console)
                ok = ok and not report.failed and not report.stopped and not (once and errors)
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

    from pipeline.sources.feeds import FeedError, FeedState, poll_feed

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
    summary.add_row(
        "rejected", str(len(report.rejected)), style="yellow" if report.rejected else None
    )
    summary.add_row("failed", str(len(report.failed)), style="red" if report.failed else None)
    console.print(summary)
    if report.rejected:
        console.print(
            _listing(
                "rejected (sent to the dead-letter topic)",
                "input",
                "reason",
                [(r.origin, r.reason) for r in report.rejected],
                limit,
            )
        )
    if report.failed:
        console.print(
            _listing(
                "failed deliveries",
                "key",
                "error",
                [(f.key, f.error) for f in report.failed],
                limit,
            )
        )
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
