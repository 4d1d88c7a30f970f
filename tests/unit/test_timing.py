"""Per-stage timestamps (pipeline.stream.timing) and the steps that stamp them."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from pipeline.stages.dedupe import Deduper
from pipeline.stages.dedupe_store import InMemoryFingerprintStore
from pipeline.stream.process import InMessage, Pipeline
from pipeline.stream.timing import ALERT_PATH, percentile, stamp, step_durations
from schemas import Alert, CleanArticle, RawArticle

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(ms: float) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def test_durations_follow_the_path_and_add_up() -> None:
    times = {
        "clean_taken": at(5),
        "deduped": at(20),
        "enrich_taken": at(22),
        "enriched": at(120),
        "alerts_taken": at(125),
        "matched": at(140),
        "index_taken": at(123),
    }
    steps = step_durations(T0, times)
    assert list(steps) == list(ALERT_PATH)
    assert steps == {
        "clean_taken": 5,
        "deduped": 15,
        "enrich_taken": 2,
        "enriched": 98,
        "alerts_taken": 5,
        "matched": 15,
    }
    assert math.isclose(sum(steps.values()), 140)


def test_missing_stamps_are_skipped_and_strings_parse() -> None:
    steps = step_durations(
        "2026-01-01T00:00:00Z", {"enriched": "2026-01-01T00:00:00.250000+00:00", "matched": at(300)}
    )
    assert steps == {"enriched": 250, "matched": 50}
    assert step_durations(T0, None) == {}


def test_stamp_keeps_earlier_stamps_and_round_trips_through_json() -> None:
    article = CleanArticle(id="a", title="t", body="b", language="en", ingested_at=T0)
    assert article.stage_times is None  # optional: old records have none
    stamp(article, clean_taken=at(1))
    stamp(article, deduped=at(2))
    again = CleanArticle.model_validate_json(article.model_dump_json())
    assert again.stage_times == {"clean_taken": at(1), "deduped": at(2)}


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7], 0.99) == 7
    assert math.isnan(percentile([], 0.5))


def test_the_clean_step_stamps_what_it_passes_on() -> None:
    pipeline = Pipeline(deduper=Deduper(InMemoryFingerprintStore()))
    raw = RawArticle(
        id="x1", title="Title", body="Oil prices rose on Monday. " * 20, ingested_at=T0
    )
    result = pipeline.clean_and_dedupe([InMessage(value=raw.model_dump_json().encode())])
    [article] = result.passed
    times = article.stage_times
    assert set(times) == {"clean_taken", "deduped"}
    assert T0 < times["clean_taken"] <= times["deduped"]


def test_alert_without_stamps_still_loads() -> None:
    assert "stage_times" in Alert.model_fields
    assert Alert.model_fields["stage_times"].default is None
