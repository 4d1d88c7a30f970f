"""The alerts HTTP API on the real stack: token, validation, backfill, list, history, delete."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(stack):
    from pipeline.api import create_api

    return TestClient(create_api(stack.settings))


@pytest.fixture(scope="module")
def auth(stack):
    return {"Authorization": f"Bearer {stack.settings.api_token}"}


def test_requests_without_the_token_are_refused(client):
    assert client.get("/subscriptions").status_code == 401
    assert client.get("/subscriptions", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/health").status_code == 200


def test_an_invalid_query_is_rejected_with_its_position(client, auth):
    response = client.post("/subscriptions", json={"query": "memorandum AND (talks"}, headers=auth)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "parenthes" in detail["error"] and isinstance(detail["position"], int)


def test_backfill_reports_indexed_articles_and_fires_once(client, auth, stack):
    request = {"query": "entity:\"Vladimir Medinsky\" AND sanctions", "owner": "api", "backfill": True}
    response = client.post("/subscriptions", json=request, headers=auth)
    assert response.status_code == 201, response.text
    body = response.json()
    expected = {stack.seed_ids[k] for k in ("001", "002", "004")}  # Medinsky and sanctions
    assert {a["article_id"] for a in body["backfill"]} == expected
    assert all(a["backfill"] for a in body["backfill"])
    again = client.post("/subscriptions", json=request, headers=auth).json()
    assert again["subscription"]["id"] == body["subscription"]["id"]
    assert again["backfill"] == []  # the same (subscription, article) never fires twice

    sub_id = body["subscription"]["id"]
    listed = client.get("/subscriptions", params={"owner": "api"}, headers=auth).json()
    assert [s["id"] for s in listed] == [sub_id]
    stack.es.indices.refresh(index=stack.settings.index("alerts"))
    history = client.get("/alerts", params={"subscription_id": sub_id}, headers=auth).json()
    assert {a["article_id"] for a in history} == expected

    assert client.delete(f"/subscriptions/{sub_id}", headers=auth).status_code == 204
    assert client.get(f"/subscriptions/{sub_id}", headers=auth).status_code == 404
    assert client.delete(f"/subscriptions/{sub_id}", headers=auth).status_code == 404
