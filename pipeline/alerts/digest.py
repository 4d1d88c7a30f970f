"""Digest contents: a period's alerts grouped by story, for the webhook POST and the Atom feed.

A digest (hourly or daily subscription) lists the alerts of one period. Both of its forms, the
``alert.digest`` webhook payload (:func:`digest_data`) and the subscription's Atom entry
(:func:`feed_digests`, rendered by :mod:`pipeline.api.atom`), group them by story
(:func:`story_groups`): one group per story (``Alert.story_id``, set by the stories stage),
ordered by the group's oldest alert, its alerts oldest first; alerts without a story come last
in one group whose ``story_id`` is null. A group's title is the story's title from the stories
index, or its oldest alert's title when the story is not stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pipeline.alerts.outbox import digest_period, payload
from pipeline.settings import Settings
from schemas import Alert, Subscription

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

    from pipeline.alerts.delivery import AlertLedger

OTHER_ARTICLES = "Other articles"


@dataclass
class StoryGroup:
    story_id: str | None
    title: str
    alerts: list[Alert] = field(default_factory=list)


def story_groups(alerts: list[Alert], titles: dict[str, str] | None = None) -> list[StoryGroup]:
    """``alerts`` grouped by story (see the module docstring); the input order is kept within
    a group when alerts have equal ``created_at``."""
    titles = titles or {}
    ordered = sorted(alerts, key=lambda a: a.created_at)
    groups: dict[str, StoryGroup] = {}
    loose: list[Alert] = []
    for alert in ordered:
        if not alert.story_id:
            loose.append(alert)
            continue
        group = groups.get(alert.story_id)
        if group is None:
            title = titles.get(alert.story_id) or alert.title or alert.article_id
            group = groups[alert.story_id] = StoryGroup(alert.story_id, title)
        group.alerts.append(alert)
    result = list(groups.values())
    if loose:
        result.append(StoryGroup(None, OTHER_ARTICLES, loose))
    return result


def story_titles(es: Elasticsearch, settings: Settings, alerts: list[Alert]) -> dict[str, str]:
    """Titles of the alerts' stories from the stories index (missing stories, or no index:
    nothing)."""
    ids = sorted({a.story_id for a in alerts if a.story_id})
    if not ids:
        return {}
    found = es.options(ignore_status=404).mget(
        index=settings.index("stories"), ids=ids, source_includes=["title"]
    )
    return {
        d["_id"]: d["_source"]["title"]
        for d in found.get("docs", [])
        if d.get("found") and d["_source"].get("title")
    }


def digest_data(
    subscription: Subscription, period_start: str, period_end: str, groups: list[StoryGroup]
) -> dict[str, Any]:
    """The ``data`` of an ``alert.digest`` webhook (documented in docs/alerts.md)."""
    return {
        "subscription_id": subscription.id,
        "query": subscription.query,
        "owner": subscription.owner,
        "digest": subscription.digest,
        "timezone": subscription.timezone or "UTC",
        "period_start": period_start,
        "period_end": period_end,
        "alert_count": sum(len(g.alerts) for g in groups),
        "stories": [
            {"story_id": g.story_id, "title": g.title, "alerts": [payload(a) for a in g.alerts]}
            for g in groups
        ],
    }


@dataclass
class Digest:
    """One closed period of a digest subscription, as an Atom entry."""

    subscription_id: str
    period_start: datetime
    period_end: datetime
    alerts: list[Alert]

    @property
    def entry_id(self) -> str:
        return f"urn:newspipe:digest:{self.subscription_id}:{self.period_start.isoformat()}"

    @property
    def updated(self) -> datetime:
        return max([self.period_end, *(a.created_at for a in self.alerts)])


def alert_period(
    alert: Alert, subscription: Subscription, settings: Settings
) -> tuple[datetime, datetime]:
    """The digest period an alert belongs to: the one its webhook digest recorded (an alert
    arriving after its period's digest was leased joins the next one), else the period of
    its creation."""
    recorded = next((d.digest_period for d in alert.deliveries if d.digest_period), None)
    if recorded is not None:
        start, end = _period(subscription, settings, recorded)
        if start == recorded:
            return start, end
    return _period(subscription, settings, alert.created_at)


def _period(
    subscription: Subscription, settings: Settings, at: datetime
) -> tuple[datetime, datetime]:
    period = digest_period(subscription, settings, at)
    if period is None:
        raise ValueError(
            f"subscription {subscription.id} is as-it-happens: it has no digest periods"
        )
    return period


def feed_digests(
    subscription: Subscription,
    alerts: list[Alert],
    settings: Settings,
    now: datetime,
    *,
    complete: bool = True,
) -> list[Digest]:
    """The closed periods (ended by ``now``) of a digest subscription among ``alerts``, newest
    first; a period without alerts has no digest. ``complete=False`` says ``alerts`` may miss
    older ones (a size limit was hit): the oldest period is then left out, as it may be partial."""
    periods: dict[tuple[datetime, datetime], list[Alert]] = {}
    for alert in alerts:
        periods.setdefault(alert_period(alert, subscription, settings), []).append(alert)
    digests = [
        Digest(subscription.id, start, end, sorted(listed, key=lambda a: a.created_at))
        for (start, end), listed in periods.items()
        if end <= now
    ]
    digests.sort(key=lambda d: d.period_start, reverse=True)
    if not complete and digests:
        digests.pop()
    return digests


FEED_ALERTS = 2000  # alerts read to build a digest feed (the oldest period may be cut: left out)


def latest_digests(
    ledger: AlertLedger,
    es: Elasticsearch,
    settings: Settings,
    subscription: Subscription,
    size: int,
    now: datetime,
) -> tuple[list[Digest], dict[str, str]]:
    """The ``size`` newest closed digests of a subscription, and the titles of their stories."""
    alerts = ledger.history(subscription.id, FEED_ALERTS)
    digests = feed_digests(subscription, alerts, settings, now, complete=len(alerts) < FEED_ALERTS)[
        :size
    ]
    listed = [a for d in digests for a in d.alerts]
    return digests, story_titles(es, settings, listed)
