"""Kafka topics: names, partition counts and configs, in one place.

The flow: producers -> ``raw`` -> [clean + dedupe] -> ``clean`` -> [entities + events, then
index and match alerts] -> ``alerts``, and the enriched articles to ``enriched`` (read back by
index and alerts agents with ``NEWS_ENRICH_INDEXES=false``). Duplicates go to ``duplicates``,
failures of any stage to ``deadletter``; subscriptions live in the compacted ``subscriptions``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.settings import Settings


def min_insync(replication: int) -> int:
    """``min.insync.replicas`` for a replication factor: 2 from 3 replicas on (an acknowledged
    write survives the loss of a broker, and one broker may be down without stopping writes),
    else 1."""
    return 2 if replication >= 3 else 1


WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    """short name; the full name is ``settings.topic(name)``"""
    doc: str
    partitioned: bool = True
    """True: settings.topic_partitions partitions; False: a single partition"""
    config: dict[str, str] = field(default_factory=dict)


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("raw", "RawArticle from producers, keyed by article id"),
    TopicSpec("clean", "CleanArticle, new (not duplicate) articles, keyed by article id"),
    TopicSpec("enriched", "EnrichedArticle with entities and events, keyed by article id"),
    TopicSpec("duplicates", "DuplicateRecord: a duplicate and the first copy it repeats"),
    TopicSpec(
        "deadletter",
        "DeadLetter: failed messages with the error and the original payload",
        config={"retention.ms": str(4 * WEEK_MS)},
    ),
    TopicSpec("alerts", "Alert fired for a (subscription, article) pair, keyed by alert id"),
    TopicSpec(
        "subscriptions",
        "Subscription, keyed by subscription id; a tombstone (null value) removes one",
        partitioned=False,
        config={"cleanup.policy": "compact", "retention.ms": "-1"},
    ),
)


def worker_reads(settings: Settings) -> tuple[str, ...]:
    """Short names of the topics the worker's agents read, whose lag is the worker group's."""
    return ("raw", "clean") if settings.enrich_indexes else ("raw", "clean", "enriched")


def topic_names(settings: Settings) -> dict[str, str]:
    """Short name -> full topic name."""
    return {spec.name: settings.topic(spec.name) for spec in TOPICS}


def topic_configs(settings: Settings) -> dict[str, tuple[int, dict[str, str]]]:
    """Full topic name -> (partitions, config) as they should be created."""
    out = {}
    for spec in TOPICS:
        config = {"max.message.bytes": str(settings.max_message_bytes), **spec.config}
        if settings.topic_replication > 1:  # an acknowledged write is on min_insync brokers
            config["min.insync.replicas"] = str(min_insync(settings.topic_replication))
        partitions = settings.topic_partitions if spec.partitioned else 1
        out[settings.topic(spec.name)] = (partitions, config)
    return out
