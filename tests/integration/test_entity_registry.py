"""The Elasticsearch entity registry against a real node: first-writer-wins registration and
attested forms deciding the canonical name, whatever the order. Throw-away index from
deploy/elasticsearch/entities.json."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from pipeline.stages.entities import RegistryEntry
from pipeline.stages.entity_registry import ElasticsearchEntityRegistry

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "elasticsearch" / "entities.json"


@pytest.fixture
def registry(es_client):
    name = f"test-entities-{uuid.uuid4().hex[:10]}"
    body = json.loads(TEMPLATE.read_text("utf-8"))
    es_client.indices.create(index=name, settings=body["settings"], mappings=body["mappings"])
    yield ElasticsearchEntityRegistry(es_client, name)
    es_client.indices.delete(index=name, ignore_unavailable=True)


def test_register_is_first_writer_wins(registry):
    registry.register([RegistryEntry("person:baker", "person:baker", "Jim Baker", "person")])
    registry.register([RegistryEntry("person:baker", "person:other", "Someone Else", "person")])
    assert registry.lookup(["person:baker"])["person:baker"].id == "person:baker"


@pytest.mark.parametrize(
    "forms",
    [["Jim Baker", "James Baker", "James Baker"], ["James Baker", "James Baker", "Jim Baker"]],
)
def test_attested_forms_decide_the_name(registry, forms):
    registry.register([RegistryEntry("person:baker", "person:baker", forms[0], "person")])
    written = registry.attest([("person:baker", f) for f in forms] + [("person:unknown", "Nobody")])
    entry = registry.lookup(["person:baker"])["person:baker"]
    assert entry.name == "James Baker" and entry.id == "person:baker"
    assert written == {"person:baker": entry}  # as a lookup names it; unknown keys absent
