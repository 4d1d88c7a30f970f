"""The entity registry in Elasticsearch (``<prefix>-entities``): the worker's cross-article
memory of canonical entities, shared by every worker and surviving restarts.

Each entry is one document whose ``_id`` is its lookup key: ``lookup`` is a real-time ``mget``
(no refresh needed), ``register`` a bulk ``create`` (first writer wins; a 409 means another
article registered the key first, which is the intended outcome), ``attest`` a bulk scripted
update counting the forms seen for the key; the looked-up name is ``canonical_name`` of them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from elasticsearch import Elasticsearch

from pipeline.infra.es import bulk
from pipeline.stages.entities import RegistryEntry, canonical_name
from schemas.models import utcnow


class ElasticsearchEntityRegistry:
    def __init__(self, es: Elasticsearch, index: str):
        self.es = es
        self.index = index

    def lookup(self, keys: list[str]) -> dict[str, RegistryEntry]:
        if not keys:
            return {}
        found = self.es.mget(index=self.index, ids=sorted(set(keys)))
        return {d["_id"]: _entry(d["_id"], d["_source"]) for d in found["docs"] if d.get("found")}

    def register(self, entries: list[RegistryEntry]) -> None:
        now = utcnow().isoformat()
        actions = (
            {
                "_op_type": "create",
                "_index": self.index,
                "_id": e.key,
                "_source": {
                    "key": e.key,
                    "id": e.id,
                    "name": e.name,
                    "type": e.type,
                    "first_seen": now,
                },
            }
            for e in entries
        )
        failures = [f for f in bulk(self.es, actions) if f.get("create", {}).get("status") != 409]
        if failures:
            raise RuntimeError(
                f"entity registry rejected {len(failures)} entr(ies): {failures[:3]}"
            )

    def attest(self, forms: list[tuple[str, str]], attempts: int = 5) -> dict[str, RegistryEntry]:
        """Count one attestation of each (key, name) in the entry's ``attested`` map (stored, not
        indexed: the mapping is dynamic false). Read-modify-write with optimistic concurrency
        (``if_seq_no``/``if_primary_term``), retried on conflicts, so concurrent workers add up;
        unknown keys are skipped. (No script: nodes without the painless module work too.)
        Returns the entries as written, named as :meth:`lookup` would name them then."""
        pending: dict[str, Counter[str]] = defaultdict(Counter)
        for key, name in forms:
            pending[key][name] += 1
        written: dict[str, RegistryEntry] = {}
        for _ in range(attempts):
            if not pending:
                return written
            actions = []
            for doc in self.es.mget(index=self.index, ids=sorted(pending))["docs"]:
                if not doc.get("found"):
                    pending.pop(doc["_id"], None)
                    continue
                source = doc["_source"]
                attested = dict(source.get("attested") or {})
                for name, count in pending[doc["_id"]].items():
                    attested[name] = attested.get(name, 0) + count
                actions.append(
                    {
                        "_op_type": "index",
                        "_index": self.index,
                        "_id": doc["_id"],
                        "if_seq_no": doc["_seq_no"],
                        "if_primary_term": doc["_primary_term"],
                        "_source": {**source, "attested": attested},
                    }
                )
            errors = bulk(self.es, actions)
            conflicts = {
                e["index"]["_id"] for e in errors if e.get("index", {}).get("status") == 409
            }
            failures = [e for e in errors if e.get("index", {}).get("status") != 409]
            if failures:
                raise RuntimeError(
                    f"entity registry rejected {len(failures)} attestation(s): {failures[:3]}"
                )
            for action in actions:
                if action["_id"] not in conflicts:
                    pending.pop(action["_id"], None)
                    written[action["_id"]] = _entry(action["_id"], action["_source"])
        if pending:
            raise RuntimeError(
                f"entity registry: attestations still conflicting after {attempts} attempts"
            )
        return written


def _entry(key: str, source: dict[str, Any]) -> RegistryEntry:
    """The entry of a registry document, named from its attested forms."""
    return RegistryEntry(
        key=key,
        id=source["id"],
        type=source["type"],
        name=canonical_name(source.get("attested") or {}, source["name"]),
    )
