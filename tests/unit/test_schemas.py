"""The exported JSON Schemas are current, and every topic message carries a schema version."""

from __future__ import annotations

import json

import pytest

from schemas import SCHEMA_VERSION, TOPIC_MODELS, RawArticle
from schemas.export import EXPORTED, JSON_DIR, render


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_exported_schema_is_current(name):
    path = JSON_DIR / f"{name}.schema.json"
    assert path.exists(), f"missing {path}: run python -m schemas.export"
    assert path.read_text(encoding="utf-8") == render(name), (
        f"{path} is stale: run python -m schemas.export"
    )


@pytest.mark.parametrize("name", sorted(TOPIC_MODELS))
def test_every_message_has_a_schema_version(name):
    schema = json.loads(render(name))
    assert schema["properties"]["schema_version"]["default"] == SCHEMA_VERSION


def test_raw_article_keeps_unknown_producer_fields():
    raw = RawArticle.model_validate({"body": "text", "section": "World", "tags": ["a"]})
    assert raw.model_extra == {"section": "World", "tags": ["a"]}
    assert json.loads(raw.model_dump_json())["section"] == "World"


def test_raw_article_needs_a_body():
    with pytest.raises(ValueError, match="body"):
        RawArticle.model_validate({"title": "no body"})
