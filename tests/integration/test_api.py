"""The HTTP API on the real stack: token, subscriptions, backfill, history, articles in, search,
article view, Atom feed, and the live alert stream (real uvicorn server)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC

import httpx
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
    assert (
        client.get("/subscriptions", headers={"Authorization": "Bearer wrong"}).status_code == 401
    )
    assert client.get("/health").status_code == 200


def test_an_invalid_query_is_rejected_with_its_position(client, auth):
    response = client.post("/subscriptions", json={"query": "memorandum AND (talks"}, headers=auth)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "parenthes" in detail["error"] and isinstance(detail["position"], int)


def test_backfill_reports_indexed_articles_and_fires_once(client, auth, stack):
    request = {
        "query": 'entity:"Vladimir Medinsky" AND sanctions',
        "owner": "api",
        "backfill": True,
    }
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


# --- articles, search, feed, stream (issue: one HTTP service for everything a client does) ----

NEW_ARTICLE = (
    "Officials of two port authorities signed a memorandum of understanding on Tuesday to share "
    "cargo inspection data, the harbour office said. The memorandum takes effect next month."
)


def _letters(stack) -> list[dict]:
    return [json.loads(v) for v in stack.topic_values("deadletter")]


def test_post_articles_json_and_ndjson_with_reasons_for_rejects(client, auth, stack):
    one = {
        "title": f"Harbour memorandum {uuid.uuid4().hex[:6]}",
        "body": NEW_ARTICLE,
        "source": "api-test",
    }
    response = client.post("/articles", json=one, headers=auth)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 1 and len(body["ids"]) == 1 and body["rejected"] == []

    lines = [
        json.dumps(
            {"title": "Grain talks", "body": f"Grain export talks continued {uuid.uuid4().hex}."}
        ),
        "",
        "{not json",
        json.dumps({"title": "no body"}),
        json.dumps([1, 2]),
        json.dumps({"body": "   "}),
    ]
    response = client.post(
        "/articles",
        content="\n".join(lines).encode(),
        headers={**auth, "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 1
    reasons = {r["origin"]: r["reason"] for r in body["rejected"]}
    assert set(reasons) == {"request:3", "request:4", "request:5", "request:6"}
    assert reasons["request:3"].startswith("invalid JSON at line 3")
    assert reasons["request:4"] == "missing field 'body'"
    assert reasons["request:5"] == "expected a JSON object, got list"
    assert reasons["request:6"] == "field 'body' is empty"
    # the same dead-letter path as `newspipe ingest`: stage ingest, error and original payload
    letters = {
        l["key"]: l
        for l in _letters(stack)
        if l["stage"] == "ingest" and l["key"].startswith("request:")
    }
    assert letters["request:4"]["payload"] == lines[3]
    assert letters["request:4"]["error"] == "request:4: missing field 'body'"

    stack.wait_indexed(body["ids"])
    empty = client.post(
        "/articles", content=b" ", headers={**auth, "Content-Type": "application/json"}
    )
    assert empty.status_code == 422 and "empty request body" in empty.json()["detail"]
    nothing = client.post(
        "/articles", json=[{"title": "no body"}], headers=auth
    )  # no article in it
    assert nothing.status_code == 422
    assert nothing.json()["rejected"] == [
        {"item": 0, "origin": "request[0]", "reason": "missing field 'body'"}
    ]


def test_search_highlights_facets_and_filters(client, auth, stack):
    response = client.get("/search", params={"q": "memorandum"}, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    seeds = set(stack.seed_ids.values())
    hits = [h for h in body["hits"] if h["id"] in seeds]
    assert hits, body
    assert all("<mark>memorandum</mark>" in " ".join(h["snippets"]).lower() for h in hits)
    facets = body["facets"]
    assert facets["locations"] and facets["persons"] and facets["dates"]
    assert sum(b["count"] for b in facets["dates"]) == body["total"]

    place = facets["locations"][0]
    narrowed = client.get(
        "/search", params={"q": "memorandum", "entity": place["value"]}, headers=auth
    ).json()
    assert narrowed["total"] == place["count"]
    assert all(place["value"] in h["locations"] for h in narrowed["hits"])

    bucket = facets["dates"][0]
    dated = client.get(
        "/search",
        params={"q": "memorandum", "from": bucket["start"], "to": bucket["end"]},
        headers=auth,
    ).json()
    assert dated["total"] == bucket["count"]

    langs = client.get("/search", params={"q": "memorandum", "lang": "en"}, headers=auth).json()
    assert langs["total"] == body["total"]
    assert (
        client.get("/search", params={"q": "memorandum", "lang": "xx"}, headers=auth).json()[
            "total"
        ]
        == 0
    )

    invalid = client.get("/search", params={"q": "memorandum AND ("}, headers=auth)
    assert invalid.status_code == 422 and isinstance(invalid.json()["detail"]["position"], int)
    assert client.get("/search", params={"cursor": "!!"}, headers=auth).status_code == 400


def test_cursor_paging_visits_every_hit_once(client, auth, stack):
    seen, cursor, pages = [], None, 0
    for sort in ("relevance", "newest"):
        seen, cursor = [], None
        while True:
            params = {"size": 2, "sort": sort, **({"cursor": cursor} if cursor else {})}
            page = client.get("/search", params=params, headers=auth).json()
            seen += [h["id"] for h in page["hits"]]
            cursor = page["next_cursor"]
            pages += 1
            if not cursor:
                break
        assert len(seen) == len(set(seen)) == page["total"], sort
        assert set(stack.seed_ids.values()) <= set(seen)
    assert pages >= 6


def test_article_view_has_entities_and_events(client, auth, stack):
    article_id = stack.seed_ids["001"]
    response = client.get(f"/articles/{article_id}", headers=auth)
    assert response.status_code == 200
    article = response.json()
    assert article["id"] == article_id and article["entities"] and article["body"]
    for entity in article["entities"]:
        for mention in entity["offsets"]:
            assert article["body"][mention["start"] : mention["end"]] == mention["text"]
    assert client.get("/articles/nope", headers=auth).status_code == 404


def test_atom_feed_of_a_subscription_is_valid(client, auth, stack):
    import feedparser

    sub_id = stack.subscriptions["memorandum"]
    stack.es.indices.refresh(index=stack.settings.index("alerts"))
    response = client.get(f"/subscriptions/{sub_id}/feed.atom", headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "atom10"
    assert len(feed.entries) >= len(stack.seed_ids)  # gold: "memorandum" is in every seed
    assert all(
        e.id.startswith("urn:newspipe:alert:") and e.title and e.updated for e in feed.entries
    )
    assert any("<b>memorandum</b>" in e.summary.lower() for e in feed.entries)
    by_query = client.get(
        f"/subscriptions/{sub_id}/feed.atom", params={"access_token": stack.settings.api_token}
    )
    assert by_query.status_code == 200
    assert client.get(f"/subscriptions/{sub_id}/feed.atom").status_code == 401
    assert client.get("/subscriptions/sub-none/feed.atom", headers=auth).status_code == 404


def test_atom_feed_of_a_digest_subscription_has_one_entry_per_closed_period(client, auth, stack):
    """An hourly/daily subscription's feed: one entry per closed period with alerts (stable id),
    its alerts grouped by story; the open period and empty periods have none."""
    from datetime import datetime, timedelta

    import feedparser

    from pipeline.alerts.delivery import AlertLedger
    from schemas import Alert, AlertMatch

    response = client.post(
        "/subscriptions",
        json={"query": "digestfeed", "owner": f"api-{uuid.uuid4().hex[:6]}", "digest": "daily"},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    sub_id = response.json()["subscription"]["id"]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = [today - timedelta(days=n) for n in (4, 3, 2)]  # day[1] has no alert

    def alert(n: int, when: datetime, story: str | None) -> Alert:
        return Alert(
            id=f"dg-{sub_id}-{n}",
            subscription_id=sub_id,
            query="digestfeed",
            owner="o",
            article_id=f"art-{n}",
            title=f"Headline {n}",
            story_id=story,
            matched=AlertMatch(terms=["digestfeed"]),
            snippet="the «digestfeed»",
            created_at=when,
        )

    noon = timedelta(hours=12)
    AlertLedger(stack.es, stack.settings.index("alerts")).claim(
        [
            alert(1, day[0] + noon, "story-x"),
            alert(2, day[0] + noon + timedelta(minutes=1), None),
            alert(3, day[0] + noon + timedelta(minutes=2), "story-x"),
            alert(4, day[2] + noon, None),
            alert(5, datetime.now(UTC), "story-x"),  # today's period is still open
        ]
    )
    stack.es.indices.refresh(index=stack.settings.index("alerts"))
    feed = feedparser.parse(client.get(f"/subscriptions/{sub_id}/feed.atom", headers=auth).content)
    assert not feed.bozo, feed.bozo_exception
    assert [e.id for e in feed.entries] == [
        f"urn:newspipe:digest:{sub_id}:{d.isoformat()}" for d in (day[2], day[0])
    ]
    content = feed.entries[1].content[0].value
    assert feed.entries[1].title.startswith("3 alerts for digestfeed")
    assert (
        content.index("Headline 1")
        < content.index("Headline 3")
        < content.index("Other articles")
        < content.index("Headline 2")
    )
    assert "Headline 5" not in "".join(e.content[0].value for e in feed.entries)


def _read_events(lines, want: int, timeout_s: float = 90.0) -> list[dict]:
    """SSE events (id, event, data) from the lines of a streaming response until ``want`` alerts."""
    events, current, deadline = [], {}, time.monotonic() + timeout_s
    for line in lines:
        if time.monotonic() > deadline:
            break
        if line == "":
            if current:
                events.append(current)
                current = {}
                if sum(e.get("event") == "alert" for e in events) >= want:
                    break
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(": ")
        current[field] = current.get(field, "") + value if field == "data" else value
    return events


def test_alert_stream_delivers_live_alerts_and_resumes(api_server, stack):
    query = f"memorandum AND {uuid.uuid4().hex[:8]}"
    word = query.split()[-1]
    with httpx.Client(base_url=api_server.url, headers=api_server.auth, timeout=120) as http:
        sub = http.post("/subscriptions", json={"query": query, "owner": "sse"}).json()[
            "subscription"
        ]
        with http.stream(
            "GET", "/alerts/stream", params={"subscription_id": sub["id"]}
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            assert next(lines) == "retry: 2000"
            articles = [  # different texts: a near duplicate would (rightly) alert nobody
                {
                    "title": "Dairy memorandum",
                    "body": f"Dairy cooperatives in the north and a retail chain "
                    f"agreed a memorandum on milk prices for the winter ({word}), their union said.",
                },
                {
                    "title": "Rail memorandum",
                    "body": f"Rail operators from three regions agreed on a "
                    f"memorandum about night freight slots and shared depots ({word}), the ministry said.",
                },
            ]
            posted = http.post(
                "/articles",
                content="\n".join(json.dumps(a) for a in articles),
                headers={"Content-Type": "application/x-ndjson"},
            ).json()
            assert posted["accepted"] == 2
            events = _read_events(lines, want=2)
        alerts = [e for e in events if e.get("event") == "alert"]
        assert [e["event"] for e in events][0] == "ready"
        got = {json.loads(e["data"])["article_id"] for e in alerts}
        assert got == set(posted["ids"])
        assert all(json.loads(e["data"])["subscription_id"] == sub["id"] for e in alerts)

        # resume after the first alert: exactly the second one comes again, nothing before it
        first = alerts[0]["id"]
        with http.stream(
            "GET",
            "/alerts/stream",
            params={"subscription_id": sub["id"]},
            headers={"Last-Event-ID": first},
        ) as response:
            resumed = [
                e
                for e in _read_events(response.iter_lines(), want=1, timeout_s=30)
                if e.get("event") == "alert"
            ]
        assert [json.loads(e["data"])["id"] for e in resumed] == [
            json.loads(alerts[1]["data"])["id"]
        ]

        bad = http.get("/alerts/stream", headers={"Last-Event-ID": "zero"})
        assert bad.status_code == 400
        assert httpx.get(f"{api_server.url}/alerts/stream").status_code == 401
