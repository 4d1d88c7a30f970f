"""The fault suite's machinery: servers it may kill (the harness's own local runtime, never
servers given by NEWS_KAFKA_BOOTSTRAP/NEWS_ES_URL), workers, a paced stream, a webhook
receiver on loopback, and readers of the output topics and indices.

Every scenario gets fresh topic/index prefixes and restores the servers afterwards."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from pipeline.settings import Settings, get_settings, reset_settings
from tests.integration.conftest import REPO, Worker

QUERIES = ("oil", "bank", "trade", '"interest rates"')
"""keyword subscriptions that match a good share of the Reuters corpus (no entity resolver
involved, so the in-process matcher needs no registry)"""


# --- servers ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def local_runtime(_servers):
    """The LocalRuntime running the harness's servers; skip when they are someone else's."""
    if getattr(_servers, "runtime", None) is None:
        pytest.skip(
            "fault tests kill servers: they need the harness's own local runtime "
            "(unset NEWS_KAFKA_BOOTSTRAP/NEWS_ES_URL; no Docker)"
        )
    return _servers.runtime


def kill_server(runtime, name: str) -> None:
    """SIGKILL a server of the local runtime (its whole process group: launcher and JVM)."""
    (status,) = [s for s in runtime.status() if s.name == name]
    assert status.pid, f"{name} is not running"
    try:
        os.killpg(os.getpgid(status.pid), signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 30
    while any(s.running for s in runtime.status() if s.name == name):
        assert time.monotonic() < deadline, f"{name} survived SIGKILL"
        time.sleep(0.2)


def resumed_after(scenario, since: float, timeout_s: float = 120.0) -> float | None:
    """Seconds from ``since`` (wall clock) until no worker waits for a server any more, from
    the workers' status files (a figure to print, not to assert)."""
    from pipeline.runtime.health import read_statuses

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        statuses = [
            s
            for i in range(len(scenario.workers))
            for s in read_statuses(scenario.workdir / f"worker-{i}")
        ]
        if statuses and not any(s.get("waiting_for") for s in statuses):
            written = min(s.get("written_at", time.time()) for s in statuses)
            return round(max(0.0, written - since), 1)
        time.sleep(0.2)
    return None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(port: int, predicate, timeout_s: float = 120.0) -> dict:
    """The worker's /health/ answer once ``predicate(status, body)`` holds (bounded)."""
    import httpx

    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/health/", timeout=5)
            last = (response.status_code, response.json())
            if predicate(*last):
                return last[1]
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    pytest.fail(f"worker health never matched; last answer: {last}")


def wait_status(scenario, text: str, timeout_s: float = 15.0) -> str:
    """``newspipe status`` for the first worker's data dir once it shows ``text`` (bounded):
    the worker writes its status file once a second, so it may lag the live health page."""
    import subprocess
    import sys

    env = dict(scenario.env, NEWS_DATA_DIR=str(scenario.workdir / "worker-0"))
    deadline = time.monotonic() + timeout_s
    while True:
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "status"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        shown = done.stdout + done.stderr
        if text in shown:
            return shown
        if time.monotonic() > deadline:
            pytest.fail(f"newspipe status never showed {text!r}; last output:\n{shown}")
        time.sleep(0.5)


def restore_servers(runtime) -> float:
    """Start whatever is down; returns the seconds it took until both answer."""
    started = time.monotonic()
    runtime.up(timeout=300)
    return time.monotonic() - started


# --- the webhook receiver --------------------------------------------------------------------


class Receiver:
    """An HTTP server on loopback recording each alert id POSTed to it (a repeat has the same
    id and ``webhook-id``: receivers deduplicate by it)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        received = self.ids

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    message = json.loads(body)
                    alert = message.get("data", message)  # Standard Webhooks shape, or bare
                    received.append(alert["id"])
                except (ValueError, KeyError, AttributeError):
                    pass
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- topics ----------------------------------------------------------------------------------


class TopicReader:
    """Accumulates every message of a topic (no group: reads all partitions from the start)."""

    def __init__(self, settings: Settings, name: str) -> None:
        from pipeline.infra.kafka import make_consumer

        self.consumer = make_consumer(settings.topic(name), settings=settings)
        self.values: list[bytes] = []

    def read(self) -> list[bytes]:
        while True:
            batch = self.consumer.poll(timeout_ms=500)
            if not batch:
                return self.values
            for records in batch.values():
                self.values += [r.value for r in records]

    def close(self) -> None:
        self.consumer.close()


# --- the paced stream ------------------------------------------------------------------------


def corpus_articles(count: int, skip: int = 0):
    """The first ``count`` usable Reuters articles (after ``skip``), ids set."""
    from pipeline.sources.ingest import article_from_object

    corpus = Path(os.environ.get("NEWS_CORPUS", "/work/shared/corpus/reuters21578.jsonl"))
    if not corpus.exists():
        pytest.skip(f"corpus {corpus} not found (NEWS_CORPUS)")
    out = []
    with corpus.open("rb") as lines:
        for n, line in enumerate(lines):
            if n < skip:
                continue
            item = article_from_object(json.loads(line), f"corpus:{n}", line)
            if hasattr(item, "body") and len(item.body) > 200:
                out.append(item)
            if len(out) == count:
                break
    return out


class Stream(threading.Thread):
    """Publishes articles to the raw topic at ``rate`` per second; sends again whatever the
    broker did not acknowledge (ids are deterministic: a resend is the same article)."""

    def __init__(self, settings: Settings, articles, rate: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.articles, self.rate = settings, articles, rate
        self.acked: set[str] = set()
        self.error: BaseException | None = None
        self.progress = 0

    def run(self) -> None:
        from pipeline.infra.kafka import make_producer

        producer = make_producer(self.settings.model_copy(update={"producer_deadline_s": 120}))
        try:
            pending = list(self.articles)
            for _attempt in range(5):
                futures = []
                for article in pending:
                    futures.append(
                        (
                            article,
                            producer.send(
                                self.settings.topic("raw"), key=article.id, value=article
                            ),
                        )
                    )
                    self.progress += 1
                    time.sleep(1.0 / self.rate)
                try:
                    producer.flush(timeout=120)
                except Exception:
                    pass
                for article, future in futures:
                    if future.succeeded():
                        self.acked.add(article.id)
                pending = [a for a, f in futures if not f.succeeded()]
                if not pending:
                    return
            raise AssertionError(f"{len(pending)} articles never acknowledged")
        except BaseException as error:
            self.error = error
        finally:
            producer.close(timeout=5)


# --- a scenario ------------------------------------------------------------------------------


@dataclass
class Scenario:
    settings: Settings
    env: dict
    workdir: Path
    es: object
    receiver: Receiver
    subscriptions: list = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)

    def start_worker(self, **extra_env: str) -> Worker:
        data_dir = self.workdir / f"worker-{len(self.workers)}"
        env = dict(self.env, NEWS_DATA_DIR=str(data_dir), **extra_env)
        worker = Worker(env=env, log_path=self.workdir / f"worker-{len(self.workers)}.log")
        worker.start()
        worker.wait_ready(self.settings.model_copy(update={"data_dir": data_dir}))
        self.workers.append(worker)
        return worker

    def restart(self, worker: Worker) -> None:
        worker.start()
        index = self.workers.index(worker)
        worker.wait_ready(
            self.settings.model_copy(update={"data_dir": self.workdir / f"worker-{index}"})
        )

    def logs(self) -> str:
        return "\n".join(f"--- {w.log_path.name}\n{w.log_tail(30)}" for w in self.workers)


@pytest.fixture
def scenario(local_runtime, kafka_bootstrap, es_url, es_client, tmp_path):
    """Fresh topics and indices, the subscriptions (each with a webhook to a loopback
    receiver), and nothing else running; afterwards workers stopped and servers restored."""
    from pipeline.alerts.subscriptions import SubscriptionStore
    from pipeline.infra.setup import setup

    run = uuid.uuid4().hex[:8]
    env = dict(
        os.environ,
        NEWS_KAFKA_BOOTSTRAP=kafka_bootstrap,
        NEWS_ES_URL=es_url,
        NEWS_TOPIC_PREFIX=f"f{run}",
        NEWS_INDEX_PREFIX=f"f{run}",
        NEWS_APP_ID=f"newspipe-faults-{run}",
        NEWS_WEBHOOK_ALLOW_PRIVATE="true",
        NEWS_SECRETS_KEY=Fernet.generate_key().decode(),  # the test and every worker unseal
        NEWS_BATCH_MAX="16",
    )
    saved = dict(os.environ)
    os.environ.update(env)
    reset_settings()
    settings = get_settings()
    setup(settings)
    receiver = Receiver()
    store = SubscriptionStore(settings, es_client)
    subscriptions = [
        store.add(q, owner="faults", channels=[f"webhook:{receiver.url}"]) for q in QUERIES
    ]
    store.close()
    state = Scenario(settings, env, tmp_path, es_client, receiver, subscriptions)
    try:
        yield state
    finally:
        for worker in state.workers:
            worker.stop()
        receiver.close()
        restore_servers(local_runtime)
        try:
            es_client.options(ignore_status=404).indices.delete(index=f"f{run}-*")
        except Exception:
            pass
        os.environ.clear()
        os.environ.update(saved)
        reset_settings()


# --- settling and the promises ---------------------------------------------------------------


def expected_alerts(scenario: Scenario, indexed_docs: list[dict]) -> set[str]:
    """The alerts the indexed articles produce without faults: the same matcher, in-process."""
    from pipeline.alerts.delivery import alert_id
    from pipeline.alerts.matcher import ArticleView, SubscriptionIndex
    from schemas import EnrichedArticle

    index = SubscriptionIndex()
    for subscription in scenario.subscriptions:
        index.add(subscription)
    fields = EnrichedArticle.model_fields
    expected = set()
    for doc in indexed_docs:
        article = EnrichedArticle.model_validate({k: v for k, v in doc.items() if k in fields})
        for subscription, _ in index.match(ArticleView.from_article(article)):
            expected.add(alert_id(subscription.id, article.id))
    return expected


TRANSIENT_WORDS = (
    "timeout",
    "timed out",
    "connection",
    "unavailable",
    "no brokers",
    "not leader",
    "busy",
    "refused",
)


def settle_and_check(scenario: Scenario, stream: Stream, timeout_s: float = 240.0) -> dict:
    """Wait until every article is accounted for and every expected alert has arrived
    everywhere (or the time is up), then assert the promises. Returns figures to print."""
    from schemas import Alert, DeadLetter, DuplicateRecord

    stream.join(timeout=600)
    assert stream.error is None, f"stream failed: {stream.error}"
    sent = stream.acked
    settings, es = scenario.settings, scenario.es
    readers = {n: TopicReader(settings, n) for n in ("duplicates", "deadletter", "alerts")}
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            es.indices.refresh(index=settings.index("articles"))
            es.indices.refresh(index=settings.index("alerts"))
            docs = [  # enriched documents only: the clean step indexes the text first
                h["_source"]
                for h in es.search(
                    index=settings.index("articles"), size=10_000, query={"match_all": {}}
                )["hits"]["hits"]
                if h["_source"].get("enriched", True)
            ]
            indexed = {d["id"] for d in docs}
            duplicates = {
                DuplicateRecord.model_validate_json(v).article_id
                for v in readers["duplicates"].read()
            }
            letters = [DeadLetter.model_validate_json(v) for v in readers["deadletter"].read()]
            dead = {letter.key for letter in letters}
            missing = sent - indexed - duplicates - dead
            topic_alerts = Counter(
                Alert.model_validate_json(v).id for v in readers["alerts"].read()
            )
            ledger = {
                h["_id"]: h["_source"]["status"]
                for h in es.search(
                    index=settings.index("alerts"), size=10_000, query={"match_all": {}}
                )["hits"]["hits"]
            }
            webhook = Counter(scenario.receiver.ids)
            expected = expected_alerts(scenario, docs) if not missing else set()
            done = (
                not missing
                and expected <= set(topic_alerts)
                and expected <= set(ledger)
                and expected <= set(webhook)
                and all(ledger[i] == "delivered" for i in expected)
            )
            if done or time.monotonic() > deadline:
                break
            time.sleep(1.0)
    finally:
        for reader in readers.values():
            reader.close()
    figures = {
        "sent": len(sent),
        "indexed": len(indexed & sent),
        "duplicates": len(duplicates & sent),
        "dead-lettered": len(dead & sent),
        "alerts expected": len(expected),
        "repeats on the alerts topic (same id)": sum(c - 1 for c in topic_alerts.values()),
        "repeats at the webhook (same id)": sum(c - 1 for c in webhook.values()),
    }
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    assert not missing, f"{len(missing)} articles lost: {sorted(missing)[:10]}\n{scenario.logs()}"
    assert not duplicates & {d["id"] for d in docs}, "an indexed article was also a duplicate"
    transient = [
        letter
        for letter in letters
        if any(w in (letter.error + letter.error_type).lower() for w in TRANSIENT_WORDS)
    ]
    assert not transient, (
        f"dead-lettered for a server fault: {[(l.stage, l.error[:200]) for l in transient[:5]]}"
    )
    assert expected, "the stream produced no alerts to check"
    assert set(topic_alerts) == expected, _diff("alerts topic", expected, set(topic_alerts))
    assert set(ledger) == expected, _diff("alerts index", expected, set(ledger))
    assert all(status == "delivered" for status in ledger.values())
    assert set(webhook) == expected, _diff("webhook", expected, set(webhook))
    return figures


def _diff(where: str, expected: set, actual: set) -> str:
    return (
        f"{where}: {len(expected - actual)} expected alerts missing, "
        f"{len(actual - expected)} unexpected"
    )
