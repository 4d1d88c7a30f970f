"""Adaptive batches for the agents: small when the stream is quiet, full under backlog.

Faust's ``take_events(max, within)`` wakes every ``within`` seconds (or when the buffer is
full) and stops filling its buffer while the batch is processed, so a quiet stream pays up to
``within`` per hop and a busy one takes small batches after every step. :func:`take_batches`
instead keeps a background reader that moves events into a bounded queue (at most ``max_``
ahead) while the agent works, and :func:`next_batch` returns as soon as one message is there:
it takes what is already waiting, up to ``max_``, and waits at most ``linger_s`` for more
when the batch is not full. Under backlog the queue is full when a step ends, so batches grow
to ``max_`` with no wait; when quiet, a lone message waits at most ``linger_s``.

In between, under a steady stream, batches would stay at one or two messages, each paying a
batch's fixed costs (Elasticsearch round trips, Kafka sends, a step thread) on a machine that
then runs out of CPU before it runs out of work. So :class:`Arrivals` follows the mean gap
between the source's messages, and while it is at most ``busy_linger_s`` (another message is
due within that time) a batch waits up to ``busy_linger_s`` for more: at 20 messages/s and
0.05 s, two or three a batch. A quiet stream (gaps longer than that, or the first message
after a pause) keeps the short wait.

Delivery stays at-least-once: acks are off on the stream and each event is acked only after
the agent body finished with its batch (as ``take_events`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)


class _Failed:
    """The reader's exception, passed through the queue to the consumer."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


async def next_batch(
    queue: asyncio.Queue,
    max_: int,
    linger_s: float,
    max_bytes: int | None = None,
    size: Callable[[Any], int] = len,
) -> tuple[list[Any], BaseException | None]:
    """Wait for one item, then take what is waiting, up to ``max_`` items (and, with
    ``max_bytes``, until the items' ``size`` adds up to at least ``max_bytes``: the item that
    reaches it is the last); while the batch is not full, wait at most ``linger_s`` (from the
    first item) for more. Returns (the items, the reader's end or failure if the batch met it:
    ``StopAsyncIteration`` at the end)."""
    batch: list[Any] = []
    item = await queue.get()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + linger_s
    total = 0
    while True:
        if isinstance(item, _Failed):
            return batch, item.exc
        batch.append(item)
        if max_bytes is not None:
            total += size(item)
        if len(batch) >= max_ or (max_bytes is not None and total >= max_bytes):
            return batch, None
        try:
            item = queue.get_nowait()
            continue
        except asyncio.QueueEmpty:
            pass
        remaining = deadline - loop.time()
        if remaining <= 0:
            return batch, None
        try:
            item = await asyncio.wait_for(queue.get(), remaining)
        except TimeoutError:
            return batch, None


class Arrivals:
    """The mean gap between a source's messages (exponentially weighted, the latest gap
    weighing ``weight``), and the wait for a batch that follows from it."""

    def __init__(self, weight: float = 0.2) -> None:
        self.weight = weight
        self.gap: float | None = None
        self._last: float | None = None

    def seen(self, now: float) -> None:
        """A message arrived at ``now`` (monotonic seconds)."""
        if self._last is not None:
            gap = now - self._last
            self.gap = gap if self.gap is None else self.gap + self.weight * (gap - self.gap)
        self._last = now

    def linger(self, quiet_s: float, busy_s: float) -> float:
        """``busy_s`` while another message is due within it, else ``quiet_s``."""
        return busy_s if self.gap is not None and self.gap <= busy_s else quiet_s


async def batches_of(
    source: AsyncIterator[Any],
    max_: int,
    linger_s: float,
    busy_linger_s: float | None = None,
    max_bytes: int | None = None,
    size: Callable[[Any], int] = len,
) -> AsyncIterator[list[Any]]:
    """Batches (:func:`next_batch`) of the items of ``source``, read ahead by a background task
    into a queue of ``max_`` items; a failure of ``source`` is raised after the items read
    before it were yielded. The reader stops when the consumer does. ``busy_linger_s``: the
    wait under a steady stream (:class:`Arrivals`; None: always ``linger_s``); ``max_bytes``
    and ``size``: a batch ends once its items' sizes reach ``max_bytes``."""
    queue: asyncio.Queue = asyncio.Queue(maxsize=max(1, max_))
    arrivals = Arrivals()
    loop = asyncio.get_running_loop()

    async def read() -> None:
        try:
            async for item in source:
                arrivals.seen(loop.time())
                await queue.put(item)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            await queue.put(_Failed(exc))
            return
        await queue.put(_Failed(StopAsyncIteration()))

    reader = asyncio.ensure_future(read())
    try:
        while True:
            wait = linger_s
            if busy_linger_s is not None:
                wait = arrivals.linger(linger_s, max(linger_s, busy_linger_s))
            batch, end = await next_batch(queue, max_, wait, max_bytes, size)
            if batch:
                yield batch
            if isinstance(end, StopAsyncIteration):
                return
            if end is not None:
                raise end
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader


def event_bytes(event) -> int:
    """The size of a Faust event's message value, in bytes (0 when it has none)."""
    value = event.message.value
    return len(value) if value else 0


async def take_batches(
    stream,
    max_: int,
    linger_s: float,
    busy_linger_s: float | None = None,
    max_bytes: int | None = None,
) -> AsyncIterator[Sequence[Any]]:
    """Faust events of ``stream`` in adaptive batches (:func:`batches_of`; ``max_bytes``: of
    message values, :func:`event_bytes`). Each event is acked when the consumer asks for the
    next batch, i.e. after the body finished with it; a batch the consumer abandons (the agent
    stopped mid-batch) is not acked, so it is redelivered."""
    stream.enable_acks = False  # acked below, after the body processed the batch
    async for events in batches_of(
        stream.events(), max_, linger_s, busy_linger_s, max_bytes, event_bytes
    ):
        yield events
        for event in events:
            await stream.ack(event)


async def take_batches_unacked(
    stream,
    max_: int,
    linger_s: float,
    busy_linger_s: float | None = None,
    max_bytes: int | None = None,
) -> AsyncIterator[tuple[Sequence[Any], Callable[[], Awaitable[None]]]]:
    """Like :func:`take_batches`, but each batch comes with its ``ack``: the consumer acks a
    batch itself when it is done with it, so it can take the next batch before (a batch never
    acked is redelivered)."""
    stream.enable_acks = False

    def acker(events: Sequence[Any]) -> Callable[[], Awaitable[None]]:
        async def ack() -> None:
            for event in events:
                await stream.ack(event)

        return ack

    async for events in batches_of(
        stream.events(), max_, linger_s, busy_linger_s, max_bytes, event_bytes
    ):
        yield events, acker(events)


async def pipelined(
    batches: AsyncIterator[tuple[Sequence[Any], Callable[[], Awaitable[None]]]],
    start: Callable[[Sequence[Any]], Awaitable[Any]],
    *steps: Callable[[Sequence[Any], Any], Awaitable[Any]],
    depth: int = 2,
) -> None:
    """Processing of ``batches`` in steps with up to ``depth`` batches in flight: ``start``
    (quick: it hands work elsewhere, such as a parse in another process) runs as soon as a
    batch is taken; then each of ``steps`` in turn, ``step(events, what the step before
    returned)`` (the first gets ``start``'s result). Each step runs in batch order, after the
    same step of the batch before, so different batches' steps overlap: the next batch's parse
    runs while the last one is finished, and with a third step (``depth`` 3) a batch is
    indexed while the next one is finished. A batch is acked after its last step. Neither
    ``start`` nor a step may raise (the agents' steps retry or dead-letter); if the consumer
    is cancelled, batches in flight are cancelled unacked (redelivered)."""
    if not steps:
        raise ValueError("pipelined needs at least one step")
    slots = asyncio.Semaphore(depth)
    previous: list[asyncio.Future | None] = [None] * len(steps)
    acked: asyncio.Future | None = None
    in_flight: set[asyncio.Task] = set()

    async def run_step(step, events, before_batch, before_step) -> Any:
        if before_batch is not None:  # order: after this step of the batch before
            with contextlib.suppress(Exception):  # its own failure is not this batch's
                await asyncio.shield(before_batch)
        value = await before_step if isinstance(before_step, asyncio.Future) else before_step
        return await step(events, value)

    async def finish(ack, last: asyncio.Future, before: asyncio.Future | None) -> None:
        try:
            if before is not None:  # acks in batch order too
                with contextlib.suppress(Exception):
                    await asyncio.shield(before)
            try:
                await last
            except Exception:  # a bug in a step: the batch is not acked (redelivered)
                log.exception("a batch's step failed; the batch is left unacked")
                return
            await ack()
        finally:
            slots.release()

    taking = batches.__aiter__()
    try:
        while True:
            # a slot first, then the batch: the batch then holds everything that arrived while
            # the pipeline was full, instead of waiting one more turn behind a batch taken early
            await slots.acquire()
            try:
                events, ack = await taking.__anext__()
            except StopAsyncIteration:
                slots.release()
                break
            except BaseException:
                slots.release()
                raise
            try:
                value: Any = await start(events)
            except BaseException:
                slots.release()
                raise
            for k, step in enumerate(steps):
                value = asyncio.ensure_future(run_step(step, events, previous[k], value))
                in_flight.add(value)
                value.add_done_callback(in_flight.discard)
                previous[k] = value
            task = asyncio.ensure_future(finish(ack, value, acked))
            acked = task
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:  # every batch's steps and ack (a failed step is logged by its ack)
            await asyncio.gather(*list(in_flight), return_exceptions=True)
    finally:
        for task in list(in_flight):
            task.cancel()
        for task in list(in_flight):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
