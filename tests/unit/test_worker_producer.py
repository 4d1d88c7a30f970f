"""The worker's producer: idempotent and compressed (its effective aiokafka configuration),
and a batch's sends are acknowledged before the agent may ack (and so commit) the batch."""

from __future__ import annotations

import asyncio

from aiokafka import codec

from pipeline.settings import Settings
from pipeline.stream.worker import (
    PRODUCER_COMPRESSION,
    IdempotentProducer,
    create_app,
    send_acknowledged,
)
from schemas.models import DuplicateRecord


def test_worker_producer_is_idempotent_and_compresses() -> None:
    async def effective():
        app = create_app(Settings(kafka_bootstrap="127.0.0.1:1"))
        assert isinstance(app.producer, IdempotentProducer)
        client = app.producer._new_producer()  # the AIOKafkaProducer faust would start
        try:
            return client
        finally:
            await client.client.close()

    client = asyncio.run(effective())
    assert client._txn_manager is not None  # aiokafka: enable_idempotence=True
    assert client._txn_manager.transactional_id is None  # idempotent, not transactional
    assert client._sender._acks == -1  # acks=all, required by idempotence
    assert client._compression_type == PRODUCER_COMPRESSION == "lz4"
    assert codec.has_lz4()  # the codec library is installed (cramjam)


class SlowTopic:
    """A topic whose sends are acknowledged (or fail) when the test says so."""

    def __init__(self, fail_first: int = 0) -> None:
        self.sent: list[tuple[bytes, asyncio.Future]] = []
        self.fail_first = fail_first

    async def send(self, key, value, force):
        assert force
        future = asyncio.get_running_loop().create_future()
        self.sent.append((key, future))
        return future

    def answer(self) -> None:
        for _, future in self.sent:
            if not future.done():
                if self.fail_first:
                    self.fail_first -= 1
                    future.set_exception(ConnectionError("broker away"))
                else:
                    future.set_result("ack")


def records(n: int) -> list[DuplicateRecord]:
    return [
        DuplicateRecord(article_id=f"a{i}", duplicate_of="o", kind="exact", similarity=1.0)
        for i in range(n)
    ]


def test_send_returns_only_when_every_message_is_acknowledged() -> None:
    async def scenario():
        topic = SlowTopic()
        task = asyncio.create_task(send_acknowledged(topic, records(3)))
        await asyncio.sleep(0.05)
        assert len(topic.sent) == 3 and not task.done()  # sent, not acknowledged: waits
        topic.sent[0][1].set_result("ack")
        await asyncio.sleep(0.05)
        assert not task.done()  # two still unacknowledged
        topic.answer()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())


def test_a_failed_send_is_sent_again_not_dropped() -> None:
    async def scenario():
        topic = SlowTopic(fail_first=2)
        task = asyncio.create_task(send_acknowledged(topic, records(3), max_wait_s=0.01))
        while not task.done():
            await asyncio.sleep(0.01)
            topic.answer()
        await task
        keys = [key for key, _ in topic.sent]
        assert keys == [b"a0", b"a1", b"a2", b"a0", b"a1"]  # the two failures, again
        assert all(f.result() == "ack" for _, f in topic.sent[3:])

    asyncio.run(scenario())


def test_every_kafka_client_reads_the_worker_codec() -> None:
    """kafka-python (the CLI, ingest, the tools) decodes what the worker compresses."""
    from kafka import codec as kafka_python_codec

    assert kafka_python_codec.has_lz4()
