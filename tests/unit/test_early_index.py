"""The worker's background writer of articles' texts before their NER (NEWS_INDEX_CLEAN): the
clean step never waits for it, one bulk is in flight at a time, what is offered meanwhile goes
in the next one, and a failed bulk is logged and left (the enriched documents follow)."""

from __future__ import annotations

import asyncio
import threading

from pipeline.stream.worker import EarlyIndex


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
