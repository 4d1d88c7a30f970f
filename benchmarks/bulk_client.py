"""What one small bulk request costs the calling process: ``elasticsearch.helpers.bulk`` against
``pipeline.infra.es.bulk`` (``es.bulk`` with the actions serialised once), alternating rounds.

    NEWS_ES_URL=http://127.0.0.1:9200 python -m benchmarks.bulk_client [--requests 600] [--docs 4]

Each request indexes ``--docs`` documents of a Reuters-sized article (120 words) into a
throw-away index (deleted at the end). Prints the client's CPU time (``time.process_time``,
steadier on a shared machine than the wall clock) and the wall clock per request. At 20
articles/s a worker sends bulks of 1 to 10 documents, so this per-request cost is what a bulk
adds to the worker, whatever it writes. Figures only.
"""

from __future__ import annotations

import argparse
import time
import uuid

from elasticsearch import helpers

from pipeline.infra.es import bulk, make_client

DOC = {
    "title": "Oil prices rise after the meeting",
    "body": " ".join(["word"] * 120),
    "published_at": "2026-12-01T00:00:00Z",
    "entity_names": ["OPEC", "Saudi Arabia", "Vienna"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600, help="requests per round")
    parser.add_argument("--docs", type=int, default=4, help="documents per request")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    es = make_client()
    index = f"bulkclient-{uuid.uuid4().hex[:6]}"
    es.indices.create(index=index, settings={"number_of_replicas": 0, "refresh_interval": "30s"})

    def actions(i: int) -> list[dict]:
        return [
            {"_op_type": "index", "_index": index, "_id": f"{i}-{j}", "_source": DOC}
            for j in range(args.docs)
        ]

    ways = {
        "helpers.bulk": lambda a: helpers.bulk(
            es, a, raise_on_error=False, raise_on_exception=False
        ),
        "pipeline bulk": lambda a: bulk(es, a),
    }

    def timed(send, n: int) -> tuple[float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(n):
            send(actions(i))
        return (
            (time.process_time() - cpu) * 1000 / n,
            (time.perf_counter() - wall) * 1000 / n,
        )

    try:
        for send in ways.values():  # connections open, code paths warm
            timed(send, 50)
        print(f"bulk requests of {args.docs} documents, {args.requests} per round:")
        for round_ in range(args.rounds):
            order = list(ways.items()) if round_ % 2 == 0 else list(ways.items())[::-1]
            for name, send in order:
                cpu, wall = timed(send, args.requests)
                print(f"  round {round_ + 1}, {name:14s} CPU {cpu:.2f} ms, wall {wall:.2f} ms")
    finally:
        es.indices.delete(index=index)


if __name__ == "__main__":
    main()
