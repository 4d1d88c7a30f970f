"""Retention: roll indices over by age and size, delete what is older than each family's
retention, forget dedupe fingerprints older than the dedupe window.

The Elasticsearch build of the local runtime has no ILM (an x-pack feature), so the project
does it itself with core APIs, run by the worker (a Faust timer, on the leader only) and by
``newspipe retention run``:

==============  =========================================  ===================================
family          how it is kept                              setting (default)
==============  =========================================  ===================================
articles        ``_rollover`` of the write alias by age,    ``rollover_max_age`` (7d),
                primary shard size (and docs); an index     ``rollover_max_size`` (20gb),
                is deleted once it was rolled over longer   ``rollover_max_docs`` (off),
                ago than the retention                      ``retention_articles_days`` (365)
alerts          documents older than the retention          ``retention_alerts_days`` (180)
                (``created_at``) are deleted: the alerts
                index is the once-only ledger, which needs
                one index (its ``create`` and ``mget``)
fingerprints    records older than the dedupe window        ``dedupe_window_days`` (30)
                (``first_seen``) are deleted: such a text
                is new again (its near copies too); band
                lists not written for the window too
outbox          finished webhook entries (``delivered``,    ``retention_outbox_days`` (30)
                ``failed``, ``refused``) last updated
                (``updated_at``) longer ago are deleted;
                pending and retrying entries are kept
stories         stories last updated (``updated_at``)       ``retention_stories_days`` (90;
                longer ago are deleted                      never less than the story window)
duplicates      Kafka topic ``retention.ms``                ``retention_duplicates_days`` (7)
dead letters    Kafka topic ``retention.ms``                ``retention_deadletter_days`` (28)
==============  =========================================  ===================================

Subscriptions and the entity registry are kept (they are configuration, not history).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from elasticsearch import Elasticsearch

from pipeline.settings import Settings

log = logging.getLogger(__name__)

ROLLED_FAMILIES = ("articles",)
"""Families whose write alias rolls over; their old indices are deleted whole."""
DOCUMENT_AGE_FIELDS = {
    "alerts": "created_at",
    "fingerprints": "first_seen",
    "outbox": "updated_at",
    "stories": "updated_at",
}
"""Families kept in one index whose old documents are deleted by this date field."""
DOCUMENT_FILTERS = {"outbox": {"terms": {"state": ["delivered", "failed", "refused"]}}}
"""... and only those documents of the family that match this (an open delivery is kept)."""
TOPIC_RETENTION = {
    "duplicates": "retention_duplicates_days",
    "deadletter": "retention_deadletter_days",
}
"""Topic short name -> the setting of its retention in days."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def retention_days(settings: Settings, family: str) -> float:
    if family == "fingerprints":
        return settings.dedupe_window_days
    if family == "stories":  # a story still open to new articles is never deleted
        return max(settings.retention_stories_days, settings.story_window_hours / 24)
    return getattr(settings, f"retention_{family}_days")


def rollover_conditions(settings: Settings) -> dict:
    conditions: dict = {
        "max_age": settings.rollover_max_age,
        "max_primary_shard_size": settings.rollover_max_size,
    }
    if settings.rollover_max_docs:
        conditions["max_docs"] = settings.rollover_max_docs
    return conditions


@dataclass
class IndexInfo:
    name: str
    created: datetime
    docs: int
    bytes: int
    write: bool
    rolled_at: datetime | None = None
    """when it stopped being the write index (the next index's creation), None while written"""


def family_indices(es: Elasticsearch, alias: str) -> list[IndexInfo]:
    """The indices ``<alias>-NNNNNN`` of one family, oldest first."""
    found = es.options(ignore_status=404).indices.get(
        index=f"{alias}-*", expand_wildcards="open,closed"
    )
    if not found or "error" in found:
        return []
    names = sorted(n for n in found if n.startswith(f"{alias}-"))
    if not names:
        return []
    stats = es.indices.stats(index=",".join(names), metric="docs,store")["indices"]
    infos = []
    for name in names:
        meta = found[name]
        created = datetime.fromtimestamp(
            int(meta["settings"]["index"]["creation_date"]) / 1000, UTC
        )
        total = stats.get(name, {}).get("primaries", {})
        infos.append(
            IndexInfo(
                name=name,
                created=created,
                docs=total.get("docs", {}).get("count", 0),
                bytes=total.get("store", {}).get("size_in_bytes", 0),
                write=bool(meta.get("aliases", {}).get(alias, {}).get("is_write_index")),
            )
        )
    for older, newer in zip(infos, infos[1:]):
        if not older.write:
            older.rolled_at = newer.created
    return infos


def get_by_id(es: Elasticsearch, alias: str, doc_id: str) -> dict | None:
    """A document by id through an alias that may span rolled-over indices: a real-time GET
    while the alias has one index, else a search by id. None when there is none."""
    from elasticsearch import BadRequestError, NotFoundError

    try:
        return es.get(index=alias, id=doc_id)
    except NotFoundError:
        return None
    except BadRequestError:  # "alias has more than one index": rolled over
        hits = es.search(index=alias, query={"ids": {"values": [doc_id]}}, size=1)["hits"]["hits"]
        return hits[0] if hits else None


def expired_indices(infos: list[IndexInfo], retention: timedelta, now: datetime) -> list[IndexInfo]:
    """Indices rolled over longer than ``retention`` ago (never the write index)."""
    return [
        i
        for i in infos
        if not i.write and i.rolled_at is not None and i.rolled_at + retention <= now
    ]


def next_deletion(infos: list[IndexInfo], retention: timedelta) -> tuple[str, datetime] | None:
    """(index, when) of the next index deletion; None while there is nothing but the write index."""
    pending = [(i.rolled_at + retention, i.name) for i in infos if not i.write and i.rolled_at]
    if not pending:
        return None
    when, name = min(pending)
    return name, when


@dataclass
class RetentionReport:
    rolled_over: dict[str, str] = field(default_factory=dict)  # alias -> new index
    deleted_indices: list[str] = field(default_factory=list)
    deleted_documents: dict[str, int] = field(default_factory=dict)  # family -> count
    topics: dict[str, str] = field(default_factory=dict)  # topic -> retention.ms

    def summary(self) -> str:
        parts = [f"rolled over {a} -> {i}" for a, i in self.rolled_over.items()]
        parts += [f"deleted index {i}" for i in self.deleted_indices]
        parts += [
            f"deleted {n} old {f} document(s)" for f, n in self.deleted_documents.items() if n
        ]
        parts += [f"{t}: retention.ms={ms}" for t, ms in self.topics.items()]
        return "; ".join(parts) or "nothing to do"


def rollover(es: Elasticsearch, settings: Settings) -> dict[str, str]:
    """Roll each rolled family's write alias over when a condition is met; alias -> new index."""
    done = {}
    for family in ROLLED_FAMILIES:
        alias = settings.index(family)
        result = es.indices.rollover(alias=alias, conditions=rollover_conditions(settings))
        if result.get("rolled_over"):
            done[alias] = result["new_index"]
            log.info("retention: rolled %s over to %s", alias, result["new_index"])
    return done


def delete_old_indices(es: Elasticsearch, settings: Settings, now: datetime) -> list[str]:
    deleted = []
    for family in ROLLED_FAMILIES:
        retention = timedelta(days=retention_days(settings, family))
        for info in expired_indices(family_indices(es, settings.index(family)), retention, now):
            es.indices.delete(index=info.name)
            deleted.append(info.name)
            log.info(
                "retention: deleted %s (%d docs, rolled over %s)",
                info.name,
                info.docs,
                info.rolled_at,
            )
    return deleted


def delete_old_documents(es: Elasticsearch, settings: Settings, now: datetime) -> dict[str, int]:
    deleted = {}
    for family, date_field in DOCUMENT_AGE_FIELDS.items():
        before = now - timedelta(days=retention_days(settings, family))
        deleted[family] = forget_before(
            es, settings.index(family), date_field, before, only=DOCUMENT_FILTERS.get(family)
        )
    # the dedupe band lists (pipeline.stages.dedupe_store) beside the fingerprint records: a
    # list not written for the window names only forgotten texts
    from pipeline.stages.dedupe_store import BAND_UPDATED_FIELD

    window = now - timedelta(days=retention_days(settings, "fingerprints"))
    deleted["band lists"] = forget_before(
        es, settings.index("fingerprints"), BAND_UPDATED_FIELD, window
    )
    return deleted


def forget_before(
    es: Elasticsearch, index: str, date_field: str, before: datetime, *, only: dict | None = None
) -> int:
    """Delete the documents of ``index`` whose ``date_field`` is before ``before`` (and that
    match ``only``, when given); returns how many. ``_delete_by_query`` when the node has the
    reindex module, else (the integ-test build has none) client-side: search the ids,
    bulk-delete them, until none is left."""
    from elasticsearch import ApiError

    query = {"range": {date_field: {"lt": before.isoformat()}}}
    if only is not None:
        query = {"bool": {"filter": [query, only]}}
    try:
        result = es.delete_by_query(index=index, query=query, conflicts="proceed", refresh=True)
        return int(result.get("deleted", 0))
    except ApiError as exc:
        if not _no_handler(exc):
            raise
    return delete_matching(es, index, query)


def _no_handler(exc) -> bool:
    """True when the node has no such endpoint (a module missing from its distribution)."""
    return getattr(exc, "status_code", getattr(exc, "status", None)) in (400, 405) and (
        "no handler found" in str(exc) or "Incorrect HTTP method" in str(exc)
    )


def delete_matching(es: Elasticsearch, index: str, query: dict, page: int = 1000) -> int:
    """Bulk-delete the documents matching ``query``, one page of ids at a time."""
    from pipeline.infra.es import bulk

    deleted = 0
    es.indices.refresh(index=index)
    while True:
        hits = es.search(index=index, query=query, size=page, source=False)["hits"]["hits"]
        if not hits:
            return deleted
        errors = bulk(
            es,
            ({"_op_type": "delete", "_index": h["_index"], "_id": h["_id"]} for h in hits),
            refresh=True,
        )
        errors = [e for e in errors if e.get("delete", {}).get("status") != 404]
        if errors:
            raise RuntimeError(
                f"could not delete {len(errors)} document(s) of {index}: {errors[:2]}"
            )
        deleted += len(hits)


def topic_retention_ms(settings: Settings) -> dict[str, str]:
    """Full topic name -> retention.ms from the settings."""
    return {
        settings.topic(name): str(int(getattr(settings, attr) * 24 * 3600 * 1000))
        for name, attr in TOPIC_RETENTION.items()
    }


def apply_topic_retention(settings: Settings) -> dict[str, str]:
    """Set ``retention.ms`` of the duplicates and dead-letter topics where it differs from the
    settings (incremental: the other configs of the topics are kept); returns the changes."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    wanted = topic_retention_ms(settings)
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_list, client_id="newspipe-retention"
    )
    try:
        existing = set(admin.list_topics())
        wanted = {t: ms for t, ms in wanted.items() if t in existing}
        if not wanted:
            return {}
        found = admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, t, configs={"retention.ms": None})
                for t in wanted
            ],
            config_filter="all",
        )
        current = {
            name: _value(configs.get("retention.ms")) for name, configs in _topics(found).items()
        }
        changes = {t: ms for t, ms in wanted.items() if current.get(t) != ms}
        if changes:
            admin.alter_configs(
                [
                    ConfigResource(ConfigResourceType.TOPIC, t, configs={"retention.ms": ms})
                    for t, ms in changes.items()
                ]
            )
        return changes
    finally:
        admin.close()


def _topics(described) -> dict:
    """{topic: {key: data}} of a describe_configs answer (keyed by resource type)."""
    for key, value in (described or {}).items():
        if "topic" in str(key).lower():
            return value
    return {}


def _value(data) -> str | None:
    if isinstance(data, dict):
        return data.get("value", data.get("config_value"))
    return data


def run_retention(
    es: Elasticsearch, settings: Settings, *, now: datetime | None = None, topics: bool = True
) -> RetentionReport:
    """One retention pass: rollover, delete expired indices and documents, topic retention."""
    now = now or utcnow()
    report = RetentionReport()
    report.rolled_over = rollover(es, settings)
    report.deleted_indices = delete_old_indices(es, settings, now)
    report.deleted_documents = delete_old_documents(es, settings, now)
    if topics:
        report.topics = apply_topic_retention(settings)
    return report


@dataclass
class FamilyStatus:
    family: str
    indices: int
    docs: int
    bytes: int
    retention: str
    next_deletion: str


def status(
    es: Elasticsearch, settings: Settings, now: datetime | None = None
) -> list[FamilyStatus]:
    """Sizes of the index families and what retention deletes next (for ``newspipe status``)."""
    now = now or utcnow()
    rows = []
    from pipeline.infra.es import FAMILIES

    for family in FAMILIES:
        infos = family_indices(es, settings.index(family))
        if not infos:
            continue
        docs, size = sum(i.docs for i in infos), sum(i.bytes for i in infos)
        if family in ROLLED_FAMILIES:
            days = retention_days(settings, family)
            nxt = next_deletion(infos, timedelta(days=days))
            when = f"{nxt[0]} at {nxt[1]:%Y-%m-%d %H:%M}" if nxt else "none (only the write index)"
            rows.append(FamilyStatus(family, len(infos), docs, size, f"{days:g} days", when))
        elif family in DOCUMENT_AGE_FIELDS:
            days = retention_days(settings, family)
            date_field = DOCUMENT_AGE_FIELDS[family]
            oldest = _oldest(es, settings.index(family), date_field, DOCUMENT_FILTERS.get(family))
            when = (
                f"oldest doc at {oldest + timedelta(days=days):%Y-%m-%d %H:%M}"
                if oldest
                else "none"
            )
            rows.append(FamilyStatus(family, len(infos), docs, size, f"{days:g} days", when))
        else:
            rows.append(FamilyStatus(family, len(infos), docs, size, "kept", "-"))
    return rows


def _oldest(
    es: Elasticsearch, index: str, date_field: str, only: dict | None = None
) -> datetime | None:
    result = es.search(
        index=index,
        size=0,
        query=only or {"match_all": {}},
        aggs={"oldest": {"min": {"field": date_field}}},
    )
    value = result["aggregations"]["oldest"].get("value_as_string")
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def human_bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
