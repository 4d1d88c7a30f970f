"""Per-story subscriptions (``Subscription.per_story``): one alert per story.

The alert of a per-story subscription is keyed by (subscription, story) instead of
(subscription, article), so the ledger's create-once claim lets only the story's first matching
article alert. A later article of the same story finds the alert taken: it is attached to that
alert as an update (``Alert.updates``, appended once per article by a scripted update, so a
redelivered article is not listed twice) and is not published again.
"""

from __future__ import annotations

from elasticsearch import Elasticsearch

from pipeline.es import bulk
from pipeline.ids import stable_hash
from schemas import Alert
from schemas.models import AlertUpdate, utcnow

_APPEND_ONCE = """
if (ctx._source.article_id == params.update.article_id) { ctx.op = 'noop'; return; }
if (ctx._source.updates == null) { ctx._source.updates = []; }
for (u in ctx._source.updates) { if (u.article_id == params.update.article_id) { ctx.op = 'noop'; return; } }
ctx._source.updates.add(params.update);
"""


def story_alert_id(subscription_id: str, story_id: str) -> str:
    return stable_hash("alert", subscription_id, "story", story_id)


def attach_updates(es: Elasticsearch, index: str, conflicting: list[Alert]) -> list[Alert]:
    """Of alerts whose id was already claimed, attach those of *another* article (a later
    article of a per-story alert's story) to the stored alert as updates; returns them."""
    candidates = [a for a in conflicting if a.story_id]
    if not candidates:
        return []
    found = es.mget(index=index, ids=sorted({a.id for a in candidates}), source_includes=["article_id"])
    first_article = {d["_id"]: d["_source"]["article_id"] for d in found["docs"] if d.get("found")}
    updates = [a for a in candidates if first_article.get(a.id, a.article_id) != a.article_id]
    now = utcnow()
    actions = (
        {
            "_op_type": "update",
            "_index": index,
            "_id": a.id,
            "retry_on_conflict": 5,
            "script": {
                "source": _APPEND_ONCE,
                "params": {"update": AlertUpdate(
                    article_id=a.article_id, title=a.title, source=a.source, url=a.url,
                    published_at=a.published_at, added_at=now,
                ).model_dump(mode="json")},
            },
        }
        for a in updates
    )
    failures = bulk(es, actions)
    if failures:
        raise RuntimeError(f"could not attach {len(failures)} story update(s): {failures[:3]}")
    return updates
