"""Benchmark of the producer side on the Reuters-21578 corpus.

    python -m benchmarks.ingest [path/to/reuters21578.jsonl] [--kafka] [--limit N]

Always measures reading (``iter_inputs``: JSON parsing, validation, ids). With ``--kafka`` it
also publishes to the broker of ``NEWS_KAFKA_BOOTSTRAP`` under a fresh topic prefix (topics
created, never deleted) and reports the end-to-end rate up to the final flush.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import DEFAULT_CORPUS
from pipeline.sources.ingest import Rejected, iter_inputs, publish


def bench_read(path: Path, limit: int | None) -> tuple[list, float]:
    started = time.perf_counter()
    items = list(itertools.islice(iter_inputs([path]), limit))
    elapsed = time.perf_counter() - started
    rejected = sum(isinstance(item, Rejected) for item in items)
    print(
        f"read     {len(items):>7} items ({rejected} rejected) in {elapsed:6.2f} s"
        f"  = {len(items) / elapsed:8.0f} items/s"
    )
    return items, elapsed


def bench_publish(items: list, read_seconds: float) -> None:
    from pipeline.infra.kafka import ensure_topics, make_producer
    from pipeline.settings import get_settings

    # a fresh prefix: never the stack's own topics (reading above already built the settings,
    # so the environment alone would come too late)
    settings = get_settings().model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:8]}"})
    ensure_topics(settings)
    producer = make_producer(settings)
    try:
        report = publish(items, producer, settings, progress=False)
    finally:
        producer.close()
    print(
        f"publish  {report.sent:>7} sent, {len(report.failed)} failed in {report.elapsed:6.2f} s"
        f"  = {report.sent / report.elapsed:8.0f} articles/s  (topics {settings.topic_prefix}.*)"
    )
    print(f"publish time / read time: {report.elapsed / read_seconds:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, nargs="?", default=DEFAULT_CORPUS)
    parser.add_argument("--kafka", action="store_true", help="also publish to the broker")
    parser.add_argument("--limit", type=int, default=None, help="first N items only")
    args = parser.parse_args()
    items, read_seconds = bench_read(args.corpus, args.limit)
    if args.kafka:
        bench_publish(items, read_seconds)


if __name__ == "__main__":
    main()
