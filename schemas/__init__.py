"""newspipe data contracts (pydantic v2). JSON Schemas: ``schemas/json/``."""

from pydantic import BaseModel

from schemas.models import (
    SCHEMA_VERSION,
    Alert,
    AlertMatch,
    CleanArticle,
    Dateline,
    DeadLetter,
    DeliveryStatus,
    DuplicateRecord,
    EnrichedArticle,
    Entity,
    EntityType,
    EventTag,
    Mention,
    Message,
    RawArticle,
    Subscription,
    WebhookChannel,
)

#: every model that crosses a topic, by the file stem its JSON Schema is exported to
TOPIC_MODELS: dict[str, type[BaseModel]] = {
    "raw_article": RawArticle,
    "clean_article": CleanArticle,
    "enriched_article": EnrichedArticle,
    "duplicate_record": DuplicateRecord,
    "dead_letter": DeadLetter,
    "subscription": Subscription,
    "alert": Alert,
}

__all__ = [
    "SCHEMA_VERSION",
    "TOPIC_MODELS",
    "Alert",
    "AlertMatch",
    "CleanArticle",
    "Dateline",
    "DeadLetter",
    "DeliveryStatus",
    "DuplicateRecord",
    "EnrichedArticle",
    "Entity",
    "EntityType",
    "EventTag",
    "Mention",
    "Message",
    "RawArticle",
    "Subscription",
    "WebhookChannel",
]
