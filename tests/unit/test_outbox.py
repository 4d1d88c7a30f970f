"""The outbox's pure parts: digest periods (UTC and a subscription's zone), deterministic
entry ids, backoff bounds, retry decisions (attempts, age, digests aging from their end) and the
alert's summary state. The leasing itself runs on the real node (tests/integration)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from pipeline.alerts.outbox import (
    Entry,
    Outbox,
    Result,
    delivery_id,
    digest_id,
    digest_period,
    retry_delay,
    summary,
)
from pipeline.settings import Settings
from schemas import Subscription

NOW = datetime(2026, 3, 1, 10, 20, 30, tzinfo=UTC)


def test_hourly_and_daily_periods_align_to_midnight_utc():
    settings = Settings(digest_hourly_s=3600, digest_daily_s=86400)
    start, end = digest_period(Subscription(id="s", query="q", digest="hourly"), settings, NOW)
    assert (start, end) == (
        datetime(2026, 3, 1, 10, tzinfo=UTC),
        datetime(2026, 3, 1, 11, tzinfo=UTC),
    )
    start, end = digest_period(Subscription(id="s", query="q", digest="daily"), settings, NOW)
    assert (start, end - start) == (datetime(2026, 3, 1, tzinfo=UTC), timedelta(days=1))
    assert digest_period(Subscription(id="s", query="q"), settings, NOW) is None  # as it happens


def test_daily_period_follows_the_subscriptions_time_zone():
    settings = Settings(digest_daily_s=86400)
    sub = Subscription(id="s", query="q", digest="daily", timezone="Asia/Tokyo")  # UTC+9, no DST
    start, end = digest_period(sub, settings, NOW)  # 19:20 in Tokyo
    assert start == datetime(2026, 2, 28, 15, tzinfo=UTC)  # Tokyo midnight
    assert end - start == timedelta(days=1) and start <= NOW < end


def test_short_periods_for_tests_contain_now_and_tile():
    settings = Settings(digest_hourly_s=4)
    sub = Subscription(id="s", query="q", digest="hourly")
    start, end = digest_period(sub, settings, NOW)
    assert start <= NOW < end and end - start == timedelta(seconds=4)
    assert digest_period(sub, settings, end) == (end, end + timedelta(seconds=4))


def test_entry_ids_are_deterministic_and_distinct():
    assert delivery_id("a1", "wh-1") == delivery_id("a1", "wh-1") != delivery_id("a1", "wh-2")
    period = datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert digest_id("s", "wh-1", period) == digest_id("s", "wh-1", period)
    assert digest_id("s", "wh-1", period) != digest_id("s", "wh-1", period + timedelta(hours=1))
    assert delivery_id("a", "c").startswith("msg_") and digest_id("s", "c", period).startswith(
        "dig_"
    )


def test_backoff_doubles_with_jitter_and_is_capped():
    settings = Settings(webhook_backoff_s=2, webhook_backoff_max_s=60)
    rng = random.Random(7)
    for attempts, base in ((1, 2), (2, 4), (3, 8), (10, 60)):
        delays = [retry_delay(attempts, settings, rng) for _ in range(200)]
        assert all(base * 0.5 <= d <= base for d in delays)


def _entry(**source) -> Entry:
    base = {
        "attempts": 0,
        "created_at": NOW.isoformat(),
        "state": "pending",
        "due_at": NOW.isoformat(),
        "kind": "alert",
        "target": "http://h:1",
        "channel": "c",
        "alert_ids": ["a"],
    }
    return Entry("msg_x", {**base, **source})


def test_decide_retries_then_gives_up_on_attempts_or_age():
    outbox = Outbox(
        es=None,
        settings=Settings(
            webhook_max_attempts=3,
            webhook_max_age_s=600,
            webhook_backoff_s=1,
            webhook_backoff_max_s=10,
        ),
    )
    failure = Result("retrying", error="HTTP 500")
    first = outbox.decide(_entry(), failure, NOW)
    assert first.state == "retrying" and NOW < first.next_attempt_at <= NOW + timedelta(seconds=1)
    assert (
        outbox.decide(_entry(attempts=2), failure, NOW).state == "failed"
    )  # third attempt was the last
    old = _entry(created_at=(NOW - timedelta(seconds=599.9)).isoformat())
    gave_up = outbox.decide(old, failure, NOW)
    assert gave_up.state == "failed" and "max age" in gave_up.error
    # a digest ages from its period's end, not from its first alert
    digest = _entry(
        kind="digest", created_at=(NOW - timedelta(days=1)).isoformat(), period_end=NOW.isoformat()
    )
    assert outbox.decide(digest, failure, NOW).state == "retrying"
    # an open circuit is no attempt: the entry keeps its state and its attempt count
    deferred = outbox.decide(
        _entry(),
        Result(
            "retrying",
            attempted=False,
            error="circuit open",
            next_attempt_at=NOW + timedelta(seconds=5),
        ),
        NOW,
    )
    assert (deferred.state, deferred.next_attempt_at) == ("pending", NOW + timedelta(seconds=5))
    assert outbox.decide(_entry(), Result("delivered", status_code=204), NOW).state == "delivered"


def test_an_alerts_status_is_its_least_settled_delivery():
    assert summary([], published=False) == "pending" and summary([], published=True) == "delivered"
    states = [{"state": "delivered"}, {"state": "refused"}]
    assert summary(states, True) == "refused"
    assert summary(states + [{"state": "failed"}], True) == "failed"
    assert summary(states + [{"state": "retrying"}, {"state": "pending"}], True) == "retrying"


class _Mget:
    """An mget answer as Elasticsearch gives it (only what ``Outbox.alerts`` reads)."""

    def __init__(self, docs):
        self.docs = docs

    def mget(self, index, ids):
        return {"docs": self.docs}


def test_alerts_a_recovering_node_cannot_serve_are_a_server_fault_not_gone():
    """Right after Elasticsearch restarts, mget answers per-document errors (no shard available
    yet): that is a server fault to retry, never "its alerts are gone" (which fails the entry);
    a missing index does mean gone."""
    import pytest

    from pipeline.infra.es import ServerBusy, is_transient

    settings = Settings()
    recovering = _Mget(
        [{"_index": "a", "_id": "x", "error": {"type": "no_shard_available_action_exception"}}]
    )
    with pytest.raises(ServerBusy) as raised:
        Outbox(recovering, settings).alerts(["x"])
    assert is_transient(raised.value)
    missing_index = _Mget(
        [{"_index": "a", "_id": "x", "error": {"type": "index_not_found_exception"}}]
    )
    assert Outbox(missing_index, settings).alerts(["x"]) == []
    assert (
        Outbox(_Mget([{"_index": "a", "_id": "x", "found": False}]), settings).alerts(["x"]) == []
    )


def test_alert_states_a_recovering_node_cannot_serve_are_a_server_fault_not_skipped():
    """Writing delivery states onto alert documents reads them first; a document the node
    cannot serve yet (no shard available) must make the write fail as a server fault (the
    dispatcher retries the recording), not be skipped: a skipped one stays "pending" although
    its webhook was delivered (CI fault suite, Elasticsearch down 30 s)."""
    import pytest

    from pipeline.infra.es import ServerBusy, is_transient

    settings = Settings()
    recovering = _Mget(
        [{"_index": "a", "_id": "x", "error": {"type": "no_shard_available_action_exception"}}]
    )
    with pytest.raises(ServerBusy) as raised:
        Outbox(recovering, settings).mark(["x"], {"x": []})
    assert is_transient(raised.value)
    # a missing index or document: nothing to mark, no error
    Outbox(_Mget([{"_index": "a", "_id": "x", "found": False}]), settings).mark(["x"], {"x": []})
    missing_index = _Mget(
        [{"_index": "a", "_id": "x", "error": {"type": "index_not_found_exception"}}]
    )
    Outbox(missing_index, settings).mark(["x"], {"x": []})


def test_the_ledger_asks_again_when_the_node_cannot_say_whether_an_alert_was_published():
    """An alert claimed before (a redelivery) is published again only if its document says it
    was not; a document the recovering node cannot serve is a server fault (retried), not a
    guess that would drop the alert."""
    import pytest

    from pipeline.alerts.delivery import AlertLedger
    from pipeline.infra.es import ServerBusy

    class _MgetWithSource(_Mget):
        def mget(self, index, ids, source_includes=None):
            return {"docs": self.docs}

    recovering = _MgetWithSource(
        [{"_index": "a", "_id": "x", "error": {"type": "no_shard_available_action_exception"}}]
    )
    with pytest.raises(ServerBusy):
        AlertLedger(recovering, "a")._unpublished({"x"})
    unpublished = _MgetWithSource(
        [{"_index": "a", "_id": "x", "found": True, "_source": {"published": False}}]
    )
    assert AlertLedger(unpublished, "a")._unpublished({"x"}) == {"x"}
