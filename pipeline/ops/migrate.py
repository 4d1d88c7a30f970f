"""``newspipe migrate``: mapping changes that existing indices cannot take.

Additive changes (a new field) reach existing indices through ``put_mapping`` in
``pipeline.infra.es.ensure_indices``. A change Elasticsearch refuses there (a field's type, its
analyzer) needs a new index: :func:`migrate` creates the family's next index from the current
template, makes it the write index (atomically: from then on the stream writes there), copies
the documents of the old indices into it with ``create`` (so a document the stream has already
written anew is never overwritten by its older copy), then takes the old indices out of the
alias and deletes them (unless ``keep_old``).

The copy runs in the client (scroll + bulk): the Elasticsearch build of the local runtime has
no reindex module (no ``_reindex``). While it runs, searches through the alias may see a
document twice (old and new index). The articles family is written by id only, so it migrates
while the stream keeps writing; families the stream reads by id (alerts, fingerprints,
entities, subscriptions: ``mget``/``create`` on a single index) should be migrated with the
workers stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from elasticsearch import Elasticsearch, helpers

from pipeline.infra.es import FAMILIES, install_template, template_body
from pipeline.ops.retention import family_indices
from pipeline.settings import Settings

log = logging.getLogger(__name__)

COMPARED = ("type", "analyzer", "index", "enabled", "dynamic")
"""Mapping parameters whose change needs a new index."""


def mapping_conflicts(current: dict, wanted: dict, path: str = "") -> list[str]:
    """Fields of ``wanted`` (a ``properties`` dict) that ``current`` maps incompatibly."""
    out = []
    for name, want in wanted.items():
        have = current.get(name)
        if have is None:
            continue  # a new field: put_mapping adds it
        where = f"{path}{name}"
        for key in COMPARED:
            a, b = _param(have, key), _param(want, key)
            if key in want and a != b:
                out.append(f"{where}: {key} {a} -> {b}")
        out += mapping_conflicts(
            have.get("properties", {}), want.get("properties", {}), f"{where}."
        )
        for sub, spec in want.get("fields", {}).items():
            old = have.get("fields", {}).get(sub)
            if old and old.get("type") != spec.get("type"):
                out.append(f"{where}.{sub}: type {old.get('type')} -> {spec.get('type')}")
    return out


def _param(spec: dict, key: str):
    if key == "type":
        return spec.get("type", "object" if "properties" in spec else None)
    value = spec.get(key)
    return str(value).lower() if isinstance(value, bool) else value  # ES answers "true"


def plan(es: Elasticsearch, settings: Settings, families=FAMILIES) -> dict[str, list[str]]:
    """family -> its conflicts with the template (only families that need a migration)."""
    out = {}
    for family in families:
        alias = settings.index(family)
        if not es.indices.exists_alias(name=alias):
            continue
        wanted = template_body(family)["mappings"]["properties"]
        conflicts = []
        for index, body in es.indices.get_mapping(index=alias).items():
            current = body["mappings"].get("properties", {})
            conflicts += [f"{index} {c}" for c in mapping_conflicts(current, wanted)]
        if conflicts:
            out[family] = conflicts
    return out


@dataclass
class MigrationReport:
    family: str
    new_index: str
    old_indices: list[str] = field(default_factory=list)
    copied: int = 0
    skipped: int = 0  # already written to the new index by the stream
    deleted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.family}: {', '.join(self.old_indices)} -> {self.new_index}; copied {self.copied}, "
            f"{self.skipped} newer in the new index already"
            + (f"; deleted {', '.join(self.deleted)}" if self.deleted else "")
        )


def next_index_name(alias: str, existing: list[str]) -> str:
    numbers = [int(n.rsplit("-", 1)[1]) for n in existing if n.rsplit("-", 1)[-1].isdigit()]
    return f"{alias}-{max(numbers, default=0) + 1:06d}"


def migrate(
    es: Elasticsearch, settings: Settings, family: str, *, keep_old: bool = False, page: int = 500
) -> MigrationReport:
    alias = settings.index(family)
    install_template(es, settings, family)  # the new index takes the current template
    in_alias = es.indices.get_alias(name=alias)
    old = sorted(in_alias)
    writer = [n for n, body in in_alias.items() if body["aliases"][alias].get("is_write_index")]
    new = next_index_name(alias, [i.name for i in family_indices(es, alias)] + old)
    es.indices.create(index=new)
    actions = [{"add": {"index": n, "alias": alias, "is_write_index": False}} for n in writer]
    actions.append({"add": {"index": new, "alias": alias, "is_write_index": True}})
    es.indices.update_aliases(actions=actions)  # from now on the stream writes to the new index
    es.indices.refresh(index=",".join(old))  # the copy (a scroll) sees only refreshed documents
    log.info("migrate %s: writing to %s; copying %s", family, new, ", ".join(old))
    report = MigrationReport(family=family, new_index=new, old_indices=old)
    for index in old:
        docs = helpers.scan(
            es, index=index, query={"query": {"match_all": {}}}, size=page, preserve_order=False
        )
        copies = (
            {"_op_type": "create", "_index": new, "_id": d["_id"], "_source": d["_source"]}
            for d in docs
        )
        for ok, item in helpers.streaming_bulk(
            es, copies, chunk_size=page, raise_on_error=False, max_retries=5
        ):
            result = item.get("create", {})
            if ok:
                report.copied += 1
            elif result.get("status") == 409:
                report.skipped += 1
            else:
                raise RuntimeError(
                    f"migrate {family}: copying into {new} failed: {result.get('error')}"
                )
    es.indices.refresh(index=new)
    es.indices.update_aliases(actions=[{"remove": {"index": n, "alias": alias}} for n in old])
    if not keep_old:
        es.indices.delete(index=",".join(old))
        report.deleted = old
    return report
