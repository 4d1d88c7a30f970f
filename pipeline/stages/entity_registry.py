"""The entity registry in Elasticsearch (``<prefix>-entities``): the worker's cross-article
memory of canonical entities, shared by every worker and surviving restarts.

Each entry is one document whose ``_id`` is its lookup key: ``lookup`` is a real-time ``mget``
(no refresh needed), ``register`` a bulk ``create`` (first writer wins; a 409 means another
article registered the key first, which is the intended outcome).
"""

from __future__ import annotations

from elasticsearch import Elasticsearch

from pipeline.es import bulk
from pipeline.stages.entities import RegistryEntry
from schemas.models import utcnow


class ElasticsearchEntityRegistry:
    def __init__(self, es: Elasticsearch, index: str):
        self.es = es
        self.index = index

    def lookup(self, keys: list[str]) -> dict[str, RegistryEntry]:
        if not keys:
            return {}
        found = self.es.mget(index=self.index, ids=sorted(set(keys)))
        return {
            d["_id"]: RegistryEntry(
                key=d["_id"], id=d["_source"]["id"], name=d["_source"]["name"], type=d["_source"]["type"]
            )
            for d in found["docs"]
            if d.get("found")
        }

    def register(self, entries: list[RegistryEntry]) -> None:
        now = utcnow().isoformat()
        actions = (
            {
                "_op_type": "create",
                "_index": self.index,
                "_id": e.key,
                "_source": {"key": e.key, "id": e.id, "name": e.name, "type": e.type, "first_seen": now},
            }
            for e in entries
        )
        failures = [f for f in bulk(self.es, actions) if f.get("create", {}).get("status") != 409]
        if failures:
            raise RuntimeError(f"entity registry rejected {len(failures)} entr(ies): {failures[:3]}")
