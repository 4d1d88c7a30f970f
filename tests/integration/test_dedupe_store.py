"""The dedupe stage over the Elasticsearch store: the unit scenarios against a real node, plus
the claim race between two workers. Uses the session fixture ``es_client`` (tests/conftest.py)
and a throw-away index created from deploy/elasticsearch/fingerprints.json."""

from __future__ import annotations

import base64
import json
import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.stages.dedupe import (
    Deduper,
    fingerprint,
    list_key_count,
    list_keys,
    normalise,
    shingles,
    signature,
)
from pipeline.stages.dedupe_store import (
    INDEXED,
    PENDING,
    BandClaim,
    BandEntry,
    ElasticsearchFingerprintStore,
    FingerprintEntry,
)
from schemas.models import CleanArticle
from tests.unit.test_dedupe import article, seed_text

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SEEDS = sorted((REPO / "seeds").glob("*.txt"))
TEMPLATE = REPO / "deploy" / "elasticsearch" / "fingerprints.json"


def seeds() -> list[CleanArticle]:
    return [article(path.name[:3], path.read_text(encoding="utf-8")) for path in SEEDS]


def edit_words(text: str, share: float, runs: int, seed: int) -> str:
    """Replace about ``share`` of the words in ``runs`` contiguous places."""
    rng = random.Random(seed)
    words = text.split()
    per_run = max(1, round(len(words) * share / runs))
    for start in rng.sample(range(0, len(words) - per_run, per_run * 2), runs):
        words[start : start + per_run] = [f"edited{start + i}" for i in range(per_run)]
    return " ".join(words)


@pytest.fixture
def index(es_client):
    """A fresh fingerprints index with the project's mapping, deleted afterwards."""
    name = f"test-fingerprints-{uuid.uuid4().hex[:12]}"
    body = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    body.pop("_comment", None)
    es_client.indices.create(index=name, settings=body["settings"], mappings=body["mappings"])
    yield name
    es_client.indices.delete(index=name, ignore_unavailable=True)


@pytest.fixture
def store(es_client, index) -> ElasticsearchFingerprintStore:
    return ElasticsearchFingerprintStore(es_client, index)


@pytest.fixture
def deduper(store) -> Deduper:
    return Deduper(store, threshold=0.8)


def only(deduper: Deduper, a: CleanArticle):
    [result] = deduper.check([a])
    return result


def stored(es_client, index: str, text: str) -> dict:
    """The stored document of a text."""
    return es_client.get(index=index, id=fingerprint(text))["_source"]


def test_records_round_trip(es_client, index, store, deduper: Deduper) -> None:
    [result] = deduper.check([article("a1", seed_text(0))])
    doc = stored(es_client, index, seed_text(0))
    sig = signature(seed_text(0))
    assert (doc["article_id"], doc["status"], doc["source"]) == ("a1", PENDING, "test")
    assert doc["fingerprint"] == result.article.fingerprint
    assert doc["bands"] == list(sig.bands)
    assert base64.b64decode(doc["minhash"]) == sig.minhash.tobytes()
    es_client.indices.refresh(index=index)  # claims do not refresh: searchable within 1 s
    [candidate, *_] = store.candidates(list(sig.bands))
    [[listed, *_]] = store.candidates_many([list(sig.bands)])
    assert listed == candidate
    assert candidate.fingerprint == result.article.fingerprint
    assert candidate.minhash == sig.minhash.tobytes()
    assert candidate.first_seen.tzinfo is not None


def test_seeds_distinct_and_resends_are_duplicates(deduper: Deduper) -> None:
    assert [r.status for r in deduper.check(seeds())] == ["new"] * 5
    for i in range(5):
        exact = only(deduper, article(f"copy{i}", seed_text(i)))
        assert (exact.record.duplicate_of, exact.record.kind) == (SEEDS[i].name[:3], "exact")
        near = only(deduper, article(f"edit{i}", edit_words(seed_text(i), 0.05, 3, seed=i)))
        assert (near.record.duplicate_of, near.record.kind) == (SEEDS[i].name[:3], "near")


def test_same_story_from_another_outlet_is_new(deduper: Deduper) -> None:
    deduper.check(seeds()[:4])
    assert only(deduper, article("004", seed_text(4))).is_new


def test_near_duplicates_are_found_across_batches(deduper: Deduper) -> None:
    """The claim does not refresh the index: the next batch finds the record by the band
    lists (real-time reads) before the search can."""
    only(deduper, article("a1", seed_text(2)))
    result = only(deduper, article("a2", edit_words(seed_text(2), 0.03, 2, seed=9)))
    assert (result.record.duplicate_of, result.record.kind) == ("a1", "near")


def test_pending_and_indexed_redelivery(es_client, index, store, deduper: Deduper) -> None:
    first = only(deduper, article("a1", seed_text(1)))
    assert only(deduper, article("a1", seed_text(1))).is_new
    store.mark_indexed([first.article.fingerprint, "0" * 40])
    assert stored(es_client, index, seed_text(1))["status"] == INDEXED
    again = only(deduper, article("a1", seed_text(1)))
    assert again.redelivered and again.record is None  # not a duplicate of itself


def test_corrected_version_under_the_same_id_is_new(deduper: Deduper) -> None:
    only(deduper, article("a1", seed_text(3)))
    assert only(deduper, article("a1", edit_words(seed_text(3), 0.03, 2, seed=4))).is_new


def test_in_batch_duplicates(deduper: Deduper) -> None:
    results = deduper.check(
        [
            article("x1", seed_text(4)),
            article("x2", seed_text(4)),
            article("x3", edit_words(seed_text(4), 0.04, 2, seed=1)),
        ]
    )
    assert [(r.record.duplicate_of, r.record.kind) if r.record else "new" for r in results] == [
        "new",
        ("x1", "exact"),
        ("x1", "near"),
    ]


def test_claim_race_has_one_winner(es_client, index) -> None:
    """Two workers claim the same text under different ids at once: exactly one is new, the
    other is an exact duplicate of it."""
    workers = [Deduper(ElasticsearchFingerprintStore(es_client, index)) for _ in range(2)]
    for round_ in range(5):
        text = f"round {round_}: " + seed_text(round_)
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [
                pool.submit(w.check, [article(f"w{n}-r{round_}", text)])
                for n, w in enumerate(workers)
            ]
            results = [f.result()[0] for f in futures]
        winners = [r for r in results if r.is_new]
        losers = [r for r in results if not r.is_new]
        assert len(winners) == 1 and len(losers) == 1
        assert losers[0].record.duplicate_of == winners[0].article.id
        assert losers[0].record.kind == "exact"


def test_claim_returns_the_first_writer(store: ElasticsearchFingerprintStore) -> None:
    now = datetime.now(UTC)
    first = FingerprintEntry("f" * 40, "first", PENDING, ("b00:1",), b"\x01\x02", "s", "t", now)
    second = FingerprintEntry("f" * 40, "second", PENDING, ("b00:2",), b"\x03", "s", "t", now)
    assert store.claim([first])["f" * 40].article_id == "first"
    assert store.claim([second])["f" * 40] == first


# --- near copies claimed at the same moment by different workers --------------------------------


def exact_jaccard(a: str, b: str) -> float:
    """Jaccard similarity of the two texts' shingle sets (not the MinHash estimate)."""
    sa, sb = shingles(normalise(a)), shingles(normalise(b))
    return len(sa & sb) / len(sa | sb)


def near_copy(text: str, seed: int) -> str:
    """A small edit: one word replaced in two places (exact Jaccard about 0.95 on a seed)."""
    return edit_words(text, 0.004, 2, seed=seed)


class RacingStore(ElasticsearchFingerprintStore):
    """The real store, with every worker held at a barrier just before one of its steps: all
    have searched and none has claimed (``at="claim"``), or all have claimed their fingerprint
    and none its bands (``at="claim_bands"``), the two windows of a cross-worker race."""

    def __init__(self, es, index: str, barrier: threading.Barrier, at: str) -> None:
        super().__init__(es, index)
        self.barrier, self.at = barrier, at

    def claim(self, entries):
        if self.at == "claim":
            self.barrier.wait(timeout=60)
        return super().claim(entries)

    def claim_bands(self, entries):
        if self.at == "claim_bands":
            self.barrier.wait(timeout=60)
        return super().claim_bands(entries)


@pytest.mark.parametrize("at", ["claim", "claim_bands"])
def test_concurrent_near_copies_are_caught_across_workers(es_client, at: str) -> None:
    """Three workers, one original, its near copy and an unrelated text each round, released
    together at the race window: every round exactly one of the pair is new and the other its
    near duplicate; the unrelated text is new (no false merge)."""
    body = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    rounds = 8
    for round_ in range(rounds):
        index = f"test-fingerprints-race-{uuid.uuid4().hex[:12]}"
        es_client.indices.create(index=index, settings=body["settings"], mappings=body["mappings"])
        try:
            original = seed_text(round_ % 5)
            copy = near_copy(original, seed=round_)
            unrelated = seed_text((round_ + 1) % 5)
            score = exact_jaccard(original, copy)
            print(f"round {round_} ({at}): exact Jaccard of the pair {score:.3f}")
            assert score >= 0.9
            barrier = threading.Barrier(3)
            workers = [Deduper(RacingStore(es_client, index, barrier, at)) for _ in range(3)]
            texts = [("orig", original), ("copy", copy), ("other", unrelated)]
            if round_ % 2:  # who gets which text changes from round to round
                texts = texts[::-1]
            with ThreadPoolExecutor(max_workers=3) as pool:
                futures = {
                    name: pool.submit(w.check, [article(f"{name}-{round_}", text)])
                    for w, (name, text) in zip(workers, texts)
                }
                results = {name: f.result()[0] for name, f in futures.items()}
            pair = [results["orig"], results["copy"]]
            winners = [r for r in pair if r.is_new]
            losers = [r for r in pair if not r.is_new]
            verdicts = {n: r.record.duplicate_of if r.record else "new" for n, r in results.items()}
            assert len(winners) == 1 and len(losers) == 1, f"round {round_}: {verdicts}"
            assert losers[0].record.duplicate_of == winners[0].article.id
            assert losers[0].record.kind == "near"
            assert results["other"].is_new, f"round {round_}: false merge {verdicts}"
            # the loser's record names the winner: a later copy of its text does too
            again = Deduper(ElasticsearchFingerprintStore(es_client, index)).check(
                [article(f"late-{round_}", losers[0].article.body)]
            )[0]
            assert again.record.duplicate_of == winners[0].article.id
        finally:
            es_client.indices.delete(index=index, ignore_unavailable=True)


def _entry(text: str, article_id: str) -> FingerprintEntry:
    sig = signature(text)
    return FingerprintEntry(
        fingerprint=sig.fingerprint,
        article_id=article_id,
        status=PENDING,
        bands=sig.bands,
        minhash=sig.minhash.tobytes(),
        source="test",
        title=None,
        first_seen=datetime.now(UTC),
    )


def test_band_lists_name_texts_under_their_list_keys(
    es_client, index, store: ElasticsearchFingerprintStore
) -> None:
    """A text is listed under its first ``list_key_count`` signature values (8 at 0.8); a
    list names texts, not signatures. A near copy learns, in each key it shares with the
    earlier text, that the earlier text stood before it; appending again gives the same
    answer; and a later near copy yields to the listed text even before the records are
    searchable (no refresh)."""
    original, copy = seed_text(3), near_copy(seed_text(3), seed=5)
    count = list_key_count(0.8)
    assert count == 8
    old, new = _entry(original, "old-1"), _entry(copy, "new-1")
    old_keys = list_keys(signature(original).minhash, count)
    new_keys = list_keys(signature(copy).minhash, count)
    store.claim([old])
    assert store.claim_bands([BandClaim(BandEntry(old.fingerprint, "old-1"), old_keys)]) == {
        old.fingerprint: dict.fromkeys(old_keys, ())
    }
    claim = BandClaim(BandEntry(new.fingerprint, "new-1"), new_keys)
    before = store.claim_bands([claim])[new.fingerprint]
    shared = set(old_keys) & set(new_keys)
    assert shared, "a near copy shares list keys"
    assert {key for key, entries in before.items() if entries} == shared
    for key in shared:
        assert before[key] == (BandEntry(old.fingerprint, "old-1"),)
        entries = es_client.get(index=index, id=f"band:{key}")["_source"]["entries"]
        assert entries == [
            {"fingerprint": old.fingerprint, "article_id": "old-1"},
            {"fingerprint": new.fingerprint, "article_id": "new-1"},
        ]
    assert store.claim_bands([claim])[new.fingerprint] == before  # appending again: same answer
    assert store.signatures([old.fingerprint, "0" * 40]) == {old.fingerprint: old.minhash}
    # through the stage, before any refresh: another near copy yields to the listed text
    fresh = f"{index}-fresh"
    body = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    settings = {**body["settings"], "refresh_interval": "-1"}
    es_client.indices.create(index=fresh, settings=settings, mappings=body["mappings"])
    try:
        deduper = Deduper(ElasticsearchFingerprintStore(es_client, fresh))
        assert only(deduper, article("old-2", original)).is_new
        result = only(deduper, article("new-2", near_copy(original, seed=6)))
        assert (result.record.duplicate_of, result.record.kind) == ("old-2", "near")
    finally:
        es_client.indices.delete(index=fresh, ignore_unavailable=True)
