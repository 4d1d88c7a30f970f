"""The API key store on the real node and the FastAPI dependency over it: keys are stored
hashed, resolve to their owner, stop working when revoked; a forged secret is refused."""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from pipeline.infra.es import FAMILIES, ensure_indices
from pipeline.ops.keys import Caller, KeyStore, key_dependency
from pipeline.ops.retention import family_indices
from pipeline.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def store(es_client, es_url):
    s = Settings(_env_file=None, es_url=es_url, index_prefix=f"keys{uuid.uuid4().hex[:8]}")
    ensure_indices(es_client, s)
    yield KeyStore(es_client, s.index("apikeys"))
    for family in FAMILIES:
        names = [i.name for i in family_indices(es_client, s.index(family))]
        if names:
            es_client.indices.delete(index=",".join(names), ignore_unavailable=True)


def test_keys_resolve_to_owners_and_stop_when_revoked(store, es_client):
    alice, alice_key = store.add("alice", note="desk A")
    _, bob_key = store.add("bob")
    admin, admin_key = store.add("ops", admin=True)

    stored = json.dumps(es_client.search(index=store.index, size=10)["hits"]["hits"])
    for key in (alice_key, bob_key, admin_key):
        assert key.split("_", 2)[2] not in stored, "only a hash of the key is stored"

    assert store.authenticate(alice_key) == Caller("alice", False, alice.key_id)
    assert store.authenticate(admin_key).admin
    forged = f"np_{alice.key_id}_{'x' * 43}"
    assert store.authenticate(forged) is None
    assert store.authenticate("np_unknown_secret") is None
    assert {k.owner for k in store.list()} == {"alice", "bob", "ops"}
    assert [k.owner for k in store.list("alice")] == ["alice"]

    api = FastAPI()
    caller_of = key_dependency(store)

    @api.get("/whoami")
    def whoami(caller: Caller = Depends(caller_of)) -> dict:
        return {"owner": caller.owner, "admin": caller.admin}

    client = TestClient(api)
    assert client.get("/whoami", headers={"Authorization": f"Bearer {alice_key}"}).json() == {
        "owner": "alice",
        "admin": False,
    }
    assert client.get("/whoami", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert client.get("/whoami").status_code == 401

    assert store.revoke(alice.key_id) and not store.revoke(alice.key_id)
    assert (
        client.get("/whoami", headers={"Authorization": f"Bearer {alice_key}"}).status_code == 401
    )
    assert store.authenticate(bob_key).owner == "bob"
    assert [k.owner for k in store.list("alice", include_revoked=True)] == ["alice"]
    assert store.list("alice") == []
