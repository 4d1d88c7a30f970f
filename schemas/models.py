"""Data contracts: every message that crosses a Kafka topic, as pydantic v2 models.

Each message carries ``schema_version``. A consumer accepts any message whose major version it
knows; fields are only ever added (never renamed or retyped) within a major version.
The exported JSON Schemas live beside this module in ``schemas/json/`` (see ``export.py``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.0"

EntityType = Literal["person", "organization", "location", "group", "misc"]
"""Entity types: a small set every spaCy NER label maps to (see pipeline.stages.entities)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


SourceOrigin = Literal["producer", "site_name", "dateline", "credit_line"]
"""Where an article's ``source`` came from: the producer, the page's site name, the wire
dateline's agency ("(Reuters)"), or a credit line ("Source: ...")."""

DateOrigin = Literal["producer", "page", "dateline"]
"""Where ``published_at`` came from: the producer, the page's metadata, or the dateline date
resolved against the ingest time."""


class Message(BaseModel):
    """Base of all topic messages."""

    model_config = ConfigDict(extra="forbid")
    schema_version: str = SCHEMA_VERSION


class RawArticle(Message):
    """An article as a producer sends it. Unknown fields are kept (``extra``)."""

    model_config = ConfigDict(extra="allow")

    id: str | None = Field(
        None,
        description="stable article id; derived from url or content when the producer gives none",
    )
    source: str | None = Field(None, description="outlet or feed name")
    url: str | None = None
    title: str | None = None
    body: str = Field(..., min_length=1, description="article text; size limits are the worker's setting")
    published_at: datetime | None = None
    language: str | None = Field(None, description="ISO 639-1 code when the producer knows it")
    ingested_at: datetime = Field(default_factory=utcnow, description="when it was produced")
    source_origin: SourceOrigin | None = Field(
        None, description="where ``source`` came from, when not from the producer itself"
    )
    published_at_origin: DateOrigin | None = Field(
        None, description="where ``published_at`` came from, when not from the producer itself"
    )


class Dateline(BaseModel):
    place: str
    date_text: str | None = None
    agency: str | None = None


class CleanArticle(Message):
    """After the clean stage: body free of page chrome, datelines and credit lines."""

    id: str
    source: str | None = None
    url: str | None = None
    title: str
    title_origin: Literal["given", "page", "first_sentence"] = "given"
    body: str
    language: str = Field(..., description="ISO 639-1 code, 'und' when undetermined")
    published_at: datetime | None = None
    ingested_at: datetime
    dateline: Dateline | None = None
    authors: list[str] = Field(default_factory=list)
    credits: list[str] = Field(default_factory=list, description="credit lines removed from body")
    extra: dict = Field(default_factory=dict, description="producer fields the contract does not name")
    fingerprint: str | None = Field(
        None, description="hash of the normalised text, set by the dedupe stage"
    )
    source_origin: SourceOrigin | None = Field(None, description="where ``source`` came from")
    published_at_origin: DateOrigin | None = Field(
        None, description="where ``published_at`` came from"
    )


class Mention(BaseModel):
    text: str
    start: int = Field(..., description="character offset in the clean body")
    end: int


class Entity(BaseModel):
    id: str = Field(..., description="canonical entity id, e.g. 'person:zelenski'")
    name: str = Field(..., description="canonical name")
    type: EntityType
    mentions: int
    forms: list[str] = Field(..., description="surface forms seen in this article")
    offsets: list[Mention]


class EventTag(BaseModel):
    type: str = Field(..., description="event type from the taxonomy (pipeline.stages.events)")
    evidence: list[str] = Field(..., description="the sentence(s) that triggered the tag")
    place: str | None = None
    date_text: str | None = None


class EnrichedArticle(CleanArticle):
    """Clean article plus entities and events: what is indexed and matched against alerts."""

    entities: list[Entity] = Field(default_factory=list)
    events: list[EventTag] = Field(default_factory=list)
    story_id: str | None = Field(None, description="id of the story cluster this article joins")
    timings_ms: dict[str, float] = Field(default_factory=dict, description="per-stage timings")
    processed_at: datetime = Field(default_factory=utcnow)


class DuplicateRecord(Message):
    """A duplicate article: recorded with a link to the first copy, then dropped."""

    article_id: str
    duplicate_of: str
    kind: Literal["exact", "near"]
    similarity: float
    source: str | None = None
    title: str | None = None
    detected_at: datetime = Field(default_factory=utcnow)


class DeadLetter(Message):
    """A message a stage could not process, with the error and the original payload."""

    stage: str
    error: str
    error_type: str
    payload: str = Field(..., description="original payload (UTF-8, or base64 when not text)")
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    failed_at: datetime = Field(default_factory=utcnow)


class Subscription(Message):
    """An alert subscription: a query in the alert query syntax (pipeline.alerts.query)."""

    id: str
    owner: str = "default"
    query: str
    channels: list[str] = Field(
        default_factory=list,
        description="extra deliveries besides the alerts topic and index, e.g. 'webhook:https://…'",
    )
    created_at: datetime = Field(default_factory=utcnow)
    active: bool = True
    per_story: bool = Field(
        False,
        description="alert once per story: the first matching article alerts, later articles "
        "of the same story are attached to that alert as updates",
    )


class AlertMatch(BaseModel):
    terms: list[str] = Field(default_factory=list)
    entities: list[str] = Field(default_factory=list)
    events: list[str] = Field(default_factory=list)


class AlertUpdate(BaseModel):
    """A later article of an alert's story, attached to the alert instead of alerting again."""

    article_id: str
    title: str
    source: str | None = None
    url: str | None = None
    published_at: datetime | None = None
    added_at: datetime = Field(default_factory=utcnow)


class Alert(Message):
    """One (subscription, article) match. The id is derived from both, so it is sent once."""

    id: str
    subscription_id: str
    query: str
    owner: str
    article_id: str
    title: str
    source: str | None = None
    url: str | None = None
    published_at: datetime | None = None
    matched: AlertMatch
    snippet: str
    backfill: bool = False
    ingested_at: datetime | None = Field(None, description="when the article was produced")
    created_at: datetime = Field(default_factory=utcnow)
    latency_ms: float | None = Field(None, description="article ingest to alert, milliseconds")
    story_id: str | None = Field(None, description="story of the article (per-story alerts)")
    updates: list[AlertUpdate] = Field(
        default_factory=list,
        description="later articles of the same story (per-story subscriptions only)",
    )

