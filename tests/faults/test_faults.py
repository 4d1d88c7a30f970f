"""The fault suite on the real servers: Elasticsearch down, the broker down, a worker killed
three times, two workers with one killed (rebalance), each during a paced stream with
subscriptions and a webhook receiver on loopback. After the stream settles: every article
indexed, recorded as a duplicate or dead-lettered for a reason of its own; every alert the
indexed articles produce (computed in-process with the same matcher) on the alerts topic, in
the alerts index (delivered) and at the webhook, none missing and none extra. A message may
repeat on the alerts topic or at the webhook only with the same id (at-least-once; receivers
deduplicate by id): the repeats are printed, not asserted away.

Run as its own step: ``pytest tests/faults -m faults`` (it kills and restarts the harness's
own servers, so it skips when the servers are given by NEWS_KAFKA_BOOTSTRAP/NEWS_ES_URL)."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import (
    Stream,
    corpus_articles,
    free_port,
    kill_server,
    restore_servers,
    resumed_after,
    settle_and_check,
    wait_health,
    wait_status,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration]

ARTICLES = 160
RATE = 8.0  # articles per second: a 20 s stream


def _wait_progress(stream: Stream, share: float) -> None:
    while stream.is_alive() and stream.progress < len(stream.articles) * share:
        time.sleep(0.1)


def test_elasticsearch_down_30s(scenario, local_runtime):
    web_port = free_port()
    scenario.start_worker(NEWS_WORKER_WEB_PORT=str(web_port))
    stream = Stream(scenario.settings, corpus_articles(ARTICLES), RATE)
    stream.start()
    _wait_progress(stream, 0.3)
    down_at = time.monotonic()
    kill_server(local_runtime, "elasticsearch")
    # the worker says what it waits for: its health page (503) and `newspipe status`
    health = wait_health(
        web_port, lambda code, body: code == 503 and "Elasticsearch" in body["waiting_for"]
    )
    assert health["last_error"] and isinstance(health["lag"], dict)
    assert "waiting for Elasticsearch" in wait_status(scenario, "waiting for Elasticsearch")
    time.sleep(max(0.0, 30 - (time.monotonic() - down_at) - 20))  # + ~20 s to start again
    took = restore_servers(local_runtime)
    answered = time.time()
    print(
        f"Elasticsearch down for {time.monotonic() - down_at:.0f}s (restart {took:.0f}s); "
        f"the worker stopped waiting {resumed_after(scenario, answered)}s after it answered"
    )
    settle_and_check(scenario, stream)
    assert wait_health(web_port, lambda code, body: code == 200)["waiting_for"] == []


def test_broker_down_20s(scenario, local_runtime):
    scenario.start_worker()
    stream = Stream(scenario.settings, corpus_articles(ARTICLES, skip=500), RATE)
    stream.start()
    _wait_progress(stream, 0.3)
    down_at = time.monotonic()
    kill_server(local_runtime, "kafka")
    time.sleep(max(0.0, 20 - (time.monotonic() - down_at) - 5))  # + ~5 s to start again
    took = restore_servers(local_runtime)
    answered = time.time()
    print(
        f"Kafka down for {time.monotonic() - down_at:.0f}s (restart {took:.0f}s); "
        f"the worker stopped waiting {resumed_after(scenario, answered)}s after it answered"
    )
    settle_and_check(scenario, stream)


def test_worker_sigkill_three_times(scenario):
    worker = scenario.start_worker()
    stream = Stream(scenario.settings, corpus_articles(ARTICLES, skip=1000), RATE)
    stream.start()
    for share in (0.2, 0.45, 0.7):
        _wait_progress(stream, share)
        time.sleep(1.0)  # mid-batch rather than between batches
        worker.kill()
        scenario.restart(worker)
    settle_and_check(scenario, stream)


def test_two_workers_one_killed(scenario):
    first = scenario.start_worker()
    scenario.start_worker()
    stream = Stream(scenario.settings, corpus_articles(ARTICLES, skip=1500), RATE)
    stream.start()
    _wait_progress(stream, 0.4)
    first.kill()  # the survivor takes its partitions after the session timeout
    settle_and_check(scenario, stream)
