"""The clean stage: RawArticle -> CleanArticle.

Steps, in order (each a small function below):

1. reject what cannot become an article (:class:`CleanError`): too long, binary garbage;
2. repair the text: mojibake and HTML entities (ftfy), NFC, one kind of line break, no
   zero-width or control characters; typographic quotes and dashes are kept;
3. drop the Reuters sign-off (" Reuter" at the very end);
4. drop boilerplate lines anywhere (navigation, ad markers, weather, copyright/cookie notices;
   rules in ``pipeline/data/boilerplate.json``) and ad markers wrapped in dashes or brackets;
5. rebuild paragraphs from lines: abbreviations split by a line break ("U" / "S. envoy", but
   not a heading "Plan B" / "A. Smith, a spokesman ..." — after the initial comes a name),
   words hyphenated across lines, hard-wrapped lines; a line that ends a sentence, a blank line
   or an indented line starts a new paragraph;
6. the leading page chrome (short lines, page dates, breadcrumbs), a byline and a headline
   before the first body paragraph; the wire dateline at its start; credit lines at the end;
7. title: given, else the page headline, else the first sentence; language: given, else detected.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.resources import files

import ftfy

from pipeline.ids import article_id
from pipeline.settings import get_settings
from pipeline.sources.attribution import attribute, take_outlet_credit
from pipeline.stages.language import detect_language, detect_languages, normalise_language_code
from schemas.models import CleanArticle, Dateline, RawArticle


class CleanError(ValueError):
    """The input cannot become an article; the message says why, for a person to read."""


# --- rules and limits ------------------------------------------------------------------------

_RULES = json.loads(files("pipeline").joinpath("data", "boilerplate.json").read_text("utf-8"))

MAX_GARBAGE_RATIO = 0.10
"""Bodies with a larger share of control/replacement/private-use characters are binary data."""

TITLE_MAX_CHARS = 120
SHORT_LINE_WORDS = 3
"""Leading lines of at most this many words (and no sentence end) are page chrome."""

HEADLINE_WORDS = (4, 30)
MAX_CREDIT_CHARS = 400

# --- compiled patterns -----------------------------------------------------------------------

_FTFY_CONFIG = ftfy.TextFixerConfig(
    unescape_html=True,  # feeds and old wires carry "&lt;" and "&#3;"
    uncurl_quotes=False,  # keep typographic quotes
    fix_character_width=False,  # keep full-width CJK punctuation
    explain=False,
)

_GARBAGE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd\ue000-\uf8ff\ud800-\udfff]")

_ZERO_WIDTH = "\u200b\u2060\ufeff\u00ad\u180e"
"""Removed. ZWJ/ZWNJ (U+200C/D) are kept: they are spelling in Persian, Indic scripts, emoji."""

_DELETE: dict[int, str | None] = {ord(ch): None for ch in _ZERO_WIDTH}
_DELETE.update(dict.fromkeys([*range(9), *range(14, 32), *range(127, 160)]))
_DELETE.update({0x0B: "\n", 0x0C: "\n", 0x0D: "\n", 0x09: " "})

_SPACE_RUN = re.compile(r"[ \u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_SIGNOFF = re.compile(r"(?:\s+(?:Reuter|REUTER))+\s*$")

_DECORATION = " -–—|•·›»«‹<>←→↑↓▲▼△▽^[](){}*#:_~=/\\"
"""Trimmed off a line's ends before comparing it with the phrase lists (not quotes, not . ! ?)."""

_NAVIGATION = frozenset(_RULES["navigation"])
_AD_MARKERS = frozenset(_RULES["ad_markers"])


def line_pattern(patterns: list[str]) -> re.Pattern[str]:
    """One regex that finds a line any of ``patterns`` finds (case-insensitive).

    The patterns that start with ``\\b`` (and have no ``|`` of their own at the top level)
    share one ``\\b(?:...|...)``: the same lines match, but the regex tries those
    alternatives only at word boundaries instead of at every character (2-3x faster on wire
    lines; this search runs on every line of every article).
    """
    at_word = [p[2:] for p in patterns if p.startswith("\\b") and not _top_level_or(p)]
    others = [f"(?:{p})" for p in patterns if not p.startswith("\\b") or _top_level_or(p)]
    if at_word:
        others.append("\\b(?:%s)" % "|".join(f"(?:{p})" for p in at_word))
    return re.compile("|".join(others), re.IGNORECASE)


def _top_level_or(pattern: str) -> bool:
    """Whether ``pattern`` has a ``|`` outside groups and character classes (when unsure, as
    after ``[^]``, it says yes: such a pattern is then left as it is)."""
    depth, in_class, escaped = 0, False, False
    for i, ch in enumerate(pattern):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]" or pattern[i - 1] == "["  # "[]x]": "]" first is a member
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            return True
    return False


_LINE_PATTERN = line_pattern([p for patterns in _RULES["line_patterns"].values() for p in patterns])
_INLINE_AD = re.compile(
    r"(?:(?<=\s)|^)[-–—\[(]+\s*(?:%s)\s*[-–—\])]+(?=\s|$)"
    % "|".join(re.escape(m) for m in sorted(_AD_MARKERS, key=len, reverse=True) if len(m) > 3),
    re.IGNORECASE | re.MULTILINE,
)
_DATE_WORDS = frozenset(_RULES["date_words"])
_DATE_TOKEN = re.compile(r"\d+|[^\W\d_]+")
_BREADCRUMB_SPLIT = re.compile(r"\s*[|•·›»>/]\s*")

_TERMINAL = re.compile(r"[.!?…:;。！？][\"”’»)\]]*$")
_HEADLINE_END = re.compile(r"[.,;:…][\"”’»)\]]*$")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")

_BROKEN_ABBREVIATION_END = re.compile(r"(?:^|[\s(\"“])[A-Z]\.?$")
_BROKEN_ABBREVIATION_START = re.compile(r"^[A-Z]\.")
_STARTS_LIKE_NAME_OR_SENTENCE = re.compile(
    r"^[A-Z]\.\s*(?:[A-Z][^\W\d_]*[a-z]|[A-Z]\.\s*[A-Z][a-z])"
)
"""After the initial: a capitalised word ("A. Smith", "J. R. Ewing"), so a name or a sentence."""
_BYLINE_START = re.compile(r"^(?:By|BY)\s+[A-Z]")
_HYPHENATED_END = re.compile(r"[^\W_]-$")

# wire datelines: "ISTANBUL, June 2 (Reuters) –", "KYIV, Ukraine, June 2 (Reuters) -",
# "WASHINGTON (AP) —", "LONDON, 3 June (Reuters) -", "MOSCOW, May 29 (Alliance News):",
# "BERLIN, 29. Mai (dpa) -"; month names of several languages are in boilerplate.json
_MONTH = r"(?i:%s)\.?" % "|".join(
    re.escape(month) for month in sorted(_RULES["dateline_months"], key=len, reverse=True)
)
_DAY = r"\d{1,2}(?:st|nd|rd|th|\.)?"
_WEEKDAY = r"(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day"
_DATELINE = re.compile(
    rf"""^(?P<place>[^\W\d_]+(?:[ .'’/-]{{1,2}}[^\W\d_]+){{0,3}}\.?)
    (?:\s*,\s*(?P<region>[^\W\d_][\w.'’-]*(?:\s[^\W\d_][\w.'’-]*){{0,2}}))?
    (?:(?:\s*,\s*|\s+)
       (?P<date>(?:{_MONTH}\s+{_DAY}|{_DAY}\s+{_MONTH}|{_WEEKDAY})(?:,?\s+\d{{4}})?))?
    (?:\s*\((?P<agency>[^()]{{2,40}})\))?
    \s*,?\s*(?P<sep>--|[-–—:])\s+""",
    re.VERBOSE,
)
_NOT_PLACES = frozenset(
    [
        "breaking",
        "update",
        "updated",
        "exclusive",
        "analysis",
        "factbox",
        "explainer",
        "watch",
        "live",
        "opinion",
        "editorial",
        "comment",
        "interview",
        "photos",
        "video",
        "correction",
        "corrected",
        "refile",
    ]
)

# credit lines: "(Written by A, Additional reporting by B, Edited by C and D.)",
# "Reporting by A in Moscow; Editing by B"; bylines: "By Jane Doe", "By JANE DOE, Reuters"
_CREDIT_ROLE = (
    r"(?:(?:additional|further|extra)\s+)?(?:reporting|writing|editing|written|edited|reported"
    r"|compiled|translated|translation|research|graphics|photos?|photography|video|produced"
    r"|production|prepared|fact-checking|fact checking)"
)
_CREDIT_LINE = re.compile(rf"^[(\[]?\s*{_CREDIT_ROLE}\s+by\s", re.IGNORECASE)
_CREDIT_SEGMENT = re.compile(rf"^(?P<role>{_CREDIT_ROLE})\s+by\s+(?P<names>.+)$", re.IGNORECASE)
_AUTHOR_ROLES = frozenset({"written", "writing", "reporting", "reported"})
_CREDIT_SPLIT = re.compile(r"\s*[;,]\s*")
_NAME_SPLIT = re.compile(r"\s+(?:and|&)\s+", re.IGNORECASE)
_NAME_PLACE_SUFFIX = re.compile(r"\s+in\s+\S.*$")
_BYLINE = re.compile(r"^(?:By|BY)\s+(?P<names>[^,|–—]+?)\s*(?:[,|–—].*)?$")
_NAME_PARTICLES = frozenset(
    [
        "van",
        "von",
        "der",
        "den",
        "de",
        "du",
        "da",
        "di",
        "del",
        "la",
        "le",
        "bin",
        "al",
        "el",
        "ibn",
        "dos",
        "das",
    ]
)

# sentences (for the title fallback)
_SENTENCE_BREAK = re.compile(r"[.!?…]+[\"”’»)\]]*\s+|[。！？]\s*")
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "gen",
        "col",
        "lt",
        "sgt",
        "capt",
        "cmdr",
        "adm",
        "gov",
        "sen",
        "rep",
        "pres",
        "st",
        "jr",
        "sr",
        "inc",
        "co",
        "corp",
        "ltd",
        "no",
        "nos",
        "vs",
        "etc",
        "approx",
        "dept",
        "est",
        "fig",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    ]
)


# --- the stage -------------------------------------------------------------------------------


def clean(raw: RawArticle, *, max_body_chars: int | None = None) -> CleanArticle:
    """Clean one raw article. Raises :class:`CleanError` when it cannot become an article."""
    prepared = _prepare(raw, _body_limit(max_body_chars))
    return _assemble(prepared, prepared.language or detect_language(prepared.language_text))


def clean_many(
    raws: Sequence[RawArticle], *, max_body_chars: int | None = None
) -> list[CleanArticle | Exception]:
    """:func:`clean` of each article, in order, with one language detection call for the batch.

    An article that cannot be cleaned has its exception (a :class:`CleanError`, or a bug) in
    its place, so one bad article never fails the others. Each result equals what
    :func:`clean` gives for that article alone.
    """
    limit = _body_limit(max_body_chars)
    prepared: list[_Prepared | Exception] = []
    for raw in raws:
        try:
            prepared.append(_prepare(raw, limit))
        except Exception as exc:  # CleanError, or a bug: this article's result
            prepared.append(exc)
    undetected = [p for p in prepared if isinstance(p, _Prepared) and p.language is None]
    detected = iter(detect_languages([p.language_text for p in undetected]))
    results: list[CleanArticle | Exception] = []
    for item in prepared:
        if isinstance(item, Exception):
            results.append(item)
            continue
        language = item.language or next(detected)
        try:
            results.append(_assemble(item, language))
        except Exception as exc:  # a bug, or a model that does not validate
            results.append(exc)
    return results


@dataclass(frozen=True, slots=True)
class _Prepared:
    """Everything :func:`clean` makes of a raw article but the detected language."""

    raw: RawArticle
    title: str
    title_origin: str
    body: str
    parts: ArticleParts
    language: str | None
    """The producer's language, normalised; None when it must be detected."""

    @property
    def language_text(self) -> str:
        """What the language is detected on."""
        return f"{self.title}\n{self.body}"


def _body_limit(max_body_chars: int | None) -> int:
    return get_settings().max_body_chars if max_body_chars is None else max_body_chars


def _prepare(raw: RawArticle, limit: int) -> _Prepared:
    _check_size(raw.body, limit)
    _check_not_binary(raw.body)

    given_title = _collapse(normalise_unicode(raw.title or "")) or None
    text = _SIGNOFF.sub("", normalise_unicode(raw.body))
    paragraphs = build_paragraphs(_content_lines(text))
    parts = _split_article(paragraphs, given_title)
    parts.credits += take_outlet_credit(parts.body)  # "Source: X" at the end: metadata, not body
    body = "\n\n".join(parts.body)
    if not body:
        raise CleanError("body is empty after cleaning")

    title, title_origin = _choose_title(given_title, parts.headline, body)
    language = normalise_language_code(raw.language)
    return _Prepared(raw, title, title_origin, body, parts, language)


def _assemble(prepared: _Prepared, language: str) -> CleanArticle:
    raw, parts = prepared.raw, prepared.parts
    return CleanArticle(
        id=article_id(raw),
        **attribute(raw, parts.dateline),  # source, published_at and where they came from
        url=raw.url,
        title=prepared.title,
        title_origin=prepared.title_origin,
        body=prepared.body,
        language=language,
        ingested_at=raw.ingested_at,
        dateline=parts.dateline,
        authors=parts.authors,
        credits=parts.credits,
        extra=dict(raw.model_extra or {}),
    )


def _check_size(body: str, limit: int) -> None:
    if len(body) > limit:
        raise CleanError(
            f"body has {len(body):,} characters, more than the limit of {limit:,} "
            "(NEWS_MAX_BODY_CHARS)"
        )


def _check_not_binary(body: str) -> None:
    garbage = len(_GARBAGE.findall(body))
    if garbage > MAX_GARBAGE_RATIO * len(body):
        raise CleanError(
            f"body looks like binary data, not text: {garbage / len(body):.0%} of its "
            "characters are control or replacement characters"
        )


def _choose_title(given: str | None, headline: str | None, body: str) -> tuple[str, str]:
    if given:
        return given, "given"
    if headline:
        return headline, "page"
    return shorten(first_sentence(body), TITLE_MAX_CHARS), "first_sentence"


# --- text repair -----------------------------------------------------------------------------


def normalise_unicode(text: str) -> str:
    """Fix mojibake and HTML entities, NFC, ``\\n`` line breaks, no zero-width/control chars.

    Runs of spaces are kept here (line indentation still matters); see :func:`build_paragraphs`.
    ASCII text cannot be mojibake, so it skips ftfy (4x faster on wire copy).
    """
    if text.isascii():
        text = html.unescape(text) if "&" in text else text
        return text.replace("\r\n", "\n").translate(_DELETE)
    return ftfy.fix_text(text, _FTFY_CONFIG).translate(_DELETE)


def _collapse(text: str) -> str:
    """One space between words, none at the ends."""
    return _SPACE_RUN.sub(" ", text).strip()


@dataclass(frozen=True, slots=True)
class Line:
    """One source line: its text with spaces collapsed, and how far it was indented."""

    text: str
    indent: int


def _content_lines(text: str) -> list[Line]:
    """The lines of ``text`` without boilerplate; blank lines are kept as paragraph breaks."""
    lines = []
    for source_line in _INLINE_AD.sub("", text).split("\n"):
        expanded = _SPACE_RUN.sub(" ", source_line)
        content = expanded.strip()
        if content and is_boilerplate_line(content):
            continue
        lines.append(Line(content, len(expanded) - len(expanded.lstrip())))
    return lines


def is_boilerplate_line(line: str) -> bool:
    """Whether a whole line is navigation, an ad marker, weather or a copyright/cookie notice."""
    phrase = line.strip(_DECORATION).casefold()
    if phrase in _NAVIGATION or phrase in _AD_MARKERS:
        return True
    return _LINE_PATTERN.search(line) is not None


def build_paragraphs(lines: list[Line]) -> list[str]:
    """Join lines into paragraphs, repairing words and abbreviations broken at line ends."""
    content = [line for line in lines if line.text]
    base_indent = min((line.indent for line in content), default=0)
    wrap_width = _wrap_width(content)
    paragraphs: list[str] = []
    current = ""
    previous: Line | None = None  # the line ``current`` ends with; None after a blank line
    for line in lines:
        joined = None
        if previous and line.text:
            joined = _join(current, previous, line, base_indent, wrap_width)
        if joined is None:
            if current:
                paragraphs.append(current)
            joined = line.text
        current, previous = joined, line if line.text else None
    if current:
        paragraphs.append(current)
    return paragraphs


def _wrap_width(lines: list[Line]) -> int | None:
    """The line width of a hard-wrapped text, else None.

    Hard-wrapped: at least 4 lines, 90% of them at most 100 chars, and most of the long lines
    (60% of that width or more) stop in the middle of a sentence.
    """
    if len(lines) < 4:
        return None
    lengths = sorted(line.indent + len(line.text) for line in lines)
    width = lengths[int(0.9 * (len(lengths) - 1))]
    if width > 100:
        return None
    long_lines = [line for line in lines if _is_full(line, width)]
    unfinished = sum(1 for line in long_lines if not _TERMINAL.search(line.text))
    return width if unfinished * 2 > len(long_lines) else None


def _is_full(line: Line, wrap_width: int) -> bool:
    """Whether ``line`` reaches (nearly) the wrap width, so its end is a wrap, not a break."""
    return line.indent + len(line.text) >= 0.6 * wrap_width


def _join(
    current: str, previous: Line, line: Line, base_indent: int, wrap_width: int | None
) -> str | None:
    """``current`` continued by ``line``, or None when ``line`` starts a new paragraph."""
    nxt = line.text
    wrapped = bool(wrap_width and _is_full(previous, wrap_width))
    if (
        _BROKEN_ABBREVIATION_END.search(current)
        and _BROKEN_ABBREVIATION_START.match(nxt)
        and (wrapped or not _STARTS_LIKE_NAME_OR_SENTENCE.match(nxt))
    ):
        return f"{current.rstrip('.')}.{nxt}"  # "The chief U" + "S. envoy" -> "U.S. envoy"
    if _HYPHENATED_END.search(current) and nxt[0].isalnum():
        if current[-2].isalpha() and nxt[0].islower():
            return current[:-1] + nxt  # "negoti-" + "ations"
        return current + nxt  # "Brown-" + "Forman", "1,000-" + "for-1,000"
    if line.indent > base_indent:
        return None  # an indented line opens a paragraph (wire copy)
    if nxt[0].islower():
        return f"{current} {nxt}"
    if _TERMINAL.search(current) or _BYLINE_START.match(nxt):
        return None
    if (current == previous.text and _looks_like_heading(current)) or parse_dateline(nxt)[0]:
        return None  # a heading line on its own, or the next line opens with a wire dateline
    if wrapped:
        return f"{current} {nxt}"
    return None  # a short line without final punctuation: a heading, not a wrapped line


def _looks_like_heading(line: str) -> bool:
    """A title-case line ("Oil Prices Climb Again", "Standard Oil To Form Unit"): two or more
    words, every word of four or more letters capitalised, no comma, not a dateline."""
    words = [w.strip("\"“”'‘’()[]") for w in line.split()]
    long_words = [w for w in words if len(w) >= 4 and w[:1].isalpha()]
    return (
        len(words) >= 2
        and bool(long_words)
        and "," not in line
        and all(w[0].isupper() for w in long_words)
        and parse_dateline(line + " - x")[0] is None
    )


# --- article structure -----------------------------------------------------------------------


@dataclass
class ArticleParts:
    """What :func:`_split_article` found around the body paragraphs."""

    body: list[str]
    headline: str | None = None
    dateline: Dateline | None = None
    authors: list[str] = field(default_factory=list)
    credits: list[str] = field(default_factory=list)


def _split_article(paragraphs: list[str], given_title: str | None) -> ArticleParts:
    """Take page chrome, byline, headline, dateline and credit lines off the paragraphs."""
    parts = ArticleParts(body=list(paragraphs))
    _take_leading(parts, given_title)
    _take_trailing(parts)
    if parts.body:
        parts.dateline, rest = parse_dateline(parts.body[0])
        parts.body[0:1] = [rest] if rest else []
    return parts


def _take_leading(parts: ArticleParts, given_title: str | None) -> None:
    """Remove chrome, bylines, a repeated given title and a headline before the body."""
    body = parts.body
    while len(body) > 1:
        first = body[0]
        authors = parse_byline(first)
        if authors:
            parts.authors.extend(a for a in authors if a not in parts.authors)
            parts.credits.append(first)
        elif given_title and _same_text(first, given_title):
            pass
        elif parse_dateline(first)[0] is not None:
            return
        elif is_page_chrome(first):
            pass
        elif not given_title and parts.headline is None and is_headline(first, body[1:]):
            parts.headline = first
        else:
            return
        del body[0]


def _take_trailing(parts: ArticleParts) -> None:
    """Remove credit lines and page dates after the body."""
    body = parts.body
    credited: list[tuple[str, list[str]]] = []  # (line, its authors), in text order
    while body:
        last = body[-1]
        authors = parse_credit_line(last)
        if authors is not None:
            credited.insert(0, (last, authors))
        elif not is_page_date(last):
            break
        del body[-1]
    for line, authors in credited:
        parts.authors.extend(a for a in authors if a not in parts.authors)
        parts.credits.append(line)


def _same_text(a: str, b: str) -> bool:
    return a.casefold().rstrip(".") == b.casefold().rstrip(".")


def word_count(text: str) -> int:
    """Words in ``text``; in scripts written without spaces, two characters count as a word."""
    return len(text.split()) + len(_CJK.findall(text)) // 2


def is_page_chrome(paragraph: str) -> bool:
    """A page date, a breadcrumb, or a short label (section name) before the article."""
    short_label = word_count(paragraph) <= SHORT_LINE_WORDS and not _TERMINAL.search(paragraph)
    return short_label or is_page_date(paragraph) or _is_breadcrumb(paragraph)


def is_page_date(line: str) -> bool:
    """A line that is only a date/time: "Wednesday, September 24, 2025", "24.09.2025 10:32"."""
    tokens = _DATE_TOKEN.findall(line.casefold())
    has_number = any(token.isdigit() for token in tokens)
    return (
        has_number
        and len(tokens) <= 10
        and all(token.isdigit() or token in _DATE_WORDS for token in tokens)
    )


def _is_breadcrumb(line: str) -> bool:
    """ "Home | World | Europe", "News › Europe › Ukraine"."""
    crumbs = [crumb for crumb in _BREADCRUMB_SPLIT.split(line) if crumb]
    return len(crumbs) >= 2 and all(word_count(crumb) <= SHORT_LINE_WORDS for crumb in crumbs)


def is_headline(paragraph: str, rest: list[str]) -> bool:
    """A headline: 4-30 words, starts like a sentence, no final period, body text after it."""
    low, high = HEADLINE_WORDS
    return (
        low <= word_count(paragraph) <= high
        and not paragraph[0].islower()
        and not _HEADLINE_END.search(paragraph)
        and any(_TERMINAL.search(p) for p in rest)
    )


def parse_dateline(paragraph: str) -> tuple[Dateline | None, str]:
    """The wire dateline at the start of ``paragraph`` and the text after it.

    Returns ``(None, paragraph)`` when it does not start with one.
    """
    match = _DATELINE.match(paragraph)
    if match is None:
        return None, paragraph
    place, region, date_text, agency = match.group("place", "region", "date", "agency")
    if not _is_dateline(place, region, date_text, agency, match.group("sep")):
        return None, paragraph
    dateline = Dateline(
        place=place.title() if place.isupper() else place,
        date_text=date_text,
        agency=agency.strip() if agency else None,
    )
    return dateline, paragraph[match.end() :].strip()


def _is_dateline(
    place: str, region: str | None, date_text: str | None, agency: str | None, sep: str
) -> bool:
    """Guard against sentences that only look like datelines ("Kellogg said: ...")."""
    if place.casefold() in _NOT_PLACES or len(place) > 40:
        return False
    if region and not all(word[0].isupper() for word in region.split()):
        return False
    if agency and not (agency.strip()[:1].isalpha() and len(agency.split()) <= 4):  # "dpa"
        return False
    if date_text or agency:
        return True
    return place.isupper() and sep != ":"  # "WASHINGTON — ..."


def parse_credit_line(paragraph: str) -> list[str] | None:
    """Authors named in a credit line ("Written by A, Additional reporting by B, Edited by C").

    Writers and reporters are authors; additional reporting, editing, photos etc. are not.
    Returns None when ``paragraph`` is not a credit line.
    """
    if len(paragraph) > MAX_CREDIT_CHARS or not _CREDIT_LINE.match(paragraph):
        return None
    inner = paragraph.strip(" .()[]")
    authors: list[str] = []
    role = None
    for segment in _CREDIT_SPLIT.split(inner):
        match = _CREDIT_SEGMENT.match(segment)
        if match:
            role, segment = " ".join(match.group("role").casefold().split()), match.group("names")
        names = [_NAME_PLACE_SUFFIX.sub("", name) for name in _NAME_SPLIT.split(segment)]
        if role is None or not all(_is_person_name(name) for name in names):
            return None
        if role in _AUTHOR_ROLES:
            authors.extend(name for name in names if name not in authors)
    return authors


def parse_byline(paragraph: str) -> list[str] | None:
    """Authors of a byline paragraph ("By Jane Doe and John Roe, Reuters"), else None."""
    match = _BYLINE.match(paragraph)
    if match is None or word_count(paragraph) > 12 or _TERMINAL.search(paragraph):
        return None
    names = _NAME_SPLIT.split(match.group("names"))
    if not all(_is_person_name(name, min_words=2) for name in names):
        return None
    return [name.title() if name.isupper() else name for name in names]


def _is_person_name(name: str, *, min_words: int = 1) -> bool:
    """Capitalised words (lowercase particles like "van", "al" inside), 1-5 of them."""
    words = name.split()
    if not min_words <= len(words) <= 5 or not words[0][0].isupper() or not words[-1][0].isupper():
        return False
    return all(word[0].isupper() or word in _NAME_PARTICLES for word in words)


# --- title fallback --------------------------------------------------------------------------


def first_sentence(text: str) -> str:
    """The first sentence of ``text`` (abbreviations like "U.S." or "Mr." do not end one)."""
    paragraph = text.split("\n", 1)[0]
    for match in _SENTENCE_BREAK.finditer(paragraph):
        following = paragraph[match.end() :].lstrip('"“‘«([')
        if (
            following
            and not following[0].islower()
            and not _ends_with_abbreviation(paragraph[: match.start() + 1])
        ):
            return paragraph[: match.end()].strip()
    return paragraph.strip()


def _ends_with_abbreviation(text: str) -> bool:
    """Whether the period ending ``text`` belongs to an abbreviation or an initial."""
    if not text.endswith("."):
        return False
    word = text[:-1].rsplit(None, 1)[-1].lstrip('"“‘«([') if text[:-1].strip() else ""
    return len(word) == 1 or "." in word or word.casefold() in _ABBREVIATIONS


def shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` chars (with "…"); no final period."""
    text = text.strip()
    if len(text) > limit:
        cut = text[: limit - 1]
        cut = cut.rsplit(" ", 1)[0] if " " in cut else cut
        return cut.rstrip(" ,;:-–—") + "…"
    if text.endswith(".") and not _ends_with_abbreviation(text):
        return text[:-1]
    return text
