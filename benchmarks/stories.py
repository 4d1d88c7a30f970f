"""Stories: pairwise precision/recall on the labelled set, and cost per article as stories grow.

    python -m benchmarks.stories [--corpus PATH] [--sizes 1000,10000,100000]

1. Quality: the articles of ``tests/fixtures/stories.json`` (Reuters-21578, from NEWS_CORPUS)
   go through the real clean and enrich stages (spaCy model NEWS_SPACY_MODEL) in publication
   order, then through :class:`StoryIndex` at several thresholds; printed: pairwise precision,
   recall and F1 over all pairs of labelled articles (the configured threshold is marked).
   ``--background N`` also feeds N unlabelled corpus articles of the same weeks (they can pull
   labelled articles into wrong stories, as in a real stream).
2. Cost: an index pre-filled with N stories (corpus articles, cycled) assigns the labelled
   articles; printed: CPU microseconds per article, candidates scored per article, and the ratio
   to the smallest size (flat = the index scales). ``--cost-only`` skips part 1 (and the NLP).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from datetime import timedelta
from itertools import combinations
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import DEFAULT_CORPUS
from pipeline.settings import get_settings
from pipeline.stages.stories import ArticleFeatures, Story, StoryIndex


def load_corpus(path: Path) -> dict[str, dict]:
    with path.open(encoding="utf-8") as lines:
        return {doc["id"]: doc for doc in map(json.loads, lines)}


def enrich(docs: list[dict]) -> list:
    """The docs through the real clean + enrich stages (in memory, no servers)."""
    from pipeline.stages.clean import clean
    from pipeline.stages.entities import InMemoryEntityRegistry
    from pipeline.stages.stories import StoryAssigner
    from pipeline.stream.process import Pipeline
    from schemas import RawArticle

    pipeline = Pipeline(registry=InMemoryEntityRegistry(), stories=StoryAssigner())
    cleaned = [clean(RawArticle.model_validate({k: v for k, v in d.items()})) for d in docs]
    out = []
    for start in range(0, len(cleaned), 64):
        out += pipeline.enrich_articles(cleaned[start : start + 64])
    return out


def pairwise(clusters: dict[str, str], truth: dict[str, str]) -> tuple[float, float, float]:
    ids = sorted(truth)
    tp = fp = fn = 0
    for a, b in combinations(ids, 2):
        same_truth, same_pred = truth[a] == truth[b], clusters[a] == clusters[b]
        tp += same_truth and same_pred
        fp += same_pred and not same_truth
        fn += same_truth and not same_pred
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument("--labels", default=str(REPO / "tests/fixtures/stories.json"))
    parser.add_argument("--background", type=int, default=0)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument(
        "--cost-only",
        action="store_true",
        help="skip the quality part (no NLP: the cost part uses word features only)",
    )
    args = parser.parse_args()
    settings = get_settings()
    window = timedelta(hours=settings.story_window_hours)

    labels = json.loads(Path(args.labels).read_text(encoding="utf-8"))
    truth = {aid: f"s{n}" for n, story in enumerate(labels["stories"]) for aid in story}
    truth.update({aid: aid for aid in labels["singletons"]})
    corpus = load_corpus(Path(args.corpus))
    docs = sorted((corpus[i] for i in truth), key=lambda d: (d["published_at"], d["id"]))
    if args.background:
        first, last = docs[0]["published_at"], docs[-1]["published_at"]
        extra = [
            d
            for d in corpus.values()
            if d["id"] not in truth
            and d.get("published_at")
            and first <= d["published_at"] <= last
            and len(d.get("body") or "") > 200
        ]
        docs = sorted(docs + extra[: args.background], key=lambda d: (d["published_at"], d["id"]))
    if args.cost_only:
        features = [_plain_features(d) for d in docs]
    else:
        started = time.perf_counter()
        enriched = enrich(docs)
        print(
            f"model {settings.spacy_model}: {len(enriched)} articles ({len(truth)} labelled, "
            f"{len(labels['stories'])} stories + {len(labels['singletons'])} singletons) "
            f"cleaned and enriched in {time.perf_counter() - started:.1f}s"
        )
        features = [ArticleFeatures.of(a) for a in enriched]
        quality(features, truth, labels, settings, window)
    cost(features, truth, corpus, settings, window, args.sizes)


def quality(features, truth, labels, settings, window) -> None:
    print(f"\nquality (window {settings.story_window_hours:g} h)")
    print(f"{'threshold':>10} {'precision':>10} {'recall':>8} {'F1':>6} {'stories':>8}")
    for threshold in (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5):
        index = StoryIndex(threshold=threshold, window=window)
        clusters = {f.id: index.assign(f)[0].id for f in features}
        p, r, f1 = pairwise({i: clusters[i] for i in truth}, truth)
        mark = (
            "  <- NEWS_STORY_THRESHOLD" if abs(threshold - settings.story_threshold) < 1e-9 else ""
        )
        print(f"{threshold:>10.2f} {p:>10.3f} {r:>8.3f} {f1:>6.3f} {len(index):>8}{mark}")


def cost(features, truth, corpus, settings, window, sizes: str) -> None:
    print(
        "\ncost per article as stories grow (labelled articles assigned into a filled index; "
        "CPU time of this process)"
    )
    filler = [d for d in corpus.values() if d["id"] not in truth and d.get("body")]
    pool = [_plain_features(d) for d in filler]
    print(f"{'stories':>8} {'us/article':>11} {'candidates':>11} {'ratio':>6}")
    base = None
    for size in (int(s) for s in sizes.split(",")):
        index = StoryIndex(threshold=settings.story_threshold, window=window)
        for n in range(size):
            source = pool[n % len(pool)]
            story = Story(id=f"fill-{n}", title="", first_seen=source.seen, last_seen=source.seen)
            story.add(
                ArticleFeatures(
                    id=f"fill-{n}", title="", vector=source.vector, time=None, seen=source.seen
                )
            )
            index.put(story)
        candidates = sum(len(index.candidates(f)) for f in features) / len(features)
        gc.collect()
        started = time.process_time()
        for f in features:
            index.assign(f)
        per_article = (time.process_time() - started) / len(features) * 1e6
        base = base or per_article
        print(f"{size:>8} {per_article:>11.0f} {candidates:>11.0f} {per_article / base:>6.2f}")


def _plain_features(doc: dict) -> ArticleFeatures:
    """Features of a corpus article without the NLP pass (words only): filler stories."""
    from schemas import EnrichedArticle

    article = EnrichedArticle(
        id=doc["id"],
        title=doc.get("title") or "",
        body=doc["body"],
        language="en",
        ingested_at=doc.get("published_at") or "1987-03-01T00:00:00Z",
    )
    return ArticleFeatures.of(article)


if __name__ == "__main__":
    main()
