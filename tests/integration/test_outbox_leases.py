"""Several dispatchers (real processes, the worker's wiring) leasing one outbox on the real
servers: each entry is sent once per idempotency key while two race for it, and an entry
leased by a dispatcher that dies mid-send is sent by another once the lease expires.

Deterministic without timing: the dying dispatcher's sends hang at the receiver until it is
killed (so every entry is leased by it at that moment); the survivors lease for far longer than
a send takes (``NEWS_OUTBOX_LEASE_S``), so they never take over each other's live leases."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.settings import Settings
from tests.integration.conftest import REPO
from tests.integration.test_delivery import Receiver

pytestmark = pytest.mark.integration


class Dispatcher:
    """``python -m tests.integration.dispatcher_process`` with its own log."""

    def __init__(self, env: dict, log_path: Path):
        self.log_path = log_path
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.dispatcher_process"],
            cwd=REPO,
            env=env,
            stdout=log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def delivered_ids(self) -> list[str]:
        """Entries this process recorded as delivered (its log: ``delivery <id> (...): delivered``)."""
        return [
            line.split("delivery ", 1)[1].split(" ", 1)[0]
            for line in self.log().splitlines()
            if " delivery " in line and line.rstrip().endswith(": delivered")
        ]

    def results(self) -> list[tuple[str, str]]:
        """(entry id, state) per outcome this process recorded (``delivery <id> (...): <state>``)."""
        found = []
        for line in self.log().splitlines():
            if " delivery " in line and "): " in line:
                entry = line.split("delivery ", 1)[1].split(" ", 1)[0]
                found.append((entry, line.split("): ", 1)[1].split(" ", 1)[0]))
        return found

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for(condition, what: str, dispatchers: list[Dispatcher], timeout_s: float = 180.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        for d in dispatchers:
            if d.process.poll() is not None:
                pytest.fail(f"a dispatcher died while waiting for {what}:\n{d.log()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(
                f"gave up waiting for {what}\n"
                + "\n---\n".join(d.log()[-2000:] for d in dispatchers)
            )
        time.sleep(0.2)


@pytest.fixture(scope="module")
def outbox_env(kafka_bootstrap, es_url, es_client, tmp_path_factory):
    from pipeline.alerts.outbox import Outbox
    from pipeline.alerts.subscriptions import SubscriptionStore
    from pipeline.infra.setup import setup

    receiver = Receiver()
    run = uuid.uuid4().hex[:8]
    data_dir = tmp_path_factory.mktemp("leases")
    env = {
        "NEWS_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "NEWS_ES_URL": es_url,
        "NEWS_TOPIC_PREFIX": f"l{run}",
        "NEWS_INDEX_PREFIX": f"l{run}",
        "NEWS_APP_ID": f"newspipe-leases-{run}",
        "NEWS_DATA_DIR": str(data_dir),
        "NEWS_WEBHOOK_ALLOW_TARGETS": f"127.0.0.1:{receiver.port}",
        "NEWS_WEBHOOK_BACKOFF_S": "0.2",
        "NEWS_WEBHOOK_BACKOFF_MAX_S": "1",
        "NEWS_WEBHOOK_MAX_ATTEMPTS": "100000",
        "NEWS_OUTBOX_POLL_S": "0.2",
        "NEWS_WEBHOOK_INFLIGHT_PER_TARGET": "64",
    }
    settings = Settings(**{k.removeprefix("NEWS_").lower(): v for k, v in env.items()})
    setup(settings)
    store = SubscriptionStore(settings, es_client)
    created = store.create("memorandum", owner="leases", webhooks=[receiver.url()])
    store.close()
    receiver.secret = created.webhook_secrets[created.subscription.webhooks[0].id]
    yield settings, env, Outbox(es_client, settings), created.subscription, receiver, Path(data_dir)
    receiver.close()


def _enqueue(settings, es, outbox, subscription, count: int) -> set[str]:
    """``count`` new alerts of the subscription, claimed in the ledger and written to the outbox
    (what the alerts agent does); returns their entries' ids."""
    from pipeline.alerts.delivery import AlertLedger
    from pipeline.alerts.outbox import delivery_id
    from schemas import Alert, AlertMatch

    tag = uuid.uuid4().hex[:6]
    alerts = [
        Alert(
            id=f"al-{tag}-{n}",
            subscription_id=subscription.id,
            query=subscription.query,
            owner=subscription.owner,
            article_id=f"art-{tag}-{n}",
            title=f"memorandum {n}",
            matched=AlertMatch(terms=["memorandum"]),
            snippet="a «memorandum»",
        )
        for n in range(count)
    ]
    AlertLedger(es, settings.index("alerts")).claim(alerts)
    outbox.enqueue(alerts, lambda _: subscription)
    return {delivery_id(a.id, subscription.webhooks[0].id) for a in alerts}


def _states(outbox, ids: set[str]) -> dict[str, dict]:
    docs = outbox.es.mget(index=outbox.index, ids=sorted(ids))["docs"]
    return {d["_id"]: d["_source"] for d in docs if d.get("found")}


def test_a_dispatcher_dying_mid_lease_loses_nothing_and_two_others_send_each_entry_once(
    outbox_env, es_client
):
    settings, env, outbox, subscription, receiver, data_dir = outbox_env
    expected = _enqueue(settings, es_client, outbox, subscription, 6)

    # A leases every entry (short lease) and hangs in the sends: the receiver holds them
    hold = threading.Event()
    receiver.behave = lambda n, i: (hold.wait(), (200, {}))[1]
    dying = Dispatcher(
        {**os.environ, **env, "NEWS_OUTBOX_LEASE_S": "3", "NEWS_WEBHOOK_TIMEOUT_S": "600"},
        data_dir / "a.log",
    )
    try:
        wait_for(
            lambda: receiver.ids() >= expected, "every entry in flight at dispatcher A", [dying]
        )
        leased = _states(outbox, expected)
        assert all(
            s["state"] == "pending" and s["lease_until"] for s in leased.values()
        )  # A holds them all
        dying.kill()  # mid-lease, mid-send: nothing recorded
    finally:
        dying.kill()
    cut = len(receiver.calls)
    receiver.behave = lambda n, i: (200, {})
    hold.set()  # A's held requests end (on a closed connection)

    # B and C lease for long: they never take a live lease from each other
    survivors = [
        Dispatcher(
            {**os.environ, **env, "NEWS_OUTBOX_LEASE_S": "600", "NEWS_WEBHOOK_TIMEOUT_S": "10"},
            data_dir / f"{name}.log",
        )
        for name in ("b", "c")
    ]
    try:
        wait_for(
            lambda: all(s["state"] == "delivered" for s in _states(outbox, expected).values()),
            "A's entries delivered after its leases expired",
            survivors,
        )
        after = [c for c in list(receiver.calls)[cut:] if c["id"] in expected]
        assert sorted(c["id"] for c in after) == sorted(expected)  # each sent once more, same key
        assert all(c["status"] == 200 and c["verified"] for c in after)
        assert (
            receiver.ids() == expected
        )  # nothing else on the wire: repeats only with the same key

        # both survivors race for new entries: each is sent exactly once
        more = _enqueue(settings, es_client, outbox, subscription, 40)
        wait_for(
            lambda: (
                len(_states(outbox, more)) == 40
                and all(s["state"] == "delivered" for s in _states(outbox, more).values())
            ),
            "new entries delivered by B and C",
            survivors,
        )
        calls = [c for c in list(receiver.calls) if c["id"] in more]
        assert sorted(c["id"] for c in calls) == sorted(more)  # once each on the wire
        assert all(c["status"] == 200 and c["verified"] for c in calls)
        # each logs its outcome just after storing it: wait for the lines, then compare
        wait_for(
            lambda: set().union(*(d.delivered_ids() for d in survivors)) >= expected | more,
            "B's and C's log lines of the deliveries they recorded",
            survivors,
            timeout_s=30,
        )
        by_b, by_c = (set(d.delivered_ids()) for d in survivors)
        assert (
            not by_b & by_c and (by_b | by_c) >= expected | more
        )  # recorded by one dispatcher each
        # no phantom attempt: each one counted is a POST the receiver saw, or a send that failed
        # on the way and was logged as such by the dispatcher that made it (on a loaded machine a
        # connection can fail before the receiver's handler sees the request)
        on_wire = Counter(c["id"] for c in list(receiver.calls))
        failed_sends = Counter(
            i for d in [dying, *survivors] for i, state in d.results() if state == "retrying"
        )
        states = _states(outbox, expected | more)
        phantom = {
            i: (s["attempts"], on_wire[i], failed_sends[i])
            for i, s in states.items()
            if not 1 <= s["attempts"] <= on_wire[i] + failed_sends[i]
        }
        assert not phantom, phantom  # id: (attempts, POSTs seen, failed sends logged)

        docs = es_client.mget(
            index=settings.index("alerts"), ids=[i for i in _alert_ids(outbox, expected | more)]
        )["docs"]
        assert all(d["_source"]["status"] == "delivered" for d in docs)
    finally:
        for d in survivors:
            d.stop()


def _alert_ids(outbox, entry_ids: set[str]) -> list[str]:
    return [a for s in _states(outbox, entry_ids).values() for a in s["alert_ids"]]


def test_a_late_outcome_of_an_expired_lease_does_not_overwrite_the_newer_one(outbox_env, es_client):
    """Dispatcher 1 leases an entry, its lease expires (simulated clock: ``now``), dispatcher 2
    takes it over and delivers; 1's late failure is not recorded (no reopened entry, no resend)."""
    from pipeline.alerts.outbox import Result
    from schemas.models import utcnow

    settings, env, outbox, subscription, receiver, data_dir = outbox_env
    (entry_id,) = _enqueue(settings, es_client, outbox, subscription, 1)

    def room(target: str) -> int:
        return 10

    t0 = utcnow()
    (first,) = outbox.lease_ids([entry_id], capacity=room, now=t0)
    assert outbox.lease_ids([entry_id], capacity=room, now=t0) == []  # leased: nobody else gets it
    later = t0 + timedelta(seconds=settings.outbox_lease_s + 1)
    (second,) = outbox.lease_ids([entry_id], capacity=room, now=later)  # expired: taken over
    assert (
        outbox.record(second, Result("delivered", status_code=200), now=later).state == "delivered"
    )
    assert (
        outbox.record(first, Result("retrying", error="HTTP 500"), now=later).state == "superseded"
    )
    entry = _states(outbox, {entry_id})[entry_id]
    assert (entry["state"], entry["attempts"], entry["status_code"]) == ("delivered", 1, 200)
    (alert,) = es_client.mget(index=settings.index("alerts"), ids=entry["alert_ids"])["docs"]
    assert alert["_source"]["status"] == "delivered"


def test_an_outcome_the_server_failed_to_take_is_recorded_once_it_answers(outbox_env, es_client):
    """A dispatcher knows the outcome but Elasticsearch fails while it records it (here: the
    first two calls fail as a lost connection would, and the second after its write reached the
    node): it records it again while its lease lasts instead of leaving the entry to wait out
    the lease and be sent again; a write that did land is recognised, not seen as a newer lease."""
    import asyncio

    from elasticsearch import ConnectionError as ESConnectionError

    from pipeline.alerts.dispatcher import Dispatcher as InProcess
    from pipeline.alerts.outbox import Result

    settings, env, outbox, subscription, receiver, data_dir = outbox_env
    (entry_id,) = _enqueue(settings, es_client, outbox, subscription, 1)
    (entry,) = outbox.lease_ids([entry_id], capacity=lambda target: 10)

    real_record, calls = outbox.record, []

    def flaky_record(entry, result, now=None):
        calls.append(now)
        if len(calls) == 1:
            raise ESConnectionError("connection refused")  # nothing written
        if len(calls) == 2:
            real_record(entry, result, now)
            raise ESConnectionError("connection reset")  # written, answer lost
        return real_record(entry, result, now)

    dispatcher = InProcess(settings, outbox, lambda _: subscription)
    dispatcher.outbox = type("Flaky", (), {"record": staticmethod(flaky_record)})()
    final = asyncio.run(dispatcher._record(entry, Result("delivered", status_code=200)))
    assert final.state == "delivered" and len(calls) == 3
    assert len(set(calls)) == 1  # the same outcome each time
    state = _states(outbox, {entry_id})[entry_id]
    assert (state["state"], state["attempts"], state["lease_until"]) == ("delivered", 1, None)
    (alert,) = es_client.mget(index=settings.index("alerts"), ids=state["alert_ids"])["docs"]
    assert alert["_source"]["status"] == "delivered"

    # once the lease is over, the outcome is not forced in: the entry's next lease decides
    (other,) = _enqueue(settings, es_client, outbox, subscription, 1)
    (expired,) = outbox.lease_ids([other], capacity=lambda target: 10)
    expired = type(expired)(
        expired.id, {**expired.source, "lease_until": "2000-01-01T00:00:00+00:00"}
    )
    calls.clear()
    with pytest.raises(ESConnectionError):
        asyncio.run(dispatcher._record(expired, Result("delivered", status_code=200)))
    assert len(calls) == 1


class _Killed(BaseException):
    """The process dying at this point (not an exception any code would handle)."""


class _DiesAtWrite:
    """The client of a dispatcher that dies at its ``n``-th write to Elasticsearch."""

    def __init__(self, es, n: int):
        self._es, self._left = es, n

    def __getattr__(self, name):
        method = getattr(self._es, name)
        if name not in ("update", "bulk", "index", "create"):
            return method

        def write(*args, **kwargs):
            self._left -= 1
            if self._left == 0:
                raise _Killed(name)
            return method(*args, **kwargs)

        return write


def test_a_dispatcher_dying_while_recording_leaves_no_alert_pending_behind_a_settled_entry(
    outbox_env, es_client
):
    """A dispatcher delivered an entry and dies at each point of recording it in turn (before
    its first write, between the writes, after the last). Once the lease expires, whatever the
    entry still needs is done by another dispatcher, and the entry and its alert agree:
    delivered. (The alert's state written after the entry's once left it ``pending`` for good
    when the worker was killed in between.)"""
    from pipeline.alerts.outbox import Outbox, Result
    from schemas.models import utcnow

    settings, env, outbox, subscription, receiver, data_dir = outbox_env

    def room(target: str) -> int:
        return 10

    for n in range(1, 5):  # the recording makes 2 writes: the alert's states, then the entry
        (entry_id,) = _enqueue(settings, es_client, outbox, subscription, 1)
        t0 = utcnow()
        (leased,) = outbox.lease_ids([entry_id], capacity=room, now=t0)
        dying = Outbox(_DiesAtWrite(es_client, n), settings)
        try:
            dying.record(leased, Result("delivered", status_code=200), now=t0)
        except _Killed:
            pass
        later = t0 + timedelta(seconds=settings.outbox_lease_s + 1)
        for again in outbox.lease_ids([entry_id], capacity=room, now=later):  # sent again
            assert outbox.record(again, Result("delivered", status_code=200), now=later).state == (
                "delivered"
            )
        entry = _states(outbox, {entry_id})[entry_id]
        (alert,) = es_client.mget(index=settings.index("alerts"), ids=entry["alert_ids"])["docs"]
        assert (entry["state"], alert["_source"]["status"]) == ("delivered", "delivered"), n
