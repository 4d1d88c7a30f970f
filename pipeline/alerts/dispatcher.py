"""The dispatcher: sends due outbox entries, off the matching agent's path.

Every worker runs one (an asyncio task beside the Faust agents). It is told of new
as-it-happens entries by the alerts agent (:meth:`Dispatcher.offer`, so a healthy receiver
gets its alert at once) and looks for other due entries (retries, digests, backfills, entries
of a worker that died) every ``NEWS_OUTBOX_POLL_S``. Sends run concurrently: at most
``NEWS_WEBHOOK_INFLIGHT_TOTAL`` per worker and ``NEWS_WEBHOOK_INFLIGHT_PER_TARGET`` per target
(scheme://host:port); entries of a target at its limit stay in the outbox, so a hanging
receiver holds only its own deliveries. A per-target circuit breaker opens after
``NEWS_WEBHOOK_BREAKER_FAILURES`` consecutive failures and defers that target's entries for
``NEWS_WEBHOOK_BREAKER_COOLDOWN_S`` without attempting them (no attempt is counted).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ParamSpec, TypeVar, cast

from pipeline.alerts.digest import digest_data, story_groups, story_titles
from pipeline.alerts.outbox import Entry, Outbox, Result, payload
from pipeline.alerts.secrets import SecretsUnavailable, unseal
from pipeline.alerts.webhook import Outcome, make_client, send
from pipeline.infra.es import is_transient
from pipeline.ops.metrics import record_webhook
from pipeline.settings import Settings
from schemas import Subscription
from schemas.models import utcnow

if TYPE_CHECKING:
    import httpx

_P = ParamSpec("_P")
_T = TypeVar("_T")

log = logging.getLogger(__name__)


@dataclass
class Breaker:
    failures: int = 0
    open_until: datetime | None = None

    def is_open(self, now: datetime) -> bool:
        return self.open_until is not None and now < self.open_until


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        outbox: Outbox,
        subscription: Callable[[str], Subscription | None],
        *,
        catch_up: Callable[[], object] | None = None,
        disable_channel: Callable[[Subscription, str, str], None] | None = None,
    ):
        self.settings = settings
        self.outbox = outbox
        self.subscription = subscription
        self.catch_up = catch_up
        self.disable_channel = disable_channel
        self.client: httpx.AsyncClient | None = None
        self.total = asyncio.Semaphore(settings.webhook_inflight_total)
        self.per_target: dict[str, asyncio.Semaphore] = {}
        self.leased: dict[str, int] = {}  # target -> entries leased and not finished
        self.inflight: set[str] = set()
        self.breakers: dict[str, Breaker] = {}
        self.offered: list[str] = []
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        # its own threads for Elasticsearch calls: never queued behind the agents' steps
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="deliveries")

    async def _io(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    # --- the loop ------------------------------------------------------------------------
    def offer(self, ids: list[str]) -> None:
        """New entries due now (from the alerts agent, in this process)."""
        if ids:
            self.offered.extend(ids)
            self.wake.set()

    async def run(self) -> None:
        self.client = make_client(self.settings)
        try:
            while True:
                self.wake.clear()
                try:
                    await self.round()
                except Exception as exc:
                    log.warning(
                        "deliveries: could not lease due entries (%s: %s)", type(exc).__name__, exc
                    )
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=self.settings.outbox_poll_s)
                except TimeoutError:
                    pass
        finally:
            await self.client.aclose()

    def capacity(self, target: str) -> int:
        return max(0, self.settings.webhook_inflight_per_target - self.leased.get(target, 0))

    async def round(self) -> None:
        now = utcnow()
        blocked = [t for t, b in self.breakers.items() if b.is_open(now)]
        blocked += [t for t in self.leased if self.capacity(t) == 0]
        room = self.settings.webhook_inflight_total - len(self.inflight)
        offered, self.offered = [i for i in self.offered if i not in self.inflight], []
        entries = []
        if offered:
            entries += await self._io(
                self.outbox.lease_ids, offered[:room], capacity=self._cap(blocked)
            )
            self._start(entries)
        room = self.settings.webhook_inflight_total - len(self.inflight)
        if room > 0:
            more = await self._io(
                self.outbox.lease_due,
                capacity=self._cap(blocked),
                exclude_ids=sorted(self.inflight),
                exclude_targets=sorted(set(blocked)),
                limit=room,
            )
            self._start(more)

    def _cap(self, blocked: list[str]) -> Callable[[str], int]:
        return lambda target: 0 if target in blocked else self.capacity(target)

    def _start(self, entries: list[Entry]) -> None:
        for entry in entries:
            self.inflight.add(entry.id)
            self.leased[entry.target] = self.leased.get(entry.target, 0) + 1
            task = asyncio.create_task(self._deliver(entry))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _deliver(self, entry: Entry) -> None:
        try:
            semaphore = self.per_target.setdefault(
                entry.target, asyncio.Semaphore(self.settings.webhook_inflight_per_target)
            )
            async with self.total, semaphore:
                result, subscription = await self.attempt(entry)
            record_webhook(result.state)  # delivered / refused / retrying / failed (metrics)
            final = await self._record(entry, result)
            log.info(
                "delivery %s (%s, %s): %s%s",
                entry.id,
                entry.source["subscription_id"],
                entry.target,
                final.state,
                f" ({final.error})" if final.error else "",
            )
            if (
                final.error
                and final.error.startswith("gone:")
                and subscription
                and self.disable_channel
            ):
                await self._io(
                    self.disable_channel,
                    subscription,
                    entry.source["channel"],
                    final.error.removeprefix("gone: "),
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("delivery %s: not recorded (%s: %s)", entry.id, type(exc).__name__, exc)
        finally:
            self.inflight.discard(entry.id)
            self.leased[entry.target] -= 1
            if not self.leased[entry.target]:
                del self.leased[entry.target]
            self.wake.set()

    async def _record(self, entry: Entry, result: Result) -> Result:
        """Store an attempt's outcome. A server fault (Elasticsearch down or busy) is retried,
        with a growing wait, while this attempt's lease lasts: the outcome is known and only
        this dispatcher can record it under its lease, so giving up at once would leave the
        entry to wait out the lease and be sent again. The same outcome (same ``now``) is
        written each time, so a retry after a write whose answer was lost changes nothing."""
        now = utcnow()
        lease = entry.source.get("lease_until")
        until = datetime.fromisoformat(lease) if lease else None
        delay = 0.2
        while True:
            try:
                return await self._io(self.outbox.record, entry, result, now)
            except Exception as exc:
                if not is_transient(exc) or until is None or utcnow() >= until:
                    raise
                log.warning(
                    "delivery %s: outcome %s not recorded yet (%s); retrying in %.1fs",
                    entry.id,
                    result.state,
                    " ".join(str(exc).split())[:200],
                    delay,
                )
                await asyncio.sleep(min(delay, max((until - utcnow()).total_seconds(), 0.0)))
                delay = min(delay * 2, 5.0)

    # --- one attempt -------------------------------------------------------------------
    async def attempt(self, entry: Entry) -> tuple[Result, Subscription | None]:
        now = utcnow()
        breaker = self.breakers.setdefault(entry.target, Breaker())
        if breaker.is_open(now):
            return Result(
                "retrying",
                attempted=False,
                error="circuit open for this target",
                next_attempt_at=breaker.open_until,
            ), None
        subscription = self.subscription(entry.source["subscription_id"])
        if subscription is None and self.catch_up:
            await self._io(self.catch_up)
            subscription = self.subscription(entry.source["subscription_id"])
        if subscription is None:
            return Result("failed", attempted=False, error="subscription removed"), None
        channel = next((c for c in subscription.webhooks if c.id == entry.source["channel"]), None)
        if channel is None or not channel.sealed:
            return Result("failed", attempted=False, error="channel removed"), subscription
        if channel.disabled:
            return Result(
                "failed", attempted=False, error=f"channel disabled: {channel.disabled}"
            ), subscription
        try:
            secret = unseal(self.settings, channel.sealed)
        except SecretsUnavailable as exc:
            return Result("failed", attempted=False, error=str(exc)), subscription
        try:
            body = await self._io(self.body, entry, subscription)
        except Exception as exc:  # the alerts index not answering (yet): not the entry's fault
            if not is_transient(exc):
                raise
            return Result(
                "retrying",
                attempted=False,
                error="waiting for Elasticsearch: " + " ".join(str(exc).split())[:200],
            ), subscription
        if body is None:
            return Result(
                "failed", attempted=False, error="its alerts are gone from the alerts index"
            ), subscription
        outcome = await send(
            cast("httpx.AsyncClient", self.client),
            secret.url,
            body,
            msg_id=entry.id,
            secret=secret.secret,
            max_redirects=self.settings.webhook_max_redirects,
        )
        self._breaker(breaker, outcome, now)
        return _result(outcome), subscription

    def _breaker(self, breaker: Breaker, outcome: Outcome, now: datetime) -> None:
        if outcome.result == "delivered":
            breaker.failures, breaker.open_until = 0, None
        elif outcome.result == "retry":
            breaker.failures += 1
            if breaker.failures >= self.settings.webhook_breaker_failures:
                breaker.open_until = now + timedelta(
                    seconds=self.settings.webhook_breaker_cooldown_s
                )

    def body(self, entry: Entry, subscription: Subscription) -> bytes | None:
        """The POST body: the alert, or the digest of the period's alerts grouped by story
        (Standard Webhooks payload shape: ``type``, ``timestamp``, ``data``)."""
        alerts = self.outbox.alerts(entry.source["alert_ids"])
        if not alerts:
            return None
        if entry.kind == "alert":
            message = {
                "type": "alert.fired",
                "timestamp": alerts[0].created_at.isoformat(),
                "data": payload(alerts[0]),
            }
        else:
            groups = story_groups(alerts, story_titles(self.outbox.es, self.settings, alerts))
            message = {
                "type": "alert.digest",
                "timestamp": entry.source["period_end"],
                "data": digest_data(
                    subscription, entry.source["period_start"], entry.source["period_end"], groups
                ),
            }
        return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _result(outcome: Outcome) -> Result:
    if outcome.result == "delivered":
        return Result("delivered", status_code=outcome.status_code)
    if outcome.result == "refused":
        return Result("refused", status_code=outcome.status_code, error=outcome.error)
    if outcome.result == "gone":
        return Result("failed", status_code=outcome.status_code, error=f"gone: {outcome.error}")
    return Result("retrying", status_code=outcome.status_code, error=outcome.error)
