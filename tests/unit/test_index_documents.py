"""The articles index's documents: an article's text before its enrichment (NEWS_INDEX_CLEAN)
and its enriched document, told apart by ``enriched``; the backfill of a subscription that
groups by story leaves the texts alone out."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pipeline.alerts.backfill import backfill_query
from pipeline.stages.index import TEXT_ONLY, TYPE_FIELDS, article_document, clean_document
from schemas import CleanArticle, EnrichedArticle, Entity, Subscription

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def clean() -> CleanArticle:
    return CleanArticle(
        id="a1",
        title="Harbour strike ends",
        body="Dock workers in Gdansk signed a memorandum with Norvale Shipping on Monday.",
        language="en",
        source="Baltic Wire",
        ingested_at=NOW,
    )


def test_the_text_before_enrichment_is_searchable_like_the_enriched_document():
    article = clean()
    early = clean_document(article)
    enriched = article_document(
        EnrichedArticle(
            **article.model_dump(),
            entities=[
                Entity(
                    id="organization:norvale-shipping",
                    name="Norvale Shipping",
                    type="organization",
                    mentions=1,
                    forms=["Norvale Shipping"],
                    offsets=[],
                )
            ],
            story_id="story-1",
        )
    )
    assert early["enriched"] is False and enriched["enriched"] is True
    for field in ("search_text", "search_compounds", "search_title", "search_title_compounds"):
        assert early[field] == enriched[field]
    assert "memorandum" in early["search_text"].split()
    assert early["@timestamp"] == enriched["@timestamp"] == NOW.isoformat().replace("+00:00", "Z")
    for field in (*TYPE_FIELDS.values(), "entity_ids", "entity_names", "event_types"):
        assert early[field] == []
    assert enriched["organizations"] == ["Norvale Shipping"] and enriched["story_id"] == "story-1"
    assert "story_id" not in early and "entities" not in early


def test_a_backfill_by_story_leaves_the_texts_before_enrichment_out():
    def no_entities(name: str) -> set[str]:
        return set()

    keyword = Subscription(id="s1", query="memorandum")
    per_story = Subscription(id="s2", query="memorandum", per_story=True)
    digest = Subscription(id="s3", query="memorandum", digest="daily")
    assert "enriched" not in json.dumps(backfill_query(keyword, no_entities))
    for subscription in (per_story, digest):
        query = backfill_query(subscription, no_entities)
        assert query["bool"]["must_not"] == [TEXT_ONLY]
        assert query["bool"]["must"] == [backfill_query(keyword, no_entities)]
