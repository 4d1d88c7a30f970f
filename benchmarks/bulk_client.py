"""What one small bulk request costs the calling process: ``elasticsearch.helpers.bulk`` against
``pipeline.infra.es.bulk`` (``es.bulk`` with the actions serialised once), and the client's
serializers (``pipeline.infra.es.serializers``, orjson) against the standard library's ``json``
(the client's default), alternating rounds.

    NEWS_ES_URL=http://127.0.0.1:9200 python -m benchmarks.bulk_client [--requests 600] [--docs 4]

Each request indexes ``--docs`` documents shaped like the index stage's article document (a
Reuters body of about 120 words, its search fields, six entities with their mentions) into a
throw-away index (deleted at the end). Prints the client's CPU time (``time.process_time``,
steadier on a shared machine than the wall clock) and the wall clock per request, and the
ratio of the standard library's CPU to orjson's in the same round. At 20 articles/s a worker
sends bulks of 1 to 10 documents, so this per-request cost is what a bulk adds to the worker,
whatever it writes. Figures only.
"""

from __future__ import annotations

import argparse
import time
import uuid

from elasticsearch import helpers
from elasticsearch.serializer import JsonSerializer

from pipeline.infra.es import bulk, make_client
from pipeline.query.analysis import search_fields

TITLE = "OPEC ministers agree to extend output curbs in Vienna"
BODY = (
    "OPEC oil ministers meeting in Vienna agreed on Monday to extend their output curbs until "
    "the end of the year, Saudi Arabian Oil Minister Hisham Nazer told reporters after the "
    "session. The organisation's 13 members will hold total output at 15.8 mln barrels per "
    "day, he said, adding that Kuwait and the United Arab Emirates had accepted their quotas. "
    "Traders in London said the decision had been expected and prices moved little, with "
    "Brent crude for June trading at 18.40 dlrs a barrel. Nazer said the ministers would "
    "meet again in June to review the market, and that OPEC would keep watching stocks held "
    "by consumers in the United States and Japan closely before any new decision."
)
ENTITIES = [
    {
        "id": f"{kind}:{name.lower().replace(' ', '-')}",
        "name": name,
        "type": kind,
        "mentions": 2,
        "forms": [name],
        "offsets": [{"start": BODY.find(name), "end": BODY.find(name) + len(name)}] * 2,
    }
    for kind, name in [
        ("organization", "OPEC"),
        ("location", "Vienna"),
        ("person", "Hisham Nazer"),
        ("location", "Kuwait"),
        ("location", "London"),
        ("location", "Japan"),
    ]
]
DOC = {
    "id": "article-0123456789abcdef",
    "title": TITLE,
    "body": BODY,
    "source": "reuters",
    "language": "en",
    "published_at": "2026-12-01T00:00:00Z",
    "ingested_at": "2026-12-01T00:00:01.123456Z",
    "entities": ENTITIES,
    "events": [{"type": "meeting", "evidence": [BODY[:120]], "place": "Vienna", "salience": 1.0}],
    "entity_ids": sorted(e["id"] for e in ENTITIES),
    "entity_names": sorted(e["name"] for e in ENTITIES),
    "event_types": ["meeting"],
    **search_fields(TITLE, BODY),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600, help="requests per round")
    parser.add_argument("--docs", type=int, default=4, help="documents per request")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    es = make_client()
    stdlib = make_client(serializer=JsonSerializer())  # the client's default serializers
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
        "stdlib json": lambda a: bulk(stdlib, a),
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
        print("  (pipeline bulk: the pipeline's client, orjson; stdlib json: the same calls with")
        print("   the client's default serializers)")
        for round_ in range(args.rounds):
            order = list(ways.items()) if round_ % 2 == 0 else list(ways.items())[::-1]
            cpus = {}
            for name, send in order:
                cpu, wall = timed(send, args.requests)
                cpus[name] = cpu
                print(f"  round {round_ + 1}, {name:14s} CPU {cpu:.2f} ms, wall {wall:.2f} ms")
            print(
                f"  round {round_ + 1}: client CPU, stdlib json / orjson: "
                f"{cpus['stdlib json'] / cpus['pipeline bulk']:.2f}x"
            )
    finally:
        stdlib.close()
        es.indices.delete(index=index)


if __name__ == "__main__":
    main()
