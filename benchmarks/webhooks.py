"""Webhook isolation: p99 ingest→webhook latency at a healthy receiver, without and with a
hanging receiver subscribed to the same alerts, in one run.

    python -m benchmarks.webhooks [CORPUS] [--rate 5] [--seconds 20] [--query QUERY]

Uses NEWS_KAFKA_BOOTSTRAP / NEWS_ES_URL (or starts the local runtime), fresh prefixes, one
Faust worker, two loopback receivers (allowed through NEWS_WEBHOOK_ALLOW_TARGETS): a healthy
one, and one that never answers (the sender times out, NEWS_WEBHOOK_TIMEOUT_S). Phase 1 paces
corpus articles with only the healthy subscription; phase 2 adds a subscription with the same
query whose webhook hangs, and paces new articles. Latency is the time from the article's
``ingested_at`` to the healthy receiver getting the POST. Figures only, no asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchmarks import DEFAULT_CORPUS

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class Receiver:
    def __init__(self, hang: bool):
        self.latencies: dict[str, float] = {}  # webhook-id -> seconds since ingest
        self.matching: dict[str, float] = {}  # webhook-id -> ingest to alert (the pipeline's part)
        self.stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hang:
                    outer.stop.wait()
                    return
                alert = json.loads(body)["data"]
                ingested = datetime.fromisoformat(alert["ingested_at"]).timestamp()
                outer.latencies.setdefault(self.headers["webhook-id"], time.time() - ingested)
                outer.matching.setdefault(
                    self.headers["webhook-id"], (alert["latency_ms"] or 0) / 1000
                )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", default=str(DEFAULT_CORPUS))
    parser.add_argument("--rate", type=float, default=5.0, help="articles per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--query", default="oil OR trade OR bank OR dividend OR profit OR shares")
    args = parser.parse_args()

    healthy, hanging = Receiver(hang=False), Receiver(hang=True)
    run = uuid.uuid4().hex[:6]
    os.environ.update(
        NEWS_TOPIC_PREFIX=f"bwh{run}",
        NEWS_INDEX_PREFIX=f"bwh{run}",
        NEWS_APP_ID=f"bwh{run}",
        NEWS_WEBHOOK_ALLOW_TARGETS=f"127.0.0.1:{healthy.port},127.0.0.1:{hanging.port}",
    )
    from pipeline.alerts.subscriptions import SubscriptionStore
    from pipeline.cli.demo import start_worker, stop_worker, wait_ready
    from pipeline.infra.kafka import make_producer
    from pipeline.infra.setup import setup
    from pipeline.runtime.local import LocalRuntime
    from pipeline.settings import get_settings
    from pipeline.sources.ingest import Rejected, iter_inputs
    from pipeline.stream.process import Pipeline
    from schemas.models import utcnow

    settings = get_settings()
    if "NEWS_KAFKA_BOOTSTRAP" not in os.environ:
        LocalRuntime(settings).up()
    setup(settings)
    pipeline = Pipeline(settings)
    store = SubscriptionStore(settings, pipeline.es)
    store.create(args.query, owner="healthy", webhooks=[healthy.url()])
    log_path = settings.data_dir / "logs" / f"bench-webhooks-{run}.log"
    worker = start_worker(log_path)
    articles = (a for a in iter_inputs([Path(args.corpus)]) if not isinstance(a, Rejected))
    producer = make_producer(settings)

    def pace() -> set[str]:
        before = set(healthy.latencies)
        count = int(args.rate * args.seconds)
        started = time.monotonic()
        for n in range(count):
            article = next(articles)
            producer.send(
                settings.topic("raw"),
                key=article.id,
                value=article.model_copy(update={"ingested_at": utcnow()}),
            )
            producer.flush()
            time.sleep(max(0.0, started + (n + 1) / args.rate - time.monotonic()))
        quiet = time.monotonic()  # wait until the healthy receiver has been quiet for 5 s
        seen = len(healthy.latencies)
        while time.monotonic() - quiet < 5:
            time.sleep(0.25)
            if len(healthy.latencies) != seen:
                seen, quiet = len(healthy.latencies), time.monotonic()
        return set(healthy.latencies) - before

    try:
        print(
            f"worker ready in {wait_ready(worker, log_path):.1f}s; query {args.query!r}; "
            f"{args.rate}/s for {args.seconds:.0f}s per phase; webhook timeout {settings.webhook_timeout_s}s"
        )
        results = {}
        results["alone"] = pace()
        store.create(args.query, owner="hanging", webhooks=[hanging.url()])
        results["with a hanging receiver"] = pace()
        figures = {}
        for phase, ids in results.items():
            values = [healthy.latencies[i] * 1000 for i in ids]
            if not values:
                print(f"{phase}: no alerts")
                continue
            figures[phase] = percentile(values, 0.99)
            sending = [(healthy.latencies[i] - healthy.matching[i]) * 1000 for i in ids]
            print(
                f"{phase}: {len(values)} alerts at the healthy receiver; ingest->webhook ms "
                f"p50 {percentile(values, 0.5):.0f}, p99 {figures[phase]:.0f}, max {max(values):.0f}; "
                f"of which alert->webhook p50 {percentile(sending, 0.5):.0f}, p99 {percentile(sending, 0.99):.0f}"
            )
        if len(figures) == 2:
            alone, hung = figures.values()
            print(f"p99 ratio (with hanging / alone): {hung / alone:.2f}")
    finally:
        producer.close()
        store.close()
        stop_worker(worker)
        hanging.stop.set()


if __name__ == "__main__":
    main()
