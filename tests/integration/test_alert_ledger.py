"""The alert ledger and the outbox on the real node: alerts the ledger just created are marked
published from the documents as written (no read first), and a document changed in between
fails its version check, is read, and keeps the other change; two articles of one story in one
batch make one per-story alert and one update."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.alerts.delivery import AlertLedger, make_alert
from pipeline.alerts.outbox import Outbox
from schemas import AlertMatch, CleanArticle, EnrichedArticle, Subscription
from tests.integration.conftest import own_indices

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(es_client, kafka_bootstrap, es_url):
    with own_indices(es_client, kafka_bootstrap, es_url, "ledger") as s:
        yield s


def alerts(n: int):
    subscription = Subscription(id="sub-ledger", query="memorandum", owner="test")
    now = datetime.now(UTC)
    return [
        make_alert(
            subscription,
            CleanArticle(
                id=f"a{i}",
                title=f"Memorandum {i}",
                body="A memorandum was signed.",
                source="test",
                language="en",
                ingested_at=now,
            ),
            AlertMatch(terms=["memorandum"]),
            "A memorandum was signed.",
        )
        for i in range(n)
    ]


class CountingClient:
    """The real client, counting the documents read back by ``mget``."""

    def __init__(self, es):
        self._es, self.read = es, 0

    def mget(self, **kwargs):
        answer = self._es.mget(**kwargs)
        self.read += len(answer["docs"])
        return answer

    def __getattr__(self, name):
        return getattr(self._es, name)


def test_claimed_alerts_are_marked_published_without_reading_them(es_client, settings) -> None:
    counting = CountingClient(es_client)
    ledger = AlertLedger(counting, settings.index("alerts"))
    outbox = Outbox(counting, settings)
    claimed = alerts(3)
    fired, rejected = ledger.claim_isolated(claimed)
    assert [a.id for a in fired] == [a.id for a in claimed] and not rejected
    # another process changes one alert between the claim and the mark
    es_client.update(index=settings.index("alerts"), id=claimed[1].id, doc={"note": "changed"})
    known = ledger.created([a.id for a in claimed])
    assert set(known) == {a.id for a in claimed}
    assert ledger.created([a.id for a in claimed]) == {}, "handed over once"
    outbox.enqueue(fired, lambda _: None, known=known)
    assert counting.read == 1, "only the alert changed in between was read"
    for alert in claimed:
        doc = es_client.get(index=settings.index("alerts"), id=alert.id)["_source"]
        assert doc["published"] is True and doc["status"] == "delivered"
    changed = es_client.get(index=settings.index("alerts"), id=claimed[1].id)["_source"]
    assert changed["note"] == "changed"
    # claimed again (a redelivery): nothing new to fire, nothing remembered
    assert ledger.claim_isolated(claimed) == ([], [])
    assert ledger.created([a.id for a in claimed]) == {}


def test_two_articles_of_one_story_in_one_batch_are_an_alert_and_its_update(
    es_client, settings
) -> None:
    """A per-story subscription's alert is keyed by the story: in one claim, the first article
    creates it and fires, the second is attached as an update and does not fire."""
    subscription = Subscription(id="sub-story", query="memorandum", owner="test", per_story=True)
    now = datetime.now(UTC)
    first, second = (
        make_alert(
            subscription,
            EnrichedArticle(
                id=article_id,
                title=f"Memorandum {article_id}",
                body="A memorandum was signed.",
                source="test",
                language="en",
                ingested_at=now,
                story_id="story-1",
            ),
            AlertMatch(terms=["memorandum"]),
            "A memorandum was signed.",
        )
        for article_id in ("first", "second")
    )
    assert first.id == second.id
    ledger = AlertLedger(es_client, settings.index("alerts"))
    fired, rejected = ledger.claim_isolated([first, second])
    assert [a.article_id for a in fired] == ["first"] and not rejected
    stored = es_client.get(index=settings.index("alerts"), id=first.id)["_source"]
    assert stored["article_id"] == "first"
    assert [u["article_id"] for u in stored["updates"]] == ["second"]
    Outbox(es_client, settings).enqueue(fired, lambda _: None, known=ledger.created([first.id]))
    stored = es_client.get(index=settings.index("alerts"), id=first.id)["_source"]
    assert stored["published"] is True and [u["article_id"] for u in stored["updates"]] == [
        "second"
    ]
