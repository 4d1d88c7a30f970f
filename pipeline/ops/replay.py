"""``newspipe deadletters replay``: send the original payloads of dead letters back to the
topic their stage reads, once the cause is fixed.

A dead letter records the topic the failing stage read (``topic``); letters of the ingest
command (bad input, no topic) go to ``raw``. The payload is sent byte-exact with its original
key, so it lands on the partition of its article. Replaying is safe to repeat: the sinks are
idempotent (document ids are article ids, the dedupe state reports an indexed article as a
duplicate of itself, the alert ledger fires a (subscription, article) pair once).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipeline.infra.deadletter import decode_payload
from pipeline.settings import Settings
from schemas import DeadLetter

#: stage -> short name of the topic it reads, for letters without ``topic``
STAGE_TOPICS = {
    "ingest": "raw",
    "decode": "raw",
    "clean": "raw",
    "dedupe": "raw",
    "enrich": "clean",
    "index": "enriched",
    "alerts": "enriched",
}


@dataclass(frozen=True)
class Filter:
    stages: tuple[str, ...] = ()
    reason: str | None = None
    """substring of the error or its type, case-insensitive"""
    since: datetime | None = None
    until: datetime | None = None
    ids: tuple[str, ...] = ()
    """article ids (the letter's key, or the payload's ``id``)"""

    def __call__(self, letter: DeadLetter) -> bool:
        if self.stages and letter.stage not in self.stages:
            return False
        if (
            self.reason
            and self.reason.lower() not in f"{letter.error_type}: {letter.error}".lower()
        ):
            return False
        if self.since and letter.failed_at < _aware(self.since):
            return False
        if self.until and letter.failed_at >= _aware(self.until):
            return False
        if self.ids and letter_id(letter) not in self.ids:
            return False
        return True


def _aware(moment: datetime) -> datetime:

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def letter_id(letter: DeadLetter) -> str | None:
    """The article id of a letter: its key, else the payload's ``id`` when it is JSON."""
    if letter.key:
        return letter.key
    import json

    try:
        value = json.loads(decode_payload(letter))
    except (ValueError, UnicodeDecodeError):
        return None
    return value.get("id") if isinstance(value, dict) else None


def target_topic(letter: DeadLetter, settings: Settings) -> str:
    """The topic a letter goes back to: the one its stage read. While the enrich agent indexes
    and matches itself (``NEWS_ENRICH_INDEXES``), no agent reads the enriched topic, so a letter
    of it goes to the clean topic: the enrich agent reads an enriched article as a clean one,
    enriches it anew, indexes and matches it."""
    topic = letter.topic or settings.topic(STAGE_TOPICS.get(letter.stage, "raw"))
    if settings.enrich_indexes and topic == settings.topic("enriched"):
        return settings.topic("clean")
    return topic


def read_dead_letters(
    settings: Settings, timeout_ms: int = 10_000
) -> Iterator[tuple[tuple[int, int], DeadLetter]]:
    """Every letter now on the dead-letter topic, ((partition, offset), letter), up to the end
    offsets read at the start (letters arriving meanwhile wait for the next replay)."""
    from kafka import TopicPartition

    from pipeline.infra.kafka import make_consumer

    topic = settings.topic("deadletter")
    consumer = make_consumer(settings=settings, consumer_timeout_ms=timeout_ms)
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > consumer.position(tp)}
        while remaining:
            batch = consumer.poll(timeout_ms=timeout_ms)
            if not batch:
                break  # the broker stopped answering: what was read is reported
            for tp, records in batch.items():
                for record in records:
                    if record.offset < ends[tp]:
                        yield (
                            (tp.partition, record.offset),
                            DeadLetter.model_validate_json(record.value),
                        )
                if consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
    finally:
        consumer.close()


@dataclass
class ReplayReport:
    selected: list[tuple[str, DeadLetter]] = field(default_factory=list)  # (target topic, letter)
    sent: int = 0
    read: int = 0

    def by_topic(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for topic, _ in self.selected:
            out[topic] = out.get(topic, 0) + 1
        return out


def select(letters: Iterable[DeadLetter], keep: Filter, settings: Settings) -> ReplayReport:
    report = ReplayReport()
    for letter in letters:
        report.read += 1
        if keep(letter):
            report.selected.append((target_topic(letter, settings), letter))
    return report


def replay(settings: Settings, keep: Filter, *, send: bool = False, producer=None) -> ReplayReport:
    """Select dead letters and (with ``send``) publish their payloads; a dry run otherwise."""
    report = select((letter for _, letter in read_dead_letters(settings)), keep, settings)
    if not send or not report.selected:
        return report
    from pipeline.infra.kafka import make_producer

    own = producer is None
    producer = producer or make_producer(settings)
    try:
        futures = [
            producer.send(
                topic,
                key=letter.key.encode("utf-8") if letter.key else None,
                value=decode_payload(letter),
                headers=[
                    (
                        "newspipe-replay-of",
                        f"{letter.topic}:{letter.partition}:{letter.offset}".encode(),
                    )
                ],
            )
            for topic, letter in report.selected
        ]
        producer.flush()
        for future in futures:
            future.get(timeout=30)
            report.sent += 1
    finally:
        if own:
            producer.close()
    return report
