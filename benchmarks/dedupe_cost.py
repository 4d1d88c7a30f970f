"""What the dedupe step costs the worker and Elasticsearch, for the code on PYTHONPATH: compare
two versions by running it twice, e.g. the branch and a ``git archive`` of its base:

    git archive <base> | tar -x -C /tmp/base && ln -s $PWD/deploy /tmp/base/pipeline/deploy
    PYTHONPATH=/tmp/base python benchmarks/dedupe_cost.py --label before
    PYTHONPATH=$PWD      python benchmarks/dedupe_cost.py --label after

(run as a file, not ``-m``, so that ``pipeline`` is the one on PYTHONPATH). Fills a throw-away
fingerprints index on NEWS_ES_URL with ``--prefill`` clean Reuters articles (untimed, so band
lists and candidates exist as on a running worker), then times ``Deduper.check`` on the next
``--limit`` in batches of 64 and prints, per article: wall and CPU of the calling thread, each
store call, the requests, and the index's server-side indexing/get/search time (index stats:
only this index, whatever else the node does) and its size.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path
from typing import Any

from pipeline.infra.es import make_client
from pipeline.settings import get_settings
from pipeline.sources.ingest import Rejected, iter_inputs
from pipeline.stages.clean import clean_many
from pipeline.stages.dedupe import Deduper
from pipeline.stages.dedupe_store import ElasticsearchFingerprintStore

HERE = Path(__file__).resolve().parents[1]
TEMPLATE = HERE / "deploy" / "elasticsearch" / "fingerprints.json"
CORPUS = Path("/work/shared/corpus/reuters21578.jsonl")
STORE_CALLS = ("candidates_many", "claim", "claim_bands", "known", "signatures", "reassign")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", default=str(CORPUS))
    parser.add_argument("--prefill", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    raws = []
    for item in iter_inputs([Path(args.corpus)]):
        if not isinstance(item, Rejected):
            raws.append(item)
        if len(raws) >= args.prefill + args.limit:
            break
    articles = [a for a in clean_many(raws) if not isinstance(a, Exception)]
    es = make_client(get_settings())
    index = f"bench-fingerprints-{uuid.uuid4().hex[:12]}"
    body = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    es.indices.create(index=index, settings=body["settings"], mappings=body["mappings"])
    try:
        run(es, index, articles, args.prefill, args.label)
    finally:
        es.indices.delete(index=index, ignore_unavailable=True)


def run(es: Any, index: str, articles: list[Any], prefill: int, label: str) -> None:
    store = ElasticsearchFingerprintStore(es, index)
    deduper = Deduper(store)
    for i in range(0, prefill, 64):
        deduper.check(articles[i : min(i + 64, prefill)])
    timed = articles[prefill:]
    calls: dict[str, list[float]] = {}
    for name in STORE_CALLS:
        method = getattr(store, name, None)
        if method is None:
            continue

        def wrapped(*a: Any, _method: Any = method, _name: str = name, **k: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return _method(*a, **k)
            finally:
                spent = calls.setdefault(_name, [0.0, 0.0, 0.0])
                spent[0] += time.perf_counter() - wall
                spent[1] += time.thread_time() - cpu
                spent[2] += 1

        setattr(store, name, wrapped)
    requests: dict[str, int] = {}
    send = es.perform_request

    def counting(method: str, path: str, **kwargs: Any) -> Any:
        key = path.rsplit("/", 1)[-1]
        requests[key] = requests.get(key, 0) + 1
        return send(method, path, **kwargs)

    def server() -> tuple[float, ...]:
        es.indices.refresh(index=index)
        p = es.indices.stats(index=index)["indices"][index]["primaries"]
        search = p["search"]["query_time_in_millis"] + p["search"]["fetch_time_in_millis"]
        return (
            p["indexing"]["index_time_in_millis"],
            p["get"]["time_in_millis"],
            search,
            p["store"]["size_in_bytes"],
            p["docs"]["count"],
        )

    before = server()
    es.perform_request = counting
    wall, cpu = time.perf_counter(), time.thread_time()
    for i in range(0, len(timed), 64):
        deduper.check(timed[i : i + 64])
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    es.perform_request = send
    after = server()
    n = len(timed)
    tag = f"[{label}] " if label else ""
    print(
        f"{tag}{n} articles after {prefill}: Deduper.check {1e3 * wall / n:.2f} ms/article wall, "
        f"{1e3 * cpu / n:.2f} ms/article CPU of the calling thread"
    )
    for name, (w, c, count) in sorted(calls.items()):
        print(
            f"{tag}  store.{name:16s} {1e3 * w / n:6.2f} ms/article wall, "
            f"{1e3 * c / n:5.2f} CPU ({count:.0f} calls)"
        )
    print(f"{tag}  requests: {', '.join(f'{k} {v}' for k, v in sorted(requests.items()))}")
    print(
        f"{tag}  Elasticsearch, this index: indexing {(after[0] - before[0]) / n:.2f}, "
        f"get {(after[1] - before[1]) / n:.2f}, search {(after[2] - before[2]) / n:.2f} "
        f"ms/article; {after[3] / 1e6:.1f} MB for {after[4]} documents"
    )


if __name__ == "__main__":
    main()
