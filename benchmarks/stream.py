"""End to end on the real stack: ingest-to-alert latency and streaming throughput.

    python -m benchmarks.stream [CORPUS] [--rate 10] [--seconds 30] [--burst 1000]

Starts the local runtime (or uses NEWS_KAFKA_BOOTSTRAP / NEWS_ES_URL), fresh topic and index
prefixes, one Faust worker; subscribes to a few common queries; then
1. paces corpus articles onto the raw topic at --rate per second for --seconds and prints the
   latency from ingest to alert (min / median / p90 / max) of the alerts that fired;
2. sends --burst articles at once and prints how long until all are indexed (articles/s).
Figures only, no asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

from benchmarks import DEFAULT_CORPUS
from benchmarks.scaling import QUERIES

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", default=str(DEFAULT_CORPUS))
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--burst", type=int, default=1000)
    args = parser.parse_args()

    run = uuid.uuid4().hex[:6]
    os.environ.update(
        NEWS_TOPIC_PREFIX=f"bench{run}", NEWS_INDEX_PREFIX=f"bench{run}", NEWS_APP_ID=f"bench{run}"
    )
    from pipeline.alerts.subscriptions import SubscriptionStore
    from pipeline.cli.demo import start_worker, stop_worker, wait_ready
    from pipeline.infra.kafka import make_producer
    from pipeline.infra.setup import setup
    from pipeline.runtime.local import LocalRuntime
    from pipeline.settings import get_settings
    from pipeline.sources.ingest import Rejected, iter_inputs
    from pipeline.stages.index import enriched_only
    from pipeline.stream.process import Pipeline

    settings = get_settings()
    if "NEWS_KAFKA_BOOTSTRAP" not in os.environ:
        LocalRuntime(settings).up()
    setup(settings)
    pipeline = Pipeline(settings)
    store = SubscriptionStore(settings, pipeline.es)
    for query in QUERIES:
        store.add(query, owner="bench")
    store.close()
    log_path = settings.data_dir / "logs" / f"bench-{run}.log"
    worker = start_worker(log_path)
    try:
        print(f"worker ready in {wait_ready(worker, log_path):.1f}s")
        articles = (a for a in iter_inputs([Path(args.corpus)]) if not isinstance(a, Rejected))
        producer = make_producer(settings)
        topic = settings.topic("raw")

        count = int(args.rate * args.seconds)
        started = time.monotonic()
        for n in range(count):
            article = next(articles)
            producer.send(
                topic, key=article.id, value=article.model_copy(update={"ingested_at": _now()})
            )
            producer.flush()
            time.sleep(max(0.0, started + (n + 1) / args.rate - time.monotonic()))
        time.sleep(3)
        pipeline.es.indices.refresh(index=settings.index("alerts"))
        hits = pipeline.es.search(
            index=settings.index("alerts"), size=10000, source=["latency_ms"]
        )["hits"]["hits"]
        latencies = sorted(h["_source"]["latency_ms"] for h in hits)
        print(
            f"paced: {count} articles at {args.rate}/s -> {len(latencies)} alerts for {len(QUERIES)} subscriptions"
        )
        if latencies:
            p90 = latencies[int(0.9 * (len(latencies) - 1))]
            print(
                f"  ingest-to-alert ms: min {latencies[0]:.0f}, median {statistics.median(latencies):.0f}, "
                f"p90 {p90:.0f}, max {latencies[-1]:.0f}"
            )

        burst = [next(articles) for _ in range(args.burst)]
        started = time.monotonic()
        for article in burst:
            producer.send(topic, key=article.id, value=article)
        producer.flush()
        index = settings.index("articles")
        enriched = enriched_only()  # not the texts alone
        before = pipeline.es.count(index=index, query=enriched)["count"]
        done_at, count = time.monotonic(), before
        while (
            time.monotonic() - done_at < 10
        ):  # corpus duplicates are never indexed: stop when quiet
            time.sleep(0.5)
            pipeline.es.indices.refresh(index=index)
            now = pipeline.es.count(index=index, query=enriched)["count"]
            if now != count:
                done_at, count = time.monotonic(), now
            if count - before >= len(burst):
                break
        elapsed = done_at - started
        indexed = count - before
        print(
            f"burst: {args.burst} articles sent at once, {indexed} new ones indexed within {elapsed:.1f}s "
            f"({indexed / elapsed:.1f} articles/s; the rest are corpus duplicates)"
        )
        print(f"burst throughput / paced rate: {indexed / elapsed / args.rate:.2f}x")
        producer.close()
    finally:
        stop_worker(worker)


def _now():
    from schemas.models import utcnow

    return utcnow()


if __name__ == "__main__":
    main()
