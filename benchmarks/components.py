"""What each component of the stage pipeline costs, and the lookup lemmas against rule lemmas.

    python -m benchmarks.components [--model en_core_web_sm] [--articles 300] [--rounds 2]

Over cleaned Reuters bodies (``NEWS_CORPUS``), in one process and one run, alternating:

- ``rule lemmas``: the model without the components no stage reads (the parser ...), its
  sentence recogniser and the place typer, but with its own lemmatizer and what feeds it (for
  en_core_web_sm: tok2vec, tagger, attribute_ruler, a rule lemmatizer) -- the stage pipeline
  before the lookup lemmas;
- ``stage pipeline``: :func:`pipeline.stages.nlp.load_nlp` (a rule lemmatizer replaced by the
  shipped lookup table, and the components that only fed it dropped).

After an untimed pass of each, prints ``nlp.pipe`` articles/s of both (1 process, batch 64) per
round, in alternating order, with the CPU milliseconds per article, the speed-ups and their
medians; the CPU time per component of each;
and what differs in what the stages read: sentence boundaries, entity spans, event tags. A
figure, not a test: nothing here asserts speed. With en_news_ner_conll both pipelines are the
same, so its ratio shows the noise of the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import DEFAULT_CORPUS
from benchmarks.scaling import distinct_articles
from pipeline.settings import get_settings
from pipeline.stages.clean import clean
from pipeline.stages.events import tag_events
from pipeline.stages.nlp import (
    UNUSED_PIPES,
    _add_lemma_fallback,
    _add_place_ruler,
    _ensure_sentences,
    load_nlp,
    loadable_name,
)


def rule_lemma_pipeline(model: str):
    """The stage pipeline as it was before the lookup lemmas (``prepare`` without
    ``_lookup_lemmas``: the model's own lemmatizer and what feeds it)."""
    import spacy

    nlp = spacy.load(loadable_name(model), exclude=sorted(UNUSED_PIPES))
    _ensure_sentences(nlp)
    _add_place_ruler(nlp)
    _add_lemma_fallback(nlp)
    return nlp


def pipe_rate(nlp, texts: list[str]) -> tuple[float, float]:
    """Articles/s (wall clock) and CPU milliseconds per article of this process (steadier on a
    shared machine: other jobs' load lowers the first, hardly the second)."""
    started, cpu = time.perf_counter(), time.process_time()
    for _ in nlp.pipe(texts, batch_size=64):
        pass
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return len(texts) / wall, 1000 * cpu / len(texts)


def component_times(nlp, texts: list[str], batch: int = 64) -> str:
    """CPU seconds per component, each run over the batches the one before it made."""
    spent: Counter[str] = Counter()
    for i in range(0, len(texts), batch):
        docs = [nlp.make_doc(t) for t in texts[i : i + batch]]
        for name, component in nlp.pipeline:
            started = time.process_time()
            if hasattr(component, "pipe"):
                docs = list(component.pipe(docs, batch_size=batch))
            else:
                docs = [component(d) for d in docs]
            spent[name] += time.process_time() - started
    total = sum(spent.values())
    parts = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in spent.items())
    return f"{parts} (total {total:.1f} s CPU)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="NEWS_SPACY_MODEL by default")
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    model = args.model or get_settings().spacy_model

    articles = distinct_articles(args.articles, Path(args.corpus), "components")
    texts = [clean(a).body for a in articles]
    words = sum(len(t.split()) for t in texts) / len(texts)
    before, after = rule_lemma_pipeline(model), load_nlp(model)
    print(f"model {model}: {len(texts)} distinct bodies of {words:.0f} words on average")
    print(f"  rule lemmas:    {' '.join(before.pipe_names)}")
    print(f"  stage pipeline: {' '.join(after.pipe_names)}")
    # an untimed pass each first (it fills the vocabularies); then rounds in alternating order
    docs_before, docs_after = list(before.pipe(texts)), list(after.pipe(texts))
    ratios, cpu_ratios = [], []
    for n in range(args.rounds):
        if n % 2:
            rate_after, cpu_after = pipe_rate(after, texts)
            rate_before, cpu_before = pipe_rate(before, texts)
        else:
            rate_before, cpu_before = pipe_rate(before, texts)
            rate_after, cpu_after = pipe_rate(after, texts)
        ratios.append(rate_after / rate_before)
        cpu_ratios.append(cpu_before / cpu_after)
        print(
            f"nlp.pipe round {n + 1}: rule lemmas {rate_before:.1f} articles/s "
            f"({cpu_before:.1f} ms CPU each), stage pipeline {rate_after:.1f} articles/s "
            f"({cpu_after:.1f} ms CPU each): {ratios[-1]:.2f}x by wall clock, "
            f"{cpu_ratios[-1]:.2f}x by CPU",
            flush=True,
        )
    print(
        f"median speed-up of the stage pipeline over rule lemmas: "
        f"{statistics.median(ratios):.2f}x by wall clock, {statistics.median(cpu_ratios):.2f}x by CPU"
    )
    print(f"time per component, rule lemmas: {component_times(before, texts)}")
    print(f"time per component, stage pipeline: {component_times(after, texts)}")

    pairs = list(zip(docs_before, docs_after))
    sents = sum([s.start for s in a.sents] != [s.start for s in b.sents] for a, b in pairs)
    ents = sum(
        [(e.start, e.end, e.label_) for e in a.ents] != [(e.start, e.end, e.label_) for e in b.ents]
        for a, b in pairs
    )
    events = [
        (sorted(t.type for t in tag_events(a)), sorted(t.type for t in tag_events(b)))
        for a, b in pairs
    ]
    changed = [(x, y) for x, y in events if x != y]
    print(
        f"of {len(pairs)} bodies: {sents} with other sentence boundaries, {ents} with other "
        f"entity spans, {len(changed)} with other event tags"
    )
    for x, y in changed:
        print(f"  events {x} -> {y}")


if __name__ == "__main__":
    main()
