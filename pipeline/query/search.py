"""Search the indexed articles: the alert query syntax, translated to Elasticsearch, with
highlighted snippets and facet counts. Search and alert subscriptions share the parser and the
text analysis (pipeline.query.analysis), so a query finds what it would alert on.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from elasticsearch import Elasticsearch

from pipeline.query.es_query import to_es_query
from pipeline.query.language import parse_query

FACETS = {
    "persons": "persons",
    "organizations": "organizations",
    "locations": "locations",
    "events": "event_types",
    "sources": "source",
}

#: every facet the HTTP API returns: the CLI's, plus the rarer entity types and languages
ALL_FACETS = {**FACETS, "groups": "groups", "misc": "misc", "languages": "language"}
DATE_FIELD = "@timestamp"


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
class DateBucket:
    start: str
    end: str
    count: int


@dataclass
class SearchResult:
    total: int
    hits: list[Hit]
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    dates: list[DateBucket] = field(default_factory=list)
    next_cursor: str | None = None


def build_query(
    query: str,
    entity_resolver: Callable[[str], set[str]],
    *,
    entities: list[str] = (),
    events: list[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    sources: list[str] = (),
    languages: list[str] = (),
) -> dict:
    """The Elasticsearch query of a search: the parsed query plus filters.

    An entity filter matches the ids the resolver gives for the name, or the exact canonical
    name (what a facet shows); ``until`` is exclusive.
    """
    filters: list[dict] = []
    for name in entities:
        filters.append(
            {
                "bool": {
                    "should": [
                        {"terms": {"entity_ids": sorted(entity_resolver(name))}},
                        {"term": {"entity_names": name}},
                    ],
                    "minimum_should_match": 1,
                }
            }
        )
    for event in events:
        filters.append({"term": {"event_types": event.strip().lower().replace(" ", "_")}})
    for name in sources:
        filters.append({"term": {"source": {"value": name, "case_insensitive": True}}})
    for code in languages:
        filters.append({"term": {"language": {"value": code, "case_insensitive": True}}})
    if since or until:
        bounds = {"gte": since.isoformat()} if since else {}
        if until:
            bounds["lt"] = until.isoformat()
        filters.append({"range": {DATE_FIELD: bounds}})
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


# --- the HTTP API's search: more filters, HTML highlights, date facet, cursor paging ---------

SORTS = {
    "relevance": [{"_score": "desc"}, {DATE_FIELD: "desc"}, {"id": "asc"}],
    "newest": [{DATE_FIELD: {"order": "desc", "missing": "_last"}}, {"id": "asc"}],
}


class CursorError(ValueError):
    """A paging cursor that this search did not hand out."""


def encode_cursor(sort_values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(sort_values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError) as exc:
        raise CursorError("invalid cursor") from exc
    if not isinstance(values, list) or not all(
        isinstance(v, (str, int, float)) or v is None for v in values
    ):
        raise CursorError("invalid cursor")
    return values


CALENDAR_STEPS = (("day", 1), ("week", 7), ("month", 31), ("quarter", 92), ("year", 366))
"""date facet intervals, with their (longest) length in days"""


def _interval_end(start: datetime, interval: str) -> datetime:
    if interval in ("day", "week"):
        return start + timedelta(days=1 if interval == "day" else 7)
    months = {"month": 1, "quarter": 3, "year": 12}[interval]
    year, month = divmod(start.month - 1 + months, 12)
    return start.replace(year=start.year + year, month=month + 1)


def date_facet(
    es: Elasticsearch, index: str, query: dict, first: str | None, last: str | None, most: int = 10
) -> list[DateBucket]:
    """Counts by day, week, month, quarter or year: the finest with at most ``most`` buckets
    between the first and the last date (one more request, size 0)."""

    if first is None or last is None:
        return []
    span = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).days + 1
    interval = next((name for name, days in CALENDAR_STEPS if span / days <= most - 1), "year")
    response = es.search(
        index=index,
        query=query,
        size=0,
        aggs={
            "dates": {
                "date_histogram": {
                    "field": DATE_FIELD,
                    "calendar_interval": interval,
                    "min_doc_count": 1,
                }
            }
        },
    )
    out = []
    for bucket in response["aggregations"]["dates"]["buckets"]:
        start = datetime.fromtimestamp(bucket["key"] / 1000, tz=UTC)
        out.append(
            DateBucket(
                start.isoformat(), _interval_end(start, interval).isoformat(), bucket["doc_count"]
            )
        )
    return out


def search_page(
    es: Elasticsearch,
    index: str,
    query: str,
    entity_resolver: Callable[[str], set[str]],
    *,
    entities: list[str] = (),
    events: list[str] = (),
    sources: list[str] = (),
    languages: list[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    size: int = 10,
    cursor: str | None = None,
    sort: str = "relevance",
    facet_size: int = 10,
) -> SearchResult:
    """One page of a search, for the HTTP API: the same query as :func:`search` plus source,
    language and time filters; snippets are HTML (text escaped, matches in ``<mark>``); facets
    of every entity type, events, sources, languages and dates; ``next_cursor`` (an opaque
    ``search_after`` position) when more hits may follow. Raises QuerySyntaxError, CursorError.
    """
    body_query = build_query(
        query,
        entity_resolver,
        entities=entities,
        events=events,
        since=since,
        until=until,
        sources=sources,
        languages=languages,
    )
    aggs = {name: {"terms": {"field": f, "size": facet_size}} for name, f in ALL_FACETS.items()}
    aggs["first"] = {"min": {"field": DATE_FIELD}}
    aggs["last"] = {"max": {"field": DATE_FIELD}}
    extra = {"search_after": decode_cursor(cursor)} if cursor else {}
    response = es.search(
        index=index,
        query=body_query,
        size=size,
        sort=SORTS[sort],
        track_scores=True,
        highlight={
            "encoder": "html",
            "pre_tags": ["<mark>"],
            "post_tags": ["</mark>"],
            "fields": {
                "body": {"fragment_size": 160, "number_of_fragments": 2, "no_match_size": 160}
            },
            "highlight_query": highlight_query(query),
        },
        aggs=aggs,
        source_excludes=["body", "search_text", "search_compounds", "entities", "events"],
        **extra,
    )
    raw_hits = response["hits"]["hits"]
    hits = [
        Hit(
            id=raw["_id"],
            score=raw.get("_score") or 0.0,
            title=raw["_source"].get("title", ""),
            source=raw["_source"].get("source"),
            published_at=raw["_source"].get("published_at") or raw["_source"].get("ingested_at"),
            snippets=raw.get("highlight", {}).get("body", []),
            persons=raw["_source"].get("persons", []),
            locations=raw["_source"].get("locations", []),
            organizations=raw["_source"].get("organizations", []),
            events=raw["_source"].get("event_types", []),
        )
        for raw in raw_hits
    ]
    facets = {
        name: [(b["key"], b["doc_count"]) for b in response["aggregations"][name]["buckets"]]
        for name in ALL_FACETS
    }
    next_cursor = (
        encode_cursor(raw_hits[-1]["sort"]) if raw_hits and len(raw_hits) == size else None
    )
    return SearchResult(
        total=response["hits"]["total"]["value"],
        hits=hits,
        facets=facets,
        dates=date_facet(
            es,
            index,
            body_query,
            response["aggregations"]["first"].get("value_as_string"),
            response["aggregations"]["last"].get("value_as_string"),
        ),
        next_cursor=next_cursor,
    )
