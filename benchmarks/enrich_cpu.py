"""CPU of the worker's main-process stages after the parse: ``extract_entities`` and
``tag_events`` over already parsed Reuters articles (in-memory entity registry, no servers).

    python -m benchmarks.enrich_cpu [CORPUS] [--limit 600] [--rounds 3] [--baseline DIR]

Parses ``--limit`` cleaned English corpus bodies once with ``NEWS_SPACY_MODEL`` and hands the
stages the documents through a DocBin, as the worker's parse process does. Then it times the two
stages, CPU ms per article (best of ``--rounds``). With ``--baseline DIR`` (an export of another
revision of this repository, e.g. ``git archive <commit> | tar -x -C DIR``) each round also runs
that revision's code, whole (its ``pipeline`` package, in a child process), on the same
documents, alternating with this revision; it prints both, the ratios, and whether the two
revisions give identical entities and events. A figure, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ROOT = Path(os.environ.get("ENRICH_CPU_ROOT") or REPO)
sys.path.insert(0, str(ROOT))

BATCH = 64


def _load_docs(prefix: Path) -> tuple[list[Any], list[Any]]:
    from spacy.tokens import DocBin

    from pipeline.settings import get_settings
    from pipeline.stages.nlp import load_nlp

    nlp = load_nlp(get_settings().spacy_model)
    articles = pickle.loads(prefix.with_suffix(".pkl").read_bytes())
    docs = list(DocBin().from_bytes(prefix.with_suffix(".spacy").read_bytes()).get_docs(nlp.vocab))
    return articles, docs


def _run(articles: list[Any], docs: list[Any]) -> tuple[float, float, list[Any]]:
    """One pass of both stages (this process's ``pipeline``): CPU seconds and the output."""
    from pipeline.stages.entities import InMemoryEntityRegistry, extract_entities
    from pipeline.stages.events import tag_events

    for doc in docs:
        doc.user_data.clear()
    registry = InMemoryEntityRegistry()
    found: list[Any] = []
    t0 = time.process_time()
    for i in range(0, len(docs), BATCH):
        found += extract_entities(articles[i : i + BATCH], docs[i : i + BATCH], registry)
    t1 = time.process_time()
    tags = [tag_events(doc, ents, a.title) for doc, ents, a in zip(docs, found, articles)]
    t2 = time.process_time()
    output = [
        ([e.model_dump(mode="json") for e in ents], [t.model_dump(mode="json") for t in ts])
        for ents, ts in zip(found, tags)
    ]
    return t1 - t0, t2 - t1, output


def _child(prefix: Path) -> None:
    """--child: one round over the saved documents with ROOT's code; results to <prefix>.json."""
    articles, docs = _load_docs(prefix)
    _run(articles, docs)  # warm the memo caches, as in the parent
    ent_s, ev_s, output = _run(articles, docs)
    prefix.with_suffix(".json").write_text(json.dumps([ent_s, ev_s, output]))


def _prepare(corpus: Path, limit: int, prefix: Path) -> str:
    from spacy.tokens import DocBin

    from pipeline.settings import get_settings
    from pipeline.sources.ingest import Rejected, iter_inputs
    from pipeline.stages.clean import CleanError, clean
    from pipeline.stages.entities import parse
    from pipeline.stages.nlp import load_nlp

    model = get_settings().spacy_model
    nlp = load_nlp(model)
    articles = []
    for item in iter_inputs([corpus]):
        if isinstance(item, Rejected):
            continue
        try:
            article = clean(item)
        except CleanError:
            continue
        if article.language == "en" and article.body.strip():
            articles.append(article)
        if len(articles) >= limit:
            break
    started = time.perf_counter()
    docs = parse(nlp, [a.body for a in articles], BATCH)
    took = time.perf_counter() - started
    prefix.with_suffix(".spacy").write_bytes(DocBin(docs=docs, store_user_data=True).to_bytes())
    prefix.with_suffix(".pkl").write_bytes(pickle.dumps(articles))
    return f"model {model}: {len(docs)} articles, parse {took / len(docs) * 1000:.1f} ms/article"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?")
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another revision's checkout or export")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return

    from benchmarks import DEFAULT_CORPUS

    with tempfile.TemporaryDirectory(prefix="enrich_cpu_") as tmp:
        prefix = Path(tmp) / "docs"
        print(_prepare(Path(args.corpus or DEFAULT_CORPUS), args.limit, prefix))
        articles, docs = _load_docs(prefix)
        n = len(docs)
        _run(articles, docs)  # warm the memo caches (gazetteers, name tables)
        best = {"this revision": [float("inf")] * 2, "baseline": [float("inf")] * 2}
        outputs: dict[str, Any] = {}
        for _ in range(args.rounds):
            if args.baseline:
                env = {**os.environ, "ENRICH_CPU_ROOT": str(args.baseline.resolve())}
                env["PYTHONPATH"] = str(args.baseline.resolve())
                subprocess.run(
                    [sys.executable, __file__, "--child", str(prefix)], env=env, check=True
                )
                ent_s, ev_s, outputs["baseline"] = json.loads(
                    prefix.with_suffix(".json").read_text()
                )
                best["baseline"] = [min(best["baseline"][0], ent_s), min(best["baseline"][1], ev_s)]
            ent_s, ev_s, output = _run(articles, docs)
            outputs["this revision"] = json.loads(json.dumps(output))
            mine = best["this revision"]
            best["this revision"] = [min(mine[0], ent_s), min(mine[1], ev_s)]
    for name, (ent_s, ev_s) in best.items():
        if ent_s < float("inf"):
            print(
                f"  {name:14s} extract_entities {ent_s / n * 1000:6.2f} ms/article"
                f"   tag_events {ev_s / n * 1000:6.2f} ms/article  (CPU, best of {args.rounds})"
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
