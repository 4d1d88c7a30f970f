"""A running pipeline for integration tests: fresh topic/index prefixes, topics and indices,
alert subscriptions, and a real Faust worker process (``newspipe worker``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipeline.settings import Settings, get_settings, reset_settings
from pipeline.stages.index import enriched_ids

REPO = Path(__file__).resolve().parents[2]
GOLD = json.loads((REPO / "tests" / "fixtures" / "gold.json").read_text(encoding="utf-8"))


@dataclass
class Worker:
    env: dict
    log_path: Path
    process: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "worker"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, settings: Settings, timeout_s: float = 180.0) -> None:
        from pipeline.stream.worker import ready_path

        ready, deadline = ready_path(settings, self.process.pid), time.monotonic() + timeout_s
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("worker not ready:\n" + self.log_tail())
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no final commit."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Stack:
    settings: Settings
    es: object
    worker: Worker
    subscriptions: dict[str, str] = field(default_factory=dict)  # query -> subscription id
    seed_ids: dict[str, str] = field(default_factory=dict)  # gold key ("000") -> article id
    sent_ids: list[str] = field(default_factory=list)  # what a fixture published, in order

    def wait_indexed(self, ids, timeout_s: float = 180.0) -> None:
        """Wait until each article's enriched document is indexed (not only its text, which
        the clean step indexes first)."""
        index = self.settings.index("articles")
        pending, deadline = set(ids), time.monotonic() + timeout_s
        while pending:
            if self.worker.process.poll() is not None:
                pytest.fail("worker died:\n" + self.worker.log_tail())
            if time.monotonic() > deadline:
                pytest.fail(
                    f"not indexed in {timeout_s}s: {sorted(pending)}\n" + self.worker.log_tail()
                )
            pending -= enriched_ids(self.es, index, pending)
            time.sleep(0.2)
        self.es.indices.refresh(index=index)

    def article(self, gold_key: str) -> dict:
        return self.es.get(index=self.settings.index("articles"), id=self.seed_ids[gold_key])[
            "_source"
        ]

    def count(self, family: str) -> int:
        self.es.indices.refresh(index=self.settings.index(family))
        return self.es.count(index=self.settings.index(family))["count"]

    def topic_values(self, name: str, timeout_ms: int = 3000) -> list[bytes]:
        from pipeline.infra.kafka import make_consumer

        consumer = make_consumer(
            self.settings.topic(name), settings=self.settings, consumer_timeout_ms=timeout_ms
        )
        values = [r.value for r in consumer]
        consumer.close()
        return values

    def publish(self, paths) -> object:
        from pipeline.infra.kafka import make_producer
        from pipeline.sources.ingest import iter_inputs, publish

        producer = make_producer(self.settings)
        try:
            return publish(list(iter_inputs(paths)), producer, self.settings, progress=False)
        finally:
            producer.close()


def set_environment(overrides: dict[str, str]):
    """Set these ``NEWS_*`` variables for the code under test (settings cache reset); returns
    the function that puts the previous values back."""
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    reset_settings()

    def restore() -> None:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings()

    return restore


def run_newspipe(env: dict[str, str], *args: str) -> str:
    """Run the ``newspipe`` CLI with ``env`` (wide tables); its output, asserting exit 0."""
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=REPO,
        env={**env, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def pytest_collection_modifyitems(items):
    """Unit tests run first, in an environment no stack has touched; then the gold suite judges
    the seeds alone on the session's ``stack``, before other modules add articles,
    subscriptions and alerts to it (a stable sort keeps the rest of the order, e.g.
    test_resilience after the gold suite)."""

    def rank(item) -> int:
        name = item.module.__name__
        if ".unit." in f".{name}" or name.startswith("unit."):
            return 0
        return 1 if name.endswith(".test_gold") else 2

    items.sort(key=rank)


@contextmanager
def own_indices(es_client, kafka_bootstrap: str, es_url: str, name: str, **overrides):
    """Settings with an index and topic prefix of their own (``<name><run>``), their indices
    made; the indices are deleted afterwards (every generation of each family)."""
    from pipeline.infra.es import FAMILIES, ensure_indices
    from pipeline.ops import retention

    run = f"{name}{uuid.uuid4().hex[:8]}"
    settings = Settings(
        _env_file=None,
        kafka_bootstrap=kafka_bootstrap,
        es_url=es_url,
        index_prefix=run,
        topic_prefix=run,
        **overrides,
    )
    ensure_indices(es_client, settings)
    try:
        yield settings
    finally:
        for family in FAMILIES:
            names = [i.name for i in retention.family_indices(es_client, settings.index(family))]
            if names:
                es_client.indices.delete(index=",".join(names), ignore_unavailable=True)


@pytest.fixture(scope="session")
def stack(kafka_bootstrap, es_url, es_client, tmp_path_factory):
    """The seeds sent through Kafka, the Faust worker and Elasticsearch, with the gold alert
    subscriptions made before the articles arrive."""
    from pipeline.alerts.subscriptions import SubscriptionStore
    from pipeline.infra.setup import setup
    from pipeline.sources.ingest import iter_inputs

    run = uuid.uuid4().hex[:8]
    overrides = {
        "NEWS_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "NEWS_ES_URL": es_url,
        "NEWS_TOPIC_PREFIX": f"t{run}",
        "NEWS_INDEX_PREFIX": f"t{run}",
        "NEWS_APP_ID": f"newspipe-test-{run}",
        "NEWS_DATA_DIR": str(tmp_path_factory.mktemp("worker")),
        "NEWS_API_TOKEN": uuid.uuid4().hex,
    }
    restore = set_environment(overrides)
    settings = get_settings()
    setup(settings)

    worker = Worker(env=os.environ.copy(), log_path=Path(overrides["NEWS_DATA_DIR"]) / "worker.log")
    stack = Stack(settings=settings, es=es_client, worker=worker)
    store = SubscriptionStore(settings, es_client)
    for item in GOLD["alerts"]["required"]:
        stack.subscriptions[item["query"]] = store.add(item["query"], owner="gold").id
    store.close()

    worker.start()
    worker.wait_ready(settings)
    for item in iter_inputs([REPO / "seeds"]):
        stack.seed_ids[Path(item.model_extra["path"]).name[:3]] = item.id
    report = stack.publish([REPO / "seeds"])
    assert report.sent == 5 and not report.rejected
    stack.wait_indexed(stack.seed_ids.values())
    yield stack
    worker.stop()
    restore()


@dataclass
class ApiServer:
    url: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="session")
def api_server(stack):
    """``newspipe api`` (the real uvicorn server) on a port the OS picks, over the stack."""
    import threading

    import uvicorn

    from pipeline.api import create_api

    config = uvicorn.Config(
        create_api(stack.settings),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the API server did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield ApiServer(url=f"http://127.0.0.1:{port}", token=stack.settings.api_token)
    server.should_exit = True
    thread.join(timeout=10)


def wait_until(predicate, timeout_s: float = 60.0, what: str = "condition", describe=None):
    """Poll ``predicate`` every 0.5 s until it returns something true (returned); fail the
    test after ``timeout_s``, with ``describe()`` when given."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}" + (f": {describe()}" if describe else ""))


def group_consumed(stack: Stack, name: str = "raw") -> bool:
    """The worker's group has committed every message of topic ``name`` (``raw``, ``clean``)."""
    from kafka import TopicPartition

    from pipeline.infra.kafka import make_consumer

    topic = stack.settings.topic(name)
    # the group's id to read its commits; subscribed to nothing, so it never joins the group
    consumer = make_consumer(settings=stack.settings, group_id=stack.settings.app_id)
    try:
        ends = consumer.end_offsets(
            [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        )
        return all((consumer.committed(tp) or 0) >= end for tp, end in ends.items())
    finally:
        consumer.close(autocommit=False)


def corpus_sample(tmp_path: Path, start: int, stop: int) -> Path:
    """Lines ``start``..``stop`` of the corpus (``NEWS_CORPUS``) as a JSON-lines file; skips
    the test when there is no corpus."""
    corpus = Path(os.environ.get("NEWS_CORPUS", REPO.parent / "shared/corpus/reuters21578.jsonl"))
    if not corpus.exists():
        pytest.skip(f"no corpus at {corpus}")
    sample = tmp_path / "sample.jsonl"
    with corpus.open(encoding="utf-8") as source:
        lines = [next(source) for _ in range(stop)][start:]
    sample.write_text("".join(lines), encoding="utf-8")
    return sample
