"""Work a worker does in the background, off every article's path: a call at a time over what
was offered meanwhile (:class:`InBackground`), for the articles' texts before their NER
(:class:`EarlyIndex`) and the articles index's refresh after the writes
(:class:`ArticlesRefresh`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class TextIndexer(Protocol):
    """What :class:`EarlyIndex` writes through (:meth:`Pipeline.index_clean`)."""

    def index_clean(self, articles: list) -> int: ...


class InBackground:
    """``work`` over what was offered, in a thread, one call at a time, never waited for: what
    is offered while a call runs goes in the next one (a backlog makes larger calls, not more
    of them). Calls start at least ``spacing_s`` apart (what is offered meanwhile joins the
    next). Best effort: a failed call is logged (``failed(items)`` says what was lost) and
    left; ``then`` runs on the event loop after each call that succeeded."""

    def __init__(
        self,
        work: Callable[[list], object],
        failed: Callable[[list], str],
        then: Callable[[], None] | None = None,
        spacing_s: float = 0.0,
    ) -> None:
        self.work = work
        self.failed = failed
        self.then = then
        self.spacing_s = spacing_s
        self.pending: list = []
        self.task: asyncio.Task | None = None
        self._started = -float("inf")  # loop time of the last call's start

    def offer(self, items: list) -> None:
        self.pending.extend(items)
        if self.pending and (self.task is None or self.task.done()):
            self.task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self.pending:
            early = self._started + self.spacing_s - loop.time()
            if early > 0:
                await asyncio.sleep(early)
            items, self.pending = self.pending, []
            self._started = loop.time()
            try:
                await asyncio.to_thread(self.work, items)
            except Exception as exc:
                log.warning("%s: %s", self.failed(items), exc)
                continue
            if self.then is not None:
                self.then()


class EarlyIndex(InBackground):
    """New articles' texts into the articles index before their NER (``NEWS_INDEX_CLEAN``), in
    the background (:class:`InBackground`: the clean step never waits for it). Best effort:
    the enriched documents are the ones that must be written (by the enrich agent, retried
    until they are)."""

    def __init__(self, pipeline: TextIndexer, then: Callable[[], None] | None = None) -> None:
        super().__init__(
            pipeline.index_clean,
            lambda articles: f"clean: {len(articles)} article(s) not indexed before enrichment",
            then,
        )


class ArticlesRefresh(InBackground):
    """The articles index refreshed after this worker wrote to it, in the background
    (``NEWS_ARTICLES_REFRESH_ON_WRITE``): one refresh at a time, at most one per
    ``NEWS_ARTICLES_REFRESH_S``, writes that land meanwhile sharing the next. A refresh costs
    Elasticsearch about as much whatever it holds (a new segment of every field, merged
    later), so the spacing keeps their number that of the index's own clock at most, while an
    article written after a pause is searchable one refresh after its bulk instead of at the
    clock's next tick (docs/performance.md). Never on an article's path: no step waits for it.
    A failed refresh is logged; the clock's refresh follows."""

    def __init__(self, refresh: Callable[[], object], spacing_s: float) -> None:
        super().__init__(
            lambda _: refresh(),
            lambda _: "index: articles index not refreshed after a write",
            spacing_s=spacing_s,
        )

    def written(self) -> None:
        self.offer([None])
