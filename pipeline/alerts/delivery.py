"""Alert construction and the once-only ledger.

An alert's id is derived from (subscription id, article id). The ``news-alerts`` index is the
ledger: an alert is *claimed* by creating its document (``op_type=create``, status ``pending``,
``published`` false) and, once published to the alerts topic and its webhook deliveries are in
the outbox (:mod:`pipeline.alerts.outbox`), marked ``published``. A redelivered message, a
duplicate article or a restarted worker therefore never fires the same (subscription, article)
twice, while an alert whose publication was interrupted (not ``published``) is published
again: at-least-once on the topic, once in the index. ``status`` then follows the webhook
deliveries (``deliveries``: one state per channel; ``delivered`` when there are none).

A document the index rejects is the problem of its alert only: :meth:`AlertLedger.claim`
returns it apart, and the worker dead-letters that alert while the others go on.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from elasticsearch import Elasticsearch

from pipeline.alerts.per_story import attach_updates, story_alert_id
from pipeline.ids import stable_hash
from pipeline.infra.es import ServerBusy, is_transient_item
from schemas import Alert, AlertMatch, CleanArticle, Subscription
from schemas.models import utcnow

KnownDocument = tuple[dict[str, Any], int, int]
"""A document as this process wrote it, with its ``_seq_no`` and ``_primary_term``."""

BULK_CHUNK = 500
"""Most alerts one bulk request creates."""
CREATE_RESULT = [
    f"items.*.{field}" for field in ("_id", "status", "error", "_seq_no", "_primary_term")
]
"""What a create's answer is read for."""

CREATED_KEPT = 10_000
"""Most created alert documents a ledger remembers until they are marked published (an alert
whose publication failed is marked later, after a read)."""


def alert_id(subscription_id: str, article_id: str) -> str:
    return stable_hash("alert", subscription_id, article_id)


def make_alert(
    subscription: Subscription,
    article: CleanArticle,
    match: AlertMatch,
    snippet: str,
    *,
    backfill: bool = False,
    now: datetime | None = None,
) -> Alert:
    """The alert of ``subscription`` for ``article``: an enriched article, or a clean one for
    the subscriptions matched before the NER (pipeline.alerts.matcher.match_stage; no story)."""
    now = now or utcnow()
    article_story = getattr(article, "story_id", None)
    story_id = (
        article_story if subscription.per_story else None
    )  # one alert per story, see per_story.py
    return Alert(
        id=story_alert_id(subscription.id, story_id)
        if story_id
        else alert_id(subscription.id, article.id),
        story_id=article_story,
        subscription_id=subscription.id,
        query=subscription.query,
        owner=subscription.owner,
        article_id=article.id,
        title=article.title,
        source=article.source,
        url=article.url,
        published_at=article.published_at,
        matched=match,
        snippet=snippet,
        backfill=backfill,
        ingested_at=article.ingested_at,
        created_at=now,
        latency_ms=None if backfill else (now - article.ingested_at).total_seconds() * 1000,
    )


def alert_document(alert: Alert, status: str) -> dict[str, Any]:
    doc = alert.model_dump(mode="json")
    doc["@timestamp"] = doc["created_at"]
    doc["status"] = status
    doc["published"] = False
    return doc


class AlertLedger:
    """The alerts index as the record of which (subscription, article) pairs have fired."""

    def __init__(self, es: Elasticsearch, index: str):
        self.es = es
        self.index = index
        self._created: dict[str, KnownDocument] = {}
        self._lock = threading.Lock()

    def created(self, alert_ids: list[str]) -> dict[str, KnownDocument]:
        """The documents this ledger created for these alerts, as written, with their versions
        (and forgets them): marking them published needs no read first
        (:meth:`pipeline.alerts.outbox.Outbox.mark`, ``known``)."""
        with self._lock:
            return {i: self._created.pop(i) for i in alert_ids if i in self._created}

    def claim(self, alerts: list[Alert]) -> list[Alert]:
        """Record ``alerts``; returns the ones to publish now (see :meth:`claim_isolated`).
        Raises when the index rejects any of them."""
        fired, rejected = self.claim_isolated(alerts)
        if rejected:
            raise RuntimeError(f"alerts index rejected {len(rejected)} alert(s): {rejected[0][1]}")
        return fired

    def claim_isolated(self, alerts: list[Alert]) -> tuple[list[Alert], list[tuple[Alert, str]]]:
        """Record ``alerts``; returns the ones to publish now (the new ones, and those a
        previous attempt claimed but did not publish) and the (alert, error) pairs the index
        rejected."""
        if not alerts:
            return [], []
        # one create per alert, in order, even when two share an id (two articles of one story
        # for a per-story subscription: the first creates it, the second is an update of it)
        documents = [alert_document(a, "pending") for a in alerts]
        items: list[dict[str, Any]] = []
        for start in range(0, len(alerts), BULK_CHUNK):
            operations: list[dict[str, Any]] = []
            for alert, document in zip(
                alerts[start : start + BULK_CHUNK], documents[start : start + BULK_CHUNK]
            ):
                operations += [{"create": {"_index": self.index, "_id": alert.id}}, document]
            answer = self.es.bulk(operations=operations, filter_path=CREATE_RESULT)
            items += [item["create"] for item in answer["items"]]
        busy = [item for item in items if is_transient_item(item)]
        if busy:
            raise ServerBusy(f"alerts index busy for {len(busy)} alert(s): {busy[0].get('error')}")
        conflicts, failures = set(), {}
        with self._lock:
            for alert, document, item in zip(alerts, documents, items, strict=True):
                if item.get("status") in (200, 201):
                    self._created[alert.id] = (document, item["_seq_no"], item["_primary_term"])
                elif item.get("status") == 409:
                    conflicts.add(alert.id)
                else:
                    reason = item.get("error", {})
                    failures[alert.id] = (
                        f"{reason.get('type', 'error')}: {reason.get('reason', '')}"[:500]
                        if isinstance(reason, dict)
                        else str(reason)[:500]
                    )
            while len(self._created) > CREATED_KEPT:
                del self._created[next(iter(self._created))]
        unfinished = self._unpublished(conflicts)
        # per-story subscriptions: a later article of the story is an update of its alert
        updated = {
            (a.id, a.article_id)
            for a in attach_updates(
                self.es,
                self.index,
                [a for a in alerts if a.id in conflicts and a.id not in failures],
            )
        }
        fired = [
            a
            for a in alerts
            if a.id not in failures
            and (
                a.id not in conflicts
                or (a.id in unfinished and (a.id, a.article_id) not in updated)
            )
        ]
        return fired, [(a, failures[a.id]) for a in alerts if a.id in failures]

    def _unpublished(self, ids: set[str]) -> set[str]:
        if not ids:
            return set()
        found = self.es.mget(
            index=self.index, ids=sorted(ids), source_includes=["status", "published"]
        )
        unanswered = [d["error"] for d in found["docs"] if "error" in d]
        if unanswered:  # a node still recovering: asking again is right, guessing is not
            raise ServerBusy(f"alerts index: {unanswered[0].get('type', unanswered[0])}")
        return {
            d["_id"]
            for d in found["docs"]
            if d.get("found")
            and not d["_source"].get("published", d["_source"].get("status") != "pending")
        }

    def history(
        self, subscription_id: str | None = None, size: int = 50, owner: str | None = None
    ) -> list[Alert]:
        """The latest alerts, newest first (of one subscription, of one owner, when given)."""
        filters = [{"term": {"subscription_id": subscription_id}}] if subscription_id else []
        if owner is not None:
            filters.append({"term": {"owner": owner}})
        query = {"bool": {"filter": filters}} if filters else {"match_all": {}}
        result = self.es.search(
            index=self.index, query=query, size=size, sort=[{"created_at": "desc"}]
        )
        return [Alert.model_validate(_strip(h["_source"])) for h in result["hits"]["hits"]]


def _strip(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("@timestamp", "status", "published")}
