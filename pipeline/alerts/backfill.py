"""``alerts add --backfill``: report the already-indexed articles a new subscription matches.

The subscription's query is translated to Elasticsearch (the same AST the stream matcher
evaluates); each hit is confirmed by the stream matcher, which also gives the matched terms
and snippet. Alerts are claimed in the same ledger as live ones (so a later live match of the
same article does not fire again), marked ``backfill``, published to the alerts topic and put
in the webhook outbox (sent by a worker, with the same states as live alerts). An article
indexed by its text only so far (``enriched: false``) is matched by a keyword subscription
like any other; a per-story or digest subscription waits for its story (the stream's match).
"""

from __future__ import annotations

from typing import Any

from elasticsearch import helpers

from pipeline.alerts.delivery import make_alert
from pipeline.alerts.matcher import ArticleView, SubscriptionIndex, snippet
from pipeline.infra.kafka import make_producer
from pipeline.query.es_query import to_es_query
from pipeline.query.language import parse_query
from pipeline.stages.index import enriched_only
from schemas import Alert, EnrichedArticle, Subscription

MAX_BACKFILL = 1000


def article_from_document(doc: dict[str, Any]) -> EnrichedArticle:
    """An indexed document back to the model (the index adds search/facet fields)."""
    return EnrichedArticle.model_validate(
        {k: v for k, v in doc.items() if k in EnrichedArticle.model_fields}
    )


def backfill_query(subscription: Subscription, resolve_entity: Any) -> dict[str, Any]:
    """The Elasticsearch query of the articles a new subscription may match."""
    query = to_es_query(parse_query(subscription.query), resolve_entity)
    if subscription.per_story or subscription.digest != "as_it_happens":
        # its alerts group by story: an article indexed by its text alone (before its NER,
        # NEWS_INDEX_CLEAN) has none yet, and the stream matches its enriched document
        query = enriched_only(query)
    return query


def backfill_alerts(
    pipeline: Any, subscription: Subscription, limit: int = MAX_BACKFILL
) -> list[Alert]:
    query = backfill_query(subscription, pipeline.resolve_entity)
    matcher = SubscriptionIndex(entity_resolver=pipeline.resolve_entity)
    matcher.add(subscription)
    alerts = []
    hits = helpers.scan(
        pipeline.es, index=pipeline.settings.index("articles"), query={"query": query}
    )
    for n, hit in enumerate(hits):
        if n >= limit:
            break
        article = article_from_document(hit["_source"])
        for _, found in matcher.match(ArticleView.from_article(article)):
            alerts.append(
                make_alert(subscription, article, found, snippet(article, found), backfill=True)
            )
    fired: list[Alert] = pipeline.ledger.claim(alerts)
    if fired:
        producer = make_producer(pipeline.settings)
        for alert in fired:
            producer.send(pipeline.settings.topic("alerts"), key=alert.id, value=alert)
        producer.flush()
        producer.close()
        # webhooks: through the outbox like live alerts (a worker's dispatcher sends them)
        pipeline.outbox.enqueue(fired, lambda _: subscription)
    return fired
