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

Under backlog, the articles waiting are not all equally awaited: :class:`Lookahead` lets the
enrich agent read further ahead than one batch and take first the items a predicate calls
urgent (those that could fire an alert after the NER), with a bound on how long the others
are passed over and never one version of a key before an earlier one.

Delivery stays at-least-once: acks are off on the stream and each event is acked only after
the agent body finished with its batch (as ``take_events`` does); events taken out of order
are acked in the order they were read (:class:`InOrderAcks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
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


class _Entry:
    __slots__ = ("arrived", "item", "key", "size", "urgent")

    def __init__(self, item: Any, urgent: bool, key: Any, size: int, arrived: float) -> None:
        self.item, self.urgent, self.key, self.size, self.arrived = item, urgent, key, size, arrived


class FirstThings:
    """How :class:`Lookahead` orders what it read: ``urgent(item)`` tells the items to take
    first; items passed over for ``max_defer_s`` or more get at least half of each batch;
    items with the same ``key(item)`` keep their order (None: an item no other shares)."""

    def __init__(
        self,
        urgent: Callable[[Any], bool],
        max_defer_s: float,
        key: Callable[[Any], Any] = lambda item: None,
    ) -> None:
        self.urgent, self.max_defer_s, self.key = urgent, max_defer_s, key


class Lookahead:
    """A read-ahead of up to ``capacity`` items (and about ``capacity_bytes`` of their sizes)
    from which each batch takes, in turn: the items passed over for ``max_defer_s`` or more,
    oldest first, up to half the batch; the urgent items; then the rest, each in arrival order.
    An item never goes before an earlier one with the same key, and a batch's items keep their
    arrival order. While the stream keeps up, a batch takes all that is there and nothing is
    reordered. Under backlog, urgent items skip the queue; if the backlog lasts, the others
    wait longer, and still move with at least half of each batch."""

    def __init__(
        self,
        capacity: int,
        first: FirstThings,
        size: Callable[[Any], int] = lambda item: 0,
        capacity_bytes: int | None = None,
    ) -> None:
        self.capacity = max(1, capacity)
        self.capacity_bytes = capacity_bytes
        self.first = first
        self.size = size
        self.entries: list[_Entry] = []
        self.bytes = 0
        self.end: BaseException | None = None
        self._changed = asyncio.Event()
        self._taken = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def _room(self) -> bool:
        if len(self.entries) >= self.capacity:
            return False
        return self.capacity_bytes is None or not self.entries or self.bytes < self.capacity_bytes

    async def put(self, item: Any) -> None:
        while not self._room():
            self._taken.clear()
            await self._taken.wait()
        try:
            urgent = bool(self.first.urgent(item))
        except Exception:  # never the item's fault: it goes in order
            log.debug("could not tell whether an item is urgent", exc_info=True)
            urgent = False
        size = self.size(item)
        self.entries.append(_Entry(item, urgent, self.first.key(item), size, self._loop.time()))
        self.bytes += size
        self._changed.set()

    async def finish(self, end: BaseException) -> None:
        """The source ended (``StopAsyncIteration``) or failed."""
        self.end = end
        self._changed.set()

    def drop(self, which: Callable[[Any], bool]) -> int:
        """Forget the items ``which`` selects (those of partitions this worker no longer has:
        their new owner reads them again from the last commit); returns how many."""
        kept = [e for e in self.entries if not which(e.item)]
        dropped = len(self.entries) - len(kept)
        if dropped:
            self.entries = kept
            self.bytes = sum(e.size for e in kept)
            self._taken.set()
        return dropped

    def _full(self, max_: int, max_bytes: int | None) -> bool:
        return len(self.entries) >= max_ or (max_bytes is not None and self.bytes >= max_bytes)

    async def next_batch(
        self, max_: int, linger_s: float, max_bytes: int | None = None
    ) -> tuple[list[Any], BaseException | None]:
        """Like :func:`next_batch`: wait for one item, then for a full batch at most
        ``linger_s``; then the batch (:meth:`select`) and, when it took the last item the
        source gave, the source's end."""
        while not self.entries and self.end is None:
            self._changed.clear()
            await self._changed.wait()
        deadline = self._loop.time() + linger_s
        while self.end is None and not self._full(max_, max_bytes):
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        batch = self.select(max_, max_bytes)
        return batch, (self.end if not self.entries else None)

    def select(self, max_: int, max_bytes: int | None = None) -> list[Any]:
        """Take a batch out of the read-ahead (see the class)."""
        entries = self.entries
        if not entries:
            return []
        aged_before = self._loop.time() - self.first.max_defer_s
        chosen: set[int] = set()
        total = 0
        earlier: dict[Any, list[int]] = {}
        for i, entry in enumerate(entries):
            if entry.key is not None:
                earlier.setdefault(entry.key, []).append(i)

        def free(i: int) -> bool:  # no earlier entry with the same key is left behind
            key = entries[i].key
            return key is None or all(j in chosen for j in earlier[key] if j < i)

        # arrival order is age order: the aged entries are the first ones
        aged = [i for i, e in enumerate(entries) if e.arrived <= aged_before]
        passes = (
            (aged, (max_ + 1) // 2),
            ((i for i, e in enumerate(entries) if e.urgent), max_),
            (range(len(entries)), max_),
        )
        full = False
        for candidates, most in passes:
            for i in candidates:
                if len(chosen) >= most:
                    break
                if i in chosen or not free(i):
                    continue
                chosen.add(i)
                total += entries[i].size
                if len(chosen) >= max_ or (max_bytes is not None and total >= max_bytes):
                    full = True
                    break
            if full:
                break
        self.entries = [e for i, e in enumerate(entries) if i not in chosen]
        self.bytes -= total
        self._taken.set()
        return [entries[i].item for i in sorted(chosen)]


class _Queued:
    """The read-ahead of :func:`batches_of` in arrival order: a queue of ``max_`` items."""

    def __init__(self, max_: int, size: Callable[[Any], int]) -> None:
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=max(1, max_))
        self.size = size

    async def put(self, item: Any) -> None:
        await self.queue.put(item)

    async def finish(self, end: BaseException) -> None:
        await self.queue.put(_Failed(end))

    async def next_batch(
        self, max_: int, linger_s: float, max_bytes: int | None = None
    ) -> tuple[list[Any], BaseException | None]:
        return await next_batch(self.queue, max_, linger_s, max_bytes, self.size)


async def batches_of(
    source: AsyncIterator[Any],
    max_: int,
    linger_s: float,
    busy_linger_s: float | None = None,
    max_bytes: int | None = None,
    size: Callable[[Any], int] = len,
    lookahead: Lookahead | None = None,
) -> AsyncIterator[list[Any]]:
    """Batches (:func:`next_batch`) of the items of ``source``, read ahead by a background task
    into a queue of ``max_`` items; a failure of ``source`` is raised after the items read
    before it were yielded. The reader stops when the consumer does. ``busy_linger_s``: the
    wait under a steady stream (:class:`Arrivals`; None: always ``linger_s``); ``max_bytes``
    and ``size``: a batch ends once its items' sizes reach ``max_bytes``. With ``lookahead``,
    the reader reads into it instead, and batches take its urgent items first."""
    ahead: _Queued | Lookahead = lookahead if lookahead is not None else _Queued(max_, size)
    arrivals = Arrivals()
    loop = asyncio.get_running_loop()

    async def read() -> None:
        try:
            async for item in source:
                arrivals.seen(loop.time())
                await ahead.put(item)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            await ahead.finish(exc)
            return
        await ahead.finish(StopAsyncIteration())

    reader = asyncio.ensure_future(read())
    try:
        while True:
            wait = linger_s
            if busy_linger_s is not None:
                wait = arrivals.linger(linger_s, max(linger_s, busy_linger_s))
            batch, end = await ahead.next_batch(max_, wait, max_bytes)
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
    first: FirstThings | None = None,
    lookahead: int = 0,
    lookahead_bytes: int | None = None,
    revocations: Revocations | None = None,
) -> AsyncIterator[tuple[Sequence[Any], Callable[[], Awaitable[None]]]]:
    """Like :func:`take_batches`, but each batch comes with its ``ack``: the consumer acks a
    batch itself when it is done with it, so it can take the next batch before (a batch never
    acked is redelivered). With ``first`` (:class:`FirstThings` over events), up to
    ``lookahead`` events (about ``lookahead_bytes``) are read ahead and urgent ones taken
    first (:class:`Lookahead`); the events are then acked in the order they were read, per
    partition (:class:`InOrderAcks`), and the events read ahead of partitions that
    ``revocations`` reports taken away are dropped, as Faust drops its own buffers then."""
    stream.enable_acks = False
    ahead = acks = None
    if first is not None:
        ahead = Lookahead(max(max_, lookahead), first, event_bytes, lookahead_bytes)
        acks = InOrderAcks(stream)

    def stop_listening() -> None:
        return None

    if revocations is not None and ahead is not None and acks is not None:

        def revoked(tps: Collection[Any]) -> None:
            dropped = ahead.drop(lambda event: event_partition(event) in tps)
            acks.forget(tps)
            if dropped:
                log.info("dropped %d events read ahead of revoked partitions", dropped)

        stop_listening = revocations.listen(revoked)

    async def read():
        async for event in stream.events():
            if acks is not None:
                acks.read(event)
            yield event

    def acker(events: Sequence[Any]) -> Callable[[], Awaitable[None]]:
        if acks is not None:
            return acks.acker(events)

        async def ack() -> None:
            for event in events:
                await stream.ack(event)

        return ack

    try:
        async for events in batches_of(
            read(), max_, linger_s, busy_linger_s, max_bytes, event_bytes, ahead
        ):
            yield events, acker(events)
    finally:
        stop_listening()


class Revocations:
    """Tells the read-aheads of :func:`take_batches_unacked` which partitions a rebalance took
    from this worker (the worker calls :meth:`revoked` from Faust's ``on_partitions_revoked``)."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[Collection[Any]], None]] = []

    def listen(self, listener: Callable[[Collection[Any]], None]) -> Callable[[], None]:
        """Call ``listener(partitions)`` on each revocation; returns the call that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def revoked(self, partitions: Collection[Any]) -> None:
        for listener in list(self._listeners):
            listener(set(partitions))


def event_partition(event) -> Any:
    """A Faust event's topic partition (None for anything else)."""
    return getattr(getattr(event, "message", None), "tp", None)


def event_key(event) -> Any:
    """A Faust event's message key (None for anything else)."""
    return getattr(getattr(event, "message", None), "key", None)


class InOrderAcks:
    """Acks a stream's events in the order they were read, per partition: an event done before
    an earlier one of its partition is acked with it. Faust (0.15) commits past an offset that
    is not acked yet when the offsets after it are (``Consumer._new_offset`` skips a gap of one
    after the committed offset, and any gap before the first commit), so events taken out of
    order (:class:`Lookahead`) must not be acked out of order."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.pending: dict[Any, deque] = {}
        """partition -> its events read and not acked yet, in the order read"""
        self.unacked: set[int] = set()
        """ids of the events in ``pending`` (each alive there, so no id is reused meanwhile)"""
        self.done: set[int] = set()

    def read(self, event) -> None:
        self.pending.setdefault(event_partition(event), deque()).append(event)
        self.unacked.add(id(event))

    def forget(self, partitions: Collection[Any]) -> None:
        """Partitions revoked: their events are no longer acked (Faust would ignore the acks;
        whoever gets the partition reads from its last commit)."""
        for tp in partitions:
            for event in self.pending.pop(tp, ()):
                self.unacked.discard(id(event))
                self.done.discard(id(event))

    def acker(self, events: Sequence[Any]) -> Callable[[], Awaitable[None]]:
        async def ack() -> None:
            self.done.update(id(e) for e in events if id(e) in self.unacked)
            for tp in {event_partition(e) for e in events}:
                waiting = self.pending.get(tp)
                while waiting and id(waiting[0]) in self.done:
                    event = waiting.popleft()
                    self.unacked.discard(id(event))
                    self.done.discard(id(event))
                    await self.stream.ack(event)

        return ack


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
