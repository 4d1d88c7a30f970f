"""Per-story subscriptions (``Subscription.per_story``): one alert per story.

The alert of a per-story subscription is keyed by (subscription, story) instead of
(subscription, article), so the ledger's create-once claim lets only the story's first matching
article alert. A later article of the same story finds the alert taken: it is attached to that
alert as an update (``Alert.updates``, appended once per article with optimistic concurrency
control: read, append, write back ``if_seq_no``; a concurrent change is re-read and retried; a
redelivered article is not listed twice) and is not published again. No server-side script is
needed (the node may run without the painless module).
"""

from __future__ import annotations

from typing import Any

from elasticsearch import ConflictError, Elasticsearch

from pipeline.ids import stable_hash
from schemas import Alert
from schemas.models import AlertUpdate, utcnow


def story_alert_id(subscription_id: str, story_id: str) -> str:
    return stable_hash("alert", subscription_id, "story", story_id)


def attach_updates(es: Elasticsearch, index: str, conflicting: list[Alert]) -> list[Alert]:
    """Of alerts whose id was already claimed, attach those of *another* article (a later
    article of a per-story alert's story) to the stored alert as updates; returns them."""
    candidates = [a for a in conflicting if a.story_id]
    if not candidates:
        return []
    found = es.mget(
        index=index, ids=sorted({a.id for a in candidates}), source_includes=["article_id"]
    )
    first_article = {d["_id"]: d["_source"]["article_id"] for d in found["docs"] if d.get("found")}
    updates = [a for a in candidates if first_article.get(a.id, a.article_id) != a.article_id]
    now = utcnow()
    by_alert: dict[str, list[Alert]] = {}
    for alert in updates:
        by_alert.setdefault(alert.id, []).append(alert)
    for alert_id, later in by_alert.items():
        _append(
            es,
            index,
            alert_id,
            [
                AlertUpdate(
                    article_id=a.article_id,
                    title=a.title,
                    source=a.source,
                    url=a.url,
                    published_at=a.published_at,
                    added_at=now,
                ).model_dump(mode="json")
                for a in later
            ],
        )
    return updates


def _append(
    es: Elasticsearch, index: str, alert_id: str, new: list[dict[str, Any]], retries: int = 10
) -> None:
    """Append ``new`` updates (those not listed yet) to a stored alert, retrying on conflicts."""
    for _ in range(retries):
        stored = es.get(index=index, id=alert_id)
        doc = stored["_source"]
        listed = {u["article_id"] for u in doc.get("updates") or []} | {doc["article_id"]}
        fresh = [u for u in new if u["article_id"] not in listed]
        if not fresh:
            return
        doc["updates"] = [*(doc.get("updates") or []), *fresh]
        try:
            es.index(
                index=index,
                id=alert_id,
                document=doc,
                if_seq_no=stored["_seq_no"],
                if_primary_term=stored["_primary_term"],
            )
            return
        except ConflictError:
            continue  # changed meanwhile (another update, marked delivered): read again
    raise RuntimeError(f"alert {alert_id}: could not attach updates after {retries} conflicts")
