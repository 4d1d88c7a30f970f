"""Benchmark of the dedupe stage on the Reuters-21578 corpus (in-memory store, no servers).

    python -m benchmarks.dedupe [path/to/reuters21578.jsonl] [--batch 64] [--samples 8] [--raw] [--limit N]

Bodies go through ``pipeline.stages.clean.clean`` first (not timed) unless ``--raw`` is given
or the clean stage is missing; raw bodies still carry the wire dateline and the " Reuter"
sign-off. Prints the dedupe throughput, the exact and near duplicates found, and sample near
pairs with their estimated and true 5-shingle Jaccard similarity, for a human to judge.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import DEFAULT_CORPUS
from pipeline.stages.dedupe import Deduper, DedupeResult, normalise, shingles
from pipeline.stages.dedupe_store import InMemoryFingerprintStore
from schemas.models import CleanArticle, RawArticle


def read_raw(path: Path) -> Iterator[RawArticle]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            yield RawArticle(
                id=record["id"],
                source=record.get("source"),
                title=record.get("title"),
                body=record["body"],
                published_at=record.get("published_at"),
            )


def raw_to_clean(raw: RawArticle) -> CleanArticle:
    """The article with its raw body, as if the clean stage had changed nothing."""
    return CleanArticle(
        id=raw.id,
        source=raw.source,
        title=raw.title or raw.id,
        body=raw.body,
        language="en",
        published_at=raw.published_at,
        ingested_at=raw.ingested_at,
    )


def cleaner(use_raw: bool) -> tuple[str, Callable[[RawArticle], CleanArticle]]:
    """The clean function to use and its description."""
    if not use_raw:
        try:
            from pipeline.stages.clean import clean
        except ImportError:
            pass
        else:
            return "clean bodies (pipeline.stages.clean)", clean
    return "raw bodies (dateline and sign-off kept)", raw_to_clean


def prepare(
    path: Path, convert: Callable[[RawArticle], CleanArticle], limit: int | None = None
) -> tuple[list[CleanArticle], int]:
    """Clean articles of the corpus and the number the clean stage rejected."""
    articles, rejected = [], 0
    for n, raw in enumerate(read_raw(path)):
        if limit is not None and n >= limit:
            break
        try:
            articles.append(convert(raw))
        except ValueError:
            rejected += 1
    return articles, rejected


def run(articles: list[CleanArticle], batch: int) -> tuple[list[DedupeResult], float, float]:
    """Dedupe all articles in batches; results, elapsed and CPU seconds (the CPU time tells
    the stage's own cost when other processes share the cores)."""
    deduper = Deduper(InMemoryFingerprintStore())
    results: list[DedupeResult] = []
    started, cpu_started = time.perf_counter(), time.process_time()
    for start in range(0, len(articles), batch):
        results += deduper.check(articles[start : start + batch])
    return results, time.perf_counter() - started, time.process_time() - cpu_started


def true_jaccard(a: str, b: str) -> float:
    """Exact Jaccard similarity of the shingle sets of two bodies."""
    sa, sb = shingles(normalise(a)), shingles(normalise(b))
    return len(sa & sb) / max(len(sa | sb), 1)


def excerpt(text: str, width: int = 110) -> str:
    return " ".join(text.split())[:width]


def report(
    articles: list[CleanArticle],
    results: list[DedupeResult],
    elapsed: float,
    cpu: float,
    samples: int,
) -> None:
    by_id = {a.id: a for a in articles}
    records = [r.record for r in results if r.record is not None]
    exact = [r for r in records if r.kind == "exact"]
    near = [r for r in records if r.kind == "near"]
    print(f"articles          {len(articles)}")
    print(f"dedupe time       {elapsed:.2f} s  ({len(articles) / elapsed:.0f} articles/s)")
    print(f"dedupe CPU time   {cpu:.2f} s  ({len(articles) / cpu:.0f} articles per CPU second)")
    print(f"CPU / wall time   {cpu / elapsed:.2f} (below 1: the process waited for a core)")
    print(f"new               {len(articles) - len(records)}")
    print(f"exact duplicates  {len(exact)}")
    print(f"near duplicates   {len(near)}")
    if not near:
        return
    truths = [true_jaccard(by_id[r.article_id].body, by_id[r.duplicate_of].body) for r in near]
    below = sum(t < 0.8 for t in truths)
    print(
        f"near pairs whose true shingle Jaccard is below 0.8: {below} of {len(near)}"
        f" (lowest {min(truths):.3f})"
    )
    print(f"\nsample near-duplicate pairs ({min(samples, len(near))} of {len(near)}, random):")
    picks = random.Random(0).sample(range(len(near)), min(samples, len(near)))
    for i in sorted(picks):
        record, truth = near[i], truths[i]
        print(
            f"- {record.article_id} ~ {record.duplicate_of}: estimated {record.similarity:.3f},"
            f" true {truth:.3f}"
        )
        print(f"    {excerpt(by_id[record.duplicate_of].body)}")
        print(f"    {excerpt(by_id[record.article_id].body)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--batch", type=int, default=64, help="articles per Deduper.check call")
    parser.add_argument("--samples", type=int, default=8, help="near pairs to print")
    parser.add_argument("--raw", action="store_true", help="skip the clean stage")
    parser.add_argument("--limit", type=int, default=None, help="first N corpus articles only")
    args = parser.parse_args()

    description, convert = cleaner(args.raw)
    articles, rejected = prepare(args.corpus, convert, args.limit)
    print(f"corpus            {args.corpus}")
    print(f"input             {description}; {rejected} rejected by clean")
    results, elapsed, cpu = run(articles, args.batch)
    report(articles, results, elapsed, cpu, args.samples)


if __name__ == "__main__":
    main()
