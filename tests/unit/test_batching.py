"""Adaptive batches (pipeline.stream.batching): small when quiet, full under backlog."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.stream.batching import (
    Arrivals,
    batches_of,
    next_batch,
    pipelined,
    take_batches,
    take_batches_unacked,
)


def run(coro):
    return asyncio.run(coro)


def test_a_lone_message_goes_alone() -> None:
    async def go():
        queue: asyncio.Queue = asyncio.Queue()
        queue.put_nowait("a")
        return await next_batch(queue, 64, 0.001)

    assert run(go()) == (["a"], None)


def test_a_backlog_fills_the_batch_up_to_max() -> None:
    async def go():
        queue: asyncio.Queue = asyncio.Queue()
        for i in range(10):
            queue.put_nowait(i)
        first = await next_batch(queue, 4, 10.0)  # full: returns without lingering
        second = await next_batch(queue, 4, 0.0)
        third = await next_batch(queue, 4, 0.0)
        return first, second, third

    first, second, third = run(go())
    assert first == ([0, 1, 2, 3], None)
    assert second == ([4, 5, 6, 7], None)
    assert third == ([8, 9], None)


def test_a_batch_ends_at_the_item_whose_size_reaches_max_bytes() -> None:
    async def go():
        queue: asyncio.Queue = asyncio.Queue()
        for text in ("aaaa", "bbbbbb", "cc", "d", "eeeeeeeeeeeeeeeeeeee", "f"):
            queue.put_nowait(text)
        batches = [await next_batch(queue, 64, 0.0, max_bytes=10) for _ in range(3)]
        return batches, queue.qsize()

    batches, left = run(go())
    # 4 + 6 reaches 10; 2 + 1 + 20 passes it: the item that reaches the cap is the batch's
    # last, so an item larger than the cap is never left behind
    assert batches == [
        (["aaaa", "bbbbbb"], None),
        (["cc", "d", "eeeeeeeeeeeeeeeeeeee"], None),
        (["f"], None),
    ]
    assert left == 0


def test_the_count_cap_applies_before_the_byte_cap() -> None:
    async def go():
        queue: asyncio.Queue = asyncio.Queue()
        for _ in range(5):
            queue.put_nowait(b"x")
        return await next_batch(queue, 2, 10.0, max_bytes=1000)

    assert run(go()) == ([b"x", b"x"], None)


def test_take_batches_caps_batches_by_message_bytes() -> None:
    class Message:
        def __init__(self, value):
            self.value = value

    class Event:
        def __init__(self, value):
            self.message = Message(value)

    stream = FakeStream([Event(b"x" * n) for n in (300, 800, 100, 100, 100)] + [Event(None)])

    async def go():
        return [
            [len(e.message.value or b"") for e in batch]
            async for batch in take_batches(stream, 64, 0.0, max_bytes=1000)
        ]

    assert run(go()) == [[300, 800], [100, 100, 100, 0]]


def test_messages_arriving_within_the_linger_join_the_batch() -> None:
    async def go():
        queue: asyncio.Queue = asyncio.Queue()
        queue.put_nowait("a")

        async def later():
            await asyncio.sleep(0)
            queue.put_nowait("b")

        task = asyncio.ensure_future(later())
        batch = await next_batch(queue, 64, 1.0)
        await task
        return batch

    # "b" arrives while the batch lingers; the batch is not full, so it waits out the linger
    # (1 s at most) - the test only checks what it contains
    batch, end = run(go())
    assert batch == ["a", "b"] and end is None


def test_arrivals_linger_only_while_another_message_is_due() -> None:
    """The mean gap follows the stream; a steady one (gaps within the busy wait) lingers for
    more, a quiet one, a first message and the first one after a pause do not."""
    arrivals = Arrivals(weight=0.5)
    assert arrivals.linger(0.005, 0.05) == 0.005  # nothing seen: quiet
    arrivals.seen(100.0)
    assert arrivals.linger(0.005, 0.05) == 0.005  # one message: no gap yet
    for t in (100.04, 100.08, 100.12):
        arrivals.seen(t)
    assert arrivals.gap == pytest.approx(0.04)
    assert arrivals.linger(0.005, 0.05) == 0.05  # 25 messages/s: another due within 50 ms
    arrivals.seen(110.0)  # a pause
    assert arrivals.gap is not None and arrivals.gap > 1
    assert arrivals.linger(0.005, 0.05) == 0.005
    for t in (111.0, 112.0, 113.0):  # one a second: quiet
        arrivals.seen(t)
    assert arrivals.linger(0.005, 0.05) == 0.005


def test_a_steady_stream_gathers_batches_a_quiet_wait_would_split() -> None:
    """Messages every 10 ms: with a busy wait (here longer than the whole stream) the first
    goes alone (no gap known yet) and the rest wait for each other; the order is kept."""

    async def source():
        for i in range(20):
            yield i
            await asyncio.sleep(0.01)

    async def go():
        return [batch async for batch in batches_of(source(), 64, 0.0, busy_linger_s=30.0)]

    batches = run(go())
    assert [i for batch in batches for i in batch] == list(range(20))
    assert len(batches) <= 3, batches


def test_batches_of_reads_ahead_and_ends_with_the_source() -> None:
    async def source():
        for i in range(7):
            yield i

    async def go():
        out = []
        async for batch in batches_of(source(), 3, 0.0):
            out.append(batch)
        return out

    batches = run(go())
    assert [x for b in batches for x in b] == list(range(7))
    assert all(1 <= len(b) <= 3 for b in batches)


def test_a_failing_source_raises_after_its_items() -> None:
    async def source():
        yield 1
        yield 2
        raise ValueError("broken")

    async def go():
        seen = []
        with pytest.raises(ValueError, match="broken"):
            async for batch in batches_of(source(), 10, 0.0):
                seen += batch
        return seen

    assert run(go()) == [1, 2]


class FakeStream:
    """The two things take_batches uses of a Faust stream: events() and ack()."""

    def __init__(self, events):
        self._events = events
        self.enable_acks = True
        self.acked = []

    async def events(self):
        for e in self._events:
            yield e

    async def ack(self, event):
        self.acked.append(event)
        return True


def test_events_are_acked_only_after_the_body_finished_the_batch() -> None:
    stream = FakeStream(list(range(5)))

    async def go():
        acked_when_seen = []
        async for batch in take_batches(stream, 2, 0.0):
            acked_when_seen.append((list(batch), list(stream.acked)))
            if 4 in batch:
                break  # the agent stops in the middle of this batch: it is not acked
        return acked_when_seen

    seen = run(go())
    assert not stream.enable_acks
    for batch, acked in seen:
        assert not set(batch) & set(acked)  # nothing of a batch is acked while it is processed
    assert 4 not in stream.acked
    assert stream.acked == [x for batch, _ in seen[:-1] for x in batch]


# --- pipelined: the next batch starts while the last one is finished -------------------------
def test_pipelined_starts_the_next_batch_before_the_last_is_finished_and_acks_in_order() -> None:
    stream = FakeStream(list(range(6)))
    log: list[tuple[str, list[int]]] = []

    async def go():
        release: dict[int, asyncio.Event] = {}

        async def start(batch):
            log.append(("start", list(batch)))
            release[batch[0]] = asyncio.Event()
            return batch[0]

        async def finish(batch, started):
            if started == 0:  # the first batch's finish waits until the second was started
                while 2 not in release:
                    await asyncio.sleep(0)
            log.append(("finish", list(batch)))
            assert not set(batch) & set(stream.acked)  # acked after finish, not before

        await pipelined(take_batches_unacked(stream, 2, 0.0), start, finish)

    run(go())
    starts = [b for what, b in log if what == "start"]
    finishes = [b for what, b in log if what == "finish"]
    assert starts == finishes == [[0, 1], [2, 3], [4, 5]]
    assert log.index(("start", [2, 3])) < log.index(("finish", [0, 1]))
    assert stream.acked == list(range(6))


def test_pipelined_keeps_at_most_depth_batches_in_flight() -> None:
    stream = FakeStream(list(range(10)))
    in_flight, most = set(), [0]

    async def go():
        async def start(batch):
            in_flight.add(batch[0])
            most[0] = max(most[0], len(in_flight))
            return None

        async def finish(batch, _):
            await asyncio.sleep(0.001)
            in_flight.discard(batch[0])

        await pipelined(take_batches_unacked(stream, 1, 0.0), start, finish, depth=2)

    run(go())
    assert most[0] == 2
    assert stream.acked == list(range(10))


class ArrivingStream(FakeStream):
    """Events that arrive when the test puts them in ``arrivals`` (None ends the stream)."""

    def __init__(self):
        super().__init__([])
        self.arrivals: asyncio.Queue = asyncio.Queue()

    async def events(self):
        while (event := await self.arrivals.get()) is not None:
            yield event


def test_pipelined_takes_a_batch_only_when_a_slot_is_free_so_it_holds_all_that_arrived() -> None:
    """While both slots are busy, arriving events wait in the read-ahead; the batch taken when
    a slot frees holds all of them, not just the first one (taken early, it would have made
    the rest wait one more turn)."""
    starts: list[list[int]] = []

    async def go():
        stream = ArrivingStream()
        go_on, first_done = asyncio.Event(), asyncio.Event()

        async def start(batch):
            starts.append(list(batch))

        async def finish(batch, _):
            if batch[0] == 0:
                await go_on.wait()
                for event in (2, 3, 4, 5):  # arrive while batches [0] and [1] are in flight
                    stream.arrivals.put_nowait(event)
                    await asyncio.sleep(0.01)
                first_done.set()

        stream.arrivals.put_nowait(0)
        task = asyncio.ensure_future(
            pipelined(take_batches_unacked(stream, 64, 0.0), start, finish, depth=2)
        )
        await asyncio.sleep(0.01)
        stream.arrivals.put_nowait(1)
        await asyncio.sleep(0.01)
        go_on.set()
        await first_done.wait()
        await asyncio.sleep(0.05)
        stream.arrivals.put_nowait(None)
        await task
        return stream.acked

    acked = run(go())
    assert starts[:2] == [[0], [1]] and starts[2] == [2, 3, 4, 5]
    assert acked == [0, 1, 2, 3, 4, 5]


def test_pipelined_finishes_in_order_even_when_a_later_batch_is_quicker() -> None:
    stream = FakeStream(list(range(4)))
    finished: list[int] = []

    async def go():
        async def start(batch):
            return batch[0]

        async def finish(batch, first):
            await asyncio.sleep(0.02 if first == 0 else 0)  # the first is the slow one
            finished.append(first)

        await pipelined(take_batches_unacked(stream, 1, 0.0), start, finish, depth=3)

    run(go())
    assert finished == [0, 1, 2, 3]
    assert stream.acked == [0, 1, 2, 3]


def test_pipelined_cancelled_leaves_the_batches_in_flight_unacked() -> None:
    stream = FakeStream(list(range(4)))
    finished: list[int] = []

    async def go():
        async def start(batch):
            return batch[0]

        async def finish(batch, first):
            if first == 1:
                await asyncio.Event().wait()  # never finishes: the agent is stopped meanwhile
            finished.append(first)

        task = asyncio.ensure_future(
            pipelined(take_batches_unacked(stream, 1, 0.0), start, finish, depth=2)
        )
        while stream.acked != [0]:
            await asyncio.sleep(0)
        for _ in range(10):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(go())
    assert finished == [0]
    assert stream.acked == [0]  # batch 1 (stuck) and batch 2 (waiting behind it) are redelivered


def test_a_failed_finish_does_not_stop_the_batches_after_it() -> None:
    stream = FakeStream(list(range(3)))
    finished: list[int] = []

    async def go():
        async def start(batch):
            return batch[0]

        async def finish(batch, first):
            if first == 0:
                raise RuntimeError("a bug in the step")
            finished.append(first)

        await pipelined(take_batches_unacked(stream, 1, 0.0), start, finish)

    run(go())
    assert finished == [1, 2]
    assert stream.acked == [1, 2]  # the failed batch is not acked: redelivered


def test_pipelined_with_three_steps_overlaps_batches_and_acks_after_the_last() -> None:
    """parse | enrich | index: batch 1's second step runs while batch 0's third one does; each
    step keeps batch order, each value goes to the next step, acks follow the last step."""
    stream = FakeStream(list(range(3)))
    log: list[tuple[str, int]] = []

    async def go():
        third_of_0_running = asyncio.Event()

        async def start(batch):
            log.append(("start", batch[0]))
            return batch[0] * 10

        async def second(batch, value):
            assert value == batch[0] * 10
            if batch[0] == 1:
                await third_of_0_running.wait()  # overlaps batch 0's third step
            log.append(("second", batch[0]))
            return value + 1

        async def third(batch, value):
            assert value == batch[0] * 10 + 1
            assert not set(batch) & set(stream.acked)
            if batch[0] == 0:
                third_of_0_running.set()
                while ("second", 1) not in log:
                    await asyncio.sleep(0)
            log.append(("third", batch[0]))

        await pipelined(take_batches_unacked(stream, 1, 0.0), start, second, third, depth=3)

    run(go())
    assert [b for what, b in log if what == "third"] == [0, 1, 2]
    assert log.index(("second", 1)) < log.index(("third", 0))
    assert stream.acked == [0, 1, 2]
