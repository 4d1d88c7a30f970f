"""The main job, end to end on one machine (``newspipe demo``, ``make demo``):

local Kafka + Elasticsearch (``newspipe up``) -> topics and indices -> a Faust worker ->
subscribe to a query -> ingest ``seeds/`` through Kafka -> wait until the articles are indexed
-> print the search results with their entities and events, and the alerts that fired.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from pipeline.settings import get_settings

console = Console()


def start_worker(log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``newspipe worker`` in a session of its own, logging to ``log_path``; ``env``: settings
    of its own on top of this process's environment."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "worker"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def wait_ready(worker: subprocess.Popen, log_path: Path, timeout_s: float = 180) -> float:
    """Wait until the worker has joined its consumer group and consumes (its ready file)."""
    from pipeline.stream.worker import ready_path

    started = time.monotonic()
    ready = ready_path(get_settings(), worker.pid)
    while not ready.exists():
        if worker.poll() is not None:
            tail = log_path.read_text(errors="replace").splitlines()[-30:]
            raise RuntimeError("the worker stopped:\n" + "\n".join(tail))
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"the worker was not ready after {timeout_s:.0f}s; see {log_path}")
        time.sleep(0.2)
    return time.monotonic() - started


def wait_indexed(
    pipeline, ids: list[str], worker: subprocess.Popen, log_path: Path, timeout_s: float = 180
) -> float:
    """Wait until every id's enriched document is in the articles index (the clean step
    indexes the text first)."""
    from pipeline.stages.index import enriched_ids

    started = time.monotonic()
    index = pipeline.settings.index("articles")
    pending = set(ids)
    while pending:
        if worker.poll() is not None:
            tail = log_path.read_text(errors="replace").splitlines()[-30:]
            raise RuntimeError("the worker stopped:\n" + "\n".join(tail))
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(
                f"{len(pending)} article(s) not indexed after {timeout_s:.0f}s: {sorted(pending)}"
            )
        pending -= enriched_ids(pipeline.es, index, pending)
        time.sleep(0.2)
    pipeline.es.indices.refresh(index=index)
    return time.monotonic() - started


def wait_processed(settings, timeout_s: float = 30) -> bool:
    """Wait until the worker group has committed every message of the topics it reads: an
    article is committed only once each of its steps is done, its alerts' ledger records
    included (at-least-once delivery). False if ``timeout_s`` passed first."""
    from pipeline.ops.metrics import LagMonitor

    monitor = LagMonitor(settings)
    deadline = time.monotonic() + timeout_s
    try:
        while any(monitor.measure().values()):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True
    finally:
        monitor.close()


def run_demo(seeds: Path, query: str, keep_worker: bool = False) -> int:
    from pipeline.alerts.subscriptions import SubscriptionStore
    from pipeline.cli.output import print_alert, print_search, run_search
    from pipeline.infra.kafka import make_producer
    from pipeline.infra.setup import setup
    from pipeline.runtime.local import LocalRuntime
    from pipeline.sources.ingest import iter_inputs, publish
    from pipeline.stages.nlp import ModelNotInstalledError, ensure_model
    from pipeline.stream.process import Pipeline

    settings = get_settings()
    console.rule("1. servers")
    LocalRuntime(settings).up()
    console.rule("2. model, topics, indices")
    try:
        ensure_model(settings.spacy_model, report=console.print)
    except ModelNotInstalledError as exc:
        console.print(f"[red]spaCy model not installed:[/] {exc}")
        return 1
    setup(settings)
    pipeline = Pipeline(settings)

    console.rule("3. worker")
    log_path = settings.data_dir / "logs" / "worker.log"
    worker = start_worker(log_path)
    console.print(f"Faust worker pid {worker.pid}, log {log_path}")
    console.print(f"worker ready in {wait_ready(worker, log_path):.1f}s")
    try:
        console.rule(f"4. subscribe to {query!r}")
        store = SubscriptionStore(settings, pipeline.es)
        subscription = store.add(query, owner="demo")
        store.close()
        console.print(f"subscription {subscription.id}")

        console.rule(f"5. ingest {seeds}")
        producer = make_producer(settings)
        report = publish(list(iter_inputs([seeds])), producer, settings, progress=False)
        producer.close()
        console.print(f"sent {report.sent} article(s), rejected {len(report.rejected)}")
        waited = wait_indexed(pipeline, report.ids, worker, log_path)
        console.print(f"all {len(report.ids)} article(s) indexed {waited:.1f}s after sending")

        console.rule(f"6. search {query!r}")
        print_search(run_search(pipeline, query, [], [], None, 10), query)

        console.rule(f"7. alerts for {query!r}")
        if not wait_processed(settings):
            console.print("[yellow]the worker had not committed every article after 30 s[/]")
        pipeline.es.indices.refresh(index=settings.index("alerts"))
        fired = pipeline.ledger.history(subscription.id, size=50)
        for alert in fired:
            print_alert(alert)
        console.print(f"{len(fired)} alert(s) for {query!r}")
        console.print(
            "\nServers keep running: [bold]newspipe search QUERY[/], [bold]newspipe alerts tail[/], "
            "[bold]newspipe down[/] to stop them."
        )
        console.rule("8. web page")
        from pipeline.api.background import ensure_api

        try:
            served = ensure_api(settings)
        except RuntimeError as error:  # e.g. the port is taken by something else
            console.print(
                f"[yellow]the API did not start: {str(error).splitlines()[0]}[/] "
                "(try: newspipe api --port N)",
                markup=True,
            )
            return 0
        console.print(
            f"API pid {served.pid} (stop it with: kill {served.pid}), log {settings.data_dir}/logs/api.log"
        )
        console.print(f"Open the web page: [bold]{served.page_url}[/]")
        return 0
    finally:
        if not keep_worker:
            stop_worker(worker)
