"""The local runtime: single-node Kafka (KRaft) and Elasticsearch as plain JVM processes.

No Docker: the servers are resolved from Maven Central by ``deploy/local/pom.xml`` (package data) and run
with the machine's Java. Everything lives under ``settings.data_dir``::

    dist/kafka-<v>/libs/, dist/elasticsearch-<v>/   resolved once by Maven, then cached
    kafka/server.properties, kafka/log4j.properties, kafka/data/
    es/config/, es/data/, es/logs/, es/tmp/           Elasticsearch's own (see _es_root)
    logs/kafka.log, logs/kafka.out, logs/elasticsearch.out
    run/kafka.pid, run/elasticsearch.pid, run/lock

Both servers listen on 127.0.0.1 only.

A cluster on one machine (``NEWS_KAFKA_BROKERS`` / ``NEWS_ES_NODES``, ``newspipe up --brokers 3
--es-nodes 3``): node ``i`` (1-based) of a cluster gets its own directories and pid file, named
with ``-i`` (``kafka-2/``, ``es-2/``, ``run/kafka-2.pid``, service ``kafka-2``), and ports counted
up from the settings: broker ``i`` listens on ``kafka_port + 2(i-1)`` and its controller on
``kafka_controller_port + 2(i-1)`` (9092/9093, 9094/9095, 9096/9097); Elasticsearch node ``i``
on ``es_port + i - 1`` and transport ``es_transport_port + i - 1``. Every broker is also a
KRaft controller (a quorum of 3 survives one lost node); internal topics are replicated on
``min(3, brokers)`` brokers with ``min.insync.replicas`` from :func:`min_insync`. The
Elasticsearch nodes are all master-eligible (3: one may be lost). Heaps default to 256m per
node in a cluster (``NEWS_KAFKA_HEAP`` / ``NEWS_ES_HEAP`` override). One node (the default) is
exactly the layout above.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from pipeline.deploy import resource
from pipeline.infra.topics import min_insync
from pipeline.runtime.process import (
    cmdline,
    describe_pid,
    group_members,
    listener_pids,
    owned_pid,
    pid_alive,
    port_accepts,
    port_in_use,
    read_pid,
    stop_group,
    tail,
    write_pid,
)
from pipeline.settings import Settings, get_settings

POM = resource("local", "pom.xml")
HOST = "127.0.0.1"
KAFKA = "kafka"
ES = "elasticsearch"
HEALTH_TOPIC = "__newspipe_health"
# Where Elasticsearch's files go when root runs us from a data dir the unprivileged ES user
# cannot reach (e.g. under /root, which is mode 700); one subdirectory per data dir.
ES_FALLBACK_BASE = Path("/var/lib/newspipe")

log = logging.getLogger(__name__)


class LocalRuntimeError(RuntimeError):
    """The local runtime could not do what was asked; the message says why and what to do."""


@dataclass
class ServiceStatus:
    name: str
    running: bool
    address: str
    pid: int | None = None
    version: str | None = None
    health: str | None = None
    started: bool = False  # started by this up() call (False: was already running)
    log: Path | None = None
    note: str | None = None


@dataclass
class _Service:
    name: str
    pid_file: Path
    markers: tuple[str, ...]  # all of these occur in the command line of our process
    ports: tuple[tuple[int, str], ...]  # (port, the setting that moves it)
    logs: tuple[Path, ...]  # shown (tail) when the service fails to start
    start: Callable[[], subprocess.Popen] = field(repr=False)
    healthy: Callable[[], bool] = field(repr=False)


# --- pure helpers (rendered files, ids, permissions) -----------------------------------------


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64 without padding (22 chars).

    Like Kafka's own ``Uuid.randomUuid`` it never starts with "-", which command lines would
    take for an option.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def kafka_ports(settings: Settings, node: int) -> tuple[int, int]:
    """(client port, controller port) of broker ``node`` (1-based)."""
    step = 2 * (node - 1)
    return settings.kafka_port + step, settings.kafka_controller_port + step


def es_ports(settings: Settings, node: int) -> tuple[int, int]:
    """(http port, transport port) of Elasticsearch node ``node`` (1-based)."""
    return settings.es_port + node - 1, es_transport_port(settings) + node - 1


def render_kafka_properties(settings: Settings, log_dirs: Path, node: int = 1) -> str:
    """server.properties of a combined broker+controller KRaft node on loopback (``node`` of
    ``settings.kafka_brokers``)."""
    s = settings
    n = s.kafka_brokers
    port, controller = kafka_ports(s, node)
    voters = ",".join(f"{i}@{HOST}:{kafka_ports(s, i)[1]}" for i in range(1, n + 1))
    internal = min(3, n)
    props = {
        "process.roles": "broker,controller",
        "node.id": node,
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": log_dirs,
        "num.partitions": 4,
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": internal,
        "transaction.state.log.replication.factor": internal,
        "transaction.state.log.min.isr": min_insync(internal),
        "group.initial.rebalance.delay.ms": 0,
        "message.max.bytes": s.max_message_bytes,
        "replica.fetch.max.bytes": s.max_message_bytes,
    }
    if n > 1:
        props["default.replication.factor"] = internal
        props["min.insync.replicas"] = min_insync(internal)
    return "# written by newspipe up; edits are overwritten\n" + "".join(
        f"{k}={v}\n" for k, v in props.items()
    )


def render_kafka_log4j(log_file: Path) -> str:
    """log4j 1.x (reload4j) config: everything to one size-rotated file."""
    return f"""\
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File={log_file}
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=3
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
"""


def render_es_yml(settings: Settings, data: Path, logs: Path, node: int = 1) -> str:
    """elasticsearch.yml of a loopback node without security (local development only): a
    single node, or node ``node`` of ``settings.es_nodes`` master-eligible nodes.

    Values are JSON strings, which are valid YAML whatever characters a path contains.
    """
    n = settings.es_nodes
    http, transport = es_ports(settings, node)
    conf: dict = {"cluster.name": "newspipe-local"}
    if n == 1:
        conf["node.name"] = "newspipe-local"
        # single-node discovery on loopback: production bootstrap checks only warn
        conf["discovery.type"] = "single-node"
    else:  # transport on loopback: still development mode, bootstrap checks only warn
        conf["node.name"] = f"newspipe-local-{node}"
        conf["discovery.seed_hosts"] = [
            f"{HOST}:{es_ports(settings, i)[1]}" for i in range(1, n + 1)
        ]
        conf["cluster.initial_master_nodes"] = [f"newspipe-local-{i}" for i in range(1, n + 1)]
    conf |= {
        "network.host": HOST,
        "http.port": http,
        "transport.port": transport,
        "path.data": str(data),
        "path.logs": str(logs),
        "xpack.security.enabled": False,
        # a nearly full disk must not turn the indices read-only under the tests
        "cluster.routing.allocation.disk.threshold_enabled": False,
    }
    return "# written by newspipe up; edits are overwritten\n" + "".join(
        f"{k}: {json.dumps(v)}\n" for k, v in conf.items()
    )


def free_port_settings(brokers: int, es_nodes: int) -> dict[str, int]:
    """Port settings whose ranges (see the module docstring) are free now: bases drawn at
    random below the kernel's ephemeral range (an OS-given free port is in that range, where an
    outgoing connection may take it before a server binds it)."""
    import random

    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.SystemRandom()

    def free_run(length: int, taken: set[int]) -> int:
        for _ in range(500):
            base = rng.randrange(20000, low - length)
            run = set(range(base, base + length))
            if not taken & run and not any(port_in_use(p) for p in run):
                taken.update(run)
                return base
        raise LocalRuntimeError(f"no {length} consecutive free ports found below {low}")

    taken: set[int] = set()
    kafka = free_run(2 * brokers, taken)  # client and controller ports interleave
    es_http = free_run(es_nodes, taken)
    es_transport = free_run(es_nodes, taken)
    return {
        "kafka_port": kafka,
        "kafka_controller_port": kafka + 1,
        "es_port": es_http,
        "es_transport_port": es_transport,
    }


def with_shape(settings: Settings, data_dir: Path | None = None) -> Settings:
    """``settings`` with the cluster shape, ports and dist dir ``newspipe up`` recorded in the
    data dir (``run/shape.json``), when there is one."""
    data_dir = Path(data_dir or settings.data_dir)
    shape_file = data_dir / "run" / "shape.json"
    shape = json.loads(shape_file.read_text()) if shape_file.exists() else {}
    return Settings.model_validate(
        {**settings.model_dump(exclude_unset=True), "data_dir": data_dir, **shape}
    )


def es_transport_port(settings: Settings) -> int:
    """Node-to-node port: ``NEWS_ES_TRANSPORT_PORT``, else 100 above the http port (9300)."""
    return settings.es_transport_port or settings.es_port + 100


def traversable_by(path: Path, uid: int, gids: Iterable[int]) -> bool:
    """Whether user ``uid`` (in groups ``gids``) may search every existing directory on the
    way to ``path`` (judged from the permission bits; missing components are not judged)."""
    gids = set(gids)
    path = path.absolute()
    for d in [*reversed(path.parents), path]:
        try:
            st = d.stat()
        except FileNotFoundError:
            break
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if uid != 0 and not st.st_mode & bit:
            return False
    return True


def kafka_version_of(libs: Path) -> str | None:
    """Kafka version from the broker jar in ``libs`` (``kafka_2.13-3.9.2.jar`` -> ``3.9.2``)."""
    for jar in libs.glob("kafka_*.jar"):
        m = re.fullmatch(r"kafka_\d+\.\d+-(\d+\.\d+\.\d+)\.jar", jar.name)
        if m:
            return m.group(1)
    return None


def java_home() -> Path:
    """The Java installation to run the servers with: $JAVA_HOME, else `java` on PATH."""
    env = os.environ.get("JAVA_HOME")
    if env and (Path(env) / "bin" / "java").exists():
        return Path(env)
    java = shutil.which("java")
    if not java:
        raise LocalRuntimeError(
            "java not found on PATH: install Java 17 or newer "
            "(Debian/Ubuntu: apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    return Path(java).resolve().parents[1]  # .../jvm/java-17-openjdk-amd64/bin/java


def ensure_user(name: str) -> tuple[int, int]:
    """(uid, gid) of the system user ``name``, created (no home, no login) if missing."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        if not shutil.which("useradd"):
            raise LocalRuntimeError(
                f"Elasticsearch refuses to run as root and user {name!r} does not exist; "
                f"create it (or set NEWS_ES_RUN_AS to an existing user)"
            ) from None
        r = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
        )
        try:  # a concurrent `up` may have created it first: exit code != 0 but user exists
            pw = pwd.getpwnam(name)
        except KeyError:
            raise LocalRuntimeError(
                f"could not create user {name!r} for Elasticsearch: {r.stderr.strip()}"
            ) from None
    return pw.pw_uid, pw.pw_gid


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    """chown -R, skipped when the top already belongs to uid (i.e. done on a previous run)."""
    if path.stat().st_uid == uid:
        return
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            os.chown(os.path.join(root, n), uid, gid, follow_symlinks=False)


def _link_tree(src: Path, dst: Path) -> None:
    """Copy a directory tree as hard links (a plain copy across file systems)."""

    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    tmp = dst.with_name(dst.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, copy_function=link, symlinks=True)
    tmp.replace(dst)


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Silence a library's logger (kafka-python logs every refused connection while the
    broker starts)."""
    lg = logging.getLogger(logger)
    level = lg.level
    lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        lg.setLevel(level)


def _http_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


# --- the runtime ---------------------------------------------------------------------------


class LocalRuntime:
    """Start, stop and inspect the local Kafka + Elasticsearch of ``settings.data_dir``.

    ``up()`` is idempotent (servers already running are left alone) and ``down()`` stops only
    processes recorded in this data dir's pid files.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        s = self.settings
        self.data_dir = s.data_dir.expanduser().resolve()
        self.dist = (s.dist_dir or self.data_dir / "dist").expanduser().resolve()
        self.kafka_libs = self.dist / f"kafka-{s.kafka_version}" / "libs"
        self.es_dist = self.dist / f"elasticsearch-{s.es_version}"
        self.kafka_dir = self.data_dir / "kafka"  # broker 1's (the only one by default)
        self.logs = self.data_dir / "logs"
        self.run = self.data_dir / "run"
        self._procs: dict[str, subprocess.Popen] = {}  # started by this object, to reap
        self._log_starts: dict[Path, int] = {}  # log sizes at our start: tails show only ours
        cluster_heap = "256m"  # several JVMs on one machine: small heaps unless set
        self.kafka_heap = (
            s.kafka_heap
            if "kafka_heap" in s.model_fields_set or s.kafka_brokers == 1
            else cluster_heap
        )
        self.es_heap = (
            s.es_heap if "es_heap" in s.model_fields_set or s.es_nodes == 1 else cluster_heap
        )
        self._services: dict[str, _Service] = {}
        for node in range(1, s.kafka_brokers + 1):
            name = self.node_name(KAFKA, node, s.kafka_brokers)
            port, controller = kafka_ports(s, node)
            kdir = self._kafka_dir(node)
            self._services[name] = _Service(
                name=name,
                pid_file=self.run / f"{name}.pid",
                markers=("kafka.Kafka", str(kdir / "server.properties")),
                ports=((port, "NEWS_KAFKA_PORT"), (controller, "NEWS_KAFKA_CONTROLLER_PORT")),
                logs=(self.logs / f"{name}.out", self.logs / f"{name}.log"),
                start=partial(self._start_kafka, node),
                healthy=partial(self._kafka_healthy, node),
            )
        for node in range(1, s.es_nodes + 1):
            name = self.node_name(ES, node, s.es_nodes)
            http, transport = es_ports(s, node)
            self._services[name] = _Service(
                name=name,
                pid_file=self.run / f"{name}.pid",
                # the start script's path: in its command line both while bin/elasticsearch
                # runs and after it exec'd the Java launcher (-Dcli.script=...)
                markers=(
                    str(self._es_home(node) / "bin" / "elasticsearch"),
                    f"-Des.path.conf={self._es_root(node) / 'config'}",  # which node
                ),
                ports=((http, "NEWS_ES_PORT"), (transport, "NEWS_ES_TRANSPORT_PORT")),
                logs=(self.logs / f"{name}.out",),
                start=partial(self._start_es, node),
                healthy=partial(self._es_healthy, node),
            )

    @staticmethod
    def node_name(kind: str, node: int, count: int) -> str:
        """``kafka`` / ``elasticsearch`` alone; ``kafka-2`` etc. in a cluster."""
        return kind if count == 1 else f"{kind}-{node}"

    def _kafka_dir(self, node: int) -> Path:
        return (
            self.kafka_dir if self.settings.kafka_brokers == 1 else self.data_dir / f"kafka-{node}"
        )

    @property
    def kafka_bootstrap(self) -> str:
        """Every broker's address, comma separated (``NEWS_KAFKA_BOOTSTRAP``)."""
        s = self.settings
        return ",".join(f"{HOST}:{kafka_ports(s, i)[0]}" for i in range(1, s.kafka_brokers + 1))

    @property
    def es_url(self) -> str:
        """Every node's URL, comma separated (``NEWS_ES_URL``)."""
        s = self.settings
        return ",".join(f"http://{HOST}:{es_ports(s, i)[0]}" for i in range(1, s.es_nodes + 1))

    # -- public API ------------------------------------------------------------------------

    def up(self, timeout: float = 120.0) -> list[ServiceStatus]:
        """Start whatever is not running yet and wait until both servers are usable.

        ``timeout`` counts from the start of the servers (after a first-time Maven download).
        Raises LocalRuntimeError (with the tail of the server log) when a port is taken by a
        foreign process, resolution fails, or a server dies or stays unhealthy for ``timeout``
        seconds; servers this call started are stopped again in that case.
        """
        with self._lock():
            java_home()  # fail early and clearly without Java
            to_start = [n for n, svc in self._services.items() if self._owned(svc) is None]
            self._check_ports(to_start)
            if to_start:
                self.resolve()
            try:
                for name in to_start:
                    self._services[name].start()
                self._wait_healthy(list(self._services), timeout)
            except BaseException:
                self._stop(to_start)
                raise
        return self.status(started=to_start)

    def record_shape(self) -> None:
        """Remember the cluster shape and ports in the data dir (``newspipe down``/``status``
        without options then find every node)."""
        s = self.settings
        shape = {
            k: getattr(s, k)
            for k in ("kafka_brokers", "es_nodes", "kafka_port", "kafka_controller_port", "es_port")
        }
        shape["es_transport_port"] = es_transport_port(s)
        shape["dist_dir"] = str(self.dist)  # the pid files' ownership markers name it
        self.run.mkdir(parents=True, exist_ok=True)
        (self.run / "shape.json").write_text(json.dumps(shape))

    def kill(self, name: str) -> bool:
        """SIGKILL one of our servers and its process group (a crash, for fault tests); the
        next ``up()`` starts it again. Returns False when it was not running."""
        svc = self._services[name]
        pid = self._owned(svc)
        if pid is None:
            return False
        os.killpg(pid, signal.SIGKILL)
        proc = self._procs.pop(name, None)
        if proc is not None:
            proc.wait(timeout=30)
        while group_members(pid):
            time.sleep(0.1)
        svc.pid_file.unlink(missing_ok=True)
        return True

    def down(self, only: Iterable[str] | None = None) -> list[str]:
        """Stop our servers (all, or the names in ``only``); returns the names stopped."""
        if not self.run.exists():  # never started from this data dir
            return []
        with self._lock():
            return self._stop(list(only) if only is not None else list(self._services))

    def status(self, started: Iterable[str] = ()) -> list[ServiceStatus]:
        """What runs where: pid, address, version, health (and who holds a port if not us)."""
        started = set(started)
        out = []
        for name, svc in self._services.items():
            port = svc.ports[0][0]
            st = ServiceStatus(
                name=name,
                running=False,
                address=f"{HOST}:{port}" if name.startswith(KAFKA) else f"http://{HOST}:{port}",
                started=name in started,
                log=svc.logs[-1],
            )
            st.pid = self._owned(svc)
            if st.pid is not None:
                st.running = True
                st.version, st.health = (
                    self._kafka_info(st.pid, port)
                    if name.startswith(KAFKA)
                    else self._es_info(port)
                )
            elif port_in_use(port):
                who = ", ".join(describe_pid(p) for p in listener_pids(port)) or "unknown"
                st.note = f"port {port} is in use by another process ({who})"
            out.append(st)
        return out

    def resolve(self) -> None:
        """Make sure the Kafka jars and the Elasticsearch distribution are in ``dist/``.

        Runs Maven once per version pair; a marker file written after success makes later
        starts skip Maven (and the network) entirely.
        """
        s = self.settings
        marker = self.dist / f".resolved-kafka-{s.kafka_version}-es-{s.es_version}"
        if marker.exists():
            return
        self.dist.mkdir(parents=True, exist_ok=True)
        with open(self.dist / ".lock", "w") as lock:  # data dirs may share one dist dir
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not marker.exists():
                self._resolve(marker)

    def _resolve(self, marker: Path) -> None:
        s = self.settings
        mvn = shutil.which("mvn")
        if not mvn:
            raise LocalRuntimeError(
                "mvn not found on PATH: the first `newspipe up` downloads Kafka and "
                "Elasticsearch with Maven; install it (Debian/Ubuntu: apt-get install maven)"
            )
        # start from scratch: a previous interrupted run may have left half a tree
        shutil.rmtree(self.kafka_libs.parent, ignore_errors=True)
        shutil.rmtree(self.es_dist, ignore_errors=True)
        build_dir = self.dist / ".mvn-build"  # Maven's markers; keeps the repo clean
        cmd = [
            mvn,
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            str(POM),
            "package",
            f"-Dkafka.version={s.kafka_version}",
            f"-Des.version={s.es_version}",
            f"-Dkafka.libs={self.kafka_libs}",
            f"-Des.home.parent={self.dist}",
            f"-Dnewspipe.build.dir={build_dir}",
        ]
        log.info("resolving Kafka %s, Elasticsearch %s with Maven", s.kafka_version, s.es_version)
        env = {**os.environ, "JAVA_HOME": str(java_home())}
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        shutil.rmtree(build_dir, ignore_errors=True)
        if r.returncode != 0:
            output = "\n".join((r.stdout + r.stderr).splitlines()[-30:])
            raise LocalRuntimeError(
                f"Maven could not resolve Kafka {s.kafka_version} / Elasticsearch {s.es_version} "
                f"(the first start needs Maven Central or a mirror in ~/.m2/settings.xml):\n"
                f"$ {' '.join(cmd)}\n{output}"
            )
        if (
            kafka_version_of(self.kafka_libs) != s.kafka_version
            or not (self.es_dist / "bin" / "elasticsearch").exists()
        ):
            raise LocalRuntimeError(f"Maven finished but {self.dist} is incomplete")
        marker.touch()

    # -- bookkeeping -------------------------------------------------------------------------

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialize up/down of one data dir across processes (two terminals, test sessions)."""
        self.run.mkdir(parents=True, exist_ok=True)
        with open(self.run / "lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def _owned(self, svc: _Service) -> int | None:
        return owned_pid(svc.pid_file, svc.markers)

    def _check_ports(self, names: list[str]) -> None:
        """Fail before starting anything when a port we need is held by someone else."""
        for name in names:
            for port, setting in self._services[name].ports:
                if port_in_use(port):
                    who = ", ".join(describe_pid(p) for p in listener_pids(port))
                    who = who or "by a process not started by newspipe"
                    raise LocalRuntimeError(
                        f"port {port} is already in use ({who}); "
                        f"{name} needs it: stop that process or move {name} with {setting}"
                    )

    def _spawn(
        self,
        name: str,
        cmd: list[str],
        cwd: Path,
        env: dict[str, str] | None = None,
        user: tuple[int, int] | None = None,
    ) -> subprocess.Popen:
        """Start a server detached (own session, so it survives us and can be stopped as a
        process group), stdout/stderr appended to ``logs/<name>.out``, pid file written."""
        self.logs.mkdir(parents=True, exist_ok=True)
        for path in self._services[name].logs:
            self._log_starts[path] = path.stat().st_size if path.exists() else 0
        as_user = {"user": user[0], "group": user[1], "extra_groups": []} if user else {}
        with open(self.logs / f"{name}.out", "ab") as out:
            out.write(f"\n--- {time.strftime('%F %T')} newspipe up: {' '.join(cmd)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **as_user,
            )
        write_pid(self._services[name].pid_file, proc.pid)
        self._procs[name] = proc
        return proc

    def _stop(self, names: list[str]) -> list[str]:
        stopped = []
        for name in names:
            svc = self._services[name]
            proc = self._procs.pop(name, None)  # set when this object started it
            pid = proc.pid if proc is not None and proc.poll() is None else self._owned(svc)
            if pid is not None:
                if not stop_group(pid):
                    log.warning("%s (pid %d) ignored SIGTERM and was killed", name, pid)
                stopped.append(name)
            if proc is not None:
                proc.wait(timeout=10)  # reap (stop_group saw it exit)
            svc.pid_file.unlink(missing_ok=True)
        return stopped

    def _wait_healthy(self, names: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            for name in list(pending):
                svc = self._services[name]
                pid = read_pid(svc.pid_file)
                if pid is None or not pid_alive(pid):
                    proc = self._procs.get(name)
                    code = f" with code {proc.poll()}" if proc and proc.poll() is not None else ""
                    raise LocalRuntimeError(
                        f"{name} exited during start{code}.{self._log_tails(svc)}"
                    )
                if svc.healthy():
                    pending.remove(name)
            if pending and time.monotonic() > deadline:
                svc = self._services[pending[0]]
                raise LocalRuntimeError(
                    f"{svc.name} did not become healthy within {timeout:.0f}s."
                    + self._log_tails(svc)
                )
            if pending:
                time.sleep(0.5)

    def _log_tails(self, svc: _Service) -> str:
        parts = [
            f"\n--- last lines of {p} ---\n{t}"
            for p in svc.logs
            if (t := tail(p, 30, start=self._log_starts.get(p, 0)))
        ]
        return "".join(parts) or f" (no output in {', '.join(map(str, svc.logs))})"

    # -- Kafka -------------------------------------------------------------------------------

    def _cluster_id(self) -> str:
        """A new id for one broker; the cluster's id (kept in the data dir) for several."""
        if self.settings.kafka_brokers == 1:
            return new_cluster_id()
        path = self.data_dir / "kafka-cluster-id"
        if not path.exists():
            path.write_text(new_cluster_id())
        return path.read_text().strip()

    def _start_kafka(self, node: int = 1) -> subprocess.Popen:
        s = self.settings
        name = self.node_name(KAFKA, node, s.kafka_brokers)
        kdir = self._kafka_dir(node)
        java = str(java_home() / "bin" / "java")
        data = kdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        props = kdir / "server.properties"
        props.write_text(render_kafka_properties(s, data, node))
        log4j = kdir / "log4j.properties"
        log4j.write_text(render_kafka_log4j(self.logs / f"{name}.log"))
        classpath = f"{self.kafka_libs}/*"
        if not (data / "meta.properties").exists():  # KRaft storage is formatted once
            r = subprocess.run(
                [
                    java,
                    f"-Dlog4j.configuration=file:{log4j}",
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    self._cluster_id(),
                    "-c",
                    str(props),
                ],
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                raise LocalRuntimeError(f"formatting Kafka storage failed:\n{r.stdout}{r.stderr}")
        cmd = [
            java,
            f"-Xms{self.kafka_heap}",
            f"-Xmx{self.kafka_heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{log4j}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(props),
        ]
        return self._spawn(name, cmd, cwd=kdir)

    def _kafka_healthy(self, node: int = 1) -> bool:
        """The broker accepts a topic creation and a produced message."""
        from kafka import KafkaProducer
        from kafka.admin import KafkaAdminClient, NewTopic
        from kafka.errors import TopicAlreadyExistsError

        port = kafka_ports(self.settings, node)[0]
        if not port_accepts(port):
            return False
        addr = f"{HOST}:{port}"
        with _quiet("kafka"):
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=addr, request_timeout_ms=5000, client_id="newspipe-up"
                )
                try:
                    admin.create_topics([NewTopic(HEALTH_TOPIC, 1, 1)])
                except TopicAlreadyExistsError:
                    pass
                finally:
                    admin.close()
                producer = KafkaProducer(
                    bootstrap_servers=addr,
                    client_id="newspipe-up",
                    max_block_ms=5000,
                    request_timeout_ms=5000,
                )
                try:
                    producer.send(HEALTH_TOPIC, b"ping").get(timeout=10)
                finally:
                    producer.close(timeout=2)
            except Exception as e:  # any client error: not ready yet, try again
                log.debug("kafka not ready: %r", e)
                return False
        return True

    def _kafka_info(self, pid: int, port: int) -> tuple[str | None, str]:
        """(version from the jars on the running broker's classpath, health)."""
        args = cmdline(pid)
        cp = args[args.index("-cp") + 1] if "-cp" in args else ""
        version = kafka_version_of(Path(cp.rstrip("*").rstrip("/"))) if cp else None
        health = "accepting connections" if port_accepts(port) else "starting"
        return version, health

    # -- Elasticsearch -----------------------------------------------------------------------

    def _es_user(self) -> tuple[int, int] | None:
        """(uid, gid) to run Elasticsearch as: it refuses root, so root uses es_run_as."""
        return ensure_user(self.settings.es_run_as) if os.geteuid() == 0 else None

    def _es_root(self, node: int = 1) -> Path:
        """Where Elasticsearch's config, data and logs live.

        Normally ``<data_dir>/es``. When root runs us and the ES user cannot traverse the data
        dir (e.g. it is under /root, mode 700), a per-data-dir directory under
        /var/lib/newspipe is used instead, holding a hard-linked copy of the distribution too.
        """
        suffix = "" if self.settings.es_nodes == 1 else f"-{node}"
        local = self.data_dir / f"es{suffix}"
        if os.geteuid() != 0:
            return local
        try:
            pw = pwd.getpwnam(self.settings.es_run_as)
        except KeyError:  # not created yet: judge by "others" permissions
            uid, gids = -1, ()
        else:
            uid, gids = pw.pw_uid, (pw.pw_gid,)
        if traversable_by(self.data_dir, uid, gids):
            return local
        digest = hashlib.sha1(str(self.data_dir).encode()).hexdigest()[:10]
        return ES_FALLBACK_BASE / f"es-{digest}{suffix}"

    def _es_home(self, node: int = 1) -> Path:
        """The distribution ES runs from: ``dist/`` or, in the fallback root, a copy of it."""
        root = self._es_root(node)
        return self.es_dist if root.parent == self.data_dir else root / self.es_dist.name

    def _start_es(self, node: int = 1) -> subprocess.Popen:
        s = self.settings
        user = self._es_user()
        root, home = self._es_root(node), self._es_home(node)
        if home != self.es_dist:  # the ES user cannot reach data_dir: use a copy
            root.mkdir(parents=True, exist_ok=True)
            ES_FALLBACK_BASE.chmod(0o755)
            root.chmod(0o755)
            if not (home / "bin" / "elasticsearch").exists():
                _link_tree(self.es_dist, home)
        conf, data, logs, tmp = root / "config", root / "data", root / "logs", root / "tmp"
        for d in (conf / "jvm.options.d", data, logs, tmp):
            d.mkdir(parents=True, exist_ok=True)
        # our own config dir (ES_PATH_CONF): the distribution's is root-only (mode 660)
        for name in ("jvm.options", "log4j2.properties"):
            shutil.copyfile(home / "config" / name, conf / name)
        (conf / "elasticsearch.yml").write_text(render_es_yml(s, data, logs, node))
        if user:  # ES writes its keystore into config/, so it must own that too
            for path in (conf, *conf.rglob("*")):
                os.chown(path, *user)
            for d in (data, logs, tmp):
                _chown_tree(d, *user)
        jhome = java_home()
        env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "JAVA_TOOL_OPTIONS")}
        env.update(
            ES_JAVA_HOME=str(jhome),  # the integ-test zip bundles no JDK
            ES_PATH_CONF=str(conf),
            ES_JAVA_OPTS=f"-Xms{self.es_heap} -Xmx{self.es_heap}",
            ES_TMPDIR=str(tmp),  # else a new /tmp/elasticsearch-<random> is left per start
        )
        name = self.node_name(ES, node, s.es_nodes)
        return self._spawn(
            name, [str(home / "bin" / "elasticsearch")], cwd=root, env=env, user=user
        )

    def _es_healthy(self, node: int = 1) -> bool:
        port = es_ports(self.settings, node)[0]
        url = f"http://{HOST}:{port}/_cluster/health?wait_for_status=yellow&timeout=2s"
        try:
            return _http_json(url)["status"] in ("yellow", "green")
        except (OSError, ValueError, KeyError):  # refused, 408 timeout, not JSON yet
            return False

    def _es_info(self, port: int) -> tuple[str | None, str]:
        base = f"http://{HOST}:{port}"
        try:
            # not GET /: the integ-test distribution lacks the rest-root module serving it
            nodes = _http_json(base + "/_nodes/_local?filter_path=nodes.*.version", timeout=2)
            version = next(iter(nodes["nodes"].values()))["version"]
            health = _http_json(base + "/_cluster/health", timeout=2)["status"]
        except (OSError, ValueError, KeyError, StopIteration):
            return None, "starting"
        return version, health
