"""Throughput of the pipeline's own batch steps (pipeline.stream.process.Pipeline) on the Reuters
corpus, in this process, with in-memory dedupe state and entity registry (no servers).

    python -m benchmarks.stages [CORPUS] [--limit N] [--batch 64]

Prints articles/s per step and overall, and what the steps made of the articles. A figure,
not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import DEFAULT_CORPUS
from pipeline.settings import get_settings
from pipeline.sources.ingest import Rejected, iter_inputs
from pipeline.stages.dedupe import Deduper
from pipeline.stages.dedupe_store import InMemoryFingerprintStore
from pipeline.stages.entities import InMemoryEntityRegistry
from pipeline.stages.stories import StoryAssigner
from pipeline.stream.process import InMessage, Pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", default=str(DEFAULT_CORPUS))
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

    settings = get_settings()
    pipeline = Pipeline(
        settings,
        deduper=Deduper(InMemoryFingerprintStore()),
        registry=InMemoryEntityRegistry(),
        stories=StoryAssigner(),  # in memory
    )
    started = time.perf_counter()
    pipeline.nlp  # noqa: B018 - load the model outside the timed steps
    print(f"model {settings.spacy_model}: loaded in {time.perf_counter() - started:.1f}s")

    messages = []
    for item in iter_inputs([Path(args.corpus)]):
        if not isinstance(item, Rejected):
            messages.append(InMessage(value=item.model_dump_json().encode(), key=item.id.encode()))
        if len(messages) >= args.limit:
            break

    spent = Counter()
    made = Counter()
    entity_types, event_types = Counter(), Counter()
    words = 0
    for i in range(0, len(messages), args.batch):
        batch = messages[i : i + args.batch]
        t0 = time.perf_counter()
        cleaned = pipeline.clean_and_dedupe(batch)
        t1 = time.perf_counter()
        enriched = pipeline.enrich(
            [InMessage(value=a.model_dump_json().encode()) for a in cleaned.passed]
        )
        t2 = time.perf_counter()
        spent["clean+dedupe"] += t1 - t0
        spent["entities+events"] += t2 - t1
        made["duplicates"] += len(cleaned.duplicates)
        made["dead letters"] += len(cleaned.dead) + len(enriched.dead)
        made["enriched"] += len(enriched.passed)
        for article in enriched.passed:
            words += len(article.body.split())
            entity_types.update(e.type for e in article.entities)
            event_types.update(e.type for e in article.events)

    total = sum(spent.values())
    print(
        f"{len(messages)} articles ({words / max(made['enriched'], 1):.0f} words each on average), batches of {args.batch}"
    )
    for step, seconds in spent.items():
        print(
            f"  {step:16s} {seconds:7.1f}s  {len(messages) / seconds:8.1f} articles/s"
            f"  ({seconds / total:.0%} of the time)"
        )
    print(f"  {'all steps':16s} {total:7.1f}s  {len(messages) / total:8.1f} articles/s")
    print("made:", dict(made))
    print("entities by type:", dict(entity_types.most_common()))
    print("events by type:", dict(event_types.most_common()))


if __name__ == "__main__":
    main()
