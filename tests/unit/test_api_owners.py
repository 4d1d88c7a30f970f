"""Per-owner access through the HTTP API's routes, without servers: the app's key store,
subscription store and alert ledger are replaced by small in-memory stand-ins, so what is tested
is the routing logic (who may list, read, change and delete what). The same rules on the real
stack: tests/integration/test_api_owners.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from pipeline.alerts.subscriptions import NewSubscription, subscription_id
from pipeline.api import create_api
from pipeline.ops.keys import Caller
from pipeline.settings import Settings
from schemas import Alert, AlertMatch, Subscription

OFFLINE = dict(kafka_bootstrap="127.0.0.1:1", es_url="http://127.0.0.1:1")
TOKEN = "deployment-token-for-units"
KEYS = {
    "np_a_alice": Caller("alice", key_id="a"),
    "np_b_bob": Caller("bob", key_id="b"),
    "np_o_ops": Caller("ops", admin=True, key_id="o"),
}


class Keys:
    def authenticate(self, key: str) -> Caller | None:
        return KEYS.get(key)


class Store:
    def __init__(self):
        self.items: dict[str, Subscription] = {}

    def create(self, query, owner="default", **_options) -> NewSubscription:
        sub = Subscription(id=subscription_id(owner, query), owner=owner, query=query)
        self.items[sub.id] = sub
        return NewSubscription(sub)

    def get(self, sub_id):
        return self.items.get(sub_id)

    def list(self, owner=None, size=1000):
        return [s for s in self.items.values() if owner is None or s.owner == owner]

    def remove(self, sub_id):
        return self.items.pop(sub_id, None) is not None

    def close(self):
        pass


class Ledger:
    def __init__(self):
        self.alerts: list[Alert] = []

    def history(self, subscription_id=None, size=50, owner=None):
        return [
            a
            for a in self.alerts
            if (subscription_id is None or a.subscription_id == subscription_id)
            and (owner is None or a.owner == owner)
        ][:size]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


ALICE, BOB, ADMIN, DEPLOYMENT = (bearer(k) for k in ("np_a_alice", "np_b_bob", "np_o_ops", TOKEN))


@pytest.fixture
def client(tmp_path):
    app = create_api(Settings(_env_file=None, api_token=TOKEN, data_dir=tmp_path, **OFFLINE))
    ctx = app.state.ctx
    ctx.keys, ctx.store = Keys(), Store()
    ctx.pipeline = SimpleNamespace(ledger=Ledger(), es=None)
    client = TestClient(app)
    client.ctx = ctx
    return client


def subscribe(client, who: dict, query: str, **body) -> dict:
    response = client.post("/subscriptions", headers=who, json={"query": query, **body})
    assert response.status_code == 201, response.text
    return response.json()["subscription"]


def alert(sub: dict, n: int) -> Alert:
    return Alert(
        id=f"al-{sub['id']}-{n}",
        subscription_id=sub["id"],
        query=sub["query"],
        owner=sub["owner"],
        article_id=f"art{n}",
        title=f"t{n}",
        matched=AlertMatch(terms=["x"]),
        snippet="x",
    )


def test_keys_resolve_to_callers_and_the_deployment_token_is_admin(client):
    assert client.get("/me", headers=ALICE).json() == {
        "owner": "alice",
        "admin": False,
        "key_id": "a",
    }
    assert client.get("/me", headers=ADMIN).json()["admin"] is True
    assert client.get("/me", headers=DEPLOYMENT).json() == {
        "owner": "admin",
        "admin": True,
        "key_id": None,
    }
    for refused in ({}, bearer("np_x_unknown"), bearer("change-me"), bearer("")):
        response = client.get("/me", headers=refused)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


def test_an_owner_creates_for_itself_whatever_owner_it_names(client):
    sub = subscribe(client, ALICE, "oil", owner="bob")
    assert sub["owner"] == "alice" and sub["id"] == subscription_id("alice", "oil")
    assert subscribe(client, ADMIN, "oil", owner="bob")["owner"] == "bob", (
        "an admin may name the owner"
    )
    assert subscribe(client, DEPLOYMENT, "wheat")["owner"] == "default", (
        "the single-token setup as before"
    )


def test_an_owner_sees_changes_and_deletes_only_its_own(client):
    mine, theirs = subscribe(client, ALICE, "oil"), subscribe(client, BOB, "oil")
    assert [s["id"] for s in client.get("/subscriptions", headers=ALICE).json()] == [mine["id"]]
    assert [s["id"] for s in client.get("/subscriptions?owner=alice", headers=ALICE).json()] == [
        mine["id"]
    ]
    assert client.get("/subscriptions?owner=bob", headers=ALICE).status_code == 403
    assert client.get(f"/subscriptions/{mine['id']}", headers=ALICE).status_code == 200

    # another owner's subscription looks exactly like one that does not exist
    for path in (f"/subscriptions/{theirs['id']}", "/subscriptions/sub-nosuchthing"):
        got, gone = client.get(path, headers=ALICE), client.delete(path, headers=ALICE)
        assert got.status_code == gone.status_code == 404
        assert got.json()["detail"] == f"no subscription {path.rsplit('/', 1)[1]}"
        feed = client.get(f"{path}/feed.atom", params={"access_token": "np_a_alice"})
        assert feed.status_code == 404
    assert theirs["id"] in client.ctx.store.items, "bob's subscription is still there"

    assert {s["owner"] for s in client.get("/subscriptions", headers=ADMIN).json()} == {
        "alice",
        "bob",
    }
    assert [s["owner"] for s in client.get("/subscriptions?owner=bob", headers=ADMIN).json()] == [
        "bob"
    ]
    assert client.delete(f"/subscriptions/{theirs['id']}", headers=BOB).status_code == 204
    assert client.delete(f"/subscriptions/{mine['id']}", headers=ADMIN).status_code == 204
    assert client.ctx.store.items == {}


def test_alert_history_and_feeds_are_the_owners(client):
    mine, theirs = subscribe(client, ALICE, "oil"), subscribe(client, BOB, "gas")
    client.ctx.pipeline.ledger.alerts += [alert(mine, 1), alert(theirs, 2), alert(theirs, 3)]
    assert [a["owner"] for a in client.get("/alerts", headers=ALICE).json()] == ["alice"]
    assert [a["owner"] for a in client.get("/alerts", headers=BOB).json()] == ["bob", "bob"]
    assert len(client.get("/alerts", headers=ADMIN).json()) == 3
    assert len(client.get("/alerts?owner=bob", headers=DEPLOYMENT).json()) == 2
    assert client.get("/alerts?owner=bob", headers=ALICE).status_code == 403
    assert client.get(f"/alerts?subscription_id={theirs['id']}", headers=ALICE).status_code == 404
    assert client.get("/alerts?subscription_id=sub-nosuchthing", headers=ALICE).status_code == 404
    assert len(client.get(f"/alerts?subscription_id={theirs['id']}", headers=ADMIN).json()) == 2

    feed = client.get(
        f"/subscriptions/{theirs['id']}/feed.atom", params={"access_token": "np_b_bob"}
    )
    assert feed.status_code == 200 and feed.text.count("<entry>") == 2
    assert client.get(f"/subscriptions/{theirs['id']}/feed.atom", headers=ADMIN).status_code == 200


def test_the_stream_refuses_another_owners_subscription(client):
    theirs = subscribe(client, BOB, "gas")
    response = client.get(
        "/alerts/stream", params={"subscription_id": theirs["id"], "access_token": "np_a_alice"}
    )
    assert response.status_code == 404
    assert client.get("/alerts/stream", params={"access_token": "np_x_forged"}).status_code == 401


def test_the_stream_sends_an_owner_only_its_alerts():
    import asyncio

    from pipeline.api.stream import alert_events

    mine = alert({"id": "sub-a", "query": "oil", "owner": "alice"}, 1)
    theirs = alert({"id": "sub-b", "query": "oil", "owner": "bob"}, 2)

    class Stream:
        positions = {0: 0}
        polled = False

        def poll(self):
            if self.polled:
                return []
            self.polled = True
            return [
                (0, 0, theirs.model_dump_json().encode()),
                (0, 1, mine.model_dump_json().encode()),
            ]

        def close(self):
            pass

    stream, calls = Stream(), []

    async def disconnected():
        calls.append(1)
        return len(calls) > 2

    async def read() -> str:
        return "".join(
            [chunk async for chunk in alert_events(stream, set(), disconnected, owner="alice")]
        )

    text = asyncio.run(read())
    assert mine.id in text and theirs.id not in text
