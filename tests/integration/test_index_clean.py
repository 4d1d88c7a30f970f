"""An article's text is searchable before its NER (NEWS_INDEX_CLEAN), in the real articles
index: the clean step's ``create`` writes it, the enriched document replaces it, and a text
written after its enriched document (a late or repeated early write) changes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from pipeline.settings import Settings
from pipeline.stages.index import enriched_ids, index_articles, index_clean_articles
from schemas import CleanArticle, EnrichedArticle, Entity

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def clean(aid: str) -> CleanArticle:
    return CleanArticle(
        id=aid,
        title="Harbour strike ends",
        body="Dock workers in Gdansk signed a memorandum with Norvale Shipping on Monday.",
        language="en",
        source="Baltic Wire",
        ingested_at=NOW,
    )


def enriched(article: CleanArticle) -> EnrichedArticle:
    norvale = Entity(
        id="organization:norvale-shipping",
        name="Norvale Shipping",
        type="organization",
        mentions=1,
        forms=["Norvale Shipping"],
        offsets=[],
    )
    return EnrichedArticle(**article.model_dump(), entities=[norvale], story_id="story-1")


@pytest.fixture
def index(es_url, es_client):
    from pipeline.infra.es import ensure_indices

    settings = Settings(_env_file=None, es_url=es_url, index_prefix=f"ic{uuid.uuid4().hex[:8]}")
    ensure_indices(es_client, settings)
    yield settings.index("articles")
    names = list(es_client.indices.get(index=f"{settings.index_prefix}-*", expand_wildcards="all"))
    if names:  # by name: the node refuses wildcard deletes
        es_client.indices.delete(index=",".join(names))


def search(es_client, index: str, query: dict) -> list[dict]:
    es_client.indices.refresh(index=index)
    return [h["_source"] for h in es_client.search(index=index, query=query)["hits"]["hits"]]


def test_the_text_is_found_first_and_the_enriched_document_replaces_it(es_client, index):
    first, second = clean("a1"), clean("a2")
    assert index_clean_articles(es_client, index, [first, second]) == {}
    [found] = search(es_client, index, {"bool": {"filter": [{"term": {"id": "a1"}}]}})
    assert found["enriched"] is False and found["organizations"] == []
    texts = search(es_client, index, {"match": {"search_text": "memorandum"}})
    assert sorted(d["id"] for d in texts) == ["a1", "a2"]
    assert enriched_ids(es_client, index, ["a1", "a2", "missing"]) == set()

    assert index_articles(es_client, index, [enriched(first)]) == {}
    assert enriched_ids(es_client, index, ["a1", "a2"]) == {"a1"}
    by_entity = search(es_client, index, {"term": {"organizations": "Norvale Shipping"}})
    assert [(d["id"], d["enriched"], d["story_id"]) for d in by_entity] == [("a1", True, "story-1")]


def test_a_text_written_after_its_enriched_document_changes_nothing(es_client, index):
    article = clean("b1")
    assert index_articles(es_client, index, [enriched(article)]) == {}
    version = es_client.get(index=index, id="b1")["_version"]
    assert index_clean_articles(es_client, index, [article, clean("b2")]) == {}  # b1: a 409
    doc = es_client.get(index=index, id="b1")
    assert doc["_version"] == version and doc["_source"]["enriched"] is True
    assert doc["_source"]["entity_ids"] == ["organization:norvale-shipping"]
    assert enriched_ids(es_client, index, ["b1", "b2"]) == {"b1"}
