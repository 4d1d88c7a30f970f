"""Kafka clients (kafka-python) for producers, the CLI and tests; topic creation.

The Faust worker has its own aiokafka clients (pipeline.stream.worker); this module is for everything
outside it. Producer settings: idempotent (acks=all, one request in flight per connection
ordering kept by retries), gzip compression, keyed by article id so one article's versions stay
on one partition.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.serializer import Serializer
from pydantic import BaseModel

from pipeline.infra.topics import topic_configs
from pipeline.settings import Settings, get_settings

log = logging.getLogger(__name__)


RECONNECT_BACKOFF_MAX_MS = 1000
"""kafka-python backs off reconnecting up to 30 s by default: a broker that is back would
wait that long to be noticed (the worker must resume within seconds)"""


def is_transient(exc: BaseException) -> bool:
    """True for Kafka errors about the cluster rather than the message: no broker, a timeout, a
    leader moving (kafka-python's and aiokafka's "retriable" errors, timeouts, lost
    connections). Such errors are retried, never dead-lettered."""
    try:
        from aiokafka import errors as aioerrors
    except ImportError:  # pragma: no cover - the worker's dependency
        aioerrors = None
    kafka_errors: tuple[type, ...] = (KafkaError,)
    if aioerrors is not None:
        kafka_errors += (aioerrors.KafkaError,)
        if isinstance(
            exc,
            (
                aioerrors.KafkaTimeoutError,
                aioerrors.KafkaConnectionError,
                aioerrors.NoBrokersAvailable,
                aioerrors.NodeNotReadyError,
                aioerrors.RequestTimedOutError,
                aioerrors.NotLeaderForPartitionError,
                aioerrors.LeaderNotAvailableError,
            ),
        ):
            return True
    if not isinstance(exc, kafka_errors):
        return False
    name = type(exc).__name__
    return bool(getattr(exc, "retriable", False)) or "Timeout" in name or "Connection" in name


def encode_value(value: BaseModel | dict | bytes | str | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode("utf-8")
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, default=str).encode("utf-8")


class KeySerializer(Serializer):
    def serialize(self, topic, headers, data):
        return data.encode("utf-8") if isinstance(data, str) else data


class ValueSerializer(Serializer):
    """pydantic models as JSON, str as UTF-8, bytes as they are, None as a tombstone."""

    def serialize(self, topic, headers, data):
        return encode_value(data)


def make_producer(settings: Settings | None = None, **overrides: Any) -> KafkaProducer:
    settings = settings or get_settings()
    deadline_ms = int(settings.producer_deadline_s * 1000)
    config: dict[str, Any] = dict(
        bootstrap_servers=settings.kafka_bootstrap_list,
        client_id="newspipe-producer",
        # every send and flush ends by the deadline: a missing broker is an error, not a hang
        max_block_ms=deadline_ms,
        delivery_timeout_ms=deadline_ms,
        request_timeout_ms=min(30_000, max(deadline_ms // 2, 1000)),
        reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
        acks="all",
        enable_idempotence=True,
        retries=10,
        compression_type="gzip",
        linger_ms=5,
        max_request_size=settings.max_message_bytes,
        key_serializer=KeySerializer(),
        value_serializer=ValueSerializer(),
    )
    config.update(overrides)
    return KafkaProducer(**config)


def make_consumer(
    *topics: str, settings: Settings | None = None, **overrides: Any
) -> KafkaConsumer:
    """A consumer with no group (reads, never commits) unless ``group_id`` is given."""
    settings = settings or get_settings()
    config: dict[str, Any] = dict(
        bootstrap_servers=settings.kafka_bootstrap_list,
        client_id="newspipe-consumer",
        group_id=None,
        reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_bytes=settings.max_message_bytes,
        max_partition_fetch_bytes=settings.max_message_bytes,
    )
    config.update(overrides)
    return KafkaConsumer(*topics, **config)


def ensure_topics(settings: Settings | None = None) -> list[str]:
    """Create every pipeline topic that does not exist yet; returns the ones created, once the
    broker's metadata lists them (a topic is created before every broker reports it, and a
    caller that lists or describes it right away must see it)."""
    settings = settings or get_settings()
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_list, client_id="newspipe-setup"
    )
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(
                name=name,
                num_partitions=partitions,
                replication_factor=settings.topic_replication,
                topic_configs=config,
            )
            for name, (partitions, config) in topic_configs(settings).items()
            if name not in existing
        ]
        created = []
        for topic in wanted:  # one by one: a race with another setup is not an error
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        _await_listed(admin, created)
        return created
    finally:
        admin.close()


def _await_listed(admin: KafkaAdminClient, names: list[str], timeout_s: float = 30.0) -> None:
    """Poll the metadata (backing off from 50 ms to 1 s) until every one of ``names`` is listed,
    or until ``timeout_s`` has passed (then whoever uses a missing topic sees the real error)."""
    deadline, delay = time.monotonic() + timeout_s, 0.05
    while names and set(names) - set(admin.list_topics()) and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
