"""Contracts of the HTTP API (``pipeline.api``): requests and responses that are not topic
messages. Topic messages (``Alert``, ``Subscription``, ``EnrichedArticle``) are returned as they
are. Exported with the topic models to ``schemas/json/`` (``python -m schemas.export``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from schemas.models import Alert, Subscription


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- POST /articles --------------------------------------------------------------------------


class IngestRejection(ApiModel):
    """One input item that is not an article (it went to the dead-letter topic)."""

    item: int = Field(..., description="0-based position in the request (NDJSON: line - 1)")
    origin: str = Field(..., description="'request' or 'request:<line>' (the dead letter's key)")
    reason: str = Field(..., description="one line, the same reasons as `newspipe ingest`")


class IngestFailure(ApiModel):
    """A message the broker did not accept (not the input's fault: send it again)."""

    key: str
    error: str


class IngestResponse(ApiModel):
    """What ``POST /articles`` did: accepted article ids (in input order) and rejects."""

    accepted: int
    ids: list[str] = Field(default_factory=list, description="ids of the accepted articles")
    rejected: list[IngestRejection] = Field(default_factory=list)
    failed: list[IngestFailure] = Field(default_factory=list)


# --- GET /search -----------------------------------------------------------------------------


class SearchHit(ApiModel):
    id: str
    score: float
    title: str
    source: str | None = None
    published_at: str | None = Field(None, description="published, else ingested (ISO 8601)")
    snippets: list[str] = Field(
        default_factory=list, description="HTML: the text escaped, matched words in <mark>"
    )
    persons: list[str] = Field(default_factory=list)
    organizations: list[str] = Field(default_factory=list)
    locations: list[str] = Field(default_factory=list)
    events: list[str] = Field(default_factory=list)


class FacetBucket(ApiModel):
    value: str
    count: int


class DateBucket(ApiModel):
    start: datetime = Field(..., description="inclusive; use as `from`")
    end: datetime = Field(..., description="exclusive; use as `to`")
    count: int


class Facets(ApiModel):
    """Counts over every hit (not only this page). Each value is a filter: persons,
    organizations, locations, groups, misc -> ``entity``; events -> ``event``;
    sources -> ``source``; languages -> ``lang``; dates -> ``from``/``to``."""

    persons: list[FacetBucket] = Field(default_factory=list)
    organizations: list[FacetBucket] = Field(default_factory=list)
    locations: list[FacetBucket] = Field(default_factory=list)
    groups: list[FacetBucket] = Field(default_factory=list)
    misc: list[FacetBucket] = Field(default_factory=list)
    events: list[FacetBucket] = Field(default_factory=list)
    sources: list[FacetBucket] = Field(default_factory=list)
    languages: list[FacetBucket] = Field(default_factory=list)
    dates: list[DateBucket] = Field(default_factory=list)


class SearchResponse(ApiModel):
    total: int = Field(..., description="all matching articles")
    hits: list[SearchHit]
    facets: Facets
    next_cursor: str | None = Field(
        None, description="pass as `cursor` for the next page; absent on the last page"
    )


# --- subscriptions ---------------------------------------------------------------------------


class SubscriptionRequest(ApiModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    query: str = Field(
        ...,
        min_length=1,
        max_length=2000,
        examples=["memorandum", '"prisoner exchange"', 'entity:"Vladimir Medinsky"'],
    )
    owner: str = Field(
        "default",
        min_length=1,
        max_length=200,
        description="set by an admin key; with an owner's key it is always that owner",
    )
    webhooks: list[str] = Field(default_factory=list, description="URLs to POST alerts to")
    backfill: bool = Field(False, description="also report already-indexed matching articles")
    digest: str = Field("as_it_happens", description="webhooks get: as_it_happens, hourly or daily")
    timezone: str | None = Field(None, description="IANA time zone of digest periods (default UTC)")
    per_story: bool = Field(
        False, description="alert once per story; later articles are attached as updates"
    )


class SubscriptionCreated(ApiModel):
    subscription: Subscription
    backfill: list[Alert] = Field(default_factory=list)
    webhook_secrets: dict[str, str] = Field(
        default_factory=dict, description="channel id -> signing secret; shown this once only"
    )


class QueryError(ApiModel):
    """An invalid query: the reason and the 0-based character position (null: the whole query,
    e.g. an empty one)."""

    error: str
    position: int | None


class ErrorResponse(ApiModel):
    detail: str | QueryError


class Health(ApiModel):
    status: str = "ok"


class Identity(ApiModel):
    """Who the request's key belongs to."""

    owner: str = Field(..., description="the owner whose subscriptions and alerts the key sees")
    admin: bool = Field(..., description="an admin key sees and changes every owner's")
    key_id: str | None = Field(None, description="the key's public id (null: the deployment token)")


#: every API model exported to schemas/json/, by file stem
API_MODELS: dict[str, type[BaseModel]] = {
    "api_ingest_response": IngestResponse,
    "api_search_response": SearchResponse,
    "api_subscription_request": SubscriptionRequest,
    "api_subscription_created": SubscriptionCreated,
}
