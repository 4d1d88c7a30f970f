"""The servers themselves: a Kafka round trip and an Elasticsearch bulk/search round trip."""

from __future__ import annotations

import uuid

import pytest
from elasticsearch import helpers
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from pipeline.settings import get_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(kafka_bootstrap):
    name = f"plumbing-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(name, 1, 1)])
    yield name
    admin.delete_topics([name])
    admin.close()


def _read_all(kafka_bootstrap: str, topic: str, expected: int) -> list:
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, consumer_timeout_ms=10_000)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    records = []
    for record in consumer:
        records.append(record)
        if len(records) == expected:
            break
    consumer.close()
    return records


def test_kafka_round_trip(kafka_bootstrap, topic):
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i in range(3):
        producer.send(topic, key=f"k{i}".encode(), value=f"hello {i}".encode())
    producer.flush(timeout=10)
    producer.close()

    records = _read_all(kafka_bootstrap, topic, 3)
    expected = [(f"k{i}".encode(), f"hello {i}".encode()) for i in range(3)]
    assert [(r.key, r.value) for r in records] == expected


def test_kafka_takes_large_messages(kafka_bootstrap, topic):
    """The broker accepts messages up to settings.max_message_bytes (default limit: 1 MB)."""
    value = b"x" * (2 * 1024 * 1024)
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, max_request_size=get_settings().max_message_bytes
    )
    producer.send(topic, value=value).get(timeout=30)
    producer.close()

    assert [r.value for r in _read_all(kafka_bootstrap, topic, 1)] == [value]


def test_elasticsearch_bulk_and_search(es_client):
    index = f"plumbing-{uuid.uuid4().hex[:8]}"
    es_client.indices.create(
        index=index,
        settings={"number_of_shards": 1, "number_of_replicas": 0},
        mappings={"properties": {"title": {"type": "text"}, "lang": {"type": "keyword"}}},
    )
    try:
        docs = [
            {"title": "Storm hits the coast", "lang": "en"},
            {"title": "Markets rally after the storm", "lang": "en"},
            {"title": "Elections next spring", "lang": "en"},
        ]
        ok, errors = helpers.bulk(
            es_client, ({"_index": index, "_id": str(i), **d} for i, d in enumerate(docs))
        )
        assert (ok, errors) == (3, [])
        es_client.indices.refresh(index=index)

        hits = es_client.search(index=index, query={"match": {"title": "storm"}})["hits"]
        assert hits["total"]["value"] == 2
        assert {h["_id"] for h in hits["hits"]} == {"0", "1"}
    finally:
        es_client.indices.delete(index=index)
