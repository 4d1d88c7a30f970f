"""The webhook outbox: one durable entry per (alert, channel), or per (channel, digest period).

The outbox is the ``<prefix>-outbox`` index on the project's Elasticsearch. The alerts agent
only *writes* entries (after claiming the alerts in the ledger and publishing them to the
alerts topic); the :class:`pipeline.alerts.dispatcher.Dispatcher` of any worker leases due
entries (optimistic concurrency: a lease is a conditional update, so one worker sends an entry
at a time), sends them and records the outcome here and on the alert documents of the alerts
index (field ``deliveries``, one :class:`schemas.DeliveryStatus` per channel, and ``status``,
the summary), so ``newspipe alerts history``, the API and Kibana show the same states.

States: ``pending`` (waiting for its first attempt or its digest period), ``retrying``
(attempts, next attempt, last error), ``delivered`` (2xx: status code and time), ``failed``
(gave up: attempts or age exhausted, 410 Gone, channel disabled or removed), ``refused``
(the target rules refused it). Entry ids are deterministic, so a redelivered alert or a
restarted worker never makes a second entry; the entry id is the ``webhook-id`` receivers see.

Entries carry no URL or secret: the dispatcher reads them from the subscription (sealed).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from elasticsearch import ConflictError, Elasticsearch

from pipeline.alerts.delivery import KnownDocument
from pipeline.ids import stable_hash
from pipeline.infra.es import ServerBusy, is_transient_item
from pipeline.settings import Settings
from schemas import Alert, DeliveryStatus, Subscription
from schemas.models import utcnow

log = logging.getLogger(__name__)

OPEN_STATES = ("pending", "retrying")
SUPERSEDED = "superseded"  # not a state: an outcome not recorded, the entry was leased again
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Period = tuple[datetime, datetime]
"""A digest period: (start, end)."""

STATE_RANK = {"delivered": 0, "refused": 1, "failed": 2, "pending": 3, "retrying": 4}


def summary(deliveries: list[dict[str, Any]], published: bool) -> str:
    """An alert's ``status``: its least settled delivery (``delivered`` when it has none and
    is published; ``pending`` until then)."""
    if not deliveries:
        return "delivered" if published else "pending"
    return cast(str, max((d["state"] for d in deliveries), key=STATE_RANK.__getitem__))


def delivery_id(alert_id: str, channel_id: str) -> str:
    return "msg_" + stable_hash("delivery", alert_id, channel_id, length=24)


def digest_id(subscription_id: str, channel_id: str, period_start: datetime) -> str:
    return "dig_" + stable_hash(
        "digest", subscription_id, channel_id, period_start.isoformat(), length=24
    )


def digest_period(subscription: Subscription, settings: Settings, now: datetime) -> Period | None:
    """The digest period containing ``now`` (None for as-it-happens): fixed-length periods of
    ``NEWS_DIGEST_HOURLY_S`` / ``NEWS_DIGEST_DAILY_S`` seconds aligned to midnight of the
    subscription's time zone (UTC by default)."""
    if subscription.digest == "as_it_happens":
        return None
    length = (
        settings.digest_hourly_s if subscription.digest == "hourly" else settings.digest_daily_s
    )
    offset = (
        now.astimezone(ZoneInfo(subscription.timezone)).utcoffset()
        if subscription.timezone
        else None
    )
    shift = offset.total_seconds() if offset else 0.0
    local = (now - EPOCH).total_seconds() + shift
    start = EPOCH + timedelta(seconds=(local // length) * length - shift)
    return start, start + timedelta(seconds=length)


def retry_delay(attempts: int, settings: Settings, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: base·2^(attempts-1), capped, times U(0.5, 1)."""
    base = min(
        settings.webhook_backoff_max_s, settings.webhook_backoff_s * 2 ** max(attempts - 1, 0)
    )
    return cast(float, base * (rng or random).uniform(0.5, 1.0))


@dataclass
class Entry:
    """A leased outbox entry."""

    id: str
    source: dict[str, Any]

    @property
    def target(self) -> str:
        return cast(str, self.source["target"])

    @property
    def kind(self) -> str:
        return cast(str, self.source["kind"])


@dataclass(frozen=True)
class Result:
    """What an attempt (or a decision not to attempt) did to an entry."""

    state: str  # the new state
    attempted: bool = True
    status_code: int | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class Outbox:
    """The outbox index and the delivery states on the alert documents."""

    def __init__(self, es: Elasticsearch, settings: Settings):
        self.es = es
        self.settings = settings
        self.index = settings.index("outbox")
        self.alerts_index = settings.index("alerts")

    # --- writing entries (alerts agent, backfill) ------------------------------------------
    def enqueue(
        self,
        alerts: Iterable[Alert],
        lookup: Callable[[str], Subscription | None],
        now: datetime | None = None,
        known: dict[str, KnownDocument] | None = None,
    ) -> list[str]:
        """Record the alerts' deliveries (idempotent) and mark the alerts published (the ledger
        republishes unpublished ones). Returns the ids of entries due now (as-it-happens).
        ``known``: alert documents as the ledger created them (see :meth:`mark`)."""
        now = now or utcnow()
        pending: dict[str, list[DeliveryStatus]]
        digests: dict[tuple[str, str, Period], tuple[dict[str, Any], Subscription, list[str]]]
        due, pending, digests, published = [], {}, {}, []
        operations: list[dict[str, Any]] = []
        for alert in alerts:
            published.append(alert.id)
            subscription = lookup(alert.subscription_id)
            for channel in subscription.webhooks if subscription else []:
                assert subscription is not None  # the loop runs over its channels only
                if channel.disabled:  # shown as failed on the alert, nothing to send
                    pending.setdefault(alert.id, []).append(
                        DeliveryStatus(
                            channel=channel.id,
                            target=channel.target,
                            state="failed",
                            last_error=f"channel disabled: {channel.disabled}",
                            updated_at=now,
                        )
                    )
                    continue
                period = digest_period(subscription, self.settings, now)
                status = DeliveryStatus(
                    channel=channel.id,
                    target=channel.target,
                    state="pending",
                    digest_period=period[0] if period else None,
                    next_attempt_at=period[1] if period else now,
                    updated_at=now,
                )
                pending.setdefault(alert.id, []).append(status)
                base = {
                    "subscription_id": subscription.id,
                    "owner": subscription.owner,
                    "channel": channel.id,
                    "target": channel.target,
                    "state": "pending",
                    "attempts": 0,
                    "created_at": _iso(now),
                    "closed": False,
                }
                if period is None:
                    entry_id = delivery_id(alert.id, channel.id)
                    operations += [
                        {"create": {"_index": self.index, "_id": entry_id}},
                        {**base, "kind": "alert", "alert_ids": [alert.id], "due_at": _iso(now)},
                    ]
                    due.append(entry_id)
                else:
                    key = (subscription.id, channel.id, period)
                    digests.setdefault(key, (base, subscription, []))[2].append(alert.id)
        if operations:
            self._bulk(operations, ignore_conflicts=True)
        for (_, _, period), (base, subscription, ids) in digests.items():
            self._add_to_digest(base, subscription, ids, period)
        self.mark(published, pending, published_too=True, known=known)
        return due

    def _add_to_digest(
        self, base: dict[str, Any], subscription: Subscription, ids: list[str], period: Period
    ) -> None:
        """Add alerts to the digest of ``period`` (created on first use); a digest already
        leased for sending is closed: the alerts join the next period's."""
        for _ in range(100):
            start, end = period
            entry_id = digest_id(base["subscription_id"], base["channel"], start)
            got = self.es.options(ignore_status=404).get(index=self.index, id=entry_id)
            if not got.get("found"):
                doc = {
                    **base,
                    "kind": "digest",
                    "alert_ids": ids,
                    "due_at": _iso(end),
                    "period_start": _iso(start),
                    "period_end": _iso(end),
                }
                try:
                    self.es.create(index=self.index, id=entry_id, document=doc)
                    return
                except ConflictError:
                    continue
            source = got["_source"]
            if source.get("closed"):
                period = cast(  # not None: a digest subscription has periods
                    Period,
                    digest_period(subscription, self.settings, end + timedelta(milliseconds=1)),
                )
                continue
            joined = source["alert_ids"] + [i for i in ids if i not in source["alert_ids"]]
            try:
                self.es.update(
                    index=self.index,
                    id=entry_id,
                    doc={"alert_ids": joined},
                    if_seq_no=got["_seq_no"],
                    if_primary_term=got["_primary_term"],
                )
                return
            except ConflictError:
                continue
        raise RuntimeError("digest: too many concurrent changes")  # pragma: no cover

    def mark(
        self,
        alert_ids: Iterable[str],
        updates: dict[str, list[DeliveryStatus]],
        *,
        published_too: bool = False,
        only_new: bool = True,
        known: dict[str, KnownDocument] | None = None,
    ) -> None:
        """Write per-channel states onto alert documents (and the ``published`` flag), by
        read-modify-write under optimistic concurrency (no server-side scripts needed).
        ``known``: documents as this process wrote them, with their versions; they are not
        read first (one round trip less for the alerts just claimed), and one changed since
        fails its version check and is read then."""

        def change(alert_id: str, source: dict[str, Any]) -> dict[str, Any]:
            deliveries = list(source.get("deliveries") or [])
            for update in updates.get(alert_id, []):
                new = update.model_dump(mode="json")
                at = next(
                    (k for k, d in enumerate(deliveries) if d.get("channel") == new["channel"]),
                    None,
                )
                if at is None:
                    deliveries.append(new)
                elif not only_new:
                    deliveries[at] = new
            published = published_too or source.get("published", source.get("status") != "pending")
            partial: dict[str, Any] = {
                "deliveries": deliveries,
                "status": summary(deliveries, published),
            }
            if published_too:
                partial["published"] = True
            return partial

        self._read_modify_write(self.alerts_index, list(alert_ids), change, known or {})

    def _read_modify_write(
        self,
        index: str,
        ids: list[str],
        change: Callable[[str, dict[str, Any]], dict[str, Any]],
        known: dict[str, KnownDocument],
    ) -> None:
        pending = list(dict.fromkeys(ids))
        first = True
        for _ in range(50):
            if not pending:
                return
            docs: list[dict[str, Any]] = []
            if first:  # as written by this process: no read (a later change fails the check)
                docs = [
                    {"_id": i, "_source": source, "_seq_no": seq_no, "_primary_term": term}
                    for i in pending
                    if i in known
                    for source, seq_no, term in [known[i]]
                ]
                pending = [i for i in pending if i not in known]
                first = False
            if pending:
                answered = self.es.mget(index=index, ids=pending)["docs"]
                unanswered = [
                    d["error"] for d in answered if "error" in d and not _index_missing(d["error"])
                ]
                if unanswered:  # e.g. no shard available while the node recovers: not "gone",
                    # and skipping them would leave a delivered alert marked as still pending
                    raise ServerBusy(f"{index}: {unanswered[0].get('type', unanswered[0])}")
                docs += [d for d in answered if d.get("found")]
            if not docs:
                return
            operations = []
            for doc in docs:
                operations += [
                    {
                        "update": {
                            "_index": index,
                            "_id": doc["_id"],
                            "if_seq_no": doc["_seq_no"],
                            "if_primary_term": doc["_primary_term"],
                        }
                    },
                    {"doc": change(doc["_id"], doc["_source"])},
                ]
            items = self.es.bulk(operations=operations)["items"]
            pending = []
            for doc, item in zip(docs, items):
                result = item["update"]
                if result.get("status") == 409:
                    pending.append(doc["_id"])
                elif result.get("status") == 404:  # a known document deleted since: gone
                    continue
                elif is_transient_item(result):
                    raise ServerBusy(
                        f"alert {doc['_id']}: state not written: {result.get('error')}"
                    )
                elif result.get("error"):
                    raise RuntimeError(f"alert {doc['_id']}: state not written: {result['error']}")
        if pending:
            raise RuntimeError(
                f"{len(pending)} alert state(s) not written: too many concurrent changes"
            )

    def _bulk(
        self, operations: list[dict[str, Any]], *, ignore_conflicts: bool = False
    ) -> list[dict[str, Any]]:
        answer = self.es.bulk(operations=operations)
        items = [next(iter(i.values())) for i in answer["items"]]
        errors = [
            i for i in items if i.get("error") and not (ignore_conflicts and i.get("status") == 409)
        ]
        if errors:
            raise RuntimeError(f"outbox: {len(errors)} write(s) failed: {errors[0].get('error')}")
        return items

    # --- leasing (dispatcher) ----------------------------------------------------------------
    def lease_due(
        self,
        *,
        capacity: Callable[[str], int],
        exclude_ids: Iterable[str] = (),
        exclude_targets: Iterable[str] = (),
        limit: int = 64,
        now: datetime | None = None,
    ) -> list[Entry]:
        """Lease up to ``limit`` due entries, at most ``capacity(target)`` per target."""
        now = now or utcnow()
        query = {
            "bool": {
                "filter": [
                    {"terms": {"state": list(OPEN_STATES)}},
                    {"range": {"due_at": {"lte": _iso(now)}}},
                    {
                        "bool": {
                            "should": [
                                {"bool": {"must_not": {"exists": {"field": "lease_until"}}}},
                                {"range": {"lease_until": {"lt": _iso(now)}}},
                            ],
                            "minimum_should_match": 1,
                        }
                    },
                ],
                "must_not": [
                    {"terms": {"target": list(exclude_targets)}},
                    {"ids": {"values": list(exclude_ids)}},
                ],
            }
        }
        hits = self.es.search(
            index=self.index,
            query=query,
            size=limit,
            sort=[{"due_at": "asc"}],
            seq_no_primary_term=True,
        )["hits"]["hits"]
        return self._lease(hits, capacity, now)

    def lease_ids(
        self, ids: list[str], *, capacity: Callable[[str], int], now: datetime | None = None
    ) -> list[Entry]:
        """Lease the given entries (just written: a realtime get sees them before a refresh)."""
        if not ids:
            return []
        now = now or utcnow()
        docs = self.es.mget(index=self.index, ids=ids)["docs"]
        hits = [
            d
            for d in docs
            if d.get("found")
            and d["_source"]["state"] in OPEN_STATES
            and cast(datetime, _parse(d["_source"]["due_at"])) <= now
            and (
                not d["_source"].get("lease_until")
                or cast(datetime, _parse(d["_source"]["lease_until"])) < now
            )
        ]
        return self._lease(hits, capacity, now)

    def _lease(
        self, hits: list[dict[str, Any]], capacity: Callable[[str], int], now: datetime
    ) -> list[Entry]:
        taken: dict[str, int] = {}
        chosen = []
        for hit in hits:
            target = hit["_source"]["target"]
            if taken.get(target, 0) < capacity(target):
                taken[target] = taken.get(target, 0) + 1
                chosen.append(hit)
        if not chosen:
            return []
        until = _iso(now + timedelta(seconds=self.settings.outbox_lease_s))
        operations = []
        for hit in chosen:
            operations += [
                {
                    "update": {
                        "_index": self.index,
                        "_id": hit["_id"],
                        "if_seq_no": hit["_seq_no"],
                        "if_primary_term": hit["_primary_term"],
                    }
                },
                {"doc": {"lease_until": until, "closed": True}},
            ]
        items = self.es.bulk(operations=operations)["items"]
        leased = []
        for hit, item in zip(chosen, items):
            if "error" not in item["update"]:
                leased.append(
                    Entry(hit["_id"], {**hit["_source"], "lease_until": until, "closed": True})
                )
        return leased

    # --- outcomes (dispatcher) ---------------------------------------------------------------
    def decide(self, entry: Entry, result: Result, now: datetime | None = None) -> Result:
        """Turn a retryable failure into ``retrying`` with the next attempt, or ``failed`` when
        attempts or age are exhausted; other results pass unchanged."""
        now = now or utcnow()
        if result.state != "retrying":
            return result
        attempts = entry.source["attempts"] + (1 if result.attempted else 0)
        created = _parse(entry.source["created_at"])
        oldest = _parse(entry.source.get("period_end")) or created  # a digest ages from its end
        deadline = cast(datetime, oldest) + timedelta(seconds=self.settings.webhook_max_age_s)
        at = result.next_attempt_at or now + timedelta(seconds=retry_delay(attempts, self.settings))
        if attempts >= self.settings.webhook_max_attempts:
            return Result(
                "failed",
                result.attempted,
                result.status_code,
                f"gave up after {attempts} attempts; last: {result.error}",
            )
        if at > deadline:
            return Result(
                "failed",
                result.attempted,
                result.status_code,
                f"gave up after {attempts} attempts (max age); last: {result.error}",
            )
        state = entry.source["state"] if not result.attempted and attempts == 0 else "retrying"
        return Result(state, result.attempted, result.status_code, result.error, at)

    def record(self, entry: Entry, result: Result, now: datetime | None = None) -> Result:
        """Store the outcome on the entry and on its alert documents; returns the final result
        (state ``superseded``, nothing stored, when the entry was leased again meanwhile)."""
        now = now or utcnow()
        result = self.decide(entry, result, now)
        source = entry.source
        attempts = source["attempts"] + (1 if result.attempted else 0)
        delivered_at = now if result.state == "delivered" else None
        doc = {
            "state": result.state,
            "attempts": attempts,
            "lease_until": None,
            "updated_at": _iso(now),
            "due_at": _iso(result.next_attempt_at)
            if result.state in OPEN_STATES
            else source["due_at"],
            "last_error": result.error,
        }
        if result.status_code is not None:
            doc["status_code"] = result.status_code
        if delivered_at:
            doc["delivered_at"] = _iso(delivered_at)
        status = DeliveryStatus(
            channel=source["channel"],
            target=source["target"],
            state=result.state,
            attempts=attempts,
            status_code=result.status_code
            if result.status_code is not None
            else source.get("status_code"),
            delivered_at=delivered_at,
            next_attempt_at=result.next_attempt_at if result.state in OPEN_STATES else None,
            last_error=result.error,
            digest_period=_parse(source.get("period_start")),
            updated_at=now,
        )

        def on_the_alerts() -> None:
            self.mark(
                source["alert_ids"], {a: [status] for a in source["alert_ids"]}, only_new=False
            )

        if not self._write_if_still_leased(entry, doc, first=on_the_alerts):
            return Result(
                SUPERSEDED,
                result.attempted,
                result.status_code,
                "leased again meanwhile: the newer lease records the outcome",
            )
        return result

    def _write_if_still_leased(
        self, entry: Entry, doc: dict[str, Any], *, first: Callable[[], None]
    ) -> bool:
        """Write an attempt's outcome only while the entry still carries this attempt's lease
        (conditional update): a dispatcher whose lease expired and was taken over, or whose
        entry another dispatcher settled meanwhile, must not overwrite the newer outcome.

        ``first`` (the states on the alert documents) runs after the lease is confirmed and
        before the entry is written: the entry written last is what makes an outcome final. A
        dispatcher that dies between the two leaves the entry leased, so it is sent again once
        the lease expires and recorded then (a repeat with the same id, at-least-once); the
        other order left the alert showing ``pending`` for good behind a settled entry."""
        done_first = False
        for _ in range(20):
            got = self.es.get(index=self.index, id=entry.id)
            current = got["_source"]
            if all(current.get(k) == v for k, v in doc.items()):
                return True  # this very outcome is stored (a retry after a lost answer)
            if (
                current.get("lease_until") != entry.source.get("lease_until")
                or current["state"] not in OPEN_STATES
            ):
                return False
            if not done_first:
                first()
                done_first = True
            try:
                self.es.update(
                    index=self.index,
                    id=entry.id,
                    doc=doc,
                    if_seq_no=got["_seq_no"],
                    if_primary_term=got["_primary_term"],
                )
                return True
            except ConflictError:
                continue  # changed meanwhile (a digest gained an alert): read again
        raise RuntimeError(
            f"outbox entry {entry.id}: too many concurrent changes"
        )  # pragma: no cover

    def alerts(self, ids: list[str]) -> list[Alert]:
        """The alerts of an entry, as sent (without ledger fields), oldest first."""
        docs = self.es.mget(index=self.alerts_index, ids=ids)["docs"]
        unanswered = [d["error"] for d in docs if "error" in d and not _index_missing(d["error"])]
        if unanswered:  # e.g. no shard available while the node recovers: not "gone"
            raise ServerBusy(f"alerts index: {unanswered[0].get('type', unanswered[0])}")
        alerts = [alert_from_document(d["_source"]) for d in docs if d.get("found")]
        return sorted(alerts, key=lambda a: a.created_at)

    # --- reading (CLI, API, tests) -----------------------------------------------------------
    def entries(self, subscription_id: str | None = None, size: int = 100) -> list[dict[str, Any]]:
        query = (
            {"term": {"subscription_id": subscription_id}} if subscription_id else {"match_all": {}}
        )
        self.es.indices.refresh(index=self.index)
        hits = self.es.search(
            index=self.index, query=query, size=size, sort=[{"created_at": "desc"}]
        )
        return [{"id": h["_id"], **h["_source"]} for h in hits["hits"]["hits"]]

    def abandon(self, entry_id: str) -> None:
        """Forget a lease (the worker stops): another attempt may start at once."""
        try:
            self.es.update(index=self.index, id=entry_id, doc={"lease_until": None})
        except ConflictError:  # pragma: no cover
            pass


LEDGER_FIELDS = ("@timestamp", "status", "published")


def _index_missing(error: Any) -> bool:
    """An mget item's error saying the index does not exist (its alerts are gone for good)."""
    return isinstance(error, dict) and error.get("type") == "index_not_found_exception"


def alert_from_document(doc: dict[str, Any]) -> Alert:
    return Alert.model_validate({k: v for k, v in doc.items() if k not in LEDGER_FIELDS})


def payload(alert: Alert) -> dict[str, Any]:
    return alert.model_dump(mode="json", exclude={"deliveries"})


def describe(status: DeliveryStatus) -> str:
    """One line for people (``newspipe alerts history``)."""
    at: Callable[[datetime | None], str] = lambda t: t.strftime("%Y-%m-%d %H:%M:%SZ") if t else "?"  # noqa: E731
    if status.state == "delivered":
        text = f"delivered ({status.status_code} at {at(status.delivered_at)})"
    elif status.state == "retrying":
        text = f"retrying ({status.attempts} attempts, next {at(status.next_attempt_at)}, last: {status.last_error})"
    elif status.state == "pending":
        text = (
            f"pending (digest due {at(status.next_attempt_at)})"
            if status.digest_period
            else "pending"
        )
    else:
        text = f"{status.state} after {status.attempts} attempt(s): {status.last_error}"
    return f"{status.target} [{status.channel}]: {text}"
