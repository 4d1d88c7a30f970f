"""The local runtime's pure parts: rendered config files, ids, pid files, ports, stopping.

Starts no servers (only short-lived `sleep` processes).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pipeline.runtime.local import (
    LocalRuntime,
    LocalRuntimeError,
    kafka_version_of,
    new_cluster_id,
    render_es_yml,
    render_kafka_log4j,
    render_kafka_properties,
    traversable_by,
)
from pipeline.runtime.process import (
    group_members,
    listener_pids,
    owned_pid,
    pid_alive,
    port_in_use,
    read_pid,
    stop_group,
    tail,
    write_pid,
)
from pipeline.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def listener():
    """A socket listening on a free loopback port."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s
    s.close()


# --- rendered files -------------------------------------------------------------------------


def parse_properties(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_kafka_properties():
    s = Settings(kafka_port=19092, kafka_controller_port=19093, max_message_bytes=1234)
    props = parse_properties(render_kafka_properties(s, Path("/d/kafka data")))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["log.dirs"] == "/d/kafka data"
    assert props["message.max.bytes"] == props["replica.fetch.max.bytes"] == "1234"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["num.partitions"] == "4"


def test_kafka_log4j_writes_to_the_given_file():
    props = parse_properties(render_kafka_log4j(Path("/logs/kafka.log")))
    assert props["log4j.rootLogger"] == "INFO, file"
    assert props["log4j.appender.file.File"] == "/logs/kafka.log"


def test_es_yml():
    s = Settings(es_port=19200)
    text = render_es_yml(s, Path("/d/es data"), Path("/d/es: logs"))
    conf = {
        k: json.loads(v)
        for k, v in (line.split(": ", 1) for line in text.splitlines() if not line.startswith("#"))
    }
    assert conf["discovery.type"] == "single-node"
    assert conf["network.host"] == "127.0.0.1"
    assert conf["http.port"] == 19200
    assert conf["transport.port"] == 19300
    assert conf["xpack.security.enabled"] is False
    assert conf["cluster.routing.allocation.disk.threshold_enabled"] is False
    assert conf["path.data"] == "/d/es data"
    assert conf["path.logs"] == "/d/es: logs"  # quoted, so YAML keeps it a string


def test_cluster_id():
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert len(cid) == 22 and not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_kafka_version_of(tmp_path):
    assert kafka_version_of(tmp_path) is None
    for jar in ("kafka-clients-3.9.2.jar", "kafka_2.13-3.9.2.jar", "kafka-raft-3.9.2.jar"):
        (tmp_path / jar).touch()
    assert kafka_version_of(tmp_path) == "3.9.2"


def test_traversable_by():
    # not under tmp_path: pytest's base temp dir is mode 700, i.e. not traversable itself
    with tempfile.TemporaryDirectory() as top:
        os.chmod(top, 0o755)
        a = Path(top) / "a"
        (a / "b").mkdir(parents=True)
        stranger = 54321
        assert traversable_by(a / "b", stranger, [])
        assert traversable_by(a / "b" / "not-yet-created", stranger, [])
        os.chmod(a, 0o750)
        assert not traversable_by(a / "b", stranger, [])
        assert traversable_by(a / "b", stranger, [a.stat().st_gid])  # via the group


# --- pid files, processes -------------------------------------------------------------------


def test_pid_file_round_trip(tmp_path):
    f = tmp_path / "run" / "x.pid"
    assert read_pid(f) is None
    write_pid(f, 4242)
    assert read_pid(f) == 4242
    f.write_text("garbage\n")
    assert read_pid(f) is None


def test_owned_pid(tmp_path):
    f = tmp_path / "me.pid"
    write_pid(f, os.getpid())
    assert owned_pid(f, [sys.executable]) == os.getpid()
    # alive but not ours (command line does not match): the pid file is stale
    assert owned_pid(f, ["kafka.Kafka"]) is None
    assert not f.exists()


def test_owned_pid_of_a_dead_process(tmp_path):
    proc = subprocess.Popen(["true"])
    proc.wait()
    f = tmp_path / "dead.pid"
    write_pid(f, proc.pid)
    assert not pid_alive(proc.pid)
    assert owned_pid(f, []) is None
    assert not f.exists()


def test_stop_group_stops_children():
    proc = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60"], start_new_session=True)
    deadline = time.monotonic() + 5
    while len(group_members(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(group_members(proc.pid)) >= 2
    assert stop_group(proc.pid, timeout=5) is True  # the orphaned `sleep` got SIGTERM too
    assert group_members(proc.pid) == []
    proc.wait()


def test_stop_group_kills_what_ignores_sigterm():
    proc = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60"], start_new_session=True)
    time.sleep(0.2)
    assert stop_group(proc.pid, timeout=0.5) is False
    assert group_members(proc.pid) == []
    proc.wait()


def test_tail(tmp_path):
    f = tmp_path / "log"
    assert tail(f) == ""
    f.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail(f, 3) == "line 97\nline 98\nline 99"
    assert tail(f, 3, start=f.stat().st_size - len("line 99\n")) == "line 99"
    assert tail(f, 1, start=10**9) == "line 99"  # rotated: shorter than the offset


# --- ports --------------------------------------------------------------------------------


def test_port_in_use(listener):
    port = listener.getsockname()[1]
    assert port_in_use(port)
    assert os.getpid() in listener_pids(port)
    listener.close()
    assert not port_in_use(port)


def test_up_fails_fast_when_a_port_is_taken(tmp_path, listener):
    port = listener.getsockname()[1]
    settings = Settings(
        data_dir=tmp_path, kafka_port=free_port(), kafka_controller_port=free_port(), es_port=port
    )
    expected = f"port {port} is already in use .*pid {os.getpid()}"
    with pytest.raises(LocalRuntimeError, match=expected):
        LocalRuntime(settings).up()
    assert not (tmp_path / "dist").exists()  # failed before resolving or starting anything
    assert not (tmp_path / "run" / "kafka.pid").exists()


def test_status_when_nothing_runs(tmp_path, listener):
    settings = Settings(
        data_dir=tmp_path, kafka_port=free_port(), es_port=listener.getsockname()[1]
    )
    kafka, es = LocalRuntime(settings).status()
    assert (kafka.name, kafka.running, kafka.note) == ("kafka", False, None)
    assert (es.name, es.running) == ("elasticsearch", False)
    assert "in use by another process" in es.note


def test_kafka_cluster_properties():
    s = Settings(kafka_port=19092, kafka_controller_port=19093, kafka_brokers=3)
    props = parse_properties(render_kafka_properties(s, Path("/d/kafka-2/data"), node=2))
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095"
    assert props["offsets.topic.replication.factor"] == props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"


def test_single_broker_properties_have_no_cluster_settings():
    props = parse_properties(render_kafka_properties(Settings(), Path("/d")))
    assert "min.insync.replicas" not in props and "default.replication.factor" not in props


def test_es_cluster_yml():
    s = Settings(es_port=19200, es_nodes=3)
    text = render_es_yml(s, Path("/d/es-3/data"), Path("/d/es-3/logs"), node=3)
    conf = {
        k: json.loads(v)
        for k, v in (line.split(": ", 1) for line in text.splitlines() if not line.startswith("#"))
    }
    assert "discovery.type" not in conf
    assert conf["node.name"] == "newspipe-local-3"
    assert (conf["http.port"], conf["transport.port"]) == (19202, 19302)
    assert conf["discovery.seed_hosts"] == ["127.0.0.1:19300", "127.0.0.1:19301", "127.0.0.1:19302"]
    assert conf["cluster.initial_master_nodes"] == [f"newspipe-local-{i}" for i in (1, 2, 3)]


def test_topics_of_a_replicated_cluster_need_two_in_sync_replicas():
    from pipeline.infra.topics import topic_configs

    for replication, expected in ((1, None), (2, "1"), (3, "2")):
        configs = topic_configs(Settings(topic_replication=replication))
        assert {c.get("min.insync.replicas") for _, c in configs.values()} == {expected}


def test_free_port_settings_leave_the_ephemeral_range_alone():
    from pipeline.runtime.local import free_port_settings

    ports = free_port_settings(3, 3)
    assert ports["kafka_controller_port"] == ports["kafka_port"] + 1
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert all(20000 <= p < low for p in ports.values())


def test_cluster_nodes_get_small_heaps_unless_set(tmp_path):
    from pipeline.runtime.local import LocalRuntime

    single = LocalRuntime(Settings(data_dir=tmp_path))
    cluster = LocalRuntime(Settings(data_dir=tmp_path, kafka_brokers=3, es_nodes=3))
    chosen = LocalRuntime(Settings(data_dir=tmp_path, kafka_brokers=3, es_nodes=3, es_heap="384m"))
    assert (single.kafka_heap, single.es_heap) == ("512m", "512m")
    assert (cluster.kafka_heap, cluster.es_heap) == ("256m", "256m")
    assert chosen.es_heap == "384m"
    assert [s.name for s in cluster.status()] == [
        "kafka-1",
        "kafka-2",
        "kafka-3",
        "elasticsearch-1",
        "elasticsearch-2",
        "elasticsearch-3",
    ]
    assert [s.name for s in single.status()] == ["kafka", "elasticsearch"]
