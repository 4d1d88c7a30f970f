"""Server-Sent Events of alerts as they fire, read from the alerts topic.

Each connection has its own group-less consumer over every partition of the alerts topic (no
consumer group, nothing committed). The event id is the consumer's position after the event,
one ``partition:offset`` pair per partition (``0:17,1:4,2:9,3:0``): a client that reconnects
with ``Last-Event-ID`` resumes exactly after the last event it saw, even across API restarts.
Without it the stream starts at the topic's end (only new alerts). The topic is at-least-once;
an alert id seen twice on one connection is sent once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator

from kafka import TopicPartition
from pydantic import ValidationError

from pipeline.settings import Settings
from schemas import Alert

log = logging.getLogger("newspipe.api")

HEARTBEAT_S = 15.0
POLL_MS = 500
SEEN_MAX = 10_000


class BadEventId(ValueError):
    pass


def parse_event_id(value: str) -> dict[int, int]:
    """``"0:17,1:4"`` -> ``{0: 17, 1: 4}``; raises BadEventId."""
    positions = {}
    try:
        for part in value.split(","):
            partition, _, offset = part.strip().partition(":")
            positions[int(partition)] = int(offset)
    except ValueError:
        raise BadEventId(f"Last-Event-ID {value[:80]!r} is not partition:offset,...") from None
    if any(p < 0 or o < 0 for p, o in positions.items()):
        raise BadEventId(f"Last-Event-ID {value[:80]!r}: negative partition or offset")
    return positions


def format_event_id(positions: dict[int, int]) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(positions.items()))


class AlertStream:
    """The consumer of one SSE connection."""

    def __init__(self, settings: Settings, resume: dict[int, int] | None):
        from pipeline.infra.kafka import make_consumer

        self.topic = settings.topic("alerts")
        self.consumer = make_consumer(settings=settings, client_id="newspipe-api-stream")
        partitions = self.consumer.partitions_for_topic(self.topic) or {0}
        self.partitions = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self.consumer.assign(self.partitions)
        if resume is None:
            self.consumer.seek_to_end(*self.partitions)
        else:
            for tp in self.partitions:
                if tp.partition in resume:
                    self.consumer.seek(tp, resume[tp.partition])
                else:
                    self.consumer.seek_to_beginning(tp)
        self.positions = {tp.partition: self.consumer.position(tp) for tp in self.partitions}

    def poll(self) -> list[tuple[int, int, bytes]]:
        batch = self.consumer.poll(timeout_ms=POLL_MS)
        records = [(r.partition, r.offset, r.value) for rs in batch.values() for r in rs]
        return sorted(records, key=lambda r: (r[0], r[1]))

    def close(self) -> None:
        self.consumer.close()


def sse(event: str, data: str, event_id: str | None = None) -> str:
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in data.splitlines() or [""])
    return "\n".join(lines) + "\n\n"


async def open_stream(settings: Settings, resume: dict[int, int] | None) -> AlertStream:
    """The connection's consumer, positioned (before the answer starts: a broker that does not
    answer is a 503, not a broken stream)."""
    return await asyncio.to_thread(AlertStream, settings, resume)


async def alert_events(
    stream: AlertStream,
    subscription_ids: set[str],
    is_disconnected,
    owner: str | None = None,
) -> AsyncIterator[str]:
    """The SSE text of a connection: a ``ready`` event with the start position, then one
    ``alert`` event per alert (of the given subscriptions, of ``owner``, when given), comments
    as heartbeats. Closes the consumer at the end."""
    seen: OrderedDict[str, None] = OrderedDict()
    try:
        yield "retry: 2000\n\n"
        yield sse(
            "ready",
            json.dumps({"position": format_event_id(stream.positions)}),
            format_event_id(stream.positions),
        )
        last_sent = time.monotonic()
        while not await is_disconnected():
            records = await asyncio.to_thread(stream.poll)
            for partition, offset, value in records:
                stream.positions[partition] = offset + 1
                if value is None:
                    continue
                try:
                    alert = Alert.model_validate_json(value)
                except ValidationError as exc:
                    log.warning(
                        "alerts topic %d@%d: not an alert (%s)",
                        partition,
                        offset,
                        exc.errors()[0]["msg"],
                    )
                    continue
                if subscription_ids and alert.subscription_id not in subscription_ids:
                    continue
                if owner is not None and alert.owner != owner:
                    continue
                if alert.id in seen:
                    continue
                seen[alert.id] = None
                if len(seen) > SEEN_MAX:
                    seen.popitem(last=False)
                yield sse("alert", alert.model_dump_json(), format_event_id(stream.positions))
                last_sent = time.monotonic()
            if time.monotonic() - last_sent > HEARTBEAT_S:
                yield ": keep-alive\n\n"
                last_sent = time.monotonic()
    finally:
        await asyncio.to_thread(stream.close)
