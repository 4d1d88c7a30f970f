"""Source and publication time from the article's own text (pipeline.sources.attribution)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.sources.attribution import credit_line_outlet, resolve_date_text
from pipeline.sources.ingest import iter_inputs
from pipeline.stages.clean import clean
from schemas import RawArticle

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(
    "text,expected",
    [
        ("June 2", "2026-06-02"),
        ("May 29", "2026-05-29"),
        ("Dec 5", "2025-12-05"),  # later in the year than the ingest: last year's
        ("Nov 30", "2026-11-30"),  # today
        ("2 June", "2026-06-02"),
        ("29. Mai", "2026-05-29"),
        ("3 juin", "2026-06-03"),
        ("June 2, 2025", "2025-06-02"),
        ("Monday", "2026-11-30"),  # the ingest day itself
        ("Friday", "2026-11-27"),
    ],
)
def test_dateline_dates_resolve_against_the_ingest_time(text, expected):
    resolved = resolve_date_text(text, NOW)
    assert resolved.date().isoformat() == expected and resolved <= NOW


def test_a_dateline_date_is_never_in_the_future():
    assert resolve_date_text("June 2, 2031", NOW) is None
    assert resolve_date_text("no date here", NOW) is None


@pytest.mark.parametrize(
    "line,outlet",
    [
        ("Source: Anadolu Agency", "Anadolu Agency"),
        ("(Source: Harbour Daily)", "Harbour Daily"),
        ("© 2025 The Coastal Ledger. All rights reserved.", "The Coastal Ledger"),
        ("Copyright (c) 2024 Prairie Business Review", "Prairie Business Review"),
        ("This article first appeared on Metro Chronicle.", "Metro Chronicle"),
        ("Originally published by Baltic Wire", "Baltic Wire"),
        ("— AFP", "AFP"),
        ("He said the talks would resume in June.", None),
        ("Copyright law was not discussed.", None),
        ("source: the ministry said so", None),
        ("— and then the talks ended", None),
        ("(Written by Jane Roe; Editing by John Doe)", None),
    ],
)
def test_credit_lines_naming_an_outlet(line, outlet):
    assert credit_line_outlet(line) == outlet


def test_the_seeds_show_their_sources_and_dates():
    seeds = {Path(a.model_extra["path"]).name[:3]: a for a in iter_inputs([ROOT / "seeds"])}
    for article in seeds.values():
        article.ingested_at = NOW
    reuters, alliance = clean(seeds["002"]), clean(seeds["004"])
    assert (reuters.source, reuters.source_origin) == ("Reuters", "dateline")
    assert (alliance.source, alliance.source_origin) == ("Alliance News", "dateline")
    assert reuters.published_at == datetime(2026, 6, 2, tzinfo=UTC)
    assert alliance.published_at == datetime(2026, 5, 29, tzinfo=UTC)
    assert reuters.published_at_origin == alliance.published_at_origin == "dateline"
    # the others name no outlet and no date: nothing is made up
    for key in ("000", "001", "003"):
        other = clean(seeds[key])
        assert other.source is None and other.source_origin is None
        assert other.published_at is None and other.published_at_origin is None


def test_the_producer_wins_and_says_so():
    raw = RawArticle(
        body="ISTANBUL, June 2 (Reuters) - Talks resumed on Monday in the city.",
        source="Wire Desk",
        published_at=NOW,
        ingested_at=NOW,
    )
    article = clean(raw)
    assert (article.source, article.source_origin) == ("Wire Desk", "producer")
    assert (article.published_at, article.published_at_origin) == (NOW, "producer")


def test_credit_line_source_from_the_end_of_the_text():
    raw = RawArticle(
        body="The port reopened on Tuesday after the storm.\n\nShips queued overnight "
        "to enter the harbour.\n\nSource: Harbour Daily",
        ingested_at=NOW,
    )
    article = clean(raw)
    assert (article.source, article.source_origin) == ("Harbour Daily", "credit_line")
    assert "Source:" not in article.body and article.credits == ["Source: Harbour Daily"]
