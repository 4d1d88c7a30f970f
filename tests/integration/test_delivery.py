"""Webhook delivery on the real servers: loopback receivers that succeed, fail the first calls,
hang, redirect (to an allowed and to a refused target) and answer 410; a digest; a backfill; a
worker killed mid-retry. Each checks the states recorded in the alerts index and that every
receiver got each alert once by idempotency key (``webhook-id``), signed (verified with the
independent ``standardwebhooks`` package). No assertion is about time: waits are for states."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from pipeline.alerts.delivery import alert_id
from pipeline.settings import Settings
from tests.integration.conftest import REPO, Worker

pytestmark = pytest.mark.integration

QUERY = "memorandum"  # matches the five seeds (tests/fixtures/gold.json)
DIGEST_QUERY = "ceasefire"  # the five seeds as well


class Receiver:
    """A webhook receiver on 127.0.0.1 (a free port from the OS). ``behave(n, msg_id)`` answers
    the n-th call (1-based) for that webhook-id with (status, headers)."""

    def __init__(self, behave=lambda n, msg_id: (200, {})):
        self.behave = behave
        self.secret: str | None = None
        self.calls: list[dict] = []  # every request: id, status, payload
        self.lock = threading.Lock()
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                msg_id = headers.get("webhook-id")
                with outer.lock:
                    n = 1 + sum(1 for c in outer.calls if c["id"] == msg_id)
                    call = {"id": msg_id, "status": None, "path": self.path, "verified": False}
                    outer.calls.append(call)
                if outer.secret:
                    try:
                        call["payload"] = Webhook(outer.secret).verify(body, headers)
                        call["verified"] = True
                    except Exception:
                        call["payload"] = json.loads(body)
                status, extra = outer.behave(n, msg_id)
                try:
                    self.send_response(status)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender gave up waiting
                    return
                call["status"] = status

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256  # a burst of sends is not refused at accept (default: 5)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}?token=tok-{self.port}-secret"

    def ok_ids(self) -> list[str]:
        """webhook-ids answered 2xx (one per delivery expected)."""
        return [c["id"] for c in list(self.calls) if c["status"] and 200 <= c["status"] < 300]

    def ids(self) -> set[str]:
        return {c["id"] for c in list(self.calls)}

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def wait_for(condition, what: str, worker: Worker, timeout_s: float = 240.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if worker.process.poll() is not None:
            pytest.fail(f"worker died while waiting for {what}:\n" + worker.log_tail())
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}\n" + worker.log_tail())
        time.sleep(0.2)


class Delivery:
    def __init__(self, settings, es, worker, receivers, subs, article_ids):
        self.settings, self.es, self.worker = settings, es, worker
        self.receivers, self.subs, self.article_ids = receivers, subs, article_ids

    def expected(self, name: str) -> set[str]:
        from pipeline.alerts.outbox import delivery_id

        sub = self.subs[name]
        return {delivery_id(alert_id(sub.id, a), sub.webhooks[0].id) for a in self.article_ids}

    def states(self, name: str) -> list[dict]:
        index = self.settings.index("alerts")
        self.es.indices.refresh(index=index)
        hits = self.es.search(
            index=index, query={"term": {"subscription_id": self.subs[name].id}}, size=100
        )
        return [h["_source"] for h in hits["hits"]["hits"]]

    def settled(self, name: str, state: str) -> list[dict]:
        docs = self.states(name)
        done = len(docs) == len(self.article_ids) and all(
            d.get("deliveries") and d["deliveries"][0]["state"] == state for d in docs
        )
        return docs if done else []


@pytest.fixture(scope="module")
def delivery(kafka_bootstrap, es_url, es_client, tmp_path_factory):
    from pipeline.alerts.subscriptions import SubscriptionStore
    from pipeline.infra.setup import setup
    from pipeline.sources.ingest import iter_inputs

    gate = threading.Event()
    receivers = {
        "healthy": Receiver(),
        "flaky": Receiver(lambda n, i: (500, {}) if n <= 2 else (200, {})),
        "gone": Receiver(lambda n, i: (410, {})),
        "final": Receiver(),
        "forbidden": Receiver(),  # not on the allow-list
        "blocked": Receiver(),
        "digest": Receiver(),
        "backfill": Receiver(),
        "restart": Receiver(lambda n, i: (200, {}) if gate.is_set() else (503, {})),
        "digest_restart": Receiver(),
    }
    held = receivers["digest_restart"]  # holds each digest's first POST until released, then 503
    held.behave = lambda n, i: (held.release.wait(), (503, {}))[1] if n == 1 else (200, {})
    blocked = receivers["blocked"]
    blocked.behave = lambda n, i: (blocked.release.wait(), (200, {}))[1]
    receivers["to_final"] = Receiver(
        lambda n, i: (307, {"Location": receivers["final"].url("/moved")})
    )
    receivers["to_forbidden"] = Receiver(
        lambda n, i: (307, {"Location": receivers["forbidden"].url()})
    )
    allowed = ",".join(
        f"127.0.0.1:{r.port}" for name, r in receivers.items() if name != "forbidden"
    )

    run = uuid.uuid4().hex[:8]
    data_dir = tmp_path_factory.mktemp("delivery")
    env = {
        "NEWS_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "NEWS_ES_URL": es_url,
        "NEWS_TOPIC_PREFIX": f"d{run}",
        "NEWS_INDEX_PREFIX": f"d{run}",
        "NEWS_APP_ID": f"newspipe-delivery-{run}",
        "NEWS_DATA_DIR": str(data_dir),
        "NEWS_WEBHOOK_ALLOW_TARGETS": allowed,
        "NEWS_WEBHOOK_TIMEOUT_S": "2",
        "NEWS_WEBHOOK_BACKOFF_S": "0.2",
        "NEWS_WEBHOOK_BACKOFF_MAX_S": "1",
        "NEWS_WEBHOOK_MAX_AGE_S": "3600",
        "NEWS_WEBHOOK_MAX_ATTEMPTS": "100000",
        "NEWS_WEBHOOK_BREAKER_FAILURES": "3",
        "NEWS_WEBHOOK_BREAKER_COOLDOWN_S": "1",
        "NEWS_OUTBOX_POLL_S": "0.2",
        "NEWS_OUTBOX_LEASE_S": "5",
        "NEWS_WEBHOOK_INFLIGHT_PER_TARGET": "2",
        "NEWS_DIGEST_HOURLY_S": "4",
    }
    settings = Settings(**{k.removeprefix("NEWS_").lower(): v for k, v in env.items()})
    setup(settings)
    store = SubscriptionStore(settings, es_client)
    subs = {}
    for name in ("healthy", "flaky", "gone", "to_final", "to_forbidden", "blocked", "restart"):
        created = store.create(QUERY, owner=name, webhooks=[receivers[name].url()])
        subs[name] = created.subscription
        receivers[name].secret = created.webhook_secrets[created.subscription.webhooks[0].id]
    receivers["final"].secret = receivers["to_final"].secret
    for name in ("digest", "digest_restart"):
        created = store.create(
            DIGEST_QUERY, owner=name, webhooks=[receivers[name].url()], digest="hourly"
        )
        subs[name] = created.subscription
        receivers[name].secret = created.webhook_secrets[created.subscription.webhooks[0].id]
    store.close()

    worker = Worker(env={**os.environ, **env}, log_path=Path(data_dir) / "worker.log")
    worker.start()
    worker.wait_ready(settings)
    inputs = list(iter_inputs([REPO / "seeds"]))
    from pipeline.infra.kafka import make_producer
    from pipeline.sources.ingest import publish

    producer = make_producer(settings)
    publish(inputs, producer, settings, progress=False)
    producer.close()
    yield Delivery(settings, es_client, worker, receivers, subs, [i.id for i in inputs])
    worker.stop()
    for receiver in receivers.values():
        receiver.close()


def test_a_hanging_receiver_holds_back_nobody(delivery):
    """Receiver B blocks until released; it is released only once receiver A has every alert."""
    healthy, blocked = delivery.receivers["healthy"], delivery.receivers["blocked"]
    expected = delivery.expected("healthy")
    wait_for(
        lambda: set(healthy.ok_ids()) >= expected,
        "every alert at the healthy receiver",
        delivery.worker,
    )
    assert blocked.ok_ids() == []  # B has answered nothing yet: A did not wait for it
    wait_for(
        lambda: any(
            d.get("deliveries")
            and d["deliveries"][0]["state"] == "retrying"
            and "no answer in time" in (d["deliveries"][0].get("last_error") or "")
            for d in delivery.states("blocked")
        ),
        "a hanging delivery recorded retrying",
        delivery.worker,
    )
    blocked.release.set()
    wait_for(
        lambda: delivery.settled("blocked", "delivered"),
        "the blocked receiver's deliveries",
        delivery.worker,
    )
    assert set(blocked.ok_ids()) == delivery.expected("blocked")
    assert blocked.ids() <= delivery.expected("blocked")  # repeats only with the same key


def test_each_receiver_gets_each_alert_once_signed_and_states_say_so(delivery):
    healthy = delivery.receivers["healthy"]
    docs = wait_for(
        lambda: delivery.settled("healthy", "delivered"), "healthy delivered", delivery.worker
    )
    assert set(healthy.ok_ids()) == delivery.expected("healthy")
    assert healthy.ids() <= delivery.expected("healthy")  # repeats only with the same key
    assert all(c["verified"] for c in healthy.calls)
    payload = healthy.calls[0]["payload"]
    assert payload["type"] == "alert.fired" and payload["data"]["query"] == QUERY
    for doc in docs:
        (status,) = doc["deliveries"]
        assert (doc["status"], status["status_code"]) == ("delivered", 200) and status[
            "attempts"
        ] >= 1
        assert status["delivered_at"] and status["target"] == f"http://127.0.0.1:{healthy.port}"


def test_a_receiver_failing_the_first_calls_gets_each_alert_after_retries(delivery):
    flaky = delivery.receivers["flaky"]
    docs = wait_for(
        lambda: delivery.settled("flaky", "delivered"), "flaky delivered", delivery.worker
    )
    assert set(flaky.ok_ids()) == delivery.expected("flaky") and flaky.ids() <= delivery.expected(
        "flaky"
    )
    assert all(d["deliveries"][0]["attempts"] >= 3 for d in docs)  # two failures, then success
    assert all(sum(c["id"] == i for c in flaky.calls) >= 3 for i in delivery.expected("flaky"))


def test_410_gone_fails_the_delivery_and_disables_the_channel(delivery):
    docs = wait_for(lambda: delivery.settled("gone", "failed"), "gone failed", delivery.worker)
    assert all(d["status"] == "failed" for d in docs)
    assert delivery.receivers["gone"].ok_ids() == []
    from pipeline.alerts.subscriptions import SubscriptionStore

    store = SubscriptionStore(delivery.settings, delivery.es)
    sub = wait_for(
        lambda: (s := store.get(delivery.subs["gone"].id)) and s.webhooks[0].disabled and s,
        "the channel disabled",
        delivery.worker,
    )
    assert "410" in sub.webhooks[0].disabled


def test_redirects_reach_allowed_targets_only(delivery):
    wait_for(
        lambda: delivery.settled("to_final", "delivered"), "redirected delivered", delivery.worker
    )
    final = delivery.receivers["final"]
    assert set(final.ok_ids()) == delivery.expected("to_final")
    assert all(c["path"].startswith("/moved?") and c["verified"] for c in final.calls)
    docs = wait_for(
        lambda: delivery.settled("to_forbidden", "refused"), "forbidden refused", delivery.worker
    )
    assert all("redirect 1" in d["deliveries"][0]["last_error"] for d in docs)
    assert delivery.receivers["forbidden"].calls == []


def _digests_by_key(receiver: Receiver) -> dict[str, dict]:
    """The payload of each digest answered 2xx, by webhook-id."""
    return {c["id"]: c["payload"] for c in list(receiver.calls) if c["status"] == 200}


def _listed(payload: dict) -> list[str]:
    return [a["article_id"] for group in payload["data"]["stories"] for a in group["alerts"]]


def test_a_digest_is_one_post_per_period_listing_its_alerts_by_story(delivery):
    digest = delivery.receivers["digest"]
    docs = wait_for(
        lambda: delivery.settled("digest", "delivered"), "digest delivered", delivery.worker
    )
    payloads = list(_digests_by_key(digest).values())
    assert all(c["verified"] for c in digest.calls)
    assert all(p["type"] == "alert.digest" for p in payloads)
    periods = [p["data"]["period_start"] for p in payloads]
    assert len(periods) == len(set(periods))  # one POST per period (none for empty periods)
    listed = [a for p in payloads for a in _listed(p)]
    assert sorted(listed) == sorted(delivery.article_ids)  # each alert in exactly one digest
    assert sum(p["data"]["alert_count"] for p in payloads) == len(delivery.article_ids)
    for p in payloads:  # grouped by story: one group per story, those without a story last
        stories = [g["story_id"] for g in p["data"]["stories"]]
        assert len(stories) == len(set(stories)) and None not in stories[:-1]
        assert all(
            a["story_id"] == g["story_id"] for g in p["data"]["stories"] for a in g["alerts"]
        )
    assert {d["deliveries"][0]["digest_period"] for d in docs} <= {
        p.replace("+00:00", "Z") for p in periods
    } | set(periods)

    # the Atom feed: one entry per period, listing the same alerts as its POST
    import feedparser

    from pipeline.alerts.delivery import AlertLedger
    from pipeline.alerts.digest import latest_digests
    from pipeline.api.atom import render_feed
    from schemas.models import utcnow

    sub = delivery.subs["digest"]
    ledger = AlertLedger(delivery.es, delivery.settings.index("alerts"))
    digests, titles = latest_digests(ledger, delivery.es, delivery.settings, sub, 50, utcnow())
    by_period = {p["data"]["period_start"]: sorted(_listed(p)) for p in payloads}
    assert {
        d.period_start.isoformat(): sorted(a.article_id for a in d.alerts) for d in digests
    } == by_period
    feed = feedparser.parse(
        render_feed(
            sub, [], self_url="http://h/f", page_url="http://h/", digests=digests, titles=titles
        )
    )
    assert not feed.bozo and len(feed.entries) == len(payloads)
    assert {e.id for e in feed.entries} == {f"urn:newspipe:digest:{sub.id}:{p}" for p in periods}


def test_a_digest_is_sent_once_per_period_across_a_restart_between_close_and_send(delivery):
    """The worker is killed while a digest's POST is in flight (its period closed, the digest
    leased, nothing recorded); the restarted worker sends that digest again with the same key,
    and no period gets a second digest."""
    receiver = delivery.receivers["digest_restart"]
    wait_for(lambda: receiver.calls, "a digest POST in flight", delivery.worker)
    in_flight = receiver.ids()
    delivery.worker.kill()
    receiver.release.set()  # the held POSTs end with 503 on a closed connection
    delivery.worker.start()
    delivery.worker.wait_ready(delivery.settings)
    wait_for(
        lambda: delivery.settled("digest_restart", "delivered"),
        "digests delivered",
        delivery.worker,
    )
    payloads = _digests_by_key(receiver)
    assert in_flight <= set(payloads)  # the interrupted digest went out after the restart, same key
    assert receiver.ids() == set(payloads)  # no other key on the wire
    periods = [p["data"]["period_start"] for p in payloads.values()]
    assert len(periods) == len(set(periods))  # one key per period
    listed = [a for p in payloads.values() for a in _listed(p)]
    assert sorted(listed) == sorted(delivery.article_ids)  # each alert in exactly one digest
    assert all(c["verified"] for c in receiver.calls if c["status"] == 200)


def test_backfilled_alerts_are_delivered_through_the_outbox(delivery):
    from pipeline.alerts.backfill import backfill_alerts
    from pipeline.alerts.subscriptions import SubscriptionStore
    from pipeline.stream.process import Pipeline

    receiver = delivery.receivers["backfill"]
    wait_for(
        lambda: (
            delivery.es.count(
                index=delivery.settings.index("articles"), query={"term": {"enriched": True}}
            )["count"]
            >= 5
        ),
        "seeds indexed",
        delivery.worker,
    )
    delivery.es.indices.refresh(index=delivery.settings.index("articles"))
    store = SubscriptionStore(delivery.settings, delivery.es)
    created = store.create(QUERY, owner="backfill", webhooks=[receiver.url()])
    store.close()
    receiver.secret = created.webhook_secrets[created.subscription.webhooks[0].id]
    delivery.subs["backfill"] = created.subscription
    pipeline = Pipeline(delivery.settings, es=delivery.es)
    fired = backfill_alerts(pipeline, created.subscription)
    assert {a.article_id for a in fired} == set(delivery.article_ids) and all(
        a.backfill for a in fired
    )
    wait_for(
        lambda: delivery.settled("backfill", "delivered"), "backfill delivered", delivery.worker
    )
    assert set(receiver.ok_ids()) == delivery.expected("backfill")
    assert all(c["verified"] and c["payload"]["data"]["backfill"] for c in receiver.calls)


def test_subscription_limits_refuse_and_nothing_goes_live(delivery):
    from pipeline.alerts.subscriptions import (
        SubscriptionRejected,
        SubscriptionStore,
        subscription_id,
    )

    store = SubscriptionStore(delivery.settings, delivery.es)
    with pytest.raises(SubscriptionRejected, match="owner"):
        store.create(QUERY, owner="x" * 40_000)
    with pytest.raises(SubscriptionRejected, match="refused"):
        store.create(QUERY, owner="evil", webhooks=["http://169.254.169.254/latest/meta-data"])
    assert store.get(subscription_id("x" * 40_000, QUERY)) is None
    assert store.get(subscription_id("evil", QUERY)) is None
    store.close()


def test_a_worker_killed_mid_retry_delivers_after_restart(delivery):
    receiver = delivery.receivers["restart"]
    wait_for(
        lambda: any(
            d.get("deliveries") and d["deliveries"][0]["state"] == "retrying"
            for d in delivery.states("restart")
        ),
        "a delivery retrying",
        delivery.worker,
    )
    delivery.worker.kill()
    gate_open = receiver.behave
    receiver.behave = lambda n, i: (200, {})  # the receiver recovers while no worker runs
    delivery.worker.start()
    delivery.worker.wait_ready(delivery.settings)
    docs = wait_for(
        lambda: delivery.settled("restart", "delivered"), "restart delivered", delivery.worker
    )
    assert set(receiver.ok_ids()) == delivery.expected("restart")
    assert receiver.ids() <= delivery.expected("restart")
    assert all(d["deliveries"][0]["attempts"] >= 1 for d in docs)
    assert gate_open is not None


def test_urls_and_secrets_are_never_in_clear(delivery):
    """Not in the worker log, not on the subscriptions topic, not in any index document."""
    from pipeline.infra.kafka import make_consumer

    tokens = [f"tok-{r.port}-secret" for r in delivery.receivers.values()]
    secrets = [r.secret for r in delivery.receivers.values() if r.secret]
    log = delivery.worker.log_path.read_text(errors="replace")
    consumer = make_consumer(
        delivery.settings.topic("subscriptions"),
        settings=delivery.settings,
        consumer_timeout_ms=3000,
    )
    topic = b"".join(r.value or b"" for r in consumer).decode("utf-8", "replace")
    consumer.close()
    prefix = delivery.settings.index_prefix
    delivery.es.indices.refresh(index=f"{prefix}-*")
    documents = json.dumps(
        [h["_source"] for h in delivery.es.search(index=f"{prefix}-*", size=1000)["hits"]["hits"]]
    )
    assert topic and documents
    for text, where in (
        (log, "worker log"),
        (topic, "subscriptions topic"),
        (documents, "indices"),
    ):
        for secret in tokens + secrets:
            assert secret not in text, f"{secret[:12]}… in the {where}"


def test_an_alert_the_index_rejects_is_the_problem_of_its_own(delivery):
    from pipeline.alerts.delivery import AlertLedger
    from schemas import Alert, AlertMatch

    def alert(alert_id: str, term: str) -> Alert:
        return Alert(
            id=alert_id,
            subscription_id="s",
            query="q",
            owner="o",
            article_id="a",
            title="t",
            matched=AlertMatch(terms=[term]),
            snippet="…",
        )

    # a keyword over 32766 bytes: the index rejects that document only
    good, bad = (
        alert(f"ok-{uuid.uuid4().hex}", "fine"),
        alert(f"bad-{uuid.uuid4().hex}", "x" * 40_000),
    )
    fired, rejected = AlertLedger(delivery.es, delivery.settings.index("alerts")).claim_isolated(
        [good, bad]
    )
    assert [a.id for a in fired] == [good.id]
    assert [a.id for a, _ in rejected] == [bad.id] and rejected[0][1]
