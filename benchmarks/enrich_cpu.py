"""CPU of the worker's main-process stages after the parse: ``extract_entities`` and
``tag_events`` over already parsed Reuters articles (in-memory entity registry, no servers).

    python -m benchmarks.enrich_cpu [CORPUS] [--limit 600] [--rounds 3] [--baseline DIR]

Parses ``--limit`` cleaned corpus bodies once with ``NEWS_SPACY_MODEL``, then times the two
stages, ms per article (best of ``--rounds``). With ``--baseline DIR`` (an export of another
revision of this repository, e.g. ``git archive <commit> | tar -x -C DIR``) the same docs also go
through that revision's ``pipeline/stages/entities.py`` and ``events.py``, alternating rounds,
and it prints both, the ratio, and whether the two give identical entities and events.
A figure, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import DEFAULT_CORPUS
from pipeline.settings import get_settings
from pipeline.sources.ingest import Rejected, iter_inputs
from pipeline.stages import entities as current_entities
from pipeline.stages import events as current_events
from pipeline.stages.clean import CleanError, clean
from pipeline.stages.nlp import load_nlp

BATCH = 64


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _run(entities: ModuleType, events: ModuleType, articles, docs, user_data) -> tuple[Any, ...]:
    for doc, data in zip(docs, user_data):
        doc.user_data.clear()
        doc.user_data.update(data)
    registry = entities.InMemoryEntityRegistry()
    found: list[Any] = []
    t0 = time.perf_counter()
    for i in range(0, len(docs), BATCH):
        found += entities.extract_entities(articles[i : i + BATCH], docs[i : i + BATCH], registry)
    t1 = time.perf_counter()
    tags = [events.tag_events(doc, ents, a.title) for doc, ents, a in zip(docs, found, articles)]
    t2 = time.perf_counter()
    output = [
        ([e.model_dump_json() for e in ents], [t.model_dump_json() for t in ts])
        for ents, ts in zip(found, tags)
    ]
    return t1 - t0, t2 - t1, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", default=str(DEFAULT_CORPUS))
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another revision's checkout/export")
    args = parser.parse_args()

    model = get_settings().spacy_model
    nlp = load_nlp(model)
    articles = []
    for item in iter_inputs([Path(args.corpus)]):
        if isinstance(item, Rejected):
            continue
        try:
            article = clean(item)
        except CleanError:
            continue
        if article.language == "en" and article.body.strip():
            articles.append(article)
        if len(articles) >= args.limit:
            break
    started = time.perf_counter()
    docs = current_entities.parse(nlp, [a.body for a in articles], BATCH)
    parse_s = time.perf_counter() - started
    user_data = [dict(doc.user_data) for doc in docs]
    n = len(docs)
    print(f"model {model}: {n} articles, parse {parse_s / n * 1000:.1f} ms/article")

    variants = {"this revision": (current_entities, current_events)}
    if args.baseline:
        stages = args.baseline / "pipeline" / "stages"
        variants["baseline"] = (
            _load(stages / "entities.py", "_baseline_entities"),
            _load(stages / "events.py", "_baseline_events"),
        )
    best: dict[str, list[float]] = {name: [float("inf")] * 2 for name in variants}
    outputs: dict[str, Any] = {}
    for _ in range(args.rounds):
        for name, (ents, evs) in reversed(list(variants.items())):
            ent_s, ev_s, outputs[name] = _run(ents, evs, articles, docs, user_data)
            best[name] = [min(best[name][0], ent_s), min(best[name][1], ev_s)]
    for name, (ent_s, ev_s) in best.items():
        print(
            f"  {name:14s} extract_entities {ent_s / n * 1000:6.2f} ms/article"
            f"   tag_events {ev_s / n * 1000:6.2f} ms/article"
        )
    if args.baseline:
        (new_ent, new_ev), (old_ent, old_ev) = best["this revision"], best["baseline"]
        print(
            f"  baseline / this revision: extract_entities {old_ent / new_ent:.2f}x,"
            f" tag_events {old_ev / new_ev:.2f}x"
        )
        same = outputs["this revision"] == outputs["baseline"]
        print(f"  identical entities and events: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
