"""Digest contents: grouping by story, the webhook payload shape, one Atom entry per closed
period with a stable id (no servers: plain functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import feedparser

from pipeline.alerts.digest import OTHER_ARTICLES, digest_data, feed_digests, story_groups
from pipeline.api.atom import render_feed
from pipeline.settings import Settings
from schemas import Alert, AlertMatch, DeliveryStatus, Subscription

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
SETTINGS = Settings(digest_hourly_s=3600)


def _alert(n: int, minutes: float, story: str | None, **extra) -> Alert:
    return Alert(
        id=f"a{n}",
        subscription_id="sub-d",
        query="memorandum",
        owner="o",
        article_id=f"art{n}",
        title=f"Title {n} <&>",
        source="Wire",
        story_id=story,
        matched=AlertMatch(terms=["memorandum"]),
        snippet=f"the «memorandum» {n}",
        created_at=T0 + timedelta(minutes=minutes),
        **extra,
    )


SUB = Subscription(id="sub-d", query="memorandum", owner="o", digest="hourly")


def test_groups_one_per_story_oldest_first_ungrouped_last():
    alerts = [
        _alert(1, 5, "s-b"),
        _alert(2, 1, None),
        _alert(3, 2, "s-a"),
        _alert(4, 3, "s-b"),
        _alert(5, 0.5, "s-a"),
        _alert(6, 9, None),
    ]
    groups = story_groups(alerts, {"s-a": "Story A"})
    assert [g.story_id for g in groups] == ["s-a", "s-b", None]
    assert [[a.id for a in g.alerts] for g in groups] == [["a5", "a3"], ["a4", "a1"], ["a2", "a6"]]
    assert [g.title for g in groups] == [
        "Story A",
        "Title 4 <&>",
        OTHER_ARTICLES,
    ]  # stored title, else oldest


def test_no_story_at_all_is_one_group():
    groups = story_groups([_alert(1, 1, None), _alert(2, 0, None)])
    assert (
        len(groups) == 1
        and groups[0].story_id is None
        and [a.id for a in groups[0].alerts] == ["a2", "a1"]
    )


def test_webhook_digest_payload_lists_each_alert_once_by_story():
    alerts = [_alert(1, 1, "s-a"), _alert(2, 2, None), _alert(3, 3, "s-a")]
    data = digest_data(
        SUB, "2026-03-01T10:00:00+00:00", "2026-03-01T11:00:00+00:00", story_groups(alerts)
    )
    assert data["alert_count"] == 3 and data["timezone"] == "UTC" and data["digest"] == "hourly"
    assert [(s["story_id"], [a["id"] for a in s["alerts"]]) for s in data["stories"]] == [
        ("s-a", ["a1", "a3"]),
        (None, ["a2"]),
    ]
    assert "deliveries" not in data["stories"][0]["alerts"][0]


def test_feed_digests_closed_periods_only_newest_first_empty_skipped():
    alerts = [_alert(1, 5, "s"), _alert(2, 70, None), _alert(3, 200, "s"), _alert(4, 30, "s")]
    now = T0 + timedelta(minutes=190)  # 10:00-11:00 and 11:00-12:00 closed, 13:00-14:00 open
    digests = feed_digests(SUB, alerts, SETTINGS, now)
    assert [(d.period_start, [a.id for a in d.alerts]) for d in digests] == [
        (T0 + timedelta(hours=1), ["a2"]),
        (T0, ["a1", "a4"]),
    ]  # 12:00-13:00 had nothing: no entry
    later = feed_digests(SUB, alerts, SETTINGS, T0 + timedelta(hours=5))
    assert [d.entry_id for d in later][1:] == [d.entry_id for d in digests]  # ids are stable
    assert feed_digests(SUB, alerts, SETTINGS, now, complete=False)[
        -1
    ].period_start == T0 + timedelta(hours=1)


def test_an_alert_follows_the_period_its_webhook_digest_recorded():
    # created at 10:59, but its period's digest was already leased: it joined 11:00-12:00
    late = _alert(
        1,
        59,
        None,
        deliveries=[
            DeliveryStatus(
                channel="c",
                target="http://h:1",
                state="pending",
                digest_period=T0 + timedelta(hours=1),
            )
        ],
    )
    (digest,) = feed_digests(SUB, [late], SETTINGS, T0 + timedelta(hours=3))
    assert digest.period_start == T0 + timedelta(hours=1)


def test_atom_feed_of_a_digest_subscription_has_one_entry_per_period():
    alerts = [_alert(1, 5, "s-a"), _alert(2, 10, None), _alert(3, 20, "s-a"), _alert(4, 70, "s-b")]
    digests = feed_digests(SUB, alerts, SETTINGS, T0 + timedelta(hours=3))
    body = render_feed(
        SUB,
        [],
        self_url="http://h/subscriptions/sub-d/feed.atom",
        page_url="http://h/",
        digests=digests,
        titles={"s-a": "Talks resume"},
    )
    feed = feedparser.parse(body)
    assert not feed.bozo, feed.bozo_exception
    assert [e.id for e in feed.entries] == [
        f"urn:newspipe:digest:sub-d:{(T0 + timedelta(hours=h)).isoformat()}" for h in (1, 0)
    ]
    assert feed.entries[1].title.startswith("3 alerts for memorandum")
    content = feed.entries[1].content[0].value
    assert (
        content.index("Talks resume")
        < content.index("Title 1")
        < content.index("Title 3")
        < content.index(OTHER_ARTICLES)
        < content.index("Title 2")
    )
    assert "<b>memorandum</b>" in content and "<&>" not in content
    assert feed.entries[0].title.startswith("1 alert for memorandum")


def test_an_empty_digest_feed_is_valid():
    feed = feedparser.parse(
        render_feed(SUB, [], self_url="http://h/f", page_url="http://h/", digests=[])
    )
    assert not feed.bozo and feed.entries == []
