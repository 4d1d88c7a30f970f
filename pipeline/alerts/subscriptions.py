"""Subscriptions: stored durably, known to every worker.

Source of truth: the compacted ``<prefix>.subscriptions`` topic, keyed by subscription id
(a tombstone removes one). A copy lives in the ``<prefix>-subscriptions`` index for listing
and for Kibana.

Every worker must match every article against *all* subscriptions, so subscriptions are not
partitioned between workers: each worker follows the whole topic with its own group-less
consumer (:class:`SubscriptionFollower`) into its in-memory :class:`SubscriptionIndex`, and
catches up before matching each batch, so a subscription acknowledged before an article was
produced is always applied to that article. How far is enough comes with the article: the
clean step reads the topic's end once per batch, after taking the batch (so after each of its
articles was produced), and marks the articles with it (``subscriptions_offset``); every
subscription acknowledged before an article was produced lies below its mark. A matching step
whose index has applied that far asks the broker nothing, in whichever worker it runs (offsets,
unlike clocks, are the same for all of them); one that has not, or an article without a mark,
catches up to the topic's end now, as before. An article redelivered or replayed later keeps
its mark: it meets at least the subscriptions of its first pass (a later subscription reaches
older articles through ``alerts add --backfill``).

A subscription is checked against its size limits (``NEWS_SUBSCRIPTION_MAX_*``) and live only
once stored: it is written to the index first, then to the topic (which the workers follow); if
the topic write fails, the index copy is removed again. Webhook URLs and signing secrets are
kept sealed on the topic only (:mod:`pipeline.alerts.secrets`); the index holds the channel
without them, and the secret is shown once, in what :meth:`SubscriptionStore.create` returns.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from elasticsearch import Elasticsearch, NotFoundError
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError

from pipeline.alerts.matcher import SubscriptionIndex
from pipeline.alerts.secrets import WebhookSecret, new_signing_secret, seal
from pipeline.alerts.webhook import (
    WEBHOOK_PREFIX,
    TargetRules,
    WebhookRefused,
    check_webhook_url,
    target_of,
)
from pipeline.ids import stable_hash
from pipeline.infra.kafka import make_consumer, make_producer
from pipeline.query.language import parse_query
from pipeline.settings import Settings
from schemas import Subscription, WebhookChannel

log = logging.getLogger(__name__)


def subscription_id(owner: str, query: str) -> str:
    """Deterministic: subscribing twice to the same query is one subscription."""
    return "sub-" + stable_hash("subscription", owner, " ".join(query.split()))[:12]


class SubscriptionRejected(ValueError):
    """A subscription over its size limits or with a webhook the target rules refuse."""


@dataclass
class NewSubscription:
    subscription: Subscription
    webhook_secrets: dict[str, str] = field(default_factory=dict)
    """channel id -> signing secret: shown once, here, and never again"""


def public(subscription: Subscription) -> Subscription:
    """The subscription without sealed channel data (index, API answers, CLI)."""
    webhooks = [c.model_copy(update={"sealed": None}) for c in subscription.webhooks]
    return subscription.model_copy(update={"webhooks": webhooks})


def check_limits(
    settings: Settings,
    query: str,
    owner: str,
    urls: list[str],
    others: list[str],
    digest: str,
    tz: str | None,
) -> None:
    def refuse(what: str) -> None:
        raise SubscriptionRejected(what)

    if len(query) > settings.subscription_max_query_chars:
        refuse(
            f"query is {len(query)} characters; the limit is {settings.subscription_max_query_chars}"
        )
    if not owner.strip() or len(owner) > settings.subscription_max_owner_chars:
        refuse(
            f"owner must be 1 to {settings.subscription_max_owner_chars} characters, got {len(owner)}"
        )
    if len(urls) + len(others) > settings.subscription_max_channels:
        refuse(
            f"{len(urls) + len(others)} channels; the limit is {settings.subscription_max_channels}"
        )
    for channel in others:
        refuse(f"unknown channel kind {channel.split(':', 1)[0][:40]!r} (use webhook URLs)")
    rules = TargetRules.from_settings(settings)
    for n, url in enumerate(urls, 1):
        if len(url) > settings.subscription_max_url_chars:
            refuse(
                f"webhook {n} is {len(url)} characters; the limit is {settings.subscription_max_url_chars}"
            )
        try:
            check_webhook_url(url, rules=rules)
        except WebhookRefused as exc:
            refuse(f"webhook {n} refused: {exc}")
    if digest not in ("as_it_happens", "hourly", "daily"):
        refuse(f"digest must be as_it_happens, hourly or daily, got {digest[:40]!r}")
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            refuse(f"unknown time zone {tz[:60]!r} (use an IANA name such as Europe/Paris)")


class SubscriptionStore:
    """Create, remove and list subscriptions (CLI and HTTP API)."""

    def __init__(self, settings: Settings, es: Elasticsearch):
        self.settings = settings
        self.es = es
        self.topic = settings.topic("subscriptions")
        self.index = settings.index("subscriptions")
        self._producer = None

    @property
    def producer(self) -> Any:
        if self._producer is None:
            self._producer = make_producer(self.settings)
        return self._producer

    def add(
        self, query: str, owner: str = "default", channels: list[str] | None = None, **options: Any
    ) -> Subscription:
        """Validate and store a subscription (raises QuerySyntaxError, SubscriptionRejected).
        ``channels``: ``webhook:URL`` strings. Returns it without secrets (see :meth:`create`)."""
        return self.create(query, owner=owner, channels=channels, **options).subscription

    def create(
        self,
        query: str,
        owner: str = "default",
        channels: list[str] | None = None,
        *,
        webhooks: list[str] | None = None,
        digest: str = "as_it_happens",
        timezone: str | None = None,
        per_story: bool = False,
    ) -> NewSubscription:
        """Validate and store a subscription; the new webhooks' signing secrets are returned
        here only. Adding the same (owner, query) again replaces it, with new secrets."""
        channels = list(channels or [])
        urls = list(webhooks or []) + [
            c[len(WEBHOOK_PREFIX) :] for c in channels if c.startswith(WEBHOOK_PREFIX)
        ]
        others = [c for c in channels if not c.startswith(WEBHOOK_PREFIX)]
        check_limits(self.settings, query, owner, urls, others, digest, timezone)
        parse_query(query)
        sub_id = subscription_id(owner, query)
        made, shown = [], {}
        for url in urls:
            channel_id = "wh-" + secrets.token_hex(6)
            shown[channel_id] = new_signing_secret()
            made.append(
                WebhookChannel(
                    id=channel_id,
                    target=target_of(url),
                    sealed=seal(self.settings, WebhookSecret(url=url, secret=shown[channel_id])),
                )
            )
        subscription = Subscription(
            id=sub_id,
            owner=owner,
            query=query,
            webhooks=made,
            digest=digest,
            timezone=timezone,
            per_story=per_story,
        )
        self._store(subscription)
        return NewSubscription(public(subscription), shown)

    def _store(self, subscription: Subscription) -> None:
        """Index first, then the topic the workers follow: live only once stored."""
        self.es.index(
            index=self.index,
            id=subscription.id,
            document=public(subscription).model_dump(mode="json"),
            refresh="wait_for",
        )
        try:
            self.producer.send(self.topic, key=subscription.id, value=subscription).get(timeout=30)
        except Exception:
            try:
                self.es.delete(index=self.index, id=subscription.id, refresh="wait_for")
            except NotFoundError:
                pass
            raise

    def disable_channel(self, subscription: Subscription, channel_id: str, reason: str) -> None:
        """Stop delivering to one channel (its receiver answered 410 Gone); shown as disabled."""
        webhooks = [
            c.model_copy(update={"disabled": reason[:500]}) if c.id == channel_id else c
            for c in subscription.webhooks
        ]
        self._store(subscription.model_copy(update={"webhooks": webhooks}))

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
        result = self.es.search(
            index=self.index, query=query, size=size, sort=[{"created_at": "asc"}]
        )
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
        self.applied_to = 0
        """Every change below this offset is applied (the end a catch-up reached)."""

    def end(self, timeout_s: float = 5.0) -> int:
        """The topic's end offset now (one request to the broker): every subscription whose
        write was acknowledged before this call lies below it."""
        with self._lock:
            return self._end(int(timeout_s * 1000))

    def catch_up(self, timeout_s: float = 5.0, *, at_least: int | None = None) -> int:
        """Apply every subscription change up to the topic's current end; returns how many.

        ``at_least``: an end read earlier (:meth:`end`, by any worker: the clean step marks each
        article with one, ``subscriptions_offset``). When the changes below it are applied
        already, nothing is asked of the broker; otherwise this catches up to the current end
        as without it (which is at least as far, unless the topic was made anew).

        Never returns short of the end: while the broker is away it raises a transient Kafka
        error (KafkaTimeoutError) after ``timeout_s``, which callers retry
        (:func:`pipeline.stream.process.retry_transient`); matching against a partial index would
        lose alerts.
        """
        timeout_ms = int(timeout_s * 1000)
        if self._covers(at_least):
            return 0
        with self._lock:
            if self._covers(at_least):  # another thread caught up meanwhile
                return 0
            end = self._end(timeout_ms)
            applied = 0
            while self._position(timeout_ms) < end:
                batch = self.consumer.poll(timeout_ms=timeout_ms)
                if not batch:
                    raise KafkaTimeoutError(
                        f"subscriptions topic: no progress towards offset {end} in {timeout_s}s"
                    )
                for record in batch.get(self.partition, []):
                    self._apply(record.key, record.value)
                    applied += 1
            self.applied_to = end
            return applied

    def _covers(self, at_least: int | None) -> bool:
        return at_least is not None and self.applied_to >= at_least

    def _end(self, timeout_ms: int) -> int:
        return int(
            self.consumer.end_offsets([self.partition], timeout_ms=timeout_ms)[self.partition]
        )

    def _position(self, timeout_ms: int) -> int:
        position = self.consumer.position(self.partition, timeout_ms=timeout_ms)
        if position is None:  # no answer within the timeout
            raise KafkaTimeoutError("subscriptions topic: no position (broker unreachable?)")
        return int(position)

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
        if any(c.startswith(WEBHOOK_PREFIX) for c in subscription.channels):
            log.warning(
                "subscription %s: a webhook stored by an older version is not delivered "
                "(its URL was not sealed); add the subscription again",
                subscription.id,
            )
        self.index.remove(subscription.id)
        if subscription.active:
            self.index.add(subscription)

    def close(self) -> None:
        self.consumer.close()
