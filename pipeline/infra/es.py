"""Elasticsearch: the client, and the index templates + aliases the pipeline writes to.

Each index family (articles, alerts, subscriptions, fingerprints, entities) has a template body
in ``deploy/elasticsearch/<family>.json``; :func:`ensure_indices` installs it as an index template
for ``<prefix>-<family>-*`` and creates the first index ``<prefix>-<family>-000001`` behind the
write alias ``<prefix>-<family>``. Code always reads and writes through the alias.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from functools import cache
from typing import Any

import orjson
from elasticsearch import ApiError, BadRequestError, ConnectionTimeout, Elasticsearch
from elasticsearch import ConnectionError as ESConnectionError
from elasticsearch.serializer import JsonSerializer, NdjsonSerializer

from pipeline.deploy import resource
from pipeline.settings import Settings, get_settings

log = logging.getLogger(__name__)

TEMPLATES_DIR = resource("elasticsearch")
FAMILIES = (
    "articles",
    "alerts",
    "subscriptions",
    "fingerprints",
    "entities",
    "outbox",
    "stories",
    "apikeys",
)


RETRY_STATUSES = frozenset({429, 502, 503, 504})
"""HTTP statuses that say "not now" (overloaded, restarting), never "not this document"."""


class ServerBusy(RuntimeError):
    """Elasticsearch answered 429/502/503/504 for a request or for items of a bulk: retry it."""


def is_transient(exc: BaseException) -> bool:
    """True for Elasticsearch errors that are about the server, not the request or document:
    no connection, a timeout, or a "busy" status. Such errors are retried, never dead-lettered."""
    if isinstance(exc, (ESConnectionError, ConnectionTimeout, ServerBusy)):
        return True
    return isinstance(exc, ApiError) and getattr(exc, "status_code", None) in RETRY_STATUSES


_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class FastJsonSerializer(JsonSerializer):
    """The client's JSON serializer with orjson: the request bodies and the answers (documents,
    bulk items, hits) of every call, several a batch, went through the standard library's
    ``json`` in the worker's threads. The same bytes for what the pipeline sends; a body that
    orjson refuses (a lone surrogate, an integer beyond 64 bits) goes through the standard
    library as before, so nothing that was sent is refused now. (Elasticsearch's numbers fit
    64 bits: orjson would read a larger integer as a float.)"""

    def json_dumps(self, data: Any) -> bytes:
        try:
            return orjson.dumps(data, default=self.default, option=_ORJSON_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError
            return super().json_dumps(data)

    def json_loads(self, data: bytes) -> Any:
        try:
            return orjson.loads(data)
        except ValueError:  # orjson.JSONDecodeError: the standard library says why
            return super().json_loads(data)


class FastNdjsonSerializer(FastJsonSerializer, NdjsonSerializer):
    """The lines of ``_bulk`` and ``_msearch`` bodies, with :class:`FastJsonSerializer`'s JSON."""


def serializers() -> dict[str, JsonSerializer]:
    """The client's serializers by mimetype (the client maps the compatibility mimetypes
    ``application/vnd.elasticsearch+json`` etc. to the same ones)."""
    return {
        FastJsonSerializer.mimetype: FastJsonSerializer(),
        FastNdjsonSerializer.mimetype: FastNdjsonSerializer(),
    }


def make_client(settings: Settings | None = None, **overrides: Any) -> Elasticsearch:
    settings = settings or get_settings()
    config: dict[str, Any] = dict(request_timeout=30, retry_on_timeout=True, max_retries=3)
    if "serializer" not in overrides:
        config["serializers"] = serializers()
    if settings.es_api_key:
        config["api_key"] = settings.es_api_key
    elif settings.es_username:
        config["basic_auth"] = (settings.es_username, settings.es_password or "")
    if settings.es_ca_certs:
        config["ca_certs"] = settings.es_ca_certs
    config.update(overrides)
    return Elasticsearch(settings.es_url_list, **config)


@cache
def template_body(family: str) -> dict:
    """The template body of one index family, without its ``_comment``."""
    body = json.loads((TEMPLATES_DIR / f"{family}.json").read_text(encoding="utf-8"))
    body.pop("_comment", None)
    return body


def ensure_indices(es: Elasticsearch, settings: Settings | None = None) -> list[str]:
    """Install the index templates (always, so mapping changes land) and create each family's
    first index behind its alias when the alias does not exist. Returns the aliases created."""
    settings = settings or get_settings()
    created = []
    for family in FAMILIES:
        alias = settings.index(family)
        body = install_template(es, settings, family)
        if not es.indices.exists_alias(name=alias):
            es.options(ignore_status=400).indices.create(
                index=f"{alias}-000001", aliases={alias: {"is_write_index": True}}
            )
            created.append(alias)
        else:
            if dynamic := dynamic_settings(settings, family):
                es.indices.put_settings(index=alias, settings={"index": dynamic})
            # existing indices get new fields of the template (additive mapping changes);
            # a change they cannot take (a field's type) waits for `newspipe migrate`
            properties = body["mappings"]["properties"]
            try:
                es.indices.put_mapping(index=alias, properties=properties)
            except BadRequestError as exc:
                log.warning(
                    "%s: the mapping changed incompatibly (%s); run `newspipe migrate`", alias, exc
                )
                known = {
                    f
                    for m in es.indices.get_mapping(index=alias).values()
                    for f in m["mappings"].get("properties", {})
                }
                added = {name: spec for name, spec in properties.items() if name not in known}
                if added:  # the new fields still arrive now
                    es.indices.put_mapping(index=alias, properties=added)
    return created


STATE_FAMILIES = ("fingerprints", "alerts", "stories", "entities")
"""Index families the stages read by id (real time) and search only to catch up with other
workers or for people: refreshed every ``NEWS_STATE_REFRESH_S``, not every second. A refresh
writes a segment, and segments cost merges and per-segment lookups: at 1 s these four cost
Elasticsearch about as much CPU per article as indexing everything (docs/performance.md)."""


def dynamic_settings(settings: Settings, family: str) -> dict[str, Any]:
    """The index settings of a family that follow the project's settings (applied to new
    indices through the template and to existing ones by :func:`ensure_indices`)."""
    if family in STATE_FAMILIES:
        return {"refresh_interval": f"{round(settings.state_refresh_s * 1000)}ms"}
    if family == "articles":
        return {"refresh_interval": f"{round(articles_clock_s(settings) * 1000)}ms"}
    return {}


ARTICLES_CLOCK_BACKSTOP_S = 2.0
"""The articles index's own refresh interval while the pipeline's writers refresh it after their
writes (``NEWS_ARTICLES_REFRESH_ON_WRITE``): for what anyone else writes there (a migration's
reindex, retention's deletes, a hand-made document)."""


def articles_clock_s(settings: Settings) -> float:
    """The articles index's refresh interval: ``NEWS_ARTICLES_REFRESH_S``, or, while the
    writers refresh after their writes (at most that often), the longer backstop
    :data:`ARTICLES_CLOCK_BACKSTOP_S`, so that the index's clock and the writers do not both
    refresh at that rate."""
    if settings.articles_refresh_on_write:
        return max(settings.articles_refresh_s, ARTICLES_CLOCK_BACKSTOP_S)
    return settings.articles_refresh_s


def install_template(es: Elasticsearch, settings: Settings, family: str) -> dict:
    """Install (or update) one family's index template; returns its body."""
    alias = settings.index(family)
    body = template_body(family)
    index_settings = dict(body["settings"])
    if settings.es_replicas is not None:
        index_settings["number_of_replicas"] = settings.es_replicas
    index_settings.update(dynamic_settings(settings, family))
    es.indices.put_index_template(
        name=alias,
        index_patterns=[f"{alias}-*"],
        template={"settings": index_settings, "mappings": body["mappings"]},
        priority=200,
        meta={"managed_by": "newspipe"},
    )
    return body


BULK_CHUNK = 500
"""Actions per bulk request at most (what ``helpers.bulk`` sends by default)."""

BULK_META = frozenset(
    {
        "_index",
        "_id",
        "routing",
        "if_seq_no",
        "if_primary_term",
        "version",
        "version_type",
        "require_alias",
        "retry_on_conflict",
        "pipeline",
    }
)
"""The keys of a helper-style action (``{"_op_type": ..., "_index": ..., "_source": ...}``)
that go into its metadata line; whatever else it holds is the document."""


def bulk(es: Elasticsearch, actions: Iterable[dict], *, refresh: bool | str = False) -> list[dict]:
    """Run bulk actions; returns the per-item errors (an empty list when all succeeded).

    Actions are written like ``elasticsearch.helpers.bulk``'s (``_op_type``, ``_index``,
    ``_id``, ``_source`` or the document's fields) and sent with ``es.bulk`` in requests of at
    most :data:`BULK_CHUNK` actions (a request too large for the node, 413, is sent again in
    halves), each action serialised once (the helper serialises every action a second time
    to measure it: 4% of a worker's GIL time at 20 articles/s, py-spy). An error is
    ``{op_type: item}`` as Elasticsearch answers it, with the document as ``data``; a request
    refused as a whole gives each of its actions that status and the ``exception``.

    Conflicts (409) of ``create`` actions are returned as errors like any other: callers that
    use ``create`` as a once-only ledger inspect them. An item refused for a reason of the
    server (:func:`is_transient_item`: 429/503, a cluster block such as the flood-stage
    read-only index, a full queue) raises :class:`ServerBusy` instead: the whole call is
    retried by the caller (every action the pipeline bulks is idempotent by id). No
    connection raises as it is.
    """
    errors: list[dict] = []
    chunk: list[tuple[str, dict, Any]] = []
    for action in actions:
        chunk.append(_expand(action))
        if len(chunk) == BULK_CHUNK:
            errors += _bulk_chunk(es, chunk, refresh)
            chunk = []
    if chunk:
        errors += _bulk_chunk(es, chunk, refresh)
    busy = [e for e in errors if is_transient_item(next(iter(e.values()), {}) if e else {})]
    if busy:
        raise ServerBusy(f"Elasticsearch busy for {len(busy)} bulk item(s): {_item_error(busy[0])}")
    return errors


def _expand(action: dict) -> tuple[str, dict, Any]:
    """(op type, metadata, document or None for a delete) of a helper-style action."""
    op = action.get("_op_type", "index")
    meta = {k: v for k, v in action.items() if k in BULK_META}
    if op == "delete":
        return op, meta, None
    if "_source" in action:
        return op, meta, action["_source"]
    return op, meta, {k: v for k, v in action.items() if k not in BULK_META and k != "_op_type"}


def _bulk_chunk(es: Elasticsearch, chunk: list[tuple[str, dict, Any]], refresh) -> list[dict]:
    operations: list[Any] = []
    for op, meta, doc in chunk:
        operations.append({op: meta})
        if doc is not None:
            operations.append(doc)
    try:
        items = es.bulk(operations=operations, refresh=refresh)["items"]
    except ApiError as exc:
        if exc.status_code == 413 and len(chunk) > 1:  # over http.max_content_length: halves
            half = len(chunk) // 2
            return _bulk_chunk(es, chunk[:half], refresh) + _bulk_chunk(es, chunk[half:], refresh)
        # refused as a whole: every action fails with its status
        return [
            {op: {**meta, "status": exc.status_code, "error": str(exc), "exception": exc}}
            for op, meta, _ in chunk
        ]
    errors = []
    for (_, _, doc), item in zip(chunk, items, strict=True):
        op, result = next(iter(item.items()))
        if not 200 <= result.get("status", 500) < 300:
            if doc is not None:
                result["data"] = doc
            errors.append({op: result})
    return errors


def _item_status(error: dict) -> int | None:
    item = next(iter(error.values()), {}) if error else {}
    return item.get("status") if isinstance(item, dict) else None


def _item_error(error: dict) -> str:
    item = next(iter(error.values()), {}) if error else {}
    detail = item.get("error") if isinstance(item, dict) else None
    if isinstance(detail, dict):
        return f"{detail.get('type')}: {detail.get('reason')}"
    return str(detail or item)


# --- transient faults of bulk items (disk pressure is a pause, not a loss) -------------------
TRANSIENT_TYPES = frozenset(
    {"cluster_block_exception", "es_rejected_execution_exception", "unavailable_shards_exception"}
)
"""Bulk item error types that are about the cluster, whatever their status (a write block on
an index or the cluster answers 403 cluster_block_exception; the flood stage answers 429)."""


def is_transient_item(item: dict) -> bool:
    """True when one bulk action's result (``{"status": ..., "error": ...}``) failed for a
    reason of the cluster, not of the document: retry it, never dead-letter it.

    - a busy status (:data:`RETRY_STATUSES`): queue full, flood-stage read-only block, node away;
    - a ``cluster_block_exception`` of any status: a read-only index or cluster, a full disk;
    - the per-item result of a request that failed as a whole for a transient reason.
    """
    if not isinstance(item, dict):
        return False
    if item.get("status") in RETRY_STATUSES:
        return True
    error = item.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    if kind in TRANSIENT_TYPES:
        return True
    if isinstance(error, str) and "cluster_block_exception" in error:
        return True
    exception = item.get("exception")
    return isinstance(exception, BaseException) and is_transient(exception)
