"""Per-owner API keys through every endpoint that touches owned data, on the real stack (the
uvicorn server of ``api_server``, keys in the stack's ``<prefix>-apikeys`` index, alerts on the
real topic): one owner cannot list, read, change or delete another owner's subscriptions, alert
history (with its delivery states), Atom feeds or live alerts; an admin key sees all; the
deployment token is still an admin; a revoked key is refused."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.integration.test_api import _read_events

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def keys(stack):
    from pipeline.ops.keys import KeyStore

    store = KeyStore(stack.es, stack.settings.index("apikeys"))
    run = uuid.uuid4().hex[:6]
    made = {
        name: store.add(f"{name}-{run}", admin=name == "ops") for name in ("alice", "bob", "ops")
    }
    return store, {name: (info, key) for name, (info, key) in made.items()}


def _ready(lines) -> bool:
    """Read a stream's lines up to its ``ready`` event (its consumer is positioned)."""
    for line in lines:
        if line == "event: ready":
            next(lines)  # its data line
            return True
    return False


def client(api_server, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=api_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


@pytest.fixture(scope="module")
def owned(api_server, keys, stack):
    """alice and bob subscribe to the same query (indexed articles backfilled: alert history)."""
    _, made = keys
    subs = {}
    for name in ("alice", "bob"):
        with client(api_server, made[name][1]) as http:
            response = http.post(
                "/subscriptions", json={"query": "memorandum", "backfill": True, "owner": "gold"}
            )
            assert response.status_code == 201, response.text
            body = response.json()
            assert body["backfill"], "the seeds match: alert history to isolate"
            subs[name] = body["subscription"]
    stack.es.indices.refresh(index=stack.settings.index("alerts"))
    return subs


def test_each_owner_key_creates_for_its_owner(owned, keys):
    _, made = keys
    for name in ("alice", "bob"):
        assert owned[name]["owner"] == made[name][0].owner, (
            "the key's owner, not the 'owner' asked for"
        )
    assert owned["alice"]["id"] != owned["bob"]["id"]


def test_an_owner_cannot_reach_another_owners_subscriptions(api_server, keys, owned, stack):
    _, made = keys
    alice, bob = owned["alice"], owned["bob"]
    with client(api_server, made["alice"][1]) as http:
        assert [s["id"] for s in http.get("/subscriptions").json()] == [alice["id"]]
        assert http.get("/subscriptions", params={"owner": bob["owner"]}).status_code == 403
        assert http.get(f"/subscriptions/{alice['id']}").json()["id"] == alice["id"]
        for path in (f"/subscriptions/{bob['id']}", f"/subscriptions/{bob['id']}/feed.atom"):
            response = http.get(path)
            assert (
                response.status_code == 404
                and response.json()["detail"] == f"no subscription {bob['id']}"
            )
        assert http.delete(f"/subscriptions/{bob['id']}").status_code == 404
        # "change": subscribing again to bob's query makes alice's own, never replaces bob's
        again = http.post(
            "/subscriptions", json={"query": bob["query"], "owner": bob["owner"]}
        ).json()
        assert again["subscription"]["id"] == alice["id"]
    with client(api_server, made["bob"][1]) as http:
        assert http.get(f"/subscriptions/{bob['id']}").status_code == 200, "bob's is untouched"
    assert stack.es.get(index=stack.settings.index("subscriptions"), id=bob["id"])["found"]


def test_an_owner_sees_only_its_alert_history_and_feed(api_server, keys, owned, stack):
    import feedparser

    _, made = keys
    alice, bob = owned["alice"], owned["bob"]
    with client(api_server, made["alice"][1]) as http:
        history = http.get("/alerts", params={"size": 1000}).json()
        assert history and {a["owner"] for a in history} == {alice["owner"]}
        assert {a["subscription_id"] for a in history} == {alice["id"]}
        assert all(
            "deliveries" in a for a in history
        )  # delivery states come with the owner's alerts only
        assert http.get("/alerts", params={"subscription_id": bob["id"]}).status_code == 404
        assert http.get("/alerts", params={"owner": bob["owner"]}).status_code == 403
        assert len(http.get("/alerts", params={"subscription_id": alice["id"]}).json()) == len(
            history
        )
    feed = httpx.get(
        f"{api_server.url}/subscriptions/{alice['id']}/feed.atom",
        params={"access_token": made["alice"][1]},
    )
    assert feed.status_code == 200
    parsed = feedparser.parse(feed.content)
    assert len(parsed.entries) == len(history)
    assert (
        httpx.get(
            f"{api_server.url}/subscriptions/{bob['id']}/feed.atom",
            params={"access_token": made["alice"][1]},
        ).status_code
        == 404
    )

    for admin in (made["ops"][1], api_server.token):  # an admin key, and the deployment token
        with client(api_server, admin) as http:
            owners = {a["owner"] for a in http.get("/alerts", params={"size": 1000}).json()}
            assert {alice["owner"], bob["owner"], "gold"} <= owners
            assert {s["id"] for s in http.get("/subscriptions").json()} >= {alice["id"], bob["id"]}
            mine = http.get("/alerts", params={"owner": bob["owner"], "size": 1000}).json()
            assert mine and {a["owner"] for a in mine} == {bob["owner"]}
            assert http.get(f"/subscriptions/{bob['id']}/feed.atom").status_code == 200


def test_the_live_stream_carries_only_the_owners_alerts(api_server, keys, owned, stack):
    from pipeline.infra.kafka import make_producer
    from schemas import Alert, AlertMatch

    _, made = keys
    alice, bob = owned["alice"], owned["bob"]
    assert (
        httpx.get(
            f"{api_server.url}/alerts/stream",
            params={"subscription_id": bob["id"], "access_token": made["alice"][1]},
        ).status_code
        == 404
    )

    def alert(sub: dict, n: int) -> Alert:
        return Alert(
            id=f"owners-{uuid.uuid4().hex[:8]}-{n}",
            subscription_id=sub["id"],
            query=sub["query"],
            owner=sub["owner"],
            article_id=f"owners-article-{n}",
            title=f"owners {n}",
            matched=AlertMatch(terms=["memorandum"]),
            snippet="a «memorandum»",
        )

    sent = [
        alert(alice, 1),
        alert(bob, 2),
        alert(bob, 3),
        alert(alice, 4),
    ]  # one partition, this order
    with client(api_server, made["alice"][1]) as mine, client(api_server, made["ops"][1]) as admin:
        with mine.stream("GET", "/alerts/stream") as a, admin.stream("GET", "/alerts/stream") as o:
            assert a.status_code == o.status_code == 200
            alice_lines, admin_lines = a.iter_lines(), o.iter_lines()
            for lines in (alice_lines, admin_lines):  # both consumers positioned before the sends
                assert _ready(lines)
            producer = make_producer(stack.settings)
            for one in sent:
                producer.send(
                    stack.settings.topic("alerts"), key=one.subscription_id, value=one, partition=0
                )
            producer.flush()
            producer.close()
            seen_by_alice = [
                json.loads(e["data"])["id"]
                for e in _read_events(alice_lines, want=2)
                if e.get("event") == "alert"
            ]
            seen_by_admin = [
                json.loads(e["data"])["id"]
                for e in _read_events(admin_lines, want=4)
                if e.get("event") == "alert"
            ]
    assert seen_by_alice == [sent[0].id, sent[3].id], (
        "bob's two alerts, sent between, never reach alice"
    )
    assert seen_by_admin == [one.id for one in sent]


def test_a_revoked_key_is_refused_everywhere(api_server, keys, stack):
    store, _ = keys
    info, key = store.add(f"carol-{uuid.uuid4().hex[:6]}")
    with client(api_server, key) as http:
        created = http.post("/subscriptions", json={"query": "grain"})
        assert created.status_code == 201
        sub_id = created.json()["subscription"]["id"]
        assert http.get("/me").json() == {
            "owner": info.owner,
            "admin": False,
            "key_id": info.key_id,
        }
        assert store.revoke(info.key_id)
        for method, path in (
            ("GET", "/me"),
            ("GET", "/subscriptions"),
            ("GET", f"/subscriptions/{sub_id}"),
            ("DELETE", f"/subscriptions/{sub_id}"),
            ("GET", "/alerts"),
            ("GET", "/search"),
            ("GET", f"/subscriptions/{sub_id}/feed.atom"),
            ("GET", "/alerts/stream"),
        ):
            assert http.request(method, path).status_code == 401, (method, path)
    assert (
        httpx.get(f"{api_server.url}/alerts/stream", params={"access_token": key}).status_code
        == 401
    )
    assert stack.es.get(index=stack.settings.index("subscriptions"), id=sub_id)["found"], (
        "nothing was deleted"
    )
