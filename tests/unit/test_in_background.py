"""The worker's background calls (``InBackground``): the step that offers never waits, one call
runs at a time, what is offered meanwhile goes in the next one, and a failed call is logged and
left. Used for the articles' texts before their NER (``EarlyIndex``, NEWS_INDEX_CLEAN) and for the
articles index's refresh after each write (``ArticlesRefresh``)."""

from __future__ import annotations

import asyncio
import threading
import time

from pipeline.stream.background import ArticlesRefresh, EarlyIndex, InBackground


class Recorder:
    """Stands in for the Pipeline's ``index_clean``: records each bulk, the first one held
    until released, the second one failing."""

    def __init__(self) -> None:
        self.bulks: list[list[str]] = []
        self.release = threading.Event()

    def index_clean(self, articles: list[str]) -> int:
        self.bulks.append(list(articles))
        if len(self.bulks) == 1:
            self.release.wait(5)
        if len(self.bulks) == 2:
            raise ConnectionError("node away")
        return 0


def test_one_bulk_at_a_time_with_what_came_meanwhile_and_failures_left(caplog):
    async def scenario(recorder: Recorder) -> None:
        early = EarlyIndex(recorder)
        early.offer(["a1"])
        await asyncio.sleep(0.05)  # the first bulk is in flight, held
        early.offer(["a2", "a3"])
        early.offer(["a4"])
        assert recorder.bulks == [["a1"]]
        recorder.release.set()
        await early.task
        early.offer(["a5"])  # after a failed bulk, the next offer is written
        await early.task
        early.offer([])
        assert early.task.done()

    recorder = Recorder()
    asyncio.run(scenario(recorder))
    assert recorder.bulks == [["a1"], ["a2", "a3", "a4"], ["a5"]]
    assert "3 article(s) not indexed before enrichment: node away" in caplog.text


def test_then_follows_each_call_that_succeeded():
    calls: list[list[int]] = []
    followed: list[int] = []

    def work(items: list[int]) -> None:
        calls.append(items)
        if items == [2]:
            raise TimeoutError("slow node")

    async def scenario() -> None:
        background = InBackground(
            work, lambda items: f"{len(items)} lost", then=lambda: followed.append(len(calls))
        )
        background.offer([1])
        await background.task
        background.offer([2])
        await background.task
        background.offer([3])
        await background.task

    asyncio.run(scenario())
    assert calls == [[1], [2], [3]]
    assert followed == [1, 3]  # not after the failed call


def test_refreshes_one_at_a_time_writes_meanwhile_sharing_the_next():
    """Five writes while the first refresh runs make one refresh more, not five."""
    refreshes: list[float] = []
    release = threading.Event()

    def refresh() -> None:
        refreshes.append(1.0)
        if len(refreshes) == 1:
            release.wait(5)

    async def scenario() -> None:
        articles = ArticlesRefresh(refresh, spacing_s=0.0)
        articles.written()
        await asyncio.sleep(0.05)
        for _ in range(5):
            articles.written()
        release.set()
        await articles.task
        assert len(refreshes) == 2
        articles.written()
        await articles.task

    asyncio.run(scenario())
    assert len(refreshes) == 3


def test_calls_start_spacing_apart_and_what_comes_meanwhile_joins_the_next():
    starts: list[float] = []
    calls: list[list[int]] = []

    def work(items: list[int]) -> None:
        starts.append(time.monotonic())
        calls.append(items)

    async def scenario() -> None:
        background = InBackground(work, lambda items: "lost", spacing_s=0.3)
        background.offer([1])  # the first call starts at once
        await asyncio.sleep(0.05)
        background.offer([2])
        await asyncio.sleep(0.05)
        background.offer([3])
        await background.task

    asyncio.run(scenario())
    assert calls == [[1], [2, 3]]
    assert starts[1] - starts[0] >= 0.29


def test_the_articles_clock_is_a_backstop_while_the_writers_refresh():
    from pipeline.infra.es import ARTICLES_CLOCK_BACKSTOP_S, dynamic_settings
    from pipeline.settings import Settings

    on = Settings(_env_file=None, articles_refresh_s=0.5)
    off = Settings(_env_file=None, articles_refresh_s=0.5, articles_refresh_on_write=False)
    slow = Settings(_env_file=None, articles_refresh_s=3600)
    assert dynamic_settings(on, "articles") == {
        "refresh_interval": f"{round(ARTICLES_CLOCK_BACKSTOP_S * 1000)}ms"
    }
    assert dynamic_settings(off, "articles") == {"refresh_interval": "500ms"}
    assert dynamic_settings(slow, "articles") == {"refresh_interval": "3600000ms"}
