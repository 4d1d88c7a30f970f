"""The ``index`` stage: enriched articles -> Elasticsearch documents, bulk-indexed.

The document ``_id`` is the article id, so a redelivered message overwrites its own document
instead of adding a second one (idempotent sink for at-least-once delivery).

Searchable before the NER (``NEWS_INDEX_CLEAN``, off by default): the clean step also writes
each new article's text (:func:`clean_document`: ``enriched: false``, no entities, events or
story yet) with a ``create``, which never replaces a document. The enriched document
(``enriched: true``) replaces it when it comes, and an early write that comes after the
enriched document changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from elasticsearch import Elasticsearch

from pipeline.infra.es import bulk
from pipeline.query.analysis import search_fields
from schemas import CleanArticle, EnrichedArticle

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
    doc["enriched"] = True
    return doc


def clean_document(article: CleanArticle) -> dict[str, Any]:
    """The document of an article before its enrichment: its text and metadata, searchable by
    text, with empty entity and event facets and ``enriched: false``."""
    doc = article.model_dump(mode="json")
    doc["@timestamp"] = doc["published_at"] or doc["ingested_at"]
    for field in (*TYPE_FIELDS.values(), "entity_ids", "entity_names", "event_types"):
        doc[field] = []
    doc.update(search_fields(article.title, article.body))
    doc["enriched"] = False
    return doc


def enriched_ids(es: Elasticsearch, index: str, ids: Iterable[str]) -> set[str]:
    """The ids among ``ids`` whose enriched documents are indexed (one real-time ``mget``; a
    document without the ``enriched`` field, of an older version, counts as enriched)."""
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    docs = es.mget(index=index, ids=wanted, source_includes=["enriched"])["docs"]
    return {d["_id"] for d in docs if d.get("found") and d["_source"].get("enriched", True)}


def index_clean_articles(
    es: Elasticsearch, index: str, articles: list[CleanArticle]
) -> dict[str, str]:
    """Create the documents of ``articles`` before their enrichment (:func:`clean_document`);
    an article whose document exists (enriched already, or written before) is left as it is.
    Returns {article id: error} for the other documents Elasticsearch rejected."""
    actions = (
        {"_op_type": "create", "_index": index, "_id": a.id, "_source": clean_document(a)}
        for a in articles
    )
    failures = {}
    for error in bulk(es, actions):
        item = error.get("create", {})
        if item.get("status") != 409:
            failures[item.get("_id", "?")] = str(item.get("error", error))
    return failures


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
