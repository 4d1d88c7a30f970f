"""Transient server faults: which errors are retried (never dead-lettered), the capped
backoff, the subscription follower that never returns short, and the worker's status."""

from __future__ import annotations

import json
import os
import time

import pytest
from aiokafka import errors as aioerrors
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import ApiError, BadRequestError, ConnectionError, ConnectionTimeout
from kafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
)

from pipeline.infra import es as es_module
from pipeline.runtime import health
from pipeline.stream import process


def api_error(status: int) -> ApiError:
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "localhost", 9200))
    cls = BadRequestError if status == 400 else ApiError
    return cls(f"status {status}", meta, {"error": "x"})


@pytest.mark.parametrize(
    "error",
    [
        ConnectionError("refused"),
        ConnectionTimeout("timed out"),
        api_error(429),
        api_error(503),
        es_module.ServerBusy("busy"),
        KafkaTimeoutError("Failed to get offsets by timestamps in 30000 ms"),
        aioerrors.NoBrokersAvailable(),
        KafkaConnectionError("reset"),
        NotLeaderForPartitionError(),
        aioerrors.KafkaTimeoutError(),
        aioerrors.KafkaConnectionError(),
        aioerrors.NotLeaderForPartitionError(),
        aioerrors.RequestTimedOutError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_server_faults_are_transient(error):
    assert process.is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad article"),
        api_error(400),
        MessageSizeTooLargeError("big"),
        aioerrors.RecordTooLargeError(),
        KeyError("x"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_message_faults_are_not_transient(error):
    assert not process.is_transient(error)


def test_retry_transient_waits_for_the_server_with_a_capped_backoff(monkeypatch):
    health.HEALTH.reset()
    sleeps: list[float] = []
    monkeypatch.setattr(process.time, "sleep", sleeps.append)
    failures = [ConnectionError("refused")] * 8 + [KafkaTimeoutError("metadata")] * 2
    seen_waiting = []

    def call():
        if failures:
            seen_waiting.append(health.HEALTH.snapshot()["waiting_for"])
            raise failures.pop(0)
        return "done"

    assert process.retry_transient(call, what="index", max_wait_s=2.0) == "done"
    assert len(sleeps) == 10 and max(sleeps) == 2.0 and sleeps[0] < 1
    assert seen_waiting[1] == ["Elasticsearch"] and seen_waiting[-1] == ["Kafka"]
    snapshot = health.HEALTH.snapshot()
    assert snapshot["waiting_for"] == [] and "KafkaTimeoutError" in snapshot["last_error"]


def test_retry_transient_default_cap_is_the_setting(monkeypatch):
    monkeypatch.setenv("NEWS_RETRY_MAX_WAIT_S", "0.5")
    from pipeline.settings import reset_settings

    reset_settings()
    sleeps: list[float] = []
    monkeypatch.setattr(process.time, "sleep", sleeps.append)
    failures = [ConnectionError("refused")] * 6
    process.retry_transient(lambda: _raise(failures.pop(0)) if failures else 1, what="x")
    assert max(sleeps) == 0.5


def _raise(error):
    raise error


def test_other_errors_propagate_at_once():
    calls = []

    def call():
        calls.append(1)
        raise ValueError("the message's fault")

    with pytest.raises(ValueError):
        process.retry_transient(call, what="x")
    assert len(calls) == 1


def test_isolate_lets_transient_errors_through_for_the_whole_batch():
    def fn(items):
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        process.isolate(fn, [1, 2, 3])


class _BulkClient:
    """Answers each bulk request with the next list of items (or raises it)."""

    def __init__(self, *answers) -> None:
        self.answers, self.requests = list(answers), []

    def bulk(self, operations, refresh=False):
        self.requests.append(operations)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return {"items": answer}


def test_a_busy_bulk_item_raises_server_busy():
    busy = {
        "index": {
            "_id": "a",
            "status": 429,
            "error": {"type": "es_rejected_execution_exception", "reason": "queue full"},
        }
    }
    conflict = {"create": {"_id": "b", "status": 409, "error": {"type": "conflict"}}}
    actions = [
        {"_op_type": "index", "_index": "i", "_id": "a", "_source": {"x": 1}},
        {"_op_type": "create", "_index": "i", "_id": "b", "_source": {"x": 2}},
    ]
    with pytest.raises(es_module.ServerBusy, match="es_rejected_execution_exception"):
        es_module.bulk(_BulkClient([busy, conflict]), actions)
    ok = {"index": {"_id": "a", "status": 201}}
    assert es_module.bulk(_BulkClient([ok, conflict]), actions) == [
        {"create": {**conflict["create"], "data": {"x": 2}}}
    ]


def test_bulk_writes_helper_style_actions_as_operations_in_chunks(monkeypatch):
    monkeypatch.setattr(es_module, "BULK_CHUNK", 2)
    actions = [
        {
            "_op_type": "index",
            "_index": "i",
            "_id": "a",
            "if_seq_no": 3,
            "if_primary_term": 1,
            "_source": {"x": 1},
        },
        {"_index": "i", "_id": "b", "x": 2},  # no _op_type: index; no _source: the rest
        {"_op_type": "delete", "_index": "i", "_id": "c"},
    ]
    client = _BulkClient(
        [{"index": {"_id": "a", "status": 200}}, {"index": {"_id": "b", "status": 201}}],
        [{"delete": {"_id": "c", "status": 404}}],
    )
    errors = es_module.bulk(client, iter(actions))
    assert client.requests == [
        [
            {"index": {"_index": "i", "_id": "a", "if_seq_no": 3, "if_primary_term": 1}},
            {"x": 1},
            {"index": {"_index": "i", "_id": "b"}},
            {"x": 2},
        ],
        [{"delete": {"_index": "i", "_id": "c"}}],
    ]
    assert errors == [{"delete": {"_id": "c", "status": 404}}]


def test_a_bulk_refused_as_a_whole_fails_each_action_with_its_status():
    from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
    from elasticsearch import ApiError

    def refused(status):
        meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "h", 9200))
        return ApiError("refused", meta, {})

    actions = [
        {"_index": "i", "_id": "a", "_source": {}},
        {"_index": "i", "_id": "b", "_source": {}},
    ]
    errors = es_module.bulk(_BulkClient(refused(400)), actions)
    assert [e["index"]["_id"] for e in errors] == ["a", "b"]
    assert {e["index"]["status"] for e in errors} == {400}
    # too large for the node (http.max_content_length): sent again in halves
    halves = _BulkClient(refused(413), [{"index": {"_id": "a", "status": 201}}], refused(413))
    errors = es_module.bulk(halves, actions)
    assert [len(r) for r in halves.requests] == [4, 2, 2]
    assert [(e["index"]["_id"], e["index"]["status"]) for e in errors] == [("b", 413)]
    with pytest.raises(es_module.ServerBusy):
        es_module.bulk(_BulkClient(refused(503)), actions)
    with pytest.raises(ConnectionError):
        es_module.bulk(_BulkClient(ConnectionError("down")), actions)


# --- the subscription follower -----------------------------------------------------------------


class _Consumer:
    """A consumer whose broker went away after the end offset was known."""

    def __init__(self, end: int, records: int) -> None:
        self.end, self.records, self.position_now = end, records, 0

    def end_offsets(self, partitions, timeout_ms=None):
        return {partitions[0]: self.end}

    def position(self, partition, timeout_ms=None):
        return self.position_now

    def poll(self, timeout_ms=None):
        if not self.records:
            return {}
        self.records -= 1
        self.position_now += 1
        return {}


def _follower(consumer):
    import threading

    from kafka import TopicPartition

    from pipeline.alerts.subscriptions import SubscriptionFollower

    follower = object.__new__(SubscriptionFollower)
    follower.partition = TopicPartition("subs", 0)
    follower.consumer = consumer
    follower._lock = threading.Lock()
    follower.applied_to = 0
    return follower


def test_the_follower_never_returns_short_of_the_end():
    follower = _follower(_Consumer(end=3, records=1))
    with pytest.raises(KafkaTimeoutError):
        follower.catch_up(timeout_s=0.01)
    assert follower.applied_to == 0  # not caught up: a later mark still makes it ask
    assert process.is_transient(KafkaTimeoutError())


class _CountingConsumer(_Consumer):
    def __init__(self, end: int) -> None:
        super().__init__(end, records=end)
        self.asked = 0

    def end_offsets(self, partitions, timeout_ms=None):
        self.asked += 1
        return super().end_offsets(partitions, timeout_ms)

    def poll(self, timeout_ms=None):  # one (empty) record batch per pending record
        super().poll(timeout_ms)
        return {"another partition": []}


def test_a_follower_as_far_as_the_articles_mark_asks_the_broker_nothing():
    consumer = _CountingConsumer(end=2)
    follower = _follower(consumer)
    assert follower.catch_up(at_least=2) == 0  # the stand-in's batches hold no records
    assert (consumer.asked, follower.applied_to, consumer.position_now) == (1, 2, 2)
    follower.catch_up(at_least=2)
    follower.catch_up(at_least=0)
    assert consumer.asked == 1  # applied that far already: no request
    consumer.end = 3  # a subscription written since; an article marked with the new end
    consumer.records = 1
    follower.catch_up(at_least=3)
    assert (consumer.asked, follower.applied_to) == (2, 3)
    follower.catch_up()  # no mark (an older writer's article): always asks
    assert consumer.asked == 3


# --- the worker's status -------------------------------------------------------------------------


def test_status_files_are_read_for_live_workers_only(tmp_path):
    live, dead = os.getpid(), 2**22 + 12345
    for pid in (live, dead):
        health.write_status(
            health.status_path(tmp_path, pid),
            {
                "pid": pid,
                "written_at": time.time(),
                "waiting_for": ["Elasticsearch"],
                "lag": {"news.raw:0": 5, "news.raw:1": 2},
                "last_error": "index: ConnectionError: x",
            },
        )
    (status,) = health.read_statuses(tmp_path)
    assert status["pid"] == live
    assert not health.status_path(tmp_path, dead).exists()
    line = health.describe(status)
    assert "waiting for Elasticsearch" in line and "consumer lag 7" in line
    assert "last error: index: ConnectionError: x" in line and "\n" not in line


def test_the_health_snapshot_lists_every_wait():
    h = health.WorkerHealth()
    h.waiting("index", "Elasticsearch", ConnectionError("refused"))
    h.waiting("subscriptions", "Kafka", KafkaTimeoutError("offsets"))
    assert h.snapshot()["waiting_for"] == ["Elasticsearch", "Kafka"]
    h.resumed("index")
    assert h.snapshot()["waiting_for"] == ["Kafka"]
    assert json.dumps(h.snapshot())
