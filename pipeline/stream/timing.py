"""Per-stage timestamps carried by an article and its alerts (``stage_times``).

Each batch step stamps the articles it passes on: when its agent took the batch and when the
step finished with it. An alert carries its article's stamps plus its matching step's, so one
alert says where its ingest-to-alert time went; the indexed article document carries the index
step's ``index_taken``. ``produced`` is the article's ``ingested_at`` (set by the producer).
After the NER, the matching and index steps run in the enrich agent (``NEWS_ENRICH_INDEXES``:
``alerts_taken`` follows ``enriched`` by the wait for the batch before to be indexed and
matched) or in agents of the enriched topic (a Kafka hop later).

    produced -> clean_taken -> deduped -> enrich_taken -> enriched -> alerts_taken -> matched
                                  |                           \\-> index_taken (article document)
                                  \\-> alerts_taken -> matched (keyword subscriptions, before the NER)

Clocks: every stamp is wall-clock UTC of the process that made it; on one machine they compare
directly, across machines they are as good as the hosts' clock sync.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

PRODUCED = "produced"
ALERT_PATH = ("clean_taken", "deduped", "enrich_taken", "enriched", "alerts_taken", "matched")
"""The stamps on the way to an alert, in order."""

STEP_NAMES = {
    "clean_taken": "wait for clean (raw topic)",
    "deduped": "clean + dedupe",
    "enrich_taken": "wait for enrich (clean topic)",
    "enriched": "enrich (NER, entities, events, stories)",
    "alerts_taken": "wait for matching (after clean/enrich)",
    "matched": "match + alert ledger",
}
"""What the time up to each stamp, from the one before, was spent on."""


def stamp(model: Any, **times: datetime) -> Any:
    """Add stamps to ``model.stage_times`` (kept: earlier stamps of other stages); returns it."""
    model.stage_times = {**(model.stage_times or {}), **times}
    return model


def step_durations(produced: datetime, stage_times: dict[str, Any] | None) -> dict[str, float]:
    """Milliseconds spent reaching each stamp of :data:`ALERT_PATH` from the previous one
    present (``produced`` first). Stamps may be datetimes or ISO 8601 strings (documents);
    missing stamps are skipped, so the durations always add up to produced -> last stamp."""
    times = {k: _as_datetime(v) for k, v in (stage_times or {}).items()}
    out: dict[str, float] = {}
    previous = _as_datetime(produced)
    for name in ALERT_PATH:
        when = times.get(name)
        if when is None:
            continue
        out[name] = (when - previous).total_seconds() * 1000
        previous = when
    return out


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q`` (0..1) percentile, nearest rank; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(round(q * len(ordered), 9)))
    return ordered[min(rank, len(ordered)) - 1]


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
