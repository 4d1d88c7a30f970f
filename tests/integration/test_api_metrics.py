"""The HTTP API's Prometheus metrics on the real stack: ``newspipe api`` runs as its own process
(its own registry, as in production), real requests go through it (an article in through Kafka
and the worker, search, the article view, a subscription made, read and deleted, a live alert
stream, refused keys) and ``/metrics``, scraped without a key the way Prometheus does, shows
``newspipe_api_requests_total`` move by route template and status."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import REPO

pytestmark = pytest.mark.integration

SERIES = "newspipe_api_requests_total"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api(stack, tmp_path_factory):
    """``newspipe api`` as a process over the session's stack."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("api-metrics") / "api.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "api",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=REPO,
            env=os.environ.copy(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(
                "newspipe api did not start:\n" + log_path.read_text(errors="replace")[-3000:]
            )
        time.sleep(0.2)
    client = httpx.Client(
        base_url=url, timeout=30, headers={"Authorization": f"Bearer {stack.settings.api_token}"}
    )
    client.url = url
    yield client
    client.close()
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def scrape(api) -> dict[tuple[str, str, str], float]:
    """``/metrics`` as Prometheus scrapes it (no key): requests by (method, route, status)."""
    response = httpx.get(f"{api.url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == SERIES:
                out[(sample.labels["method"], sample.labels["route"], sample.labels["status"])] = (
                    sample.value
                )
    return out


def moved(before: dict, after: dict) -> dict[tuple[str, str, str], float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def test_api_metrics_move_by_route_template_during_real_requests(api, stack):
    before = scrape(api)
    marker = uuid.uuid4().hex[:8]
    article = {
        "title": f"Metrics harbour memorandum {marker}",
        "body": f"Officials signed a memorandum {marker} on port data sharing, the harbour office said.",
        "source": "metrics-test",
    }
    posted = api.post("/articles", json=article)
    assert posted.status_code == 202, posted.text
    [article_id] = posted.json()["ids"]
    stack.wait_indexed([article_id])
    assert api.get(f"/articles/{article_id}").status_code == 200
    assert api.get(f"/articles/nothing-{marker}").status_code == 404
    assert api.get("/search", params={"q": marker}).json()["total"] >= 1

    made = api.post(
        "/subscriptions", json={"query": f"memorandum AND {marker}", "owner": "metrics"}
    )
    assert made.status_code == 201, made.text
    sub_id = made.json()["subscription"]["id"]
    assert api.get(f"/subscriptions/{sub_id}").status_code == 200
    with httpx.stream(
        "GET",
        f"{api.url}/alerts/stream",
        timeout=30,
        params={"subscription_id": sub_id, "access_token": stack.settings.api_token},
    ) as live:
        assert live.status_code == 200
        during = scrape(api)  # a stream is counted when it starts, not when it ends
    assert moved(before, during).get(("GET", "/alerts/stream", "200")) == 1
    assert api.delete(f"/subscriptions/{sub_id}").status_code == 204
    assert api.delete(f"/subscriptions/{sub_id}").status_code == 404
    assert (
        httpx.get(f"{api.url}/subscriptions", headers={"Authorization": "Bearer wrong"}).status_code
        == 401
    )
    assert httpx.get(f"{api.url}/no/such/route-{marker}").status_code == 404

    delta = moved(before, scrape(api))
    assert delta.pop(("GET", "/metrics", "200")) >= 2  # the scrapes themselves
    assert delta == {
        ("POST", "/articles", "202"): 1,
        ("GET", "/articles/{article_id}", "200"): 1,
        ("GET", "/articles/{article_id}", "404"): 1,
        ("GET", "/search", "200"): 1,
        ("POST", "/subscriptions", "201"): 1,
        ("GET", "/subscriptions/{subscription_id}", "200"): 1,
        ("GET", "/alerts/stream", "200"): 1,
        ("DELETE", "/subscriptions/{subscription_id}", "204"): 1,
        ("DELETE", "/subscriptions/{subscription_id}", "404"): 1,
        ("GET", "/subscriptions", "401"): 1,
        ("GET", "unmatched", "404"): 1,
    }
    labels = " ".join(" ".join(key) for key in scrape(api))
    assert marker not in labels and article_id not in labels and sub_id not in labels, (
        "no raw paths as labels"
    )
