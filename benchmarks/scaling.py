"""Scaling out: throughput and p99 alert latency with 1, 2 and 3 workers, in one run.

    python -m benchmarks.scaling [--articles 300] [--workers 1,2,3] [--partitions 6]

Uses the servers of NEWS_KAFKA_BOOTSTRAP / NEWS_ES_URL (else starts the local runtime). For
each worker count: fresh topics (``--partitions``) and indices, a few alert subscriptions,
that many ``newspipe worker`` processes; once all are ready, ``--articles`` distinct corpus
articles are sent at once (stamped now) and the run ends when all are indexed. Printed per
count: articles/s (send to last indexed), p50/p99 ingest-to-alert latency, and, sampled while
the burst is half done, each worker's partitions of the raw topic and its consumer lag (on
the topics the worker reads). Figures only, no asserts. Every worker runs the whole pipeline
(spaCy is most of the CPU), so on a machine with C cores more than C workers measure
oversubscription, not scaling: the table says so beside such rows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from pathlib import Path

from pipeline.stages.index import enriched_ids

REPO = Path(__file__).resolve().parents[1]
QUERIES = [
    "oil",
    "dividend",
    "trade OR tariff",
    '"interest rates"',
    "bank AND loss",
    "said",
    'entity:"United States"',
]
"""Keyword subscriptions (matched before the NER) and one entity subscription (after it)."""


def distinct_articles(
    n: int, corpus: Path, run: str, min_words: int = 40, max_words: int = 400
) -> list:
    """``n`` corpus articles of ``min_words``..``max_words`` words, none an exact or near
    duplicate of another, under fresh ids."""
    from pipeline.sources.ingest import Rejected, iter_inputs
    from pipeline.stages.clean import CleanError, clean
    from pipeline.stages.dedupe import Deduper
    from pipeline.stages.dedupe_store import InMemoryFingerprintStore

    deduper, out = Deduper(InMemoryFingerprintStore()), []
    for item in iter_inputs([corpus]):
        if isinstance(item, Rejected) or not min_words <= len(item.body.split()) <= max_words:
            continue
        try:
            if not deduper.check([clean(item)])[0].is_new:
                continue
        except CleanError:
            continue
        out.append(item.model_copy(update={"id": f"{run}-{item.id}"}))
        if len(out) == n:
            return out
    raise RuntimeError(f"{corpus}: fewer than {n} distinct articles")


def group_view(settings) -> list[tuple[str, list[int], dict[str, int]]]:
    """Per member of the worker group: (client host/id, raw partitions, lag per stage topic)."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient

    from pipeline.infra.topics import worker_reads

    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_list, client_id="bench-scaling"
    )
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_list, client_id="bench-scaling"
    )
    try:
        group = admin.describe_groups([settings.app_id])[settings.app_id]
        committed = admin.list_group_offsets({settings.app_id: None}).get(settings.app_id, {})
        stage_topics = {settings.topic(t): t for t in worker_reads(settings)}
        parts = [
            TopicPartition(t, p) for t in stage_topics for p in range(settings.topic_partitions)
        ]
        ends = consumer.end_offsets(parts)
        rows = []
        for member in group.get("members", []):
            assignment = member.get("member_assignment")
            assigned = (
                getattr(assignment, "assignment", None)
                or (assignment.get("assigned_partitions") if isinstance(assignment, dict) else None)
                or []
            )
            tps: list[TopicPartition] = []
            for entry in assigned:
                topic, partitions = (
                    entry
                    if isinstance(entry, (tuple, list))
                    else (entry.get("topic"), entry.get("partitions"))
                )
                tps += [TopicPartition(topic, p) for p in partitions]
            lag = dict.fromkeys(stage_topics.values(), 0)
            for tp in tps:
                if tp.topic in stage_topics:
                    done = committed.get(tp)
                    lag[stage_topics[tp.topic]] += ends.get(tp, 0) - (done.offset if done else 0)
            raw = sorted(tp.partition for tp in tps if tp.topic == settings.topic("raw"))
            rows.append(
                (f"{member.get('client_host', '')}/{member.get('member_id', '')[-6:]}", raw, lag)
            )
        return rows
    finally:
        admin.close()
        consumer.close()


def _indexed_ops(es, index: str) -> int:
    """Index operations the index has done so far (every article is indexed once in a run of
    distinct articles, twice with ``NEWS_INDEX_CLEAN``: :func:`ops_per_article`; a
    redelivery may add one more)."""
    stats = es.indices.stats(index=index, metric="indexing")
    return int(stats["_all"]["primaries"]["indexing"]["index_total"])


def ops_per_article(settings) -> int:
    """The articles index's writes per new article: its text from the clean step
    (``index_clean``), then its enriched document."""
    return 2 if settings.index_clean else 1


def all_indexed(es, index: str, expected_ops: int, state: dict) -> bool:
    """Whether the index has done ``expected_ops`` operations, or done none for a second
    (a text's early create that met its enriched document is not an operation): the cheap
    test before the ids are read. ``state`` keeps the last count and when it changed."""
    done, now = _indexed_ops(es, index), time.monotonic()
    if done != state.get("done"):
        state.update(done=done, changed=now)
    return done >= expected_ops or (done > 0 and now - state["changed"] >= 1.0)


def fresh_run(name: str, partitions: int):
    """Fresh topics and indices (prefix ``<name><run>``) with ``partitions`` partitions, set
    up with the benchmark's subscriptions; returns (run id, settings, Elasticsearch client)."""
    from elasticsearch import Elasticsearch

    from pipeline.alerts.subscriptions import SubscriptionStore
    from pipeline.infra.setup import setup
    from pipeline.settings import get_settings, reset_settings

    run = uuid.uuid4().hex[:6]
    os.environ.update(
        NEWS_TOPIC_PREFIX=f"{name}{run}",
        NEWS_INDEX_PREFIX=f"{name}{run}",
        NEWS_APP_ID=f"{name}{run}",
        NEWS_TOPIC_PARTITIONS=str(partitions),
    )
    reset_settings()
    settings = get_settings()
    setup(settings)
    es = Elasticsearch(settings.es_url_list, request_timeout=30)
    store = SubscriptionStore(settings, es)
    for query in QUERIES:
        store.add(query, owner="bench")
    store.close()
    return run, settings, es


def drop_run(settings, es) -> None:
    """Delete a finished run's indices and topics (the worker's, Faust's own included): left
    behind, every run's indices keep being refreshed on their schedule and the next runs
    measure a busier Elasticsearch."""
    from kafka import KafkaAdminClient

    prefix = settings.index_prefix
    names = list(es.indices.get(index=f"{prefix}-*", expand_wildcards="all"))
    if names:  # by name: the node refuses wildcard deletes (action.destructive_requires_name)
        es.indices.delete(index=",".join(names))
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_list)
    try:
        mine = (f"{settings.topic_prefix}.", f"{settings.app_id}-")
        topics = [t for t in admin.list_topics() if t.startswith(mine)]
        if topics:
            admin.delete_topics(topics)
    finally:
        admin.close()


def one_run(n_workers: int, articles: list, partitions: int, log=print) -> dict:
    from pipeline.cli.demo import start_worker, stop_worker, wait_ready
    from pipeline.infra.kafka import make_producer
    from schemas.models import utcnow

    run, settings, es = fresh_run("scale", partitions)
    workers = []
    try:
        for i in range(n_workers):
            log_path = settings.data_dir / "logs" / f"scaling-{run}-{i}.log"
            workers.append((start_worker(log_path), log_path))
        for worker, log_path in workers:
            wait_ready(worker, log_path, timeout_s=400)
        producer = make_producer(settings)
        started = time.monotonic()
        for article in articles:
            producer.send(
                settings.topic("raw"),
                key=article.id,
                value=article.model_copy(update={"ingested_at": utcnow()}),
            )
        producer.flush()
        producer.close()
        index, pending, view, done_at = (
            settings.index("articles"),
            {a.id for a in articles},
            None,
            None,
        )
        expected, state = len(articles) * ops_per_article(settings), {}
        while pending and time.monotonic() - started < 900:
            # the index's own count of index operations (real time, one small request) until
            # it reaches the sent count; then the ids of the enriched documents (an mget of
            # every pending id five times a second cost the servers and this process CPU the
            # workers should have)
            if all_indexed(es, index, expected, state):
                pending -= enriched_ids(es, index, pending)
            if view is None and state["done"] >= expected // 2:
                view = group_view(settings)
            if pending:
                time.sleep(0.1)
        done_at = time.monotonic()
        time.sleep(2)  # the alerts agent runs beside the index agent
        es.indices.refresh(index=settings.index("alerts"))
        hits = es.search(index=settings.index("alerts"), size=10000, source=["latency_ms"])["hits"][
            "hits"
        ]
        latencies = sorted(
            h["_source"]["latency_ms"] for h in hits if h["_source"].get("latency_ms") is not None
        )
        return {
            "workers": n_workers,
            "indexed": len(articles) - len(pending),
            "seconds": done_at - started,
            "rate": (len(articles) - len(pending)) / (done_at - started),
            "alerts": len(latencies),
            "p50": statistics.median(latencies) if latencies else float("nan"),
            "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
            if latencies
            else float("nan"),
            "view": view or [],
        }
    finally:
        for worker, _ in workers:
            stop_worker(worker)
        drop_run(settings, es)
        es.close()


def main() -> None:
    import sys

    sys.path.insert(0, str(REPO))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from benchmarks import DEFAULT_CORPUS

    default_corpus = str(DEFAULT_CORPUS)
    parser.add_argument("--corpus", default=default_corpus)
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    from pipeline.runtime.local import LocalRuntime
    from pipeline.settings import get_settings

    if "NEWS_KAFKA_BOOTSTRAP" not in os.environ:
        LocalRuntime(get_settings()).up()
    cores = os.cpu_count() or 1
    articles = distinct_articles(args.articles, Path(args.corpus), uuid.uuid4().hex[:6])
    results = []
    for n in (int(x) for x in args.workers.split(",")):
        result = one_run(n, articles, args.partitions)
        results.append(result)
        print(
            f"{n} worker(s): {result['indexed']} articles in {result['seconds']:.1f}s = "
            f"{result['rate']:.1f} articles/s; {result['alerts']} alerts, ingest-to-alert "
            f"p50 {result['p50']:.0f} ms, p99 {result['p99']:.0f} ms"
            + (f"  [oversubscribed: {n} workers on {cores} cores]" if n > cores else "")
        )
        for member, raw, lag in result["view"]:
            print(f"    member {member}: raw partitions {raw}, lag at half-way {lag}")
    base = results[0]["rate"]
    print(
        "speed-up vs 1 worker: "
        + ", ".join(f"{r['workers']}: {r['rate'] / base:.2f}x" for r in results)
    )
    print(f"({cores} cores; machine shared with other jobs: figures from a loaded machine)")


if __name__ == "__main__":
    main()
