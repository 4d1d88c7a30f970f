"""Near duplicates across workers, end to end: originals each followed right away by a near
copy, through real ``newspipe worker`` processes. The same pairs go through one worker and
then through three, so what is measured is the cross-worker gap, not the LSH's recall.

Articles: short Reuters-21578 stories (``NEWS_CORPUS``, default the shared corpus), distinct
from each other; a copy is its original with the last word changed (exact Jaccard >= 0.9,
printed)."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from pipeline.settings import Settings, get_settings
from pipeline.stages.clean import CleanError, clean
from pipeline.stages.dedupe import Deduper, normalise, shingles
from pipeline.stages.dedupe_store import InMemoryFingerprintStore
from schemas import CleanArticle, DuplicateRecord, RawArticle
from tests.integration.conftest import Worker, set_environment

pytestmark = pytest.mark.integration

CORPUS = Path(
    os.environ.get("NEWS_CORPUS")
    or Path(__file__).resolve().parents[3] / "shared/corpus/reuters21578.jsonl"
)
PAIRS = 200


def exact_jaccard(a: str, b: str) -> float:
    sa, sb = shingles(normalise(a)), shingles(normalise(b))
    return len(sa & sb) / len(sa | sb)


def make_pairs(n: int) -> list[tuple[RawArticle, RawArticle]]:
    """``n`` short stories that are not near duplicates of each other, each with its copy."""
    if not CORPUS.exists():
        pytest.skip(f"corpus not found: {CORPUS} (set NEWS_CORPUS)")
    deduper, run = Deduper(InMemoryFingerprintStore()), uuid.uuid4().hex[:6]
    pairs = []
    with CORPUS.open(encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            if not doc.get("title") or not 60 <= len(doc.get("body", "").split()) <= 150:
                continue
            try:
                probe = clean(
                    RawArticle(id=doc["id"], source="Reuters", title=doc["title"], body=doc["body"])
                )
            except CleanError:
                continue
            words = probe.body.split()
            if len(words) < 50 or not deduper.check([probe])[0].is_new:
                continue
            copy_body = " ".join(words[:-1] + ["(corrected)"])
            original = RawArticle(
                id=f"{run}-{doc['id']}", source="Reuters", title=doc["title"], body=probe.body
            )
            copy = RawArticle(
                id=f"{run}-{doc['id']}-copy", source="Wire copy", title=doc["title"], body=copy_body
            )
            pairs.append((original, copy))
            if len(pairs) == n:
                break
    scores = [exact_jaccard(o.body, c.body) for o, c in pairs]
    print(
        f"{len(pairs)} pairs, exact Jaccard of original and copy: min {min(scores):.3f}, "
        f"mean {sum(scores) / len(scores):.3f}"
    )
    assert len(pairs) == n and min(scores) >= 0.9
    return pairs


def run_workers(n_workers: int, pairs, kafka_bootstrap: str, es_url: str, tmp: Path) -> dict:
    """Send the pairs through ``n_workers`` fresh workers; returns, per pair, which of the
    two were passed on as new ("orig", "copy", "both" or "neither")."""
    from pipeline.infra.kafka import make_producer
    from pipeline.infra.setup import setup

    run = uuid.uuid4().hex[:8]
    overrides = {
        "NEWS_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "NEWS_ES_URL": es_url,
        "NEWS_TOPIC_PREFIX": f"s{run}",
        "NEWS_INDEX_PREFIX": f"s{run}",
        "NEWS_APP_ID": f"newspipe-scale-{run}",
        "NEWS_DATA_DIR": str(tmp / run),
        "NEWS_TOPIC_PARTITIONS": "6",
    }
    restore = set_environment(overrides)
    settings: Settings = get_settings()
    workers: list[Worker] = []
    try:
        setup(settings)
        for i in range(n_workers):
            worker = Worker(env=os.environ.copy(), log_path=tmp / run / f"worker-{i}.log")
            worker.log_path.parent.mkdir(parents=True, exist_ok=True)
            worker.start()
            workers.append(worker)
        for worker in workers:
            worker.wait_ready(settings)
        producer = make_producer(settings)
        for original, copy in pairs:  # each original followed right away by its copy
            producer.send(settings.topic("raw"), key=original.id, value=original)
            producer.send(settings.topic("raw"), key=copy.id, value=copy)
        producer.flush()
        producer.close()
        new, dups = _outcomes(settings, {a.id for pair in pairs for a in pair}, workers)
    finally:
        for worker in workers:
            worker.stop()
        restore()
    outcome = {}
    for original, copy in pairs:
        both = (original.id in new, copy.id in new)
        outcome[original.id] = {
            (True, True): "both",
            (True, False): "orig",
            (False, True): "copy",
            (False, False): "neither",
        }[both]
        if outcome[original.id] in ("orig", "copy"):  # the duplicate names the one passed on
            winner, loser = (original, copy) if both[0] else (copy, original)
            assert dups[loser.id].duplicate_of == winner.id
    return outcome


def _outcomes(settings: Settings, ids: set[str], workers: list[Worker], timeout_s: float = 300.0):
    """Every id's verdict, read from the clean and duplicates topics."""
    from pipeline.infra.kafka import make_consumer

    consumer = make_consumer(
        settings.topic("clean"), settings.topic("duplicates"), settings=settings
    )
    new: set[str] = set()
    dups: dict[str, DuplicateRecord] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while (new | set(dups)) < ids:
            for worker in workers:
                if worker.process.poll() is not None:
                    pytest.fail("worker died:\n" + worker.log_tail())
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{len(ids - new - set(dups))} articles without a verdict in "
                    f"{timeout_s:.0f}s\n" + workers[0].log_tail()
                )
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    if record.topic == settings.topic("clean"):
                        new.add(CleanArticle.model_validate_json(record.value).id)
                    else:
                        dup = DuplicateRecord.model_validate_json(record.value)
                        dups[dup.article_id] = dup
    finally:
        consumer.close()
    return new, dups


def test_near_copies_are_caught_by_three_workers_as_by_one(
    kafka_bootstrap, es_url, tmp_path
) -> None:
    pairs = make_pairs(PAIRS)
    one = run_workers(1, pairs, kafka_bootstrap, es_url, tmp_path)
    three = run_workers(3, pairs, kafka_bootstrap, es_url, tmp_path)
    for name, outcome in (("one worker", one), ("three workers", three)):
        counts = {k: list(outcome.values()).count(k) for k in ("orig", "copy", "both", "neither")}
        print(f"{name}: {counts}")
    assert [k for k, v in one.items() if v not in ("orig", "copy")] == []  # LSH recall: all
    assert [k for k, v in three.items() if v not in ("orig", "copy")] == []
