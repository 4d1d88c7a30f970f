"""Metrics without servers: what the worker records, the ASGI app, and the compose stack's
Prometheus + Grafana files checked structurally (every dashboard series is one the code
exports; every scrape target is a compose service on the port the settings give)."""

from __future__ import annotations

import json
import re
from datetime import UTC
from pathlib import Path

import pytest

from pipeline.infra.deadletter import dead_letter
from pipeline.ops import metrics
from schemas import Alert, AlertMatch, DuplicateRecord

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "newspipe.json"


def value(name: str, **labels) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_record_sent_counts_dead_letters_duplicates_and_alert_latency():
    before_dead = value("newspipe_dead_letters_total", stage="clean", reason="CleanError")
    before_near = value("newspipe_dedupe_hits_total", kind="near")
    before_lat = value("newspipe_alert_latency_seconds_count")

    class CleanError(Exception):
        pass

    metrics.record_sent("deadletter", [dead_letter("clean", CleanError("empty body"), b"{}")])
    metrics.record_sent(
        "duplicates",
        [DuplicateRecord(article_id="a", duplicate_of="b", kind="near", similarity=0.9)],
    )
    from datetime import datetime

    now = datetime.now(UTC)
    alert = Alert(
        id="x",
        subscription_id="s",
        query="q",
        owner="o",
        article_id="a",
        title="t",
        matched=AlertMatch(),
        snippet="",
        ingested_at=now,
        created_at=now,
        latency_ms=250.0,
    )
    metrics.record_sent("alerts", [alert])
    metrics.record_sent("alerts", [])
    assert (
        value("newspipe_dead_letters_total", stage="clean", reason="CleanError") == before_dead + 1
    )
    assert value("newspipe_dedupe_hits_total", kind="near") == before_near + 1
    assert value("newspipe_alert_latency_seconds_count") == before_lat + 1
    assert value("newspipe_alert_latency_seconds_bucket", le="0.25") >= 1


def test_metrics_app_serves_the_registry():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    api = FastAPI()
    api.mount("/metrics", metrics.metrics_app())
    metrics.record_webhook(True)
    text = TestClient(api).get("/metrics/").text
    assert 'newspipe_webhook_deliveries_total{outcome="delivered"}' in text


def test_instrument_api_counts_requests_by_route_template():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    api = FastAPI()

    @api.get("/things/{thing}")
    def thing(thing: str) -> dict:
        return {"thing": thing}

    metrics.instrument_api(api)
    client = TestClient(api)
    before = value(
        "newspipe_api_requests_total", method="GET", route="/things/{thing}", status="200"
    )
    client.get("/things/a"), client.get("/things/b")
    assert (
        value("newspipe_api_requests_total", method="GET", route="/things/{thing}", status="200")
        == before + 2
    )
    assert "newspipe_api_requests_total" in client.get("/metrics/").text


def test_serve_off_when_port_is_zero():
    assert metrics.serve(0) == 0


def exported_names() -> set[str]:
    names = set()
    for family in metrics.REGISTRY.collect():
        for sample in family.samples:
            names.add(sample.name)
        names.add(family.name)
    # series not yet observed in this process: their families are known by the collectors
    for collector in list(metrics.REGISTRY._collector_to_names):
        names |= set(metrics.REGISTRY._collector_to_names[collector])
    return names


def test_dashboard_queries_only_exported_series():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "newspipe" and dashboard["panels"]
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b(newspipe_[a-z_]+)", e)}
    assert used <= exported_names(), used - exported_names()
    assert {
        "newspipe_consumer_lag",
        "newspipe_stage_messages_total",
        "newspipe_dead_letters_total",
        "newspipe_alert_latency_seconds_bucket",
        "newspipe_webhook_deliveries_total",
        "newspipe_dedupe_hits_total",
    } <= used
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "newspipe-prometheus"


def test_prometheus_and_grafana_in_compose():
    yaml = pytest.importorskip("yaml")
    from pipeline.settings import Settings
    from tests.unit.test_compose import COMPOSE, interpolate, read_env_example

    compose = interpolate(yaml.safe_load(COMPOSE.read_text()), read_env_example())
    services = compose["services"]
    env = services["worker"]["environment"]
    port = Settings(_env_file=None, metrics_port=env["NEWS_METRICS_PORT"]).metrics_port
    assert port > 0 and env["NEWS_METRICS_HOST"] == "0.0.0.0"

    prom = services["prometheus"]
    mounted = {v.split(":")[0]: v.split(":")[1] for v in prom["volumes"] if v.startswith("./")}
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert "/etc/prometheus/prometheus.yml" in mounted.values()
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    worker_sd = jobs["newspipe-worker"]["dns_sd_configs"][0]
    assert worker_sd["names"] == ["worker"] and worker_sd["port"] == port
    host, api_port = jobs["newspipe-api"]["static_configs"][0]["targets"][0].split(":")
    assert host == "api" and f"--port {api_port}" in " ".join(services["api"]["command"])

    grafana = services["grafana"]
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for volume in grafana["volumes"]:
        assert (ROOT / volume.split(":")[0]).exists(), volume
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    ds = datasource["datasources"][0]
    assert ds["uid"] == "newspipe-prometheus" and ds["url"] == "http://prometheus:9090"
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/newspipe.yml").read_text()
    )
    dash_dir = provider["providers"][0]["options"]["path"]
    assert any(
        v.endswith(f":{dash_dir}:ro") and "deploy/grafana/dashboards" in v
        for v in grafana["volumes"]
    )


# --- the newspipe HTTP API's /metrics (pipeline/api/app.py) -------------------------------------

OFFLINE = dict(kafka_bootstrap="127.0.0.1:1", es_url="http://127.0.0.1:1")


def newspipe_api(tmp_path, **settings):
    from fastapi.testclient import TestClient

    from pipeline.api import create_api
    from pipeline.settings import Settings

    app = create_api(
        Settings(
            _env_file=None, api_token="metrics-unit-token", data_dir=tmp_path, **OFFLINE, **settings
        )
    )
    return app, TestClient(app, raise_server_exceptions=False)


def test_the_api_serves_its_metrics_without_a_key_by_default_and_counts_route_templates(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    app, client = newspipe_api(tmp_path)
    bad = {"Authorization": "Bearer nope"}
    before = value(
        "newspipe_api_requests_total",
        method="GET",
        route="/subscriptions/{subscription_id}",
        status="401",
    )
    before_health = value(
        "newspipe_api_requests_total", method="GET", route="/health", status="200"
    )
    before_none = value(
        "newspipe_api_requests_total", method="GET", route="unmatched", status="404"
    )
    client.get("/subscriptions/sub-1", headers=bad), client.get("/subscriptions/sub-2", headers=bad)
    client.get("/health"), client.get("/no/such/route")
    response = client.get("/metrics")  # no key, no redirect to /metrics/
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(response.text)
        for s in f.samples
    }
    key = (
        "newspipe_api_requests_total",
        (("method", "GET"), ("route", "/subscriptions/{subscription_id}"), ("status", "401")),
    )
    assert samples[key] == before + 2, "by route template, never the raw path"
    assert not any("sub-1" in str(labels) for _, labels in samples)
    assert (
        value("newspipe_api_requests_total", method="GET", route="/health", status="200")
        == before_health + 1
    )
    assert (
        value("newspipe_api_requests_total", method="GET", route="unmatched", status="404")
        == before_none + 1
    )
    assert value("newspipe_api_requests_total", method="GET", route="/metrics", status="200") >= 1
    # a scraper asking for OpenMetrics gets it
    openmetrics = client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")
    # not part of the API's contract (the OpenAPI document), like / and /static
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_an_unavailable_server_is_counted_as_the_503_it_answers(tmp_path):
    _, client = newspipe_api(tmp_path)
    before = value("newspipe_api_requests_total", method="GET", route="/search", status="503")
    response = client.get(
        "/search", params={"q": "x"}, headers={"Authorization": "Bearer metrics-unit-token"}
    )
    assert response.status_code == 503
    assert (
        value("newspipe_api_requests_total", method="GET", route="/search", status="503")
        == before + 1
    )


def test_api_metrics_auth_lets_only_an_admin_key_scrape(tmp_path):
    from pipeline.ops.keys import Caller

    app, client = newspipe_api(tmp_path, api_metrics_auth=True)
    owners = {
        "np_a_alice": Caller("alice", key_id="a"),
        "np_o_ops": Caller("ops", admin=True, key_id="o"),
    }
    app.state.ctx.keys = type("Keys", (), {"authenticate": lambda self, key: owners.get(key)})()
    assert client.get("/metrics").status_code == 401
    assert (
        client.get("/metrics", headers={"Authorization": "Bearer np_x_unknown"}).status_code == 401
    )
    assert client.get("/metrics", headers={"Authorization": "Bearer np_a_alice"}).status_code == 403
    for admin in ("np_o_ops", "metrics-unit-token"):
        response = client.get("/metrics", headers={"Authorization": f"Bearer {admin}"})
        assert response.status_code == 200 and "newspipe_api_requests_total" in response.text, admin


def test_the_garbage_collectors_passes_are_timed_once_per_process():
    import gc

    metrics.watch_gc()
    metrics.watch_gc()
    assert sum(isinstance(c, metrics._GcTimer) for c in gc.callbacks) == 1
    before = value("newspipe_gc_pause_seconds_count", generation="2")
    gc.collect()
    assert value("newspipe_gc_pause_seconds_count", generation="2") == before + 1
    assert value("newspipe_gc_pause_seconds_sum", generation="2") > 0


def test_the_benchmark_reads_the_workers_gc_passes_from_its_endpoint():
    import gc

    from benchmarks.performance import free_port, gc_difference, gc_pauses

    metrics.watch_gc()
    port = metrics.serve(free_port())
    before = gc_pauses(port)
    gc.collect()
    after = gc_pauses(port)
    passes = gc_difference(before, after)
    assert passes["2"]["count"] == 1
    assert passes["2"]["seconds"] > 0
    assert 0 <= passes["2"]["long"] <= 1
    assert gc_pauses(free_port()) is None  # nothing serves there
    assert gc_difference(None, after) == {}
