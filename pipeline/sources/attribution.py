"""Source and publication time from the article's own text, when the producer gave none.

- :func:`source_from_text`: the agency of the wire dateline (``"ISTANBUL, June 2 (Reuters) -"``
  -> ``Reuters``), else an outlet named by a credit line at the end of the text
  (``"Source: Anadolu Agency"``, ``"© 2025 Example Times. All rights reserved."``,
  ``"This article first appeared on Example Post."``);
- :func:`resolve_date_text`: a dateline date (``"June 2"``, ``"29. Mai"``, ``"Monday"``)
  resolved against the ingest time: the latest such date that is not after it (a dateline
  without a year is from the past year at most; a dateline is never in the future).

Each result carries its origin (``dateline`` / ``credit_line``), stored in the article's
``source_origin`` / ``published_at_origin`` fields (schemas.models).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from schemas.models import Dateline, RawArticle

CREDIT_TAIL_LINES = 4
"""credit lines are looked for among this many last non-blank lines"""
MAX_OUTLET_WORDS = 6

_OUTLET = (
    r"(?P<name>[A-Z0-9][\w&.'’-]*(?:\s+(?:[A-Z0-9&][\w&.'’-]*|of|the|and|de|du|des|la|le))"
    r"{0,%d})" % (MAX_OUTLET_WORDS - 1)
)
_CREDIT_PATTERNS = [  # keywords in any case; the outlet's name must be capitalised
    # "Source: Anadolu Agency", "Via: Example Wire", "Courtesy of The Example Post"
    re.compile(
        rf"^[(\[]?\s*(?i:source|sources|via|courtesy(?:\s+of)?)\s*[:\-–—]\s*{_OUTLET}\s*[.)\]]?\s*$"
    ),
    re.compile(rf"^[(\[]?\s*(?i:courtesy\s+of)\s+{_OUTLET}\s*[.)\]]?\s*$"),
    # "© 2025 Example Times. All rights reserved." / "Copyright (c) 2025 Example Times"
    re.compile(
        rf"^(?:©|\((?i:c)\)|(?i:copyright)\s*(?:©|\((?i:c)\))?\s*(?=\d{{4}}))\s*"
        rf"(?:\d{{4}}(?:\s*[-–]\s*\d{{4}})?)?\s*,?\s*{_OUTLET}\s*(?:[.,;]|$)"
    ),
    # "This article first appeared on Example Post." / "Originally published by Example News"
    re.compile(
        rf"^(?i:(?:this (?:article|story|report) )?(?:was )?(?:first|originally) "
        rf"(?:appeared|published|ran)\s+(?:on|in|by|at)\s+(?:the\s+)?){_OUTLET}\s*\.?$"
    ),
    # a lone agency sign-off: "— AFP", "-- Example News Agency"
    re.compile(rf"^(?:--|[-–—])\s*{_OUTLET}\s*$"),
]
_NOT_OUTLETS = frozenset({"all rights reserved", "the", "a", "an"})

_WEEKDAYS = {
    name: n
    for n, name in enumerate(
        ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    )
}


def attribute(raw: RawArticle, dateline: Dateline | None) -> dict:
    """``source``, ``published_at`` and their origins for the clean article: the producer's
    when given, else what the text says (see the module docstring)."""
    source, source_origin = raw.source, raw.source_origin
    if source and source.strip():
        source_origin = source_origin or "producer"
    else:
        source, source_origin = source_from_text(dateline, raw.body)
    published_at, date_origin = raw.published_at, raw.published_at_origin
    if published_at is not None:
        date_origin = date_origin or "producer"
    elif dateline is not None and dateline.date_text:
        published_at = resolve_date_text(dateline.date_text, raw.ingested_at)
        date_origin = "dateline" if published_at else None
    return {
        "source": source,
        "source_origin": source_origin,
        "published_at": published_at,
        "published_at_origin": date_origin,
    }


def source_from_text(dateline: Dateline | None, body: str) -> tuple[str | None, str | None]:
    """``(source, origin)`` named by the article itself: the dateline's agency, else a credit
    line among the last lines of ``body`` (the raw text, before cleaning); ``(None, None)``."""
    if dateline is not None and dateline.agency:
        return dateline.agency, "dateline"
    lines = [line.strip() for line in body.strip().splitlines() if line.strip()]
    for line in reversed(lines[-CREDIT_TAIL_LINES:]):
        name = credit_line_outlet(line)
        if name:
            return name, "credit_line"
    return None, None


def take_outlet_credit(paragraphs: list[str]) -> list[str]:
    """Remove a last paragraph that is a credit line naming an outlet (it is metadata: the
    source); returns the removed lines."""
    if len(paragraphs) > 1 and credit_line_outlet(paragraphs[-1]):
        return [paragraphs.pop()]
    return []


def credit_line_outlet(line: str) -> str | None:
    """The outlet a credit line names ("Source: X", "© 2025 X", "First published by X")."""
    if len(line) > 200:
        return None
    for pattern in _CREDIT_PATTERNS:
        match = pattern.match(line)
        if match:
            name = match.group("name").strip(" .,;")
            name = re.split(r"\.\s", name)[0].strip(" .")  # "X. All rights reserved"
            if name and name.casefold() not in _NOT_OUTLETS and not name.isdigit():
                return name
    return None


def resolve_date_text(date_text: str, reference: datetime) -> datetime | None:
    """The date ``date_text`` names, as the latest such date not after ``reference`` (UTC
    midnight of that day), or None when it cannot be read."""
    reference = reference if reference.tzinfo else reference.replace(tzinfo=UTC)
    reference = reference.astimezone(UTC)
    text = " ".join(date_text.replace(",", " ").split())
    weekday = _WEEKDAYS.get(text.casefold())
    day = reference.replace(hour=0, minute=0, second=0, microsecond=0)
    if weekday is not None:
        return day - timedelta(days=(day.weekday() - weekday) % 7)
    parsed = _parse(text, reference.replace(tzinfo=None, microsecond=0))
    if parsed is None:
        return None
    parsed = parsed.replace(tzinfo=UTC, hour=0, minute=0, second=0, microsecond=0)
    has_year = re.search(r"\b\d{4}\b", text) is not None
    if not has_year:
        while parsed > reference:  # "Dec 5" read on Nov 30: last year's
            parsed = parsed.replace(year=parsed.year - 1)
    return parsed if parsed <= reference else None


@lru_cache(maxsize=4096)
def _parse(text: str, reference: datetime) -> datetime | None:
    import dateparser  # multilingual month names ("29. Mai", "3 juin", "29 мая")

    return dateparser.parse(
        text,
        settings={
            "RELATIVE_BASE": reference,
            "PREFER_DATES_FROM": "past",
            "PREFER_DAY_OF_MONTH": "first",
            "REQUIRE_PARTS": ["day", "month"],
        },
    )
