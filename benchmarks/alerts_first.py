"""How well the enrich agent's prefilter tells, before the NER, which articles an entity or event
subscription will match after it (pipeline.alerts.prefilter; ``NEWS_ALERTS_FIRST``).

    python -m benchmarks.alerts_first [CORPUS] [--limit N] [--entities K] [--show-misses N]

Runs the pipeline's own clean and enrich steps over ``N`` corpus articles in this process (no
servers), then subscribes to the ``K`` entities most articles mention (by the names the
pipeline gave them), to the benchmark's ``entity:"United States"`` and to every event type. For
each subscription it prints the articles it matched after the NER, the share the prefilter
passes from their words alone, and its **recall** (matched articles it passed: one it missed is
not taken first under backlog, so its alert may be up to ``NEWS_ALERTS_FIRST_MAX_DEFER_S``
late, never lost) and **precision** (passed articles that matched: the rest are taken first for
nothing). The last line is all of them subscribed at once. A figure, not a test.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import DEFAULT_CORPUS
from pipeline.alerts.matcher import ArticleView, compile_query
from pipeline.alerts.prefilter import build_prefilter
from pipeline.settings import get_settings
from pipeline.sources.ingest import Rejected, iter_inputs
from pipeline.stages.dedupe import Deduper
from pipeline.stages.dedupe_store import InMemoryFingerprintStore
from pipeline.stages.entities import InMemoryEntityRegistry
from pipeline.stages.events import taxonomy
from pipeline.stages.stories import StoryAssigner
from pipeline.stream.process import InMessage, Pipeline


def enriched_articles(corpus: Path, limit: int, batch: int = 32):
    """(clean, enriched) article pairs of the corpus' first ``limit`` articles."""
    pipeline = Pipeline(
        get_settings(),
        deduper=Deduper(InMemoryFingerprintStore()),
        registry=InMemoryEntityRegistry(),
        stories=StoryAssigner(),
    )
    messages = []
    for item in iter_inputs([corpus]):
        if not isinstance(item, Rejected):
            messages.append(InMessage(value=item.model_dump_json().encode(), key=item.id.encode()))
        if len(messages) >= limit:
            break
    pairs = []
    for i in range(0, len(messages), batch):
        cleaned = pipeline.clean_and_dedupe(messages[i : i + batch]).passed
        enriched = pipeline.enrich([InMessage(value=a.model_dump_json().encode()) for a in cleaned])
        by_id = {a.id: a for a in enriched.passed}
        pairs += [(a, by_id[a.id]) for a in cleaned if a.id in by_id]
    return pipeline, pairs


def scores(query: str, pipeline: Pipeline, pairs) -> tuple[int, int, int, list[str]]:
    """(matched, passed, both, ids of matched articles not passed) for one query."""
    compiled = compile_query(query, pipeline.resolve_entity)
    prefilter = build_prefilter([compiled.anchors])
    matched = passed = both = 0
    missed = []
    for clean, enriched in pairs:
        hit = compiled.matches(ArticleView.from_article(enriched))
        could = prefilter is None or prefilter.could_match(clean.title, clean.body)
        matched += hit
        passed += could
        both += hit and could
        if hit and not could:
            missed.append(clean.id)
    return matched, passed, both, missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", default=str(DEFAULT_CORPUS))
    parser.add_argument("--limit", type=int, default=1500)
    parser.add_argument("--entities", type=int, default=20)
    parser.add_argument("--show-misses", type=int, default=0)
    args = parser.parse_args(argv)

    pipeline, pairs = enriched_articles(Path(args.corpus), args.limit)
    names = Counter()
    for _, enriched in pairs:
        names.update({e.name for e in enriched.entities})
    queries = ['entity:"United States"']
    queries += [f'entity:"{name}"' for name, _ in names.most_common(args.entities)]
    queries += [f"event:{name}" for name in taxonomy().types]
    queries = list(dict.fromkeys(queries))
    print(f"{len(pairs)} articles, model {get_settings().spacy_model}")
    print(f"{'subscription':44s} {'matched':>7s} {'passed':>7s} {'recall':>7s} {'precision':>9s}")
    totals = Counter()
    for query in queries:
        matched, passed, both, missed = scores(query, pipeline, pairs)
        totals.update(matched=matched, both=both)
        recall = both / matched if matched else float("nan")
        precision = both / passed if passed else float("nan")
        print(
            f"{query[:44]:44s} {matched:7d} {passed / len(pairs):7.0%} {recall:7.1%} "
            f"{precision:9.1%}"
        )
        by_id = {clean.id: (clean, enriched) for clean, enriched in pairs}
        for article_id in missed[: args.show_misses]:
            clean, enriched = by_id[article_id]
            print(f"    missed {article_id}: {clean.title[:60]!r}")
    together = build_prefilter(compile_query(q, pipeline.resolve_entity).anchors for q in queries)
    passed = sum(together is None or together.could_match(c.title, c.body) for c, _ in pairs)
    print(
        f"all {len(queries)} at once: the prefilter passes {passed / len(pairs):.0%} of the "
        f"articles; recall over every subscription's matches "
        f"{totals['both'] / max(totals['matched'], 1):.1%}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
