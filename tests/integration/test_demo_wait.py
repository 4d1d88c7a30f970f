"""``newspipe demo`` reads the alerts that fired once the worker's group has committed every
article (:func:`pipeline.cli.demo.wait_processed`), not after a fixed pause: on the session's
worker, a keyword subscription's alert is in the ledger as soon as the wait ends."""

from __future__ import annotations

import json
import uuid

import pytest

from pipeline.cli.demo import wait_processed

pytestmark = pytest.mark.integration


def test_once_the_group_committed_every_article_its_alerts_are_in_the_ledger(stack, tmp_path):
    from pipeline.alerts.subscriptions import SubscriptionStore

    word = f"zq{uuid.uuid4().hex[:10]}"  # in no other article
    store = SubscriptionStore(stack.settings, stack.es)
    subscription = store.add(word, owner="demo-wait")
    try:
        path = tmp_path / "articles.jsonl"
        path.write_text(
            json.dumps(
                {
                    "title": f"Regulator cites {word} filing",
                    "body": f"The regulator said on Tuesday that the {word} filing was late, "
                    "and that it would review the company's accounts before the end of the "
                    "quarter. Shares fell two percent in early trading.",
                    "source": "demo-wait",
                }
            )
            + "\n"
        )
        report = stack.publish([path])
        assert len(report.ids) == 1
        assert wait_processed(stack.settings, timeout_s=120), stack.worker.log_tail()
        alerts = stack.settings.index("alerts")
        stack.es.indices.refresh(index=alerts)
        fired = stack.es.search(
            index=alerts, query={"term": {"subscription_id": subscription.id}}, size=10
        )["hits"]["hits"]
        assert [h["_source"]["article_id"] for h in fired] == report.ids
    finally:
        store.remove(subscription.id)
        store.close()
