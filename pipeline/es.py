"""Elasticsearch: the client, and the index templates + aliases the pipeline writes to.

Each index family (articles, alerts, subscriptions, fingerprints, entities) has a template body
in ``deploy/elasticsearch/<family>.json``; :func:`ensure_indices` installs it as an index template
for ``<prefix>-<family>-*`` and creates the first index ``<prefix>-<family>-000001`` behind the
write alias ``<prefix>-<family>``. Code always reads and writes through the alias.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from elasticsearch import BadRequestError, Elasticsearch, helpers

from pipeline.deploy import resource
from pipeline.settings import Settings, get_settings

log = logging.getLogger(__name__)

TEMPLATES_DIR = resource("elasticsearch")
FAMILIES = ("articles", "alerts", "subscriptions", "fingerprints", "entities", "apikeys")


def make_client(settings: Settings | None = None, **overrides: Any) -> Elasticsearch:
    settings = settings or get_settings()
    config: dict[str, Any] = dict(request_timeout=30, retry_on_timeout=True, max_retries=3)
    if settings.es_api_key:
        config["api_key"] = settings.es_api_key
    elif settings.es_username:
        config["basic_auth"] = (settings.es_username, settings.es_password or "")
    if settings.es_ca_certs:
        config["ca_certs"] = settings.es_ca_certs
    config.update(overrides)
    return Elasticsearch(settings.es_url, **config)


@lru_cache(maxsize=None)
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
            # existing indices get new fields of the template (additive mapping changes);
            # a change they cannot take (a field's type) waits for `newspipe migrate`
            properties = body["mappings"]["properties"]
            try:
                es.indices.put_mapping(index=alias, properties=properties)
            except BadRequestError as exc:
                log.warning("%s: the mapping changed incompatibly (%s); run `newspipe migrate`", alias, exc)
                known = {f for m in es.indices.get_mapping(index=alias).values() for f in m["mappings"].get("properties", {})}
                added = {name: spec for name, spec in properties.items() if name not in known}
                if added:  # the new fields still arrive now
                    es.indices.put_mapping(index=alias, properties=added)
    return created


def install_template(es: Elasticsearch, settings: Settings, family: str) -> dict:
    """Install (or update) one family's index template; returns its body."""
    alias = settings.index(family)
    body = template_body(family)
    es.indices.put_index_template(
        name=alias,
        index_patterns=[f"{alias}-*"],
        template={"settings": body["settings"], "mappings": body["mappings"]},
        priority=200,
        meta={"managed_by": "newspipe"},
    )
    return body


def bulk(es: Elasticsearch, actions: Iterable[dict], *, refresh: bool | str = False) -> list[dict]:
    """Run bulk actions; returns the per-item errors (an empty list when all succeeded).

    Conflicts (409) of ``create`` actions are returned as errors like any other: callers that
    use ``create`` as a once-only ledger inspect them. An item refused for a transient reason
    (:func:`is_transient_item`: a read-only index at the flood-stage watermark, a cluster
    block, a full queue) is not the document's fault: :class:`TransientBulkError` is raised for
    the whole request, which the callers retry (all bulk actions here are idempotent).
    """
    _, errors = helpers.bulk(
        es, actions, raise_on_error=False, raise_on_exception=False, refresh=refresh
    )
    errors = list(errors)
    transient = [e for e in errors if is_transient_item(next(iter(e.values()), {}))]
    if transient:
        raise TransientBulkError(transient)
    return errors


# --- transient faults of bulk items (disk pressure is a pause, not a loss) -------------------
TRANSIENT_STATUSES = frozenset({429, 503})
TRANSIENT_TYPES = frozenset(
    {"cluster_block_exception", "es_rejected_execution_exception", "unavailable_shards_exception"}
)


def is_transient_item(item: dict) -> bool:
    """True when a bulk item (``{"status": ..., "error": ...}``, one action's result) failed
    for a reason of the cluster, not of the document: retry it, never dead-letter it.

    - 429 / 503: queue full, flood-stage read-only block, node unavailable;
    - ``cluster_block_exception`` (403 or 429): a read-only index or cluster, full disk;
    - the per-item result of a request that failed as a whole (a connection error).
    """
    if not isinstance(item, dict):
        return False
    if item.get("status") in TRANSIENT_STATUSES:
        return True
    error = item.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    if kind in TRANSIENT_TYPES:
        return True
    if isinstance(error, str) and "cluster_block_exception" in error:
        return True
    exception = item.get("exception")
    if exception is not None:
        from elasticsearch import ConnectionError as ESConnectionError, ConnectionTimeout

        return isinstance(exception, (ESConnectionError, ConnectionTimeout))
    return False


class TransientBulkError(RuntimeError):
    """Elasticsearch refused bulk items for a transient reason (see :func:`is_transient_item`);
    the whole request is to be retried later."""

    def __init__(self, items: list[dict]):
        self.items = items
        first = next(iter(items[0].values()), {}) if items else {}
        error = first.get("error") if isinstance(first, dict) else None
        reason = error.get("reason") if isinstance(error, dict) else error
        super().__init__(f"{len(items)} bulk item(s) refused for now: {reason}")
