"""A broker and an Elasticsearch node lost mid-stream, on a real 3-broker / 3-node cluster of
the test's own (free ports, its own data dir, the Maven-resolved dist shared through
``NEWS_DIST_DIR``): nothing lost, no id doubled in the index or at a webhook receiver.

Marker ``cluster`` (its own CI step, ``pytest -m cluster``): it starts six JVMs. The pause the
loss caused is printed here and by ``python -m benchmarks.failover``, never asserted.
``NEWS_FAILOVER_DATA_DIR`` = the data dir of a running ``newspipe up --brokers 3 --es-nodes 3``
uses that cluster instead (development)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from benchmarks.failover import cluster_settings, failover
from pipeline.runtime.local import LocalRuntime, with_shape
from pipeline.settings import get_settings

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster():
    given = os.environ.get("NEWS_FAILOVER_DATA_DIR")
    if given:
        runtime = LocalRuntime(with_shape(get_settings(), Path(given)))
        runtime.up(timeout=600)
        yield runtime
        runtime.up(timeout=600)  # the killed nodes come back
        return
    user_data_dir = Path(os.environ.get("NEWS_DATA_DIR") or REPO / ".newspipe").resolve()
    base = user_data_dir / "test-runs" / f"cluster-{os.getpid()}"
    shutil.rmtree(base, ignore_errors=True)
    settings = cluster_settings(base)
    if settings.dist_dir is None or not Path(settings.dist_dir).exists():
        settings = settings.model_copy(update={"dist_dir": user_data_dir / "dist"})
    runtime = LocalRuntime(settings)
    try:
        runtime.up(timeout=600)
        yield runtime
    finally:
        runtime.down()
        shutil.rmtree(base, ignore_errors=True)


def test_a_lost_broker_and_node_lose_and_double_nothing(cluster, tmp_path) -> None:
    report = failover(cluster, tmp_path, n_articles=300, kill_at=100)
    for line in report.lines():
        print(line)
    assert report.killed == ["kafka-2", "elasticsearch-3"]
    assert report.missing == []
    assert report.index_count == report.sent == 300  # every id once (ids are _id)
    assert report.doubled_alert_ids == []  # at the receiver: one key per (subscription, article)
    assert report.alerts_delivered == report.ledger_alerts > 0  # every alert reached it
