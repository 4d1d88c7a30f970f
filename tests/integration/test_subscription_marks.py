"""The subscriptions topic's end as the clean step marks it, on the real broker and node: a
subscription acknowledged before an article was produced is applied to it by another worker's
matching, which asks the broker for the topic's end only when the article's mark is beyond
what its index has applied."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.alerts.subscriptions import SubscriptionStore
from pipeline.infra.kafka import ensure_topics
from pipeline.stages.dedupe import Deduper
from pipeline.stages.dedupe_store import InMemoryFingerprintStore
from pipeline.stream.process import InMessage, Pipeline
from schemas import RawArticle
from tests.integration.conftest import own_indices

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(es_client, kafka_bootstrap, es_url):
    with own_indices(es_client, kafka_bootstrap, es_url, "marks") as s:
        ensure_topics(s)
        yield s


def raw(n: int, words: str) -> InMessage:
    article = RawArticle.model_validate(
        {
            "id": f"mark-{n}",
            "source": "test",
            "title": f"Talks, day {n}",
            "body": f"On day {n} of the talks the delegations {words} and went home.",
            "ingested_at": datetime.now(UTC).isoformat(),
            "subscriptions_offset": 10**9,  # a producer's own field: never taken for a mark
        }
    )
    return InMessage(value=article.model_dump_json().encode(), key=article.id.encode())


class Asked:
    """Counts the requests for the topic's end that the follower of ``pipeline`` makes (on its
    real consumer)."""

    def __init__(self, pipeline: Pipeline) -> None:
        consumer = pipeline.subscriptions.consumer
        real, self.n = consumer.end_offsets, 0

        def counted(*args, **kwargs):
            self.n += 1
            return real(*args, **kwargs)

        consumer.end_offsets = counted


def test_matching_asks_the_broker_only_for_subscriptions_beyond_its_index(settings, es_client):
    store = SubscriptionStore(settings, es_client)
    memorandum = store.add("memorandum", owner="marks")
    cleaner = Pipeline(
        settings,
        es=es_client,
        deduper=Deduper(InMemoryFingerprintStore()),
        mark_subscriptions=True,
    )
    matcher = Pipeline(settings, es=es_client)  # another worker's matching
    asked = Asked(matcher)
    try:
        (first,) = cleaner.clean_and_dedupe([raw(1, "signed a memorandum")]).passed
        assert first.subscriptions_offset == cleaner.subscriptions.end() >= 1

        fired = matcher.match_alerts([first], "clean").passed
        assert [a.subscription_id for a in fired] == [memorandum.id]
        assert asked.n == 1  # its index was empty: it caught up

        (second,) = cleaner.clean_and_dedupe([raw(2, "read the memorandum again")]).passed
        fired = matcher.match_alerts([second], "clean").passed
        assert [a.subscription_id for a in fired] == [memorandum.id]
        assert asked.n == 1  # nothing was subscribed since: no request

        grain = store.add("grain", owner="marks")  # acknowledged before the next article
        (third,) = cleaner.clean_and_dedupe([raw(3, "argued about grain")]).passed
        assert third.subscriptions_offset is not None
        assert third.subscriptions_offset > (second.subscriptions_offset or 0)
        fired = matcher.match_alerts([third], "clean").passed
        assert [a.subscription_id for a in fired] == [grain.id]
        assert asked.n == 2

        unmarked = second.model_copy(update={"id": "mark-4", "subscriptions_offset": None})
        matcher.match_alerts([unmarked], "clean")  # an older writer's article: it asks
        assert asked.n == 3
    finally:
        store.close()
        for pipeline in (cleaner, matcher):
            pipeline.subscriptions.close()
