"""A broker and an Elasticsearch node lost mid-stream: what was lost, what doubled, and the
pause it caused.

    python -m benchmarks.failover [--articles 300] [--kill-at 100]

Starts a 3-broker / 3-node cluster of its own (free ports, data dir
``<NEWS_DATA_DIR>/test-runs/failover-<pid>``, the Maven-resolved dist of ``NEWS_DIST_DIR``), or
uses a running one when ``NEWS_FAILOVER_DATA_DIR`` names the data dir of a ``newspipe up
--brokers 3 --es-nodes 3``. Topics with replication 3 (``min.insync.replicas`` 2), indices with
one replica, one worker, a webhook receiver subscribed to a common word. Articles are paced
onto the raw topic; once ``--kill-at`` are indexed, broker 2 and Elasticsearch node 3 get
SIGKILL. Prints articles sent / indexed / missing, ids doubled in the index and at the
receiver, and the longest gap between two indexed articles (the pause) beside the median gap.
``tests/integration/test_cluster.py`` runs the same scenario and asserts nothing was lost or
doubled (not the pause, which this prints).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(
    os.environ.get("NEWS_CORPUS")
    or next((p for p in (REPO.parent / "shared", REPO.parents[1] / "shared") if p.exists()), REPO)
    / "corpus/reuters21578.jsonl"
)
QUERY = "said"


@dataclass
class FailoverReport:
    sent: int = 0
    indexed: int = 0
    missing: list[str] = field(default_factory=list)
    index_count: int = 0
    posts: int = 0
    alerts_delivered: int = 0
    ledger_alerts: int = 0
    doubled_alert_ids: list[tuple[str, str]] = field(default_factory=list)
    """(subscription, article) pairs that reached the receiver under two alert ids"""
    repeated_posts: int = 0
    """POSTs of an alert id already received (the receiver drops them by idempotency key)"""
    killed: list[str] = field(default_factory=list)
    pause_s: float = 0.0
    median_gap_s: float = 0.0
    elapsed_s: float = 0.0

    def lines(self) -> list[str]:
        return [
            f"sent {self.sent}, indexed {self.indexed}, missing {len(self.missing)}; "
            f"documents in the index {self.index_count}",
            f"killed {', '.join(self.killed)} after the first articles were indexed",
            f"pause: longest gap between two indexed articles {self.pause_s:.1f}s "
            f"(median gap {self.median_gap_s:.2f}s); whole run {self.elapsed_s:.0f}s",
            f"receiver: {self.posts} POSTs, {self.alerts_delivered} distinct alerts "
            f"({self.repeated_posts} repeats of a key), {len(self.doubled_alert_ids)} "
            f"(subscription, article) pairs under two ids; ledger {self.ledger_alerts} alerts",
        ]


class _Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.posts: list[dict] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        with self.server.lock:
            # Standard Webhooks envelope {"type": "alert.fired", "timestamp", "data": alert}
            self.server.posts.append(body.get("data", body) if isinstance(body, dict) else body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def corpus_articles(n: int, run: str) -> list:
    """``n`` short corpus articles, none a duplicate of another (so each must be indexed),
    under fresh ids."""
    from benchmarks.scaling import distinct_articles

    return distinct_articles(n, CORPUS, run)


def cluster_settings(base_dir: Path):
    """Settings of a cluster of the failover's own: free ports, its data dir, the shared dist."""
    from pipeline.runtime.local import free_port_settings
    from pipeline.settings import get_settings

    settings = get_settings()
    dist = settings.dist_dir or settings.data_dir.resolve() / "dist"
    return settings.model_copy(
        update={
            "data_dir": base_dir,
            "dist_dir": dist,
            "kafka_brokers": 3,
            "es_nodes": 3,
            **free_port_settings(3, 3),
        }
    )


def failover(
    runtime,
    workdir: Path,
    n_articles: int = 300,
    kill_at: int = 100,
    rate: float = 25.0,
    timeout_s: float = 420.0,
    log=print,
) -> FailoverReport:
    """Run the scenario on the running cluster of ``runtime``; returns what happened."""
    from elasticsearch import Elasticsearch

    from pipeline.alerts.subscriptions import SubscriptionStore
    from pipeline.cli.demo import start_worker, stop_worker, wait_ready
    from pipeline.infra.kafka import make_producer
    from pipeline.infra.setup import setup
    from pipeline.settings import get_settings, reset_settings
    from pipeline.stages.index import enriched_ids

    run = uuid.uuid4().hex[:8]
    overrides = {
        "NEWS_KAFKA_BOOTSTRAP": runtime.kafka_bootstrap,
        "NEWS_ES_URL": runtime.es_url,
        "NEWS_TOPIC_REPLICATION": "3",
        "NEWS_ES_REPLICAS": "1",
        "NEWS_TOPIC_PREFIX": f"f{run}",
        "NEWS_INDEX_PREFIX": f"f{run}",
        "NEWS_APP_ID": f"failover-{run}",
        "NEWS_DATA_DIR": str(workdir / run),
        "NEWS_WEBHOOK_ALLOW_PRIVATE": "true",
        "NEWS_WEBHOOK_RETRIES": "8",
        # a delivery caught by the lost node (leased, its outcome not recorded) is taken over
        # after the lease; retries back off: durations shrunk to fit the run's wait
        "NEWS_OUTBOX_LEASE_S": "15",
        "NEWS_WEBHOOK_BACKOFF_MAX_S": "5",
        "NEWS_WEBHOOK_BREAKER_COOLDOWN_S": "5",
    }
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    reset_settings()
    settings = get_settings()
    report = FailoverReport()
    receiver = _Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    es = Elasticsearch(
        settings.es_url_list, request_timeout=30, retry_on_timeout=True, max_retries=5
    )
    worker = None
    started = time.monotonic()
    try:
        setup(settings)
        store = SubscriptionStore(settings, es)
        store.add(QUERY, owner="failover", channels=[f"webhook:{receiver.url}"])
        store.close()
        articles = corpus_articles(n_articles, run)
        log_path = workdir / run / "worker.log"
        worker = start_worker(log_path)
        log(f"worker ready in {wait_ready(worker, log_path, timeout_s=300):.0f}s")
        ids = [a.id for a in articles]
        index = settings.index("articles")
        seen: dict[str, float] = {}

        def send() -> None:
            producer = make_producer(settings)
            t0 = time.monotonic()
            for n, article in enumerate(articles):
                producer.send(settings.topic("raw"), key=article.id, value=article)
                time.sleep(max(0.0, t0 + (n + 1) / rate - time.monotonic()))
            producer.flush()
            producer.close()

        sender = threading.Thread(target=send)
        sender.start()
        report.sent = len(articles)
        deadline = time.monotonic() + timeout_s
        while len(seen) < len(ids) and time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError("the worker stopped; see " + str(log_path))
            pending = [i for i in ids if i not in seen]
            try:
                found = enriched_ids(es, index, pending)
            except Exception as exc:
                log(f"mget failed ({type(exc).__name__}); again")
                time.sleep(0.5)
                continue
            now = time.monotonic()
            for article_id in found:
                seen.setdefault(article_id, now)
            if len(seen) >= kill_at and not report.killed:
                for name in ("kafka-2", "elasticsearch-3"):
                    if runtime.kill(name):
                        report.killed.append(name)
                log(f"killed {report.killed} with {len(seen)} of {len(ids)} indexed")
            time.sleep(0.2)
        sender.join()
        report.indexed = len(seen)
        report.missing = [i for i in ids if i not in seen]
        es.indices.refresh(index=index)
        report.index_count = es.count(index=index)["count"]
        times = sorted(seen.values())
        gaps = [b - a for a, b in zip(times, times[1:])]
        if gaps:
            report.pause_s, report.median_gap_s = max(gaps), statistics.median(gaps)
        # alerts: wait until the ledger's alerts have all reached the receiver (or time out)
        alerts_index = settings.index("alerts")
        quiet_until = time.monotonic() + 120
        while time.monotonic() < quiet_until:
            es.indices.refresh(index=alerts_index)
            report.ledger_alerts = es.count(index=alerts_index)["count"]
            with receiver.lock:
                delivered = {p["id"] for p in receiver.posts}
            if report.ledger_alerts and len(delivered) >= report.ledger_alerts:
                break
            time.sleep(1)
        with receiver.lock:
            posts = list(receiver.posts)
        report.posts = len(posts)
        per_id = Counter(p["id"] for p in posts)
        report.alerts_delivered = len(per_id)
        report.repeated_posts = sum(c - 1 for c in per_id.values())
        ids_per_pair: dict[tuple[str, str], set[str]] = {}
        for p in posts:
            ids_per_pair.setdefault((p["subscription_id"], p["article_id"]), set()).add(p["id"])
        report.doubled_alert_ids = [pair for pair, s in ids_per_pair.items() if len(s) > 1]
    finally:
        report.elapsed_s = time.monotonic() - started
        if worker is not None:
            stop_worker(worker)
        receiver.shutdown()
        es.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings()
    return report


def main() -> None:
    import sys

    sys.path.insert(0, str(REPO))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--kill-at", type=int, default=100)
    args = parser.parse_args()
    from pipeline.runtime.local import LocalRuntime, with_shape
    from pipeline.settings import get_settings

    given = os.environ.get("NEWS_FAILOVER_DATA_DIR")
    if given:
        runtime = LocalRuntime(with_shape(get_settings(), Path(given)))
        owned = None
    else:
        base = get_settings().data_dir.resolve() / "test-runs" / f"failover-{os.getpid()}"
        runtime = owned = LocalRuntime(cluster_settings(base))
        t0 = time.monotonic()
        owned.up(timeout=600)
        print(f"cluster up in {time.monotonic() - t0:.0f}s")
    try:
        report = failover(runtime, runtime.data_dir / "failover", args.articles, args.kill_at)
        for line in report.lines():
            print(line)
        print("(on a shared, loaded 2-core machine: the pause includes CPU contention)")
    finally:
        if owned is not None:
            owned.down()
            shutil.rmtree(owned.data_dir, ignore_errors=True)
        else:
            runtime.up(timeout=600)  # the killed nodes come back


if __name__ == "__main__":
    main()
