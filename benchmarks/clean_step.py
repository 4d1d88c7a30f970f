"""The clean step per article (as before issue #8) and per batch, on the same Reuters articles
in the same run; language detection as a loop and with lingua's parallel mode.

    python -m benchmarks.clean_step [CORPUS] [--limit 500] [--batch 64] [--rounds 3] [--es] [--ner]

Prints articles/s (the median of ``--rounds`` alternating rounds, so that both variants see
the same load) of:

- *clean, per article (before)*: ``clean()`` article by article, one ``detect_language`` each,
  the boilerplate line regex as the patterns joined one alternative each;
- *clean, per batch (now)*: ``clean_many()`` per batch (one ``detect_languages`` call);
- *clean, per batch, lingua parallel*: the same with ``detect_languages_in_parallel_of``;
- *clean+dedupe step (now)*: ``Pipeline.clean_and_dedupe`` per batch, in-memory dedupe state;
  with ``--es`` over a throw-away fingerprints index on NEWS_ES_URL, counting the
  Elasticsearch requests per batch (they must not grow with the batch).

Then where the step's time goes, in ms per article (median of the rounds): language detection
with lingua on every text (before) and now (obviously English text skips lingua), with the
share of texts that disagree (must be 0); MinHash with datasketch (before) and now (with the
share of signatures that differ: must be 0). With ``--es`` also each store call of the dedupe
(wall and the calling thread's CPU) and what the throw-away index cost Elasticsearch
(indexing, get and search time from the index stats, which other users of the node do not
touch).

Then the GIL probe: how much a plain Python thread gets done while the language detection of
the articles runs as a loop and in lingua's parallel mode; with ``--ner`` also a thread running
``nlp.pipe`` (as the enrich agent's thread beside the clean agent's in a worker). A figure, not a
test.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import DEFAULT_CORPUS
from pipeline.settings import get_settings
from pipeline.sources.ingest import Rejected, iter_inputs
from pipeline.stages import clean as clean_module
from pipeline.stages import language
from pipeline.stages.clean import clean, clean_many
from pipeline.stages.dedupe import Deduper
from pipeline.stages.dedupe_store import ElasticsearchFingerprintStore, InMemoryFingerprintStore
from pipeline.stream.process import InMessage, Pipeline
from schemas.models import RawArticle

TEMPLATE = REPO / "deploy" / "elasticsearch" / "fingerprints.json"


@contextmanager
def joined_line_regex():
    """The boilerplate line regex as it was: every pattern one alternative, tried everywhere."""
    patterns = [p for ps in clean_module._RULES["line_patterns"].values() for p in ps]
    joined = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
    faster, clean_module._LINE_PATTERN = clean_module._LINE_PATTERN, joined
    try:
        yield
    finally:
        clean_module._LINE_PATTERN = faster


@contextmanager
def lingua_parallel():
    def detect_parallel(texts: Sequence[str]) -> list[str]:
        samples = [t[: language.MAX_CHARS] for t in texts]
        todo = [i for i, s in enumerate(samples) if language._enough_letters(s)]
        found = language.get_detector().detect_languages_in_parallel_of([samples[i] for i in todo])
        codes = [language.UNDETERMINED] * len(samples)
        for i, lang in zip(todo, found, strict=True):
            codes[i] = language._iso_639_1(lang) if lang is not None else language.UNDETERMINED
        return codes

    loop, clean_module.detect_languages = clean_module.detect_languages, detect_parallel
    try:
        yield
    finally:
        clean_module.detect_languages = loop


def per_article(raws: list[RawArticle], batch: int) -> None:
    with joined_line_regex():
        for raw in raws:
            try:
                clean(raw)
            except Exception:
                pass


def per_batch(raws: list[RawArticle], batch: int) -> None:
    for i in range(0, len(raws), batch):
        clean_many(raws[i : i + batch])


def per_batch_parallel(raws: list[RawArticle], batch: int) -> None:
    with lingua_parallel():
        per_batch(raws, batch)


def rate(fn: Callable[[], Any], n: int) -> float:
    started = time.perf_counter()
    fn()
    return n / (time.perf_counter() - started)


def gil_probe(texts: list[str], ner_bodies: list[str] | None = None) -> None:
    """Work/s of a second thread (a counting loop, or ``nlp.pipe`` with ``--ner``): alone,
    beside the language detection as a loop, beside lingua's parallel mode."""
    detector = language.get_detector()
    samples = [t[: language.MAX_CHARS] for t in texts]
    if ner_bodies:
        from pipeline.stages.nlp import load_nlp

        nlp = load_nlp(get_settings().spacy_model)
        list(nlp.pipe(ner_bodies[:2]))

    def beside(work: Callable[[], Any] | None, seconds: float = 2.0) -> tuple[float, float]:
        stop, count = threading.Event(), [0]

        def spin() -> None:
            while not stop.is_set():
                if ner_bodies:
                    for _ in nlp.pipe(ner_bodies, batch_size=4):
                        count[0] += 1
                        if stop.is_set():
                            break
                else:
                    count[0] += 1

        thread = threading.Thread(target=spin)
        thread.start()
        time.sleep(0.5)  # the other thread is under way
        started, before = time.perf_counter(), count[0]
        if work is None:
            time.sleep(seconds)
        else:
            work()
        elapsed = time.perf_counter() - started
        done = count[0] - before
        stop.set()
        thread.join()
        return done / elapsed, elapsed

    def loop() -> None:
        for _ in range(3):
            [detector.detect_language_of(s) for s in samples]

    def parallel() -> None:
        for _ in range(3):
            detector.detect_languages_in_parallel_of(samples)

    unit, scale = ("articles/s", 1.0) if ner_bodies else ("M iterations/s", 1e-6)
    what = "nlp.pipe" if ner_bodies else "a counting loop"
    alone, _ = beside(None)
    in_loop, t_loop = beside(loop)
    in_par, t_par = beside(parallel)
    n = 3 * len(samples)
    print(f"GIL probe: a thread running {what}, beside the language detection of {n} texts:")
    print(f"  alone                                   {alone * scale:7.2f} {unit}")
    print(
        f"  beside detect_language_of loop          {in_loop * scale:7.2f} {unit}"
        f"  (detection {n / t_loop:5.0f} texts/s)"
    )
    print(
        f"  beside detect_languages_in_parallel_of  {in_par * scale:7.2f} {unit}"
        f"  (detection {n / t_par:5.0f} texts/s)"
    )


def time_parts(texts: list[str], bodies: list[str], rounds: int) -> None:
    """ms per article of language detection and MinHash, before and now, same texts."""
    from datasketch import MinHash

    from pipeline.stages import dedupe

    detector = language.get_detector()

    def lingua_always() -> list[str]:
        codes = []
        for text in texts:
            sample = text[: language.MAX_CHARS]
            found = (
                detector.detect_language_of(sample) if language._enough_letters(sample) else None
            )
            codes.append(language._iso_639_1(found) if found is not None else language.UNDETERMINED)
        return codes

    normalised = [dedupe.normalise(b) for b in bodies]
    normalised = [n for n in normalised if len(n.split()) >= dedupe.MIN_NEAR_WORDS]

    def datasketch_minhash() -> list[bytes]:
        out = []
        for text in normalised:
            sketch = MinHash(
                num_perm=dedupe.NUM_PERM,
                seed=dedupe.MINHASH_SEED,
                scheme=dedupe.MINHASH_SCHEME,
                permutations=dedupe._permutations(),
            )
            sketch.update_batch(dedupe.shingles(text))
            out.append(sketch.hashvalues.astype("<u4").tobytes())
        return out

    def minhash_now() -> list[bytes]:
        return [
            v.tobytes()
            for i in range(0, len(normalised), 64)
            for v in dedupe.minhashes(normalised[i : i + 64])
        ]

    parts: dict[str, tuple[Callable[[], list[Any]], int]] = {
        "language, lingua on every text (before)": (lingua_always, len(texts)),
        "language, now": (lambda: language.detect_languages(texts), len(texts)),
        "MinHash, datasketch (before)": (datasketch_minhash, len(normalised)),
        "MinHash, now (batches of 64)": (minhash_now, len(normalised)),
    }
    times: dict[str, list[float]] = {name: [] for name in parts}
    answers: dict[str, list[Any]] = {}
    for _ in range(rounds):
        for name, (fn, _n) in parts.items():
            started = time.perf_counter()
            answers[name] = fn()
            times[name].append(time.perf_counter() - started)
    shortcut = sum(
        1
        for t in texts
        if language._enough_letters(t[: language.MAX_CHARS])
        and language._obviously_english(t[: language.MAX_CHARS])
    )
    print(f"Where the time goes (ms per article, median of {rounds} rounds, same texts):")
    for name, (_fn, n) in parts.items():
        print(f"  {name:40s} {1e3 * statistics.median(times[name]) / n:7.3f} ms")
    lang_before, lang_now = (
        answers["language, lingua on every text (before)"],
        answers["language, now"],
    )
    differ = sum(a != b for a, b in zip(lang_before, lang_now, strict=True))
    print(
        f"  language: {differ} of {len(texts)} texts detected differently; "
        f"{shortcut} ({shortcut / max(1, len(texts)):.0%}) obviously English (no lingua)"
    )
    mh_differ = sum(
        a != b
        for a, b in zip(
            answers["MinHash, datasketch (before)"],
            answers["MinHash, now (batches of 64)"],
            strict=True,
        )
    )
    print(f"  MinHash: {mh_differ} of {len(normalised)} signatures differ")


def es_step(messages: list[InMessage], batch: int) -> None:
    from pipeline.infra.es import make_client

    settings = get_settings()
    es = make_client(settings)
    index = f"bench-fingerprints-{uuid.uuid4().hex[:12]}"
    body = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    es.indices.create(index=index, settings=body["settings"], mappings=body["mappings"])
    requests: list[str] = []
    send = es.perform_request

    def counting(method: str, path: str, **kwargs: Any) -> Any:
        requests.append(f"{method} {path.rsplit('/', 1)[-1]}")
        return send(method, path, **kwargs)

    es.perform_request = counting
    store = ElasticsearchFingerprintStore(es, index)
    calls: dict[str, list[float]] = {}
    for name in ("candidates_many", "claim", "claim_bands", "signatures", "reassign"):
        method = getattr(store, name)

        def timed(*args: Any, _method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return _method(*args, **kwargs)
            finally:
                spent = calls.setdefault(_name, [0.0, 0.0])
                spent[0] += time.perf_counter() - wall
                spent[1] += time.thread_time() - cpu

        setattr(store, name, timed)

    def server() -> tuple[int, int, int]:
        stats = es.indices.stats(index=index)["indices"][index]["primaries"]
        search = stats["search"]
        return (
            stats["indexing"]["index_time_in_millis"],
            stats["get"]["time_in_millis"],
            search["query_time_in_millis"] + search["fetch_time_in_millis"],
        )

    try:
        pipeline = Pipeline(settings, deduper=Deduper(store))
        per_batch_counts = []
        server_before = server()
        started = time.perf_counter()
        for i in range(0, len(messages), batch):
            before = len(requests)
            pipeline.clean_and_dedupe(messages[i : i + batch])
            per_batch_counts.append(len(requests) - before)
        elapsed = time.perf_counter() - started
        n = len(messages)
        for name, (wall, cpu) in calls.items():
            print(
                f"  store.{name:16s} {1e3 * wall / n:6.2f} ms/article wall, "
                f"{1e3 * cpu / n:6.2f} ms/article CPU of the calling thread"
            )
        spent = [b - a for a, b in zip(server_before, server(), strict=True)]
        print(
            "  Elasticsearch, this index: indexing {:.2f}, get {:.2f}, search {:.2f} "
            "ms/article".format(*(x / n for x in spent))
        )
        kinds = sorted(set(requests) - {"GET _stats"})
        print(
            f"  clean+dedupe step, Elasticsearch store {len(messages) / elapsed:8.1f} articles/s; "
            f"ES requests per batch of {batch}: {min(per_batch_counts)}-{max(per_batch_counts)} "
            f"({', '.join(kinds)})"
        )
    finally:
        es.perform_request = send
        es.indices.delete(index=index, ignore_unavailable=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", default=str(DEFAULT_CORPUS))
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--es", action="store_true", help="also the step over Elasticsearch")
    parser.add_argument(
        "--ner", action="store_true", help="GIL probe with nlp.pipe (NEWS_SPACY_MODEL)"
    )
    args = parser.parse_args()

    raws: list[RawArticle] = []
    for item in iter_inputs([Path(args.corpus)]):
        if not isinstance(item, Rejected):
            raws.append(item)
        if len(raws) >= args.limit:
            break
    messages = [InMessage(value=r.model_dump_json().encode(), key=r.id.encode()) for r in raws]
    language.get_detector()  # built outside the timed runs
    n = len(raws)

    def step() -> None:
        pipeline = Pipeline(get_settings(), deduper=Deduper(InMemoryFingerprintStore()))
        for i in range(0, n, args.batch):
            pipeline.clean_and_dedupe(messages[i : i + args.batch])

    variants: dict[str, Callable[[], Any]] = {
        "clean, per article (before)": lambda: per_article(raws, args.batch),
        "clean, per batch (now)": lambda: per_batch(raws, args.batch),
        "clean, per batch, lingua parallel": lambda: per_batch_parallel(raws, args.batch),
        "clean+dedupe step (now)": step,
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            rates[name].append(rate(fn, n))
    print(f"{n} Reuters articles, batches of {args.batch}, median of {args.rounds} rounds:")
    for name, values in rates.items():
        print(
            f"  {name:34s} {statistics.median(values):8.1f} articles/s"
            f"  (rounds: {', '.join(f'{v:.0f}' for v in values)})"
        )
    for name in ("clean, per batch (now)", "clean, per batch, lingua parallel"):
        ratios = [a / b for a, b in zip(rates[name], rates["clean, per article (before)"])]
        print(f"  {name} / per article (before): {statistics.median(ratios):.2f} (median ratio)")
    cleaned = [a for a in clean_many(raws) if not isinstance(a, Exception)]
    time_parts([f"{a.title}\n{a.body}" for a in cleaned], [a.body for a in cleaned], args.rounds)
    if args.es:
        es_step(messages, args.batch)
    gil_probe([f"{a.title}\n{a.body}" for a in cleaned])
    if args.ner:
        gil_probe([f"{a.title}\n{a.body}" for a in cleaned], [a.body for a in cleaned[:40]])


if __name__ == "__main__":
    main()
