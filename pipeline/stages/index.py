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
    failures, _ = index_articles_with(es, index, articles, [])
    return failures


def index_articles_with(
    es: Elasticsearch, index: str, articles: list[EnrichedArticle], also: list[dict[str, Any]]
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """:func:`index_articles`, with other bulk actions ``also`` (``pipeline.infra.es.bulk``
    style, none of them an ``index``) in the same request: (the articles' failures, the
    errors of ``also``)."""
    if any(action.get("_op_type", "index") == "index" for action in also):
        raise ValueError("index_articles_with: the other actions may not be 'index' actions")
    actions = [
        *(
            {"_op_type": "index", "_index": index, "_id": a.id, "_source": article_document(a)}
            for a in articles
        ),
        *also,
    ]
    failures: dict[str, str] = {}
    others: list[dict[str, Any]] = []
    for error in bulk(es, actions):
        if "index" not in error:
            others.append(error)
            continue
        item = error["index"]
        failures[item.get("_id", "?")] = str(item.get("error", error))
    return failures, others
