"""Retention on the real node: rollover by the settings' conditions, deletion of indices past
their retention, old alerts and fingerprints forgotten, topic retention set; the dedupe window
over the Elasticsearch store. Each test has its own index/topic prefix."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline.infra.es import FAMILIES
from pipeline.ops import retention
from pipeline.stages.dedupe_store import ElasticsearchFingerprintStore
from tests.integration.conftest import own_indices
from tests.unit.test_ops_retention import NOW, window_scenario

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(es_client, kafka_bootstrap, es_url):
    with own_indices(es_client, kafka_bootstrap, es_url, "ops", rollover_max_docs=2) as s:
        yield s


def test_dedupe_window_over_elasticsearch(es_client, settings):
    store = ElasticsearchFingerprintStore(es_client, settings.index("fingerprints"))
    before, forgotten, after = window_scenario(store)
    assert [r.status for r in before] == ["duplicate", "duplicate"]
    assert forgotten == 1
    assert after[0].is_new and not after[1].is_new


def test_the_retention_pass_forgets_articles_older_than_the_dedupe_window(es_client, settings):
    """Through the whole dedupe stage on the real store, the worker's retention pass a window
    later: the older article's record and band lists are gone, a near copy of it is new, a
    near copy of the recent one still a duplicate."""
    from pipeline.stages.dedupe import list_key_count, list_keys, signature
    from tests.unit.test_dedupe import seed_text
    from tests.unit.test_ops_retention import near_window_scenario

    store = ElasticsearchFingerprintStore(es_client, settings.index("fingerprints"))
    window = timedelta(days=settings.dedupe_window_days)
    old, recent = signature(seed_text(2)), signature(seed_text(3))
    reports, known_after = [], []

    def forget(cutoff):
        reports.append(
            retention.run_retention(es_client, settings, now=cutoff + window, topics=False)
        )
        known_after.append(store.known([old.fingerprint, recent.fingerprint]))
        return reports[-1].deleted_documents["fingerprints"]

    forgotten, near, again = near_window_scenario(store, forget)
    assert forgotten == 1
    old_lists = set(list_keys(old.minhash, list_key_count(settings.dedupe_threshold)))
    assert reports[0].deleted_documents["band lists"] == len(old_lists), (
        "its band lists went with it"
    )
    assert near[0].is_new
    assert near[1].record is not None and (near[1].record.kind, near[1].record.duplicate_of) == (
        "near",
        "recent",
    )
    assert again.record is not None and again.record.duplicate_of == "near-old"
    # right after the pass (the old text's return above claims its fingerprint anew)
    assert known_after == [{recent.fingerprint}]


def status_table(settings, data_dir, command) -> dict[str, list[str]]:
    """Run ``newspipe <command>`` against the test's prefix; its indices table as family ->
    [indices, documents, size, retention, next deletion]."""
    import os
    import subprocess
    import sys

    from tests.integration.conftest import REPO

    env = {
        **os.environ,
        "NEWS_ES_URL": settings.es_url,
        "NEWS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "NEWS_INDEX_PREFIX": settings.index_prefix,
        "NEWS_TOPIC_PREFIX": settings.topic_prefix,
        "NEWS_DATA_DIR": str(data_dir),
        "COLUMNS": "250",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *command],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "next deletion" in done.stdout, done.stdout
    table = {}
    for line in done.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 6 and cells[0] in FAMILIES:
            table[cells[0]] = cells[1:]
    return table


def test_rollover_then_delete_after_retention(es_client, settings, tmp_path):
    alias = settings.index("articles")
    for n in range(3):
        es_client.index(index=alias, id=f"a{n}", document={"id": f"a{n}"})
    es_client.indices.refresh(index=alias)
    old_alert = {"id": "x", "created_at": (NOW - timedelta(days=400)).isoformat()}
    es_client.index(index=settings.index("alerts"), id="old", document=old_alert, refresh=True)
    new_at = retention.utcnow()
    es_client.index(
        index=settings.index("alerts"),
        id="new",
        document={"id": "y", "created_at": new_at.isoformat()},
        refresh=True,
    )

    report = retention.run_retention(es_client, settings, topics=False)
    assert report.rolled_over == {alias: f"{alias}-000002"}
    assert report.deleted_indices == []
    assert report.deleted_documents["alerts"] == 1
    assert es_client.count(index=settings.index("alerts"))["count"] == 1

    infos = retention.family_indices(es_client, alias)
    assert [(i.name, i.write, i.docs) for i in infos] == [
        (f"{alias}-000001", False, 3),
        (f"{alias}-000002", True, 0),
    ]
    es_client.index(index=alias, id="fresh", document={"id": "fresh"})  # into the new write index
    assert retention.get_by_id(es_client, alias, "a0")["_source"]["id"] == "a0", (
        "read across indices"
    )
    assert retention.get_by_id(es_client, alias, "missing") is None
    es_client.delete(index=f"{alias}-000002", id="fresh", refresh=True)
    rows = {r.family: r for r in retention.status(es_client, settings)}
    assert rows["articles"].indices == 2 and rows["articles"].docs == 3
    assert rows["articles"].next_deletion.startswith(f"{alias}-000001 at ")
    # what a user sees: `newspipe status` (and `newspipe retention status`) print the table
    expires = retention.family_indices(es_client, alias)[0].rolled_at + timedelta(
        days=settings.retention_articles_days
    )
    alerts_expire = new_at + timedelta(days=settings.retention_alerts_days)  # the old one went
    for command in (["status"], ["retention", "status"]):
        table = status_table(settings, tmp_path, command)
        assert table["articles"][:2] == ["2", "3"] and table["articles"][3] == "365 days", table
        assert table["articles"][2].endswith("B"), "a size"
        assert table["articles"][4] == f"{alias}-000001 at {expires:%Y-%m-%d %H:%M}"
        assert table["alerts"][:2] == ["1", "1"] and table["alerts"][3] == "180 days"
        assert table["alerts"][4] == f"oldest doc at {alerts_expire:%Y-%m-%d %H:%M}"
        assert table["fingerprints"][3] == f"{settings.dedupe_window_days:g} days"

    # a year later: the rolled-over index is past the retention, the write index stays
    later = retention.utcnow() + timedelta(days=settings.retention_articles_days + 1)
    report = retention.run_retention(es_client, settings, now=later, topics=False)
    assert report.deleted_indices == [f"{alias}-000001"]
    assert [i.name for i in retention.family_indices(es_client, alias)] == [f"{alias}-000002"]
    es_client.index(
        index=alias, id="after", document={"id": "after"}, refresh=True
    )  # still writable
    assert es_client.count(index=alias)["count"] == 1


def test_topic_retention_follows_settings(settings):
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    from pipeline.infra.kafka import ensure_topics

    ensure_topics(settings)
    changed = retention.apply_topic_retention(
        settings.model_copy(update={"retention_deadletter_days": 3})
    )
    assert changed == {settings.topic("deadletter"): str(3 * 86400 * 1000)}
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_list)
    try:
        found = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, settings.topic("deadletter"))]
        )
        configs = found["topic"][settings.topic("deadletter")]
        assert configs["retention.ms"]["value"] == str(3 * 86400 * 1000)
        assert configs["max.message.bytes"]["value"] == str(settings.max_message_bytes), (
            "other configs kept"
        )
        admin.delete_topics(
            [
                settings.topic(n)
                for n in (
                    "raw",
                    "clean",
                    "enriched",
                    "duplicates",
                    "deadletter",
                    "alerts",
                    "subscriptions",
                )
            ]
        )
    finally:
        admin.close()


def test_finished_outbox_entries_and_stale_stories_expire(es_client, settings):
    now = retention.utcnow()
    settings = settings.model_copy(
        update={"retention_outbox_days": 10, "retention_stories_days": 1, "story_window_hours": 72}
    )
    outbox, stories = settings.index("outbox"), settings.index("stories")
    old, recent = (now - timedelta(days=11)).isoformat(), (now - timedelta(days=9)).isoformat()
    entries = {  # id: (state, last update)
        "old-delivered": ("delivered", old),
        "old-failed": ("failed", old),
        "old-refused": ("refused", old),
        "old-retrying": ("retrying", old),
        "old-pending": ("pending", old),  # open: kept however old
        "recent-delivered": ("delivered", recent),
    }
    for entry_id, (state, at) in entries.items():
        es_client.index(
            index=outbox, id=entry_id, document={"state": state, "updated_at": at, "created_at": at}
        )
    ages = {
        "stale": 4,
        "in-window": 2,
        "fresh": 0,
    }  # days since the last update; the window is 3 days
    for story_id, days in ages.items():
        es_client.index(
            index=stories,
            id=story_id,
            document={"id": story_id, "updated_at": (now - timedelta(days=days)).isoformat()},
        )
    es_client.indices.refresh(index=f"{outbox},{stories}")
    rows = {r.family: r for r in retention.status(es_client, settings)}
    assert rows["outbox"].retention == "10 days" and rows["stories"].retention == "3 days"
    assert rows["outbox"].next_deletion.startswith("oldest doc at ")

    report = retention.run_retention(es_client, settings, topics=False)
    assert report.deleted_documents["outbox"] == 3 and report.deleted_documents["stories"] == 1
    es_client.indices.refresh(index=f"{outbox},{stories}")
    left = {h["_id"] for h in es_client.search(index=outbox, size=100)["hits"]["hits"]}
    assert left == {"old-retrying", "old-pending", "recent-delivered"}
    assert {h["_id"] for h in es_client.search(index=stories, size=100)["hits"]["hits"]} == {
        "in-window",
        "fresh",
    }
