"""Alerts first under backlog (``NEWS_ALERTS_FIRST``, on by default), on the session's worker:
a backlog of corpus articles reaches the enrich agent at once, and the articles an entity
subscription matches are enriched ahead of their turn; the worker's group still commits the
whole clean topic (events acked out of order would leave a gap, or commit past one), and every
matched article fires its alert once."""

from __future__ import annotations

from statistics import mean

import pytest

from pipeline.stages.index import enriched_ids
from tests.integration.conftest import corpus_sample, group_consumed, wait_until

pytestmark = pytest.mark.integration

QUERY = 'entity:"United States"'
ENTITY = "location:united-states"


def test_under_backlog_the_articles_an_entity_subscription_matches_are_enriched_first(
    stack, tmp_path
):
    from pipeline.alerts.subscriptions import SubscriptionStore

    store = SubscriptionStore(stack.settings, stack.es)
    subscription = store.add(QUERY, owner="alerts-first")
    try:
        sample = corpus_sample(tmp_path, 2000, 2300)
        report = stack.publish([sample])
        index = stack.settings.index("articles")
        wait_until(
            lambda: group_consumed(stack, "raw") and group_consumed(stack, "clean"),
            timeout_s=300,
            what="the raw and clean topics committed to their ends",
            describe=stack.worker.log_tail,
        )
        stack.es.indices.refresh(index=index)
        indexed = enriched_ids(stack.es, index, report.ids)
        sent = [i for i in report.ids if i in indexed]  # in the order produced; no duplicates
        assert len(sent) >= 250, f"only {len(sent)} of {len(report.ids)} articles indexed"
        docs = {
            d["_id"]: d["_source"]
            for d in stack.es.mget(
                index=index, ids=sent, source=["entities.id", "stage_times.enrich_taken"]
            )["docs"]
        }
        matched = [i for i in sent if ENTITY in {e["id"] for e in docs[i].get("entities", [])}]
        assert len(matched) >= 10, f"too few articles of the sample matched: {len(matched)}"
        taken = sorted(sent, key=lambda i: (docs[i]["stage_times"]["enrich_taken"], i))
        sent_rank = {article: rank for rank, article in enumerate(sent)}
        taken_rank = {article: rank for rank, article in enumerate(taken)}
        # in the order produced they are taken about where they were sent (the partitions
        # interleave: 153.7 against 154.3 with NEWS_ALERTS_FIRST=false); taken first, well
        # before (92 against 154 on the machine of session 39)
        assert mean(taken_rank[i] for i in matched) < 0.8 * mean(sent_rank[i] for i in matched), [
            (sent_rank[i], taken_rank[i]) for i in matched
        ]

        alerts = stack.settings.index("alerts")

        def fired_count() -> int:
            stack.es.indices.refresh(index=alerts)
            query = {"term": {"subscription_id": subscription.id}}
            return stack.es.count(index=alerts, query=query)["count"]

        wait_until(
            lambda: fired_count() >= len(matched), timeout_s=60, what="an alert per matched article"
        )
        fired = stack.es.search(
            index=alerts,
            size=1000,
            query={"term": {"subscription_id": subscription.id}},
            source=["article_id"],
        )["hits"]["hits"]
        assert sorted(h["_source"]["article_id"] for h in fired) == sorted(matched)
    finally:
        store.remove(subscription.id)
        store.close()
