"""The ``index`` stage: enriched articles -> Elasticsearch documents, bulk-indexed.

The document ``_id`` is the article id, so a redelivered message overwrites its own document
instead of adding a second one (idempotent sink for at-least-once delivery).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from elasticsearch import Elasticsearch

from pipeline.infra.es import bulk
from pipeline.query.analysis import search_fields
from schemas import EnrichedArticle

#: facet field of each entity type in the articles mapping
TYPE_FIELDS = {
    "person": "persons",
    "organization": "organizations",
    "location": "locations",
    "group": "groups",
    "misc": "misc",
}


def article_document(article: EnrichedArticle) -> dict[str, Any]:
    """The Elasticsearch document of one article (see deploy/elasticsearch/articles.json)."""
    doc = article.model_dump(mode="json")
    doc["@timestamp"] = doc["published_at"] or doc["ingested_at"]
    facets: dict[str, set[str]] = defaultdict(set)
    for entity in article.entities:
        facets[TYPE_FIELDS[entity.type]].add(entity.name)
    for field in TYPE_FIELDS.values():
        doc[field] = sorted(facets[field])
    doc["entity_ids"] = sorted({e.id for e in article.entities})
    doc["entity_names"] = sorted({e.name for e in article.entities})
    doc["event_types"] = sorted({e.type for e in article.events if e.alertable})
    doc.update(search_fields(article.title, article.body))
    return doc


def index_articles(
    es: Elasticsearch, index: str, articles: list[EnrichedArticle]
) -> dict[str, str]:
    """Bulk-index ``articles`` into ``index`` (an alias); returns {article id: error} for the
    documents Elasticsearch rejected. Transport failures raise (the caller retries)."""
    actions = (
        {"_op_type": "index", "_index": index, "_id": a.id, "_source": article_document(a)}
        for a in articles
    )
    failures = {}
    for error in bulk(es, actions):
        item = error.get("index", {})
        failures[item.get("_id", "?")] = str(item.get("error", error))
    return failures
