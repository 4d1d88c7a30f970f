"""Operations on a real stream (broker, Faust worker, node), one worker for the module:

- disk pressure is a pause: the flood-stage block on the test's own articles index mid-stream
  stalls indexing (the worker's health endpoint and `newspipe status` say why), and when it is
  lifted every article is indexed, none dead-lettered;
- the worker's Prometheus metrics move during the stream (messages per stage, consumer lag per
  partition up while blocked and back to 0, alert latency, webhook outcomes, dedupe hits, dead
  letters by stage and reason);
- dead letters replayed twice index nothing twice and fire no alert twice.

Every index and topic here has the module's own prefix (deleted at the end)."""

from __future__ import annotations

import http.server
import itertools
import json
import os
import socket
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.infra.es import FAMILIES
from pipeline.infra.topics import worker_reads
from pipeline.settings import Settings
from pipeline.stages.index import enriched_ids
from schemas import DeadLetter, DuplicateRecord
from tests.integration.conftest import REPO, Worker, wait_until

pytestmark = pytest.mark.integration

CORPUS = Path(os.environ.get("NEWS_CORPUS", "/work/shared/corpus/reuters21578.jsonl"))
STREAM_SIZE = 120
BLOCK = "index.blocks.read_only_allow_delete"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, what: str, timeout_s: float = 240.0, describe=None):
    return wait_until(predicate, timeout_s, what, describe)


class Hooks(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        Hooks.received.append(self.rfile.read(int(self.headers.get("content-length", 0))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def ops(kafka_bootstrap, es_url, es_client, tmp_path_factory):
    from pipeline.alerts.subscriptions import SubscriptionStore
    from pipeline.infra.setup import setup

    run = f"ops{uuid.uuid4().hex[:8]}"
    data = tmp_path_factory.mktemp("ops")
    hooks = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "NEWS_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "NEWS_ES_URL": es_url,
        "NEWS_TOPIC_PREFIX": run,
        "NEWS_INDEX_PREFIX": run,
        "NEWS_APP_ID": f"newspipe-{run}",
        "NEWS_DATA_DIR": str(data),
        "NEWS_METRICS_PORT": str(free_port()),
        "NEWS_METRICS_LAG_INTERVAL_S": "1",
        "NEWS_RETENTION_INTERVAL_S": "5",
        "NEWS_WEBHOOK_ALLOW_PRIVATE": "true",
        "NEWS_WORKER_WEB_PORT": str(free_port()),
    }
    settings = Settings(
        _env_file=None,
        **{
            k[5:].lower(): v
            for k, v in env.items()
            if k.startswith("NEWS_") and k[5:].lower() in Settings.model_fields
        },
    )
    setup(settings)
    store = SubscriptionStore(settings, es_client)
    store.add("oil", owner="ops", channels=[f"webhook:http://127.0.0.1:{hooks.server_port}/hook"])
    store.add("memorandum", owner="ops")
    store.close()
    worker = Worker(env=env, log_path=data / "worker.log")
    worker.start()
    worker.wait_ready(settings)
    yield type("Ops", (), {"settings": settings, "worker": worker, "es": es_client, "hooks": hooks})
    worker.stop()
    hooks.shutdown()
    _drop(es_client, settings)


def _drop(es, settings):
    from kafka import KafkaAdminClient

    from pipeline.infra.topics import topic_names
    from pipeline.ops.retention import family_indices

    for family in FAMILIES:
        es.indices.put_settings(
            index=settings.index(family), settings={BLOCK: None}, ignore_unavailable=True
        )
        names = [i.name for i in family_indices(es, settings.index(family))]
        if names:
            es.indices.delete(index=",".join(names), ignore_unavailable=True)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_list)
    try:
        admin.delete_topics(list(topic_names(settings).values()))
    except Exception:
        pass
    finally:
        admin.close()


def metrics(ops) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"http://127.0.0.1:{ops.settings.metrics_port}/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(samples: dict, name: str, **labels) -> float:
    return sum(
        v
        for (n, ls), v in samples.items()
        if n == name and all((k, v2) in ls for k, v2 in labels.items())
    )


def topic(ops, name: str) -> list[bytes]:
    from pipeline.infra.kafka import make_consumer

    consumer = make_consumer(
        ops.settings.topic(name), settings=ops.settings, consumer_timeout_ms=3000
    )
    values = [r.value for r in consumer]
    consumer.close()
    return values


def indexed_ids(ops, ids) -> set[str]:
    """The ids among ``ids`` whose enriched documents are indexed."""
    return enriched_ids(ops.es, ops.settings.index("articles"), ids)


def worker_health(ops) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{ops.settings.worker_web_port}/health/", timeout=10)
    except httpx.TransportError:
        return None


def newspipe(ops, *args) -> str:
    """Run the CLI against the module's topics and indices; its output."""
    from tests.integration.conftest import run_newspipe

    return run_newspipe(ops.worker.env, *args)


def lag_zero(ops) -> bool:
    from pipeline.ops.metrics import LagMonitor

    monitor = LagMonitor(ops.settings)
    try:
        return sum(monitor.measure().values()) == 0
    finally:
        monitor.close()


def publish(ops, items) -> None:
    from pipeline.infra.kafka import make_producer
    from pipeline.sources.ingest import publish as send

    producer = make_producer(ops.settings)
    try:
        report = send(items, producer, ops.settings, progress=False)
        assert report.sent == len(items)
    finally:
        producer.close()


def test_flood_stage_block_is_a_pause_not_a_loss_and_metrics_move(ops, tmp_path):
    from pipeline.sources.ingest import iter_inputs

    lines = list(itertools.islice(CORPUS.open(encoding="utf-8"), STREAM_SIZE))
    source = tmp_path / "stream.jsonl"
    source.write_text("".join(lines), encoding="utf-8")
    items = [i for i in iter_inputs([source]) if getattr(i, "id", None)]
    ids = {i.id for i in items}
    before = metrics(ops)
    publish(ops, items)

    first_index = f"{ops.settings.index('articles')}-000001"  # the test's own index only
    wait_for(
        lambda: len(indexed_ids(ops, ids)) >= 5,
        "the first articles indexed",
        describe=ops.worker.log_tail,
    )
    ops.es.indices.put_settings(index=first_index, settings={BLOCK: True})
    try:
        during = wait_for(
            lambda: "cluster_block_exception" in ops.worker.log_tail(400) and metrics(ops),
            "the worker to meet the block",
            describe=ops.worker.log_tail,
        )
        # the stalled index agent leaves its messages uncommitted: the worker's lag gauge rises
        # the topic the blocked index step reads: the enriched one, or the clean one where the
        # enrich agent indexes itself (NEWS_ENRICH_INDEXES)
        blocked = ops.settings.topic(worker_reads(ops.settings)[-1])
        backlog = wait_for(
            lambda: (
                (m := metrics(ops)) and total(m, "newspipe_consumer_lag", topic=blocked) > 0 and m
            ),
            "the worker's consumer lag to show the stalled stage",
            describe=ops.worker.log_tail,
        )
        stalled = len(indexed_ids(ops, ids))
        # the worker's health endpoint and `newspipe status` say why it waits
        health = wait_for(
            lambda: (h := worker_health(ops)) is not None and h.status_code == 503 and h,
            "the health endpoint to report the wait",
            describe=ops.worker.log_tail,
        )
        assert health.json()["waiting_for"] == ["Elasticsearch"]
        assert "cluster_block_exception" in health.json()["waits"]["index"]["error"]
        shown = newspipe(ops, "status")
        assert "waiting for Elasticsearch" in shown and "cluster_block_exception" in shown, shown
    finally:
        ops.es.indices.put_settings(index=first_index, settings={BLOCK: None})

    def settled():
        dead = [DeadLetter.model_validate_json(v) for v in topic(ops, "deadletter")]
        dups = {DuplicateRecord.model_validate_json(v).article_id for v in topic(ops, "duplicates")}
        done = indexed_ids(ops, ids)
        return (done, dups, dead) if (done | dups | {d.key for d in dead}) >= ids else None

    done, dups, dead = wait_for(
        settled,
        "every article indexed, duplicate or dead",
        timeout_s=600,
        describe=ops.worker.log_tail,
    )
    assert not [d for d in dead if "block" in d.error or "flood" in d.error], (
        "a block is never a message's fault"
    )
    assert not dead, [f"{d.stage}: {d.error}" for d in dead]
    assert stalled < len(ids) and done == ids - dups and len(done) > STREAM_SIZE // 2

    wait_for(lambda: lag_zero(ops), "the worker group to catch up")
    resumed = wait_for(
        lambda: (h := worker_health(ops)) is not None and h.status_code == 200 and h,
        "the health endpoint to report the wait over",
    )
    assert resumed.json()["waiting_for"] == []
    after = wait_for(
        lambda: (m := metrics(ops)) and total(m, "newspipe_retention_runs_total") > 0 and m,
        "a retention pass of the worker's timer",
    )
    for stage in ("clean", "enrich", "index", "alerts"):
        assert total(after, "newspipe_stage_messages_total", stage=stage) > total(
            before, "newspipe_stage_messages_total", stage=stage
        )
    assert total(during, "newspipe_stage_messages_total", stage="clean") > 0, (
        "moving during the stream"
    )
    assert total(after, "newspipe_topic_messages_total", topic="enriched") >= len(done)
    assert total(after, "newspipe_dedupe_hits_total") == len(dups)
    assert total(after, "newspipe_alert_latency_seconds_count") > 0
    # the garbage collector's passes, timed (with the worker's thresholds, a first-generation
    # pass every 7,000 new objects: 120 articles make many)
    assert total(after, "newspipe_gc_pause_seconds_count", generation="0") > total(
        before, "newspipe_gc_pause_seconds_count", generation="0"
    )
    assert total(after, "newspipe_gc_pause_seconds_sum") > 0
    assert (
        total(after, "newspipe_webhook_deliveries_total", outcome="delivered")
        == len(Hooks.received)
        > 0
    )
    # consumer lag per partition: one series per (topic, partition) the worker group reads; up
    # while the block held, back to 0 on every partition once the stream caught up
    partitions = {
        (ops.settings.topic(t), str(p))
        for t in worker_reads(ops.settings)
        for p in range(ops.settings.topic_partitions)
    }
    assert {
        (dict(ls)["topic"], dict(ls)["partition"])
        for n, ls in backlog
        if n == "newspipe_consumer_lag"
    } == partitions
    caught_up = wait_for(
        lambda: (m := metrics(ops)) and total(m, "newspipe_consumer_lag") == 0 and m,
        "the worker's lag gauge back to 0",
    )
    assert {
        (dict(ls)["topic"], dict(ls)["partition"])
        for n, ls in caught_up
        if n == "newspipe_consumer_lag"
    } == partitions


def test_an_indexed_article_is_searchable_without_the_clocks_refresh(ops):
    """With the articles index's clock set to once an hour, a search finds a new article: the
    worker refreshed the index after writing it (NEWS_ARTICLES_REFRESH_ON_WRITE)."""
    from pipeline.infra.es import dynamic_settings
    from schemas import RawArticle

    run = uuid.uuid4().hex[:8]
    article = RawArticle(
        id=f"refresh-{run}",
        title=f"Ferry timetable {run}",
        body=f"The harbour board of {run} published the winter ferry timetable on Tuesday, with "
        "two sailings a day to the islands and a night boat on Fridays until the end of March.",
    )
    index = ops.settings.index("articles")
    query = {
        "bool": {
            "must": [{"match": {"search_text": "winter ferry timetable"}}],
            "filter": [{"term": {"id": article.id}}],
        }
    }

    def found() -> list[str]:
        return [h["_id"] for h in ops.es.search(index=index, query=query)["hits"]["hits"]]

    ops.es.indices.put_settings(index=index, settings={"index.refresh_interval": "1h"})
    try:
        ops.es.indices.refresh(index=index)  # what came before: out of the way
        publish(ops, [article])
        hits = wait_for(found, "the article found by a search", describe=ops.worker.log_tail)
        assert hits == [article.id]
    finally:
        restored = dynamic_settings(ops.settings, "articles")
        ops.es.indices.put_settings(index=index, settings=restored)


def test_dead_letters_by_stage_and_reason_and_dedupe_hits_by_kind_move(ops):
    """Bad input and copies through the worker: the dead-letter and dedupe series move by
    exactly what the worker put on the dead-letter and duplicates topics."""
    from collections import Counter

    from pipeline.infra.kafka import make_producer
    from schemas import RawArticle

    run = uuid.uuid4().hex[:8]
    body = (
        f"Growers of the {run} cooperative delivered more barley to its silos this week than in any "
        f"week of the past season, the cooperative's board said on Monday. Board member {run} said "
        "prices at the silos held steady while rail freight to the coast grew slower and dearer."
    )
    first = RawArticle(id=f"orig-{run}", title=f"Barley deliveries {run}", body=body)
    copy = RawArticle(id=f"copy-{run}", title=first.title, body=first.body)  # same text, new id
    binary = RawArticle(
        id=f"binary-{run}", title="Binary", body="\ufffd\x01\x02" * 200
    )  # clean: CleanError
    before = metrics(ops)

    publish(ops, [first])
    wait_for(
        lambda: indexed_ids(ops, [first.id]), "the original indexed", describe=ops.worker.log_tail
    )
    publish(ops, [copy, binary])
    producer = make_producer(ops.settings)
    producer.send(
        ops.settings.topic("raw"), key=f"notjson-{run}", value=b"{not json"
    )  # decode: invalid
    producer.flush()
    producer.close()
    ours = {copy.id, binary.id, f"notjson-{run}"}

    def landed():
        dead = [
            d
            for d in map(DeadLetter.model_validate_json, topic(ops, "deadletter"))
            if d.key in ours
        ]
        dups = [
            r
            for r in map(DuplicateRecord.model_validate_json, topic(ops, "duplicates"))
            if r.article_id in ours
        ]
        return (dead, dups) if len(dead) == 2 and len(dups) == 1 else None

    dead, dups = wait_for(landed, "two dead letters and a duplicate", describe=ops.worker.log_tail)
    assert {(d.key, d.stage, d.error_type) for d in dead} == {
        (binary.id, "clean", "CleanError"),
        (f"notjson-{run}", "decode", "Rejected"),
    }
    assert (dups[0].kind, dups[0].duplicate_of) == ("exact", first.id)

    wait_for(lambda: lag_zero(ops), "the worker group to catch up")
    after = metrics(ops)
    by_reason = Counter((d.stage, d.error_type) for d in dead)
    for (stage, reason), n in by_reason.items():
        moved = total(after, "newspipe_dead_letters_total", stage=stage, reason=reason) - total(
            before, "newspipe_dead_letters_total", stage=stage, reason=reason
        )
        assert moved == n, (stage, reason, moved)
    assert (
        total(after, "newspipe_dead_letters_total") - total(before, "newspipe_dead_letters_total")
        == 2
    )
    assert (
        total(after, "newspipe_dedupe_hits_total", kind="exact")
        - total(before, "newspipe_dedupe_hits_total", kind="exact")
    ) == 1
    assert (
        total(after, "newspipe_dedupe_hits_total") - total(before, "newspipe_dedupe_hits_total")
        == 1
    )
    assert indexed_ids(ops, ours) == set(), "neither the copy nor bad input is indexed"


def test_replaying_dead_letters_twice_indexes_and_alerts_once(ops):
    from pipeline.infra.deadletter import dead_letter
    from pipeline.infra.kafka import make_producer
    from pipeline.ops.replay import Filter, replay
    from pipeline.sources.ingest import iter_inputs

    seeds = [i for i in iter_inputs([REPO / "seeds"]) if getattr(i, "id", None)][:2]
    raw_topic = ops.settings.topic("raw")
    letters = [
        dead_letter(
            "clean",
            "body too long (fixed since)",
            s.model_dump_json().encode(),
            topic=raw_topic,
            key=s.id,
        )
        for s in seeds
    ]
    other = dead_letter(
        "enrich",
        RuntimeError("model crashed"),
        b'{"id": "not-replayed"}',
        topic=ops.settings.topic("clean"),
        key="not-replayed",
    )
    producer = make_producer(ops.settings)
    for letter in letters + [other]:
        producer.send(ops.settings.topic("deadletter"), key=letter.key, value=letter)
    producer.flush()
    producer.close()
    keep = Filter(stages=("clean",), reason="too long")

    dry = replay(ops.settings, keep)
    assert dry.sent == 0 and sorted(l.key for _, l in dry.selected) == sorted(s.id for s in seeds)
    assert {t for t, _ in dry.selected} == {raw_topic}
    # the command: a dry run by default, with the same filters
    listed = newspipe(ops, "deadletters", "replay", "--stage", "clean", "--reason", "too long")
    assert (
        f"dry run: 2 of {dry.read} dead letter(s) would be replayed (2 to {raw_topic}); --yes sends them"
        in listed
    )
    assert all(s.id in listed for s in seeds) and "not-replayed" not in listed
    assert indexed_ids(ops, [s.id for s in seeds]) == set()

    alerts_before = len(topic(ops, "alerts"))
    assert replay(ops.settings, keep, send=True).sent == 2
    wait_for(
        lambda: indexed_ids(ops, [s.id for s in seeds]) == {s.id for s in seeds},
        "replayed articles indexed",
        describe=ops.worker.log_tail,
    )
    wait_for(lambda: lag_zero(ops), "the worker group to catch up")
    alerts_once = topic(ops, "alerts")
    seed_ids = {s.id for s in seeds}
    memorandum = [
        a
        for a in map(json.loads, alerts_once)
        if a["query"] == "memorandum" and a["article_id"] in seed_ids
    ]
    assert len(memorandum) == 2 and len(alerts_once) > alerts_before, (
        "both seeds mention the memorandum"
    )
    ops.es.indices.refresh(index=ops.settings.index("articles"))
    count_once = ops.es.count(index=ops.settings.index("articles"))["count"]

    sent = newspipe(
        ops, "deadletters", "replay", "--stage", "clean", "--reason", "too long", "--yes"
    )
    assert f"replayed 2 of {dry.read} dead letter(s): 2 to {raw_topic}" in sent, sent
    # the dedupe stage knows them as processed (same id, same text): skipped, not re-indexed
    wait_for(
        lambda: "redelivered article(s) already processed, skipped" in ops.worker.log_tail(2000),
        "the second replay seen as already processed",
        describe=ops.worker.log_tail,
    )
    wait_for(lambda: lag_zero(ops), "the worker group to catch up")
    ops.es.indices.refresh(index=ops.settings.index("articles"))
    assert ops.es.count(index=ops.settings.index("articles"))["count"] == count_once
    assert len(topic(ops, "alerts")) == len(alerts_once), "no alert fired twice"
    assert indexed_ids(ops, ["not-replayed"]) == set()
