"""Session fixtures: the Kafka broker and Elasticsearch node integration tests run against.

Chosen lazily (only when a test asks for ``kafka_bootstrap``, ``es_url`` or ``es_client``, so
unit tests start nothing), in this order:

1. the servers named by ``NEWS_KAFKA_BOOTSTRAP`` and ``NEWS_ES_URL`` when both are set;
2. containers (testcontainers) when a Docker engine answers;
3. the local runtime (``pipeline.runtime``) of the session's own: free ports from the OS and
   its own data dir (``<data dir>/test-runs/session-<pid>``, sharing the Maven-resolved
   distributions of ``NEWS_DATA_DIR`` or ``<repo>/.newspipe``), started for the session and
   stopped and removed at its end. So a user's ``newspipe up`` servers on the default ports,
   or another test run, are never met.

The chosen addresses are exported as ``NEWS_KAFKA_BOOTSTRAP`` / ``NEWS_ES_URL``, and a data
dir of the session's as ``NEWS_DATA_DIR`` (settings cache reset), so code under test sees them, and one line in the test log names the servers.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.settings import Settings, get_settings, reset_settings

REPO = Path(__file__).resolve().parents[1]
KAFKA_IMAGE = "apache/kafka:3.9.1"
ES_IMAGE = "docker.elastic.co/elasticsearch/elasticsearch:{version}"


@dataclass
class Servers:
    kafka_bootstrap: str
    es_url: str
    origin: str  # how we got them, for the log line
    kafka_version: str | None = None  # exact version when known without asking the broker
    data_dir: Path | None = None  # the session's data dir (worker files, API token, ...)
    user_data_dir: Path | None = None  # the data dir a user's `newspipe up` here would use
    runtime: object | None = None  # the LocalRuntime that runs them, when it does (fault tests)


# --- the three sources ---------------------------------------------------------------------


def _docker_available() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no client config, no socket, daemon down: all mean "no Docker"
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _containers() -> Iterator[Servers]:
    """Kafka and Elasticsearch containers, published on 127.0.0.1 only.

    Kafka runs as a plain container: testcontainers' KafkaContainer drives Confluent's image
    scripts (/etc/confluent/docker/...), which the apache/kafka image does not have. Its host
    port is chosen up front because the broker must advertise the address clients use.
    """
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy
    from testcontainers.elasticsearch import ElasticSearchContainer

    settings = get_settings()
    kafka_port = _free_port()
    kafka = (
        DockerContainer(KAFKA_IMAGE)
        .with_envs(
            KAFKA_NODE_ID="1",
            KAFKA_PROCESS_ROLES="broker,controller",
            KAFKA_LISTENERS="PLAINTEXT://:9092,CONTROLLER://:9093",
            KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://127.0.0.1:{kafka_port}",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
            KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
            KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
            KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
            KAFKA_NUM_PARTITIONS="4",
            KAFKA_MESSAGE_MAX_BYTES=str(settings.max_message_bytes),
            KAFKA_REPLICA_FETCH_MAX_BYTES=str(settings.max_message_bytes),
        )
        .waiting_for(LogMessageWaitStrategy("Kafka Server started"))
    )
    kafka.ports["9092/tcp"] = ("127.0.0.1", kafka_port)  # docker-py's (host ip, port) form
    es = ElasticSearchContainer(ES_IMAGE.format(version=settings.es_version), mem_limit="2g")
    es.with_env("ES_JAVA_OPTS", f"-Xms{settings.es_heap} -Xmx{settings.es_heap}")
    es.with_env("discovery.type", "single-node")
    es.ports[str(es.port)] = ("127.0.0.1", _free_port())
    with kafka, es:
        yield Servers(
            kafka_bootstrap=f"127.0.0.1:{kafka_port}",
            es_url=f"http://{es.get_container_host_ip()}:{es.get_exposed_port(es.port)}",
            origin="testcontainers",
        )


def _free_ports(n: int) -> list[int]:
    """``n`` distinct ports the OS says are free on 127.0.0.1 (held together while chosen)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def session_runtime_settings(user_data_dir: Path, session_dir: Path) -> Settings:
    """Settings of the test session's own local runtime: its own data dir and free ports, so
    it never meets a user's ``newspipe up`` servers (default ports) or another test run; the
    Maven-resolved distributions are shared with the user's data dir (resolved once)."""
    settings = get_settings()
    kafka, controller, es_http, es_transport = _free_ports(4)
    return settings.model_copy(
        update={
            "data_dir": session_dir,
            "dist_dir": settings.dist_dir or user_data_dir / "dist",
            "kafka_port": kafka,
            "kafka_controller_port": controller,
            "es_port": es_http,
            "es_transport_port": es_transport,
        }
    )


@contextmanager
def _local_runtime(user_data_dir: Path) -> Iterator[Servers]:
    from pipeline.runtime import LocalRuntime

    session_dir = user_data_dir / "test-runs" / f"session-{os.getpid()}"
    shutil.rmtree(session_dir, ignore_errors=True)  # a pid reused after a killed run
    runtime = LocalRuntime(session_runtime_settings(user_data_dir, session_dir))
    es_root = runtime._es_root()
    try:
        statuses = runtime.up(timeout=300)  # a loaded 2-core machine starts Elasticsearch slowly
        kafka = next(s for s in statuses if s.name == "kafka")
        es = next(s for s in statuses if s.name == "elasticsearch")
        yield Servers(
            kafka.address,
            es.address,
            f"started by the local runtime in {session_dir}",
            kafka_version=kafka.version,
            data_dir=session_dir,
            runtime=runtime,
        )
    finally:
        runtime.down()
        shutil.rmtree(session_dir, ignore_errors=True)
        if es_root != session_dir / "es":  # root's fallback copy outside the data dir
            shutil.rmtree(es_root, ignore_errors=True)


# --- versions, for the log line -------------------------------------------------------------


def _kafka_version(bootstrap: str) -> str:
    """The broker's version as ApiVersions tells it (major.minor only)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        broker = admin.describe_cluster()["brokers"][0]["broker_id"]
        return admin.get_broker_version_data(broker).broker_version_str
    finally:
        admin.close()


def _es_version(client) -> str:
    # nodes info rather than es.info(): GET / is served by the rest-root module, which the
    # Elasticsearch integ-test distribution used by the local runtime does not include
    nodes = client.nodes.info(node_id="_local", metric="_none")["nodes"]
    return next(iter(nodes.values()))["version"]


# --- in CI, nothing may be skipped ------------------------------------------------------------


def _strict() -> bool:
    """CI (``CI=true``) runs every test: a missing model, corpus or server is a failure there,
    never a skip that would keep the run green."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _fail_skip(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail") and _strict():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test must run: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skip(outcome.get_result())  # a module that skips itself (no model, no corpus)


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _servers(request: pytest.FixtureRequest) -> Iterator[Servers]:
    kafka_env, es_env = os.environ.get("NEWS_KAFKA_BOOTSTRAP"), os.environ.get("NEWS_ES_URL")
    if bool(kafka_env) != bool(es_env):
        raise pytest.UsageError("set both NEWS_KAFKA_BOOTSTRAP and NEWS_ES_URL, or neither")
    user_data_dir = Path(os.environ.get("NEWS_DATA_DIR") or REPO / ".newspipe").resolve()
    if kafka_env and es_env:
        source = nullcontext(Servers(kafka_env, es_env, "given by NEWS_KAFKA_BOOTSTRAP/ES_URL"))
    elif _docker_available():
        source = _containers()
    else:
        source = _local_runtime(user_data_dir)
    with source as servers, tempfile.TemporaryDirectory(prefix="newspipe-test-") as tmp:
        servers.user_data_dir = user_data_dir
        os.environ["NEWS_KAFKA_BOOTSTRAP"] = servers.kafka_bootstrap
        os.environ["NEWS_ES_URL"] = servers.es_url
        # everything the tests run (workers' run files, the API's token) writes here, never
        # into a user's data dir
        os.environ["NEWS_DATA_DIR"] = str(servers.data_dir or tmp)
        reset_settings()
        _log_servers(request, servers)
        yield servers


def _log_servers(request: pytest.FixtureRequest, servers: Servers) -> None:
    """One line in the test log, e.g. "Kafka 3.9.2 / Elasticsearch 8.19.21 started by the
    local runtime"."""
    from elasticsearch import Elasticsearch

    with Elasticsearch(servers.es_url, request_timeout=30) as client:
        es_version = _es_version(client)
    kafka_version = servers.kafka_version or _kafka_version(servers.kafka_bootstrap)
    line = f"Kafka {kafka_version} / Elasticsearch {es_version} {servers.origin}"
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():  # fixture setup output is captured otherwise
        reporter.write_sep("-", line)


@pytest.fixture(scope="session")
def kafka_bootstrap(_servers: Servers) -> str:
    """``host:port`` of the Kafka broker."""
    return _servers.kafka_bootstrap


@pytest.fixture(scope="session")
def es_url(_servers: Servers) -> str:
    """URL of the Elasticsearch node."""
    return _servers.es_url


@pytest.fixture(scope="session")
def es_client(_servers: Servers):
    """An ``elasticsearch.Elasticsearch`` client of the node."""
    from elasticsearch import Elasticsearch

    client = Elasticsearch(_servers.es_url, request_timeout=30)
    yield client
    client.close()
