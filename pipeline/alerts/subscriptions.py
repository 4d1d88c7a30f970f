"""Subscriptions: stored durably, known to every worker.

Source of truth: the compacted ``<prefix>.subscriptions`` topic, keyed by subscription id
(a tombstone removes one). A copy lives in the ``<prefix>-subscriptions`` index for listing
and for Kibana.

Every worker must match every article against *all* subscriptions, so subscriptions are not
partitioned between workers: each worker follows the whole topic with its own group-less
consumer (:class:`SubscriptionFollower`) into its in-memory :class:`SubscriptionIndex`, and
catches up to the topic's end before matching each batch, so a subscription acknowledged
before an article was produced is always applied to that article.
"""

from __future__ import annotations

import logging
import threading

from elasticsearch import Elasticsearch, NotFoundError
from kafka import TopicPartition

from pipeline.alerts.matcher import SubscriptionIndex
from pipeline.alerts.query import parse_query
from pipeline.ids import stable_hash
from pipeline.kafka import make_consumer, make_producer
from pipeline.settings import Settings
from schemas import Subscription

log = logging.getLogger(__name__)


def subscription_id(owner: str, query: str) -> str:
    """Deterministic: subscribing twice to the same query is one subscription."""
    return "sub-" + stable_hash("subscription", owner, " ".join(query.split()))[:12]


class SubscriptionStore:
    """Create, remove and list subscriptions (CLI and HTTP API)."""

    def __init__(self, settings: Settings, es: Elasticsearch):
        self.settings = settings
        self.es = es
        self.topic = settings.topic("subscriptions")
        self.index = settings.index("subscriptions")
        self._producer = None

    @property
    def producer(self):
        if self._producer is None:
            self._producer = make_producer(self.settings)
        return self._producer

    def add(self, query: str, owner: str = "default", channels: list[str] | None = None,
            per_story: bool = False) -> Subscription:
        """Validate ``query`` (raises QuerySyntaxError) and store the subscription."""
        parse_query(query)
        subscription = Subscription(
            id=subscription_id(owner, query), owner=owner, query=query, channels=channels or [],
            per_story=per_story,
        )
        self.producer.send(self.topic, key=subscription.id, value=subscription).get(timeout=30)
        self.es.index(
            index=self.index,
            id=subscription.id,
            document=subscription.model_dump(mode="json"),
            refresh="wait_for",
        )
        return subscription

    def remove(self, sub_id: str) -> bool:
        """Remove a subscription; False when it did not exist."""
        existed = self.get(sub_id) is not None
        self.producer.send(self.topic, key=sub_id, value=None).get(timeout=30)
        try:
            self.es.delete(index=self.index, id=sub_id, refresh="wait_for")
        except NotFoundError:
            pass
        return existed

    def get(self, sub_id: str) -> Subscription | None:
        try:
            doc = self.es.get(index=self.index, id=sub_id)
        except NotFoundError:
            return None
        return Subscription.model_validate(doc["_source"])

    def list(self, owner: str | None = None, size: int = 1000) -> list[Subscription]:
        query = {"term": {"owner": owner}} if owner else {"match_all": {}}
        result = self.es.search(index=self.index, query=query, size=size, sort=[{"created_at": "asc"}])
        return [Subscription.model_validate(h["_source"]) for h in result["hits"]["hits"]]

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()


class SubscriptionFollower:
    """Keeps a SubscriptionIndex equal to the compacted subscriptions topic."""

    def __init__(self, settings: Settings, index: SubscriptionIndex):
        self.index = index
        self.partition = TopicPartition(settings.topic("subscriptions"), 0)
        self.consumer = make_consumer(settings=settings, client_id="newspipe-subscriptions")
        self.consumer.assign([self.partition])
        self.consumer.seek_to_beginning(self.partition)
        self._lock = threading.Lock()

    def catch_up(self, timeout_s: float = 10.0) -> int:
        """Apply every subscription change up to the topic's current end; returns how many."""
        with self._lock:
            end = self.consumer.end_offsets([self.partition])[self.partition]
            applied = 0
            while self.consumer.position(self.partition) < end:
                batch = self.consumer.poll(timeout_ms=int(timeout_s * 1000))
                if not batch:
                    log.warning("subscriptions topic: no progress towards offset %d", end)
                    break
                for record in batch.get(self.partition, []):
                    self._apply(record.key, record.value)
                    applied += 1
            return applied

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        sub_id = key.decode("utf-8") if key else None
        if value is None:
            if sub_id:
                self.index.remove(sub_id)
            return
        try:
            subscription = Subscription.model_validate_json(value)
            parse_query(subscription.query)
        except ValueError as exc:  # a bad record must not stop the worker
            log.error("ignoring invalid subscription record %r: %s", sub_id, exc)
            return
        self.index.remove(subscription.id)
        if subscription.active:
            self.index.add(subscription)

    def close(self) -> None:
        self.consumer.close()
