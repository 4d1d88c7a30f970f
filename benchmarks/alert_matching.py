"""Benchmark: alert matching time per article, indexed vs a loop over all subscriptions.

Builds 10 / 1,000 / 10,000 synthetic subscriptions from the Reuters-21578 corpus (words and
phrases drawn from its vocabulary with a document-frequency bias, AND / OR / NOT combinations,
``entity:`` on its places and ``event:`` on its topics), turns ~500 other corpus articles into
EnrichedArticles (places as ``location:<place>`` entities, topics as events; no NLP) and prints,
per subscription count, the per-article matching time (mean, p50, p99, microseconds) of
``SubscriptionIndex.match`` and of evaluating every subscription in turn.

    python -m benchmarks.alert_matching [path/to/reuters21578.jsonl] [--articles 500]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import Counter
from itertools import islice
from pathlib import Path

from benchmarks import DEFAULT_CORPUS
from pipeline.alerts.matcher import ArticleView, SubscriptionIndex, compile_query
from pipeline.query.analysis import tokens
from schemas import EnrichedArticle, Entity, EventTag, Subscription

ROOT = Path(__file__).resolve().parents[1]
VOCABULARY_ARTICLES = 3000
SUBSCRIPTION_COUNTS = (10, 1_000, 10_000)


def read_corpus(path: Path, count: int) -> list[dict]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in islice(lines, count)]


def enriched(record: dict) -> EnrichedArticle:
    """A corpus record as the pipeline's output, without NLP: places and topics become tags."""
    places = record.get("places", [])
    return EnrichedArticle(
        id=record["id"],
        source=record.get("source"),
        title=record.get("title") or "",
        body=record["body"],
        language="en",
        ingested_at=record.get("published_at") or "1987-01-01T00:00:00Z",
        fingerprint=record["id"],
        entities=[
            Entity(id=f"location:{p}", name=p, type="location", mentions=1, forms=[p], offsets=[])
            for p in places
        ],
        events=[EventTag(type=t, evidence=[]) for t in record.get("topics", [])],
    )


class Vocabulary:
    """Words, phrases, places and topics of the corpus, drawn with a frequency bias."""

    def __init__(self, records: list[dict], rng: random.Random):
        self.rng = rng
        word_df: Counter = Counter()
        bigrams: Counter = Counter()
        places: Counter = Counter()
        topics: Counter = Counter()
        for record in records:
            words = [w for w in tokens(record["body"]) if w.isalpha()]
            word_df.update(set(words))
            bigrams.update(
                f"{a} {b}" for a, b in zip(words, words[1:]) if len(a) > 3 and len(b) > 3
            )
            places.update(record.get("places", []))
            topics.update(record.get("topics", []))
        self.words = self._weighted(
            {w: df for w, df in word_df.items() if len(w) > 3 and 3 <= df <= len(records) // 10}
        )
        self.phrases = self._weighted({p: n for p, n in bigrams.items() if n >= 3})
        self.places = self._weighted(places)
        self.topics = self._weighted(topics)

    @staticmethod
    def _weighted(counts: dict) -> tuple[list, list]:
        items = sorted(counts)
        return items, [counts[item] ** 0.5 for item in items]

    def draw(self, pool: tuple[list, list]) -> str:
        items, weights = pool
        return self.rng.choices(items, weights)[0]

    def word(self) -> str:
        return self.draw(self.words)

    def query(self) -> str:
        """One subscription query, from a realistic mix of shapes."""
        roll = self.rng.random()
        if roll < 0.40:
            return self.word()
        if roll < 0.55:
            return f'"{self.draw(self.phrases)}"'
        if roll < 0.70:
            return f"{self.word()} AND {self.word()}"
        if roll < 0.80:
            return " OR ".join(self.word() for _ in range(3))
        if roll < 0.88:
            return f"{self.word()} AND NOT {self.word()}"
        if roll < 0.95:
            field = f"entity:location:{self.draw(self.places)}"
            return f'{field} AND ({self.word()} OR "{self.draw(self.phrases)}")'
        return f"event:{self.draw(self.topics)}"


def percentiles(samples_ns: list[int]) -> tuple[float, float, float]:
    """Mean, p50 and p99 of nanosecond samples, in microseconds."""
    ordered = sorted(samples_ns)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.fmean(ordered) / 1e3, statistics.median(ordered) / 1e3, p99 / 1e3


def time_index(index: SubscriptionIndex, views: list[ArticleView]) -> tuple[list[int], list[set]]:
    samples, results = [], []
    for view in views:
        start = time.perf_counter_ns()
        matched = index.match(view)
        samples.append(time.perf_counter_ns() - start)
        results.append({s.id for s, _ in matched})
    return samples, results


def time_loop(compiled: list, views: list[ArticleView]) -> tuple[list[int], list[set]]:
    """The naive way: evaluate every subscription against every article."""
    samples, results = [], []
    for view in views:
        start = time.perf_counter_ns()
        matched = [(sid, query.evidence(view)) for sid, query in compiled if query.matches(view)]
        samples.append(time.perf_counter_ns() - start)
        results.append({sid for sid, _ in matched})
    return samples, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--articles", type=int, default=500, help="articles to match")
    parser.add_argument("--seed", type=int, default=1987)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    records = read_corpus(args.corpus, VOCABULARY_ARTICLES + args.articles)
    vocabulary = Vocabulary(records[:VOCABULARY_ARTICLES], rng)
    articles = [enriched(r) for r in records[VOCABULARY_ARTICLES:]]
    start = time.perf_counter_ns()
    views = [ArticleView.from_article(a) for a in articles]
    for view in views:  # analysed up front (a view analyses its words when first read)
        _ = view.text_keys, view.text_positions, view.title_keys, view.title_positions
    view_us = (time.perf_counter_ns() - start) / len(views) / 1e3
    print(
        f"corpus: {args.corpus}  articles matched: {len(views)}  ArticleView build: {view_us:.0f} µs/article"
    )
    print(
        f"{'subs':>6} | {'build ms':>8} | {'index mean/p50/p99 µs':>24} | {'cand.':>6} | {'hits':>5} |"
        f" {'loop mean/p50/p99 µs':>24} | {'speedup':>7} | agree"
    )
    for count in SUBSCRIPTION_COUNTS:
        subscriptions = [
            Subscription(id=f"s{i:05}", query=vocabulary.query()) for i in range(count)
        ]
        start = time.perf_counter_ns()
        index = SubscriptionIndex()
        for subscription in subscriptions:
            index.add(subscription)
        build_ms = (time.perf_counter_ns() - start) / 1e6
        compiled = [(s.id, compile_query(s.query)) for s in subscriptions]
        index_ns, index_hits = time_index(index, views)
        loop_ns, loop_hits = time_loop(compiled, views)
        candidates = statistics.fmean(len(index.candidates(v)) for v in views)
        hits = statistics.fmean(len(h) for h in index_hits)
        im, ip50, ip99 = percentiles(index_ns)
        lm, lp50, lp99 = percentiles(loop_ns)
        print(
            f"{count:>6} | {build_ms:>8.1f} | {im:>8.1f} {ip50:>7.1f} {ip99:>7.1f} | {candidates:>6.1f} |"
            f" {hits:>5.1f} | {lm:>8.1f} {lp50:>7.1f} {lp99:>7.1f} | {lm / im:>6.1f}x |"
            f" {'yes' if index_hits == loop_hits else 'NO'}"
        )


if __name__ == "__main__":
    main()
