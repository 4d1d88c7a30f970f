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


def _text_document(article: CleanArticle, enriched: bool) -> dict[str, Any]:
    """What both kinds of document hold: the article's fields, its time and its analysed text."""
    doc = article.model_dump(mode="json")
    doc["@timestamp"] = doc["published_at"] or doc["ingested_at"]
    doc.update(search_fields(article.title, article.body))
    doc["enriched"] = enriched
    return doc


def article_document(article: EnrichedArticle) -> dict[str, Any]:
    """The Elasticsearch document of one article (see deploy/elasticsearch/articles.json)."""
    doc = _text_document(article, enriched=True)
    facets: dict[str, set[str]] = defaultdict(set)
    for entity in article.entities:
        facets[TYPE_FIELDS[entity.type]].add(entity.name)
    for field in TYPE_FIELDS.values():
        doc[field] = sorted(facets[field])
    doc["entity_ids"] = sorted({e.id for e in article.entities})
    doc["entity_names"] = sorted({e.name for e in article.entities})
    doc["event_types"] = sorted({e.type for e in article.events if e.alertable})
    return doc


def clean_document(article: CleanArticle) -> dict[str, Any]:
    """The document of an article before its enrichment: its text and metadata, searchable by
    text, with empty entity and event facets and ``enriched: false``."""
    doc = _text_document(article, enriched=False)
    for field in (*TYPE_FIELDS.values(), "entity_ids", "entity_names", "event_types"):
        doc[field] = []
    return doc


TEXT_ONLY: dict[str, Any] = {"term": {"enriched": False}}
"""The documents of articles' texts alone, written before their enrichment."""


def enriched_only(query: dict[str, Any] | None = None) -> dict[str, Any]:
    """``query`` (by default every document) without the texts alone (:data:`TEXT_ONLY`); a
    document without the ``enriched`` field, of an older version, is an enriched one."""
    return {"bool": {"must": [query or {"match_all": {}}], "must_not": [TEXT_ONLY]}}


def enriched_ids(es: Elasticsearch, index: str, ids: Iterable[str]) -> set[str]:
    """The ids among ``ids`` whose enriched documents are indexed (one real-time ``mget``; a
    document without the ``enriched`` field, of an older version, counts as enriched)."""
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    docs = es.mget(index=index, ids=wanted, source_includes=["enriched"])["docs"]
    return {d["_id"] for d in docs if d.get("found") and d["_source"].get("enriched", True)}


def _bulk_failures(
    es: Elasticsearch, op: str, index: str, documents: Iterable[tuple[str, dict[str, Any]]]
) -> dict[str, str]:
    """Bulk ``op`` (``index``/``create``) of (id, document) pairs; {id: error} for the
    documents Elasticsearch rejected, a ``create`` of an existing id (409) left out."""
    actions = ({"_op_type": op, "_index": index, "_id": i, "_source": d} for i, d in documents)
    failures = {}
    for error in bulk(es, actions):
        item = error.get(op, {})
        if op != "create" or item.get("status") != 409:
            failures[item.get("_id", "?")] = str(item.get("error", error))
    return failures


def index_clean_articles(
    es: Elasticsearch, index: str, articles: list[CleanArticle]
) -> dict[str, str]:
    """Create the documents of ``articles`` before their enrichment (:func:`clean_document`);
    an article whose document exists (enriched already, or written before) is left as it is.
    Returns {article id: error} for the other documents Elasticsearch rejected."""
    return _bulk_failures(es, "create", index, ((a.id, clean_document(a)) for a in articles))


def index_articles(
    es: Elasticsearch, index: str, articles: list[EnrichedArticle]
) -> dict[str, str]:
    """Bulk-index ``articles`` into ``index`` (an alias); returns {article id: error} for the
    documents Elasticsearch rejected. Transport failures raise (the caller retries)."""
    return _bulk_failures(es, "index", index, ((a.id, article_document(a)) for a in articles))
