"""Retention without servers: the dedupe window, which indices expire, rollover conditions,
topic retention, and the transient classification of bulk item errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.infra.es import is_transient_item
from pipeline.ops.retention import (
    IndexInfo,
    expired_indices,
    next_deletion,
    rollover_conditions,
    topic_retention_ms,
)
from pipeline.settings import Settings
from pipeline.stages.dedupe import Deduper, signature
from pipeline.stages.dedupe_store import INDEXED, FingerprintEntry, InMemoryFingerprintStore
from tests.unit.test_dedupe import article, seed_text

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def entry_for(article_id: str, body: str, first_seen: datetime) -> FingerprintEntry:
    sig = signature(body)
    return FingerprintEntry(
        fingerprint=sig.fingerprint,
        article_id=article_id,
        status=INDEXED,
        bands=sig.bands,
        minhash=sig.minhash.tobytes(),
        source="test",
        title=None,
        first_seen=first_seen,
    )


def window_scenario(store, window_days: float = 30):
    """An article first seen before the window and one inside it; then both texts again
    under new ids, after the store forgot what is older than the window."""
    old_body, recent_body = seed_text(0), seed_text(1)
    store.claim(
        [
            entry_for("old", old_body, NOW - timedelta(days=window_days + 1)),
            entry_for("recent", recent_body, NOW - timedelta(days=1)),
        ]
    )
    before = Deduper(store).check(
        [article("old-again", old_body), article("recent-again", recent_body)]
    )
    forgotten = store.forget(NOW - timedelta(days=window_days))
    after = Deduper(store).check(
        [article("old-again-2", old_body), article("recent-again-2", recent_body)]
    )
    return before, forgotten, after


def test_article_older_than_the_window_is_new_again_a_recent_one_still_a_duplicate():
    before, forgotten, after = window_scenario(InMemoryFingerprintStore())
    assert [r.status for r in before] == ["duplicate", "duplicate"]
    assert forgotten == 1
    assert after[0].is_new, "older than the window: forgotten, new again"
    assert after[1].record is not None and after[1].record.duplicate_of == "recent"


def test_forget_removes_near_duplicate_candidates_too():
    store = InMemoryFingerprintStore()
    body = seed_text(2)
    store.claim([entry_for("old", body, NOW - timedelta(days=90))])
    near = body.replace(".", " indeed.", 1)
    assert not Deduper(store).check([article("near", near)])[0].is_new
    store.forget(NOW - timedelta(days=30))
    assert store.candidates(list(signature(near).bands)) == []


def near_window_scenario(store, forget):
    """Through the whole dedupe stage (records and band lists): an article seen before the
    cutoff, one after it; ``forget(cutoff)`` forgets the older one; then a near copy of each
    (a word added) and the older text itself, under new ids."""
    from datetime import datetime as clock

    deduper = Deduper(store)
    old, recent = seed_text(2), seed_text(3)
    assert deduper.check([article("old", old)])[0].is_new
    cutoff = clock.now(UTC)
    assert deduper.check([article("recent", recent)])[0].is_new
    forgotten = forget(cutoff)
    near = deduper.check(
        [
            article("near-old", old.replace(".", " indeed.", 1)),
            article("near-recent", recent.replace(".", " indeed.", 1)),
        ]
    )
    again = deduper.check([article("old-again", old)])[0]
    return forgotten, near, again


def test_a_near_copy_of_a_forgotten_article_is_new_again_of_a_recent_one_still_a_duplicate():
    store = InMemoryFingerprintStore()
    forgotten, near, again = near_window_scenario(store, store.forget)
    assert forgotten == 1
    assert near[0].is_new, "the band lists still name the forgotten text: it is no original"
    assert near[1].record is not None and (near[1].record.kind, near[1].record.duplicate_of) == (
        "near",
        "recent",
    )
    # the old text again is a near copy of the (new) near-old, never of the forgotten article
    assert again.record is not None and again.record.duplicate_of == "near-old"


def info(name, created_days_ago, write=False):
    return IndexInfo(
        name=name, created=NOW - timedelta(days=created_days_ago), docs=1, bytes=1, write=write
    )


def rolled(infos):
    for older, newer in zip(infos, infos[1:]):
        older.rolled_at = newer.created
    return infos


def test_an_index_expires_retention_after_it_was_rolled_over_never_the_write_index():
    infos = rolled([info("a-000001", 400), info("a-000002", 300), info("a-000003", 10, write=True)])
    expired = expired_indices(infos, timedelta(days=365), NOW)
    # 000001 was rolled over 300 days ago (when 000002 was made): not yet; with 250 days, yes
    assert expired == []
    assert [i.name for i in expired_indices(infos, timedelta(days=250), NOW)] == ["a-000001"]
    assert [i.name for i in expired_indices(infos, timedelta(days=1), NOW)] == [
        "a-000001",
        "a-000002",
    ]
    name, when = next_deletion(infos, timedelta(days=365))
    assert name == "a-000001" and when == NOW - timedelta(days=300) + timedelta(days=365)
    assert next_deletion([info("a-000001", 400, write=True)], timedelta(days=1)) is None


def test_rollover_conditions_and_topic_retention_come_from_settings():
    settings = Settings(
        _env_file=None, rollover_max_age="1d", rollover_max_size="1gb", topic_prefix="x"
    )
    assert rollover_conditions(settings) == {"max_age": "1d", "max_primary_shard_size": "1gb"}
    assert rollover_conditions(replace_settings(settings, rollover_max_docs=5))["max_docs"] == 5
    ms = topic_retention_ms(
        replace_settings(settings, retention_deadletter_days=2, retention_duplicates_days=0.5)
    )
    assert ms == {"x.duplicates": str(12 * 3600 * 1000), "x.deadletter": str(2 * 86400 * 1000)}


def replace_settings(settings: Settings, **changes) -> Settings:
    return settings.model_copy(update=changes)


FLOOD = {
    "status": 429,
    "error": {
        "type": "cluster_block_exception",
        "reason": "index [x] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block]",
    },
}


def test_disk_pressure_and_cluster_blocks_are_transient_document_errors_are_not():
    assert is_transient_item(FLOOD)
    assert is_transient_item(
        {"status": 403, "error": {"type": "cluster_block_exception", "reason": "read-only"}}
    )
    assert is_transient_item({"status": 503, "error": {"type": "unavailable_shards_exception"}})
    assert not is_transient_item({"status": 400, "error": {"type": "mapper_parsing_exception"}})
    assert not is_transient_item(
        {"status": 409, "error": {"type": "version_conflict_engine_exception"}}
    )
    assert is_transient_item({"status": 403, "error": "cluster_block_exception: blocked"})


def test_stories_are_kept_at_least_as_long_as_the_story_window():
    from pipeline.ops.retention import retention_days

    settings = Settings(
        _env_file=None, retention_stories_days=90, story_window_hours=120, retention_outbox_days=7
    )
    assert retention_days(settings, "stories") == 90
    assert retention_days(replace_settings(settings, retention_stories_days=1), "stories") == 5, (
        "window: 5 days"
    )
    assert retention_days(settings, "outbox") == 7
