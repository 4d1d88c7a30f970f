"""Data contracts: every message that crosses a Kafka topic, as pydantic v2 models.

Each message carries ``schema_version`` ("MAJOR.MINOR"). Within a major version writers only add
optional fields and readers ignore fields they do not know, so workers of two releases can run
side by side during a rolling upgrade; a message of a newer major version is refused with a
clear reason (and dead-lettered by the stage that reads it). The policy, and the check CI runs
against the last release, are in ``schemas/README.md``. The exported JSON Schemas live beside
this module in ``schemas/json/`` (see ``export.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = "1.0"
SCHEMA_MAJOR = int(SCHEMA_VERSION.split(".")[0])

EntityType = Literal["person", "organization", "location", "group", "misc"]
"""Entity types: a small set every spaCy NER label maps to (see pipeline.stages.entities)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def check_schema_version(value: str) -> str:
    """``value`` when this release can read it: "MAJOR.MINOR" with a major it knows."""
    major, dot, minor = value.partition(".")
    if not (major.isdigit() and dot and minor.isdigit()):
        raise ValueError(f"schema_version {value!r} is not MAJOR.MINOR")
    if int(major) > SCHEMA_MAJOR:
        raise ValueError(
            f"schema_version {value} is newer than this newspipe reads "
            f"({SCHEMA_MAJOR}.x): upgrade the reader, then replay the dead letter"
        )
    return value


SourceOrigin = Literal["producer", "site_name", "dateline", "credit_line"]
"""Where an article's ``source`` came from: the producer, the page's site name, the wire
dateline's agency ("(Reuters)"), or a credit line ("Source: ...")."""

DateOrigin = Literal["producer", "page", "dateline"]
"""Where ``published_at`` came from: the producer, the page's metadata, or the dateline date
resolved against the ingest time."""


class Message(BaseModel):
    """Base of all topic messages: fields a reader does not know are ignored (a newer minor
    version's additions), a newer major version is refused."""

    model_config = ConfigDict(extra="ignore")
    schema_version: str = SCHEMA_VERSION

    _check_version = field_validator("schema_version")(check_schema_version)


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
    body: str = Field(
        ..., min_length=1, description="article text; size limits are the worker's setting"
    )
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
    extra: dict[str, Any] = Field(
        default_factory=dict, description="producer fields the contract does not name"
    )
    fingerprint: str | None = Field(
        None, description="hash of the normalised text, set by the dedupe stage"
    )
    stage_times: dict[str, datetime] | None = Field(
        None, description="when each stage took and finished the article (pipeline.stream.timing)"
    )
    source_origin: SourceOrigin | None = Field(None, description="where ``source`` came from")
    published_at_origin: DateOrigin | None = Field(
        None, description="where ``published_at`` came from"
    )
    subscriptions_offset: int | None = Field(
        None,
        ge=0,
        description="the subscriptions topic's end, read after the clean stage took the "
        "article: every subscription acknowledged before the article was produced lies below "
        "it, so alert matching that has applied that far asks the broker nothing more",
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


EVENT_ALERT_SALIENCE = 0.5
"""Event tags below this salience are passing references: kept with their evidence, but not in an
article's ``event_types`` and never matched by ``event:`` subscriptions (docs/events.md)."""


class EventTag(BaseModel):
    type: str = Field(..., description="event type from the taxonomy (pipeline.stages.events)")
    evidence: list[str] = Field(..., description="the sentence(s) that triggered the tag")
    place: str | None = None
    date_text: str | None = None
    salience: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="how central the event is to the article (1 = headline/lead or repeated); "
        "below 0.5 a passing reference that search facets and event alerts ignore",
    )

    @property
    def alertable(self) -> bool:
        """Whether the tag counts for ``event_types`` and ``event:`` alerts."""
        return self.salience >= EVENT_ALERT_SALIENCE


class EnrichedArticle(CleanArticle):
    """Clean article plus entities and events: what is indexed and matched against alerts."""

    entities: list[Entity] = Field(default_factory=list)
    events: list[EventTag] = Field(default_factory=list)
    story_id: str | None = Field(None, description="id of the story cluster this article joins")
    nlp_model: str | None = Field(
        None, description="spaCy pipeline that found the entities and events; None when none ran"
    )
    nlp_note: str | None = Field(
        None, description="why no entities were extracted (no pipeline for the language), if so"
    )
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
    payload_truncated: bool = Field(
        False, description="payload cut to fit one message; payload_size/sha256 name the whole"
    )
    payload_size: int | None = Field(None, description="original payload bytes (when truncated)")
    payload_sha256: str | None = Field(None, description="of the original payload (when truncated)")
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    failed_at: datetime = Field(default_factory=utcnow)


DeliveryState = Literal["pending", "delivered", "retrying", "failed", "refused"]
"""State of one (alert, channel) delivery (pipeline.alerts.outbox)."""

DigestMode = Literal["as_it_happens", "hourly", "daily"]


class WebhookChannel(BaseModel):
    """A webhook of a subscription. Its URL and signing secret are only ever kept sealed
    (encrypted, ``sealed``) on the subscriptions topic; ``target`` shows scheme, host and port."""

    id: str = Field(..., description="channel id, e.g. 'wh-3f2a…'")
    target: str = Field(..., description="scheme://host:port of the URL (no path, query or user)")
    sealed: str | None = Field(
        None,
        description="URL and secret, encrypted; on the subscriptions topic only, never indexed",
    )
    disabled: str | None = Field(
        None, description="why the channel no longer receives (e.g. 410 Gone)"
    )


class Subscription(Message):
    """An alert subscription: a query in the alert query syntax (pipeline.query.language)."""

    id: str
    owner: str = "default"
    query: str
    channels: list[str] = Field(
        default_factory=list,
        description="extra deliveries besides the alerts topic and index (webhooks: ``webhooks``)",
    )
    created_at: datetime = Field(default_factory=utcnow)
    active: bool = True
    webhooks: list[WebhookChannel] = Field(default_factory=list)
    digest: DigestMode = Field(
        "as_it_happens", description="webhooks get each alert, or one digest per hour / day"
    )
    timezone: str | None = Field(None, description="IANA zone of digest periods (default UTC)")
    per_story: bool = Field(
        False,
        description="alert once per story: the first matching article alerts, later articles "
        "of the same story are attached to that alert as updates",
    )


class AlertMatch(BaseModel):
    terms: list[str] = Field(default_factory=list)
    entities: list[str] = Field(default_factory=list)
    events: list[str] = Field(default_factory=list)


class DeliveryStatus(BaseModel):
    """The state of an alert's delivery to one channel."""

    channel: str = Field(..., description="channel id (WebhookChannel.id)")
    target: str = Field(..., description="scheme://host:port")
    state: DeliveryState
    attempts: int = 0
    status_code: int | None = Field(None, description="the receiver's last HTTP status")
    delivered_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    digest_period: datetime | None = Field(None, description="start of the digest period, if any")
    updated_at: datetime | None = None


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
    stage_times: dict[str, datetime] | None = Field(
        None,
        description="when each stage took and finished the article, and when it matched "
        "(pipeline.stream.timing)",
    )
    deliveries: list[DeliveryStatus] = Field(
        default_factory=list, description="state per webhook channel (alerts index, not the topic)"
    )
    story_id: str | None = Field(None, description="story of the article (per-story alerts)")
    updates: list[AlertUpdate] = Field(
        default_factory=list,
        description="later articles of the same story (per-story subscriptions only)",
    )
