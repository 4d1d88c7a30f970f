"""Search the indexed articles: the alert query syntax, translated to Elasticsearch, with
highlighted snippets and facet counts. Search and alert subscriptions share the parser and the
text analysis (pipeline.analysis), so a query finds what it would alert on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from elasticsearch import Elasticsearch

from pipeline.alerts.es_query import to_es_query
from pipeline.alerts.query import parse_query

FACETS = {
    "persons": "persons",
    "organizations": "organizations",
    "locations": "locations",
    "events": "event_types",
    "sources": "source",
}


@dataclass
class Hit:
    id: str
    score: float
    title: str
    source: str | None
    published_at: str | None
    snippets: list[str]
    persons: list[str]
    locations: list[str]
    organizations: list[str]
    events: list[str]


@dataclass
class SearchResult:
    total: int
    hits: list[Hit]
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


def build_query(
    query: str,
    entity_resolver: Callable[[str], set[str]],
    *,
    entities: list[str] = (),
    events: list[str] = (),
    since: datetime | None = None,
) -> dict:
    """The Elasticsearch query of a search: the parsed query plus filters."""
    filters: list[dict] = []
    for name in entities:
        filters.append({"terms": {"entity_ids": sorted(entity_resolver(name))}})
    for event in events:
        filters.append({"term": {"event_types": event.strip().lower().replace(" ", "_")}})
    if since:
        filters.append({"range": {"@timestamp": {"gte": since.isoformat()}}})
    must = [to_es_query(parse_query(query), entity_resolver)] if query.strip() else []
    return {"bool": {"must": must or [{"match_all": {}}], "filter": filters}}


def highlight_query(query: str) -> dict:
    """Highlight the query's plain words in title and body (the standard analyzer's view)."""
    words = [w for w in query.replace('"', " ").split() if w.upper() not in ("AND", "OR", "NOT")]
    words = [w for w in words if ":" not in w]
    return {"match": {"body": " ".join(words)}} if words else {"match_none": {}}


def search(
    es: Elasticsearch,
    index: str,
    query: str,
    entity_resolver: Callable[[str], set[str]],
    *,
    entities: list[str] = (),
    events: list[str] = (),
    since: datetime | None = None,
    size: int = 10,
) -> SearchResult:
    response = es.search(
        index=index,
        query=build_query(query, entity_resolver, entities=entities, events=events, since=since),
        size=size,
        highlight={
            "pre_tags": ["«"],
            "post_tags": ["»"],
            "fields": {"body": {"fragment_size": 160, "number_of_fragments": 2}, "title": {}},
            "highlight_query": highlight_query(query),
        },
        aggs={name: {"terms": {"field": f, "size": 8}} for name, f in FACETS.items()},
        source_excludes=["body", "search_text", "search_compounds", "entities", "events"],
    )
    hits = []
    for raw in response["hits"]["hits"]:
        doc, marks = raw["_source"], raw.get("highlight", {})
        hits.append(
            Hit(
                id=raw["_id"],
                score=raw["_score"] or 0.0,
                title=doc.get("title", ""),
                source=doc.get("source"),
                published_at=doc.get("published_at") or doc.get("ingested_at"),
                snippets=marks.get("body", []),
                persons=doc.get("persons", []),
                locations=doc.get("locations", []),
                organizations=doc.get("organizations", []),
                events=doc.get("event_types", []),
            )
        )
    facets = {
        name: [(b["key"], b["doc_count"]) for b in response["aggregations"][name]["buckets"]]
        for name in FACETS
    }
    return SearchResult(total=response["hits"]["total"]["value"], hits=hits, facets=facets)

