"""Webhook sending against real HTTP servers on 127.0.0.1: signatures (checked with the
independent ``standardwebhooks`` package), target rules at every hop, outcomes; and the pure
parts of delivery: backoff, give-up, digest periods, subscription limits, sealed secrets."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from pipeline.alerts.outbox import Entry, Outbox, Result, digest_period, retry_delay
from pipeline.alerts.secrets import WebhookSecret, new_signing_secret, seal, unseal
from pipeline.alerts.subscriptions import SubscriptionRejected, check_limits
from pipeline.alerts.webhook import (
    TargetRules,
    WebhookRefused,
    check_webhook_url,
    make_client,
    parse_allow_list,
    send,
    target_of,
    webhook_urls,
)
from pipeline.settings import Settings
from schemas import Subscription


class Server:
    """A loopback receiver; ``reply(path)`` -> (status, headers)."""

    def __init__(self, reply):
        self.requests: list[tuple[str, dict, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, dict(self.headers), body))
                status, headers = reply(self.path)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/hook?token=s3cret") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def servers():
    made = []

    def make(reply=lambda path: (200, {})):
        server = Server(reply)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def attempt(
    url: str,
    allow: list[int] | None = None,
    *,
    secret: str | None = None,
    timeout: float = 2.0,
    **kw,
):
    settings = Settings(webhook_timeout_s=timeout)
    rules = TargetRules(allow=frozenset(("127.0.0.1", p) for p in allow or []))

    async def run():
        async with make_client(settings, rules=rules) as client:
            return await send(client, url, b'{"a":1}', msg_id="msg_1", secret=secret, **kw)

    return asyncio.run(run())


def test_a_delivery_is_signed_the_standard_webhooks_way(servers):
    receiver = servers()
    secret = new_signing_secret()
    outcome = attempt(receiver.url(), [receiver.port], secret=secret)
    assert (outcome.result, outcome.status_code) == ("delivered", 200)
    _, headers, body = receiver.requests[0]
    headers = {k.lower(): v for k, v in headers.items()}
    assert headers["webhook-id"] == "msg_1"
    assert Webhook(secret).verify(body, headers) == {"a": 1}  # the independent verifier
    with pytest.raises(WebhookVerificationError):
        Webhook(new_signing_secret()).verify(body, headers)


def test_loopback_is_refused_unless_allow_listed(servers):
    receiver = servers()
    outcome = attempt(receiver.url(), [])
    assert outcome.result == "refused" and "loopback" in outcome.error
    assert "s3cret" not in outcome.error and "/hook" not in outcome.error
    assert receiver.requests == []


def test_a_dns_name_is_checked_by_its_addresses(servers):
    receiver = servers()
    outcome = attempt(f"http://localhost:{receiver.port}/hook", [])
    assert outcome.result == "refused" and receiver.requests == []
    assert attempt(f"http://localhost:{receiver.port}/hook", [receiver.port]).result == "delivered"


def test_redirects_are_followed_only_to_allowed_targets(servers):
    final = servers()
    refused = servers()
    to_final = servers(lambda path: (307, {"Location": final.url("/final")}))
    to_refused = servers(lambda path: (308, {"Location": refused.url("/x")}))
    allowed = [final.port, to_final.port, to_refused.port]
    assert attempt(to_final.url(), allowed).result == "delivered"
    assert [p for p, _, _ in final.requests] == ["/final"]
    outcome = attempt(to_refused.url(), allowed)
    assert outcome.result == "refused" and outcome.error.startswith("redirect 1:")
    assert refused.requests == []


def test_at_most_three_redirect_hops(servers):
    loop = servers(lambda path: (302, {"Location": "/again"}))
    outcome = attempt(loop.url(), [loop.port])
    assert outcome.result == "refused" and "more than 3 redirects" in outcome.error
    assert len(loop.requests) == 4


@pytest.mark.parametrize(
    "status, result", [(500, "retry"), (429, "retry"), (404, "retry"), (410, "gone")]
)
def test_answers_map_to_outcomes(servers, status, result):
    receiver = servers(lambda path: (status, {}))
    outcome = attempt(receiver.url(), [receiver.port])
    assert (outcome.result, outcome.status_code) == (result, status)


def test_a_hanging_receiver_is_a_retry_not_a_hang(servers):
    release = threading.Event()
    receiver = servers(lambda path: (release.wait(10), (200, {}))[1])
    outcome = attempt(receiver.url(), [receiver.port], timeout=0.3)
    release.set()
    assert outcome.result == "retry" and "no answer in time" in outcome.error


def test_a_refused_connection_is_a_retry():
    server = Server(lambda path: (200, {}))
    port = server.port
    server.close()
    assert attempt(f"http://127.0.0.1:{port}/", [port]).result == "retry"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://10.1.2.3/x",
        "http://192.168.0.1/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/",
        "http://100.100.100.200/",
        "http://0.0.0.0/",
        "ftp://example.org/",
    ],
)
def test_non_public_or_non_http_urls_are_refused(url):
    with pytest.raises(WebhookRefused):
        check_webhook_url(url, allow_private=False)


def test_allow_list_and_switch():
    rules = TargetRules(allow=parse_allow_list("127.0.0.1:8080, [::1]:9000"))
    check_webhook_url("http://127.0.0.1:8080/x", rules=rules)
    check_webhook_url("http://[::1]:9000/x", rules=rules)
    with pytest.raises(WebhookRefused):
        check_webhook_url("http://127.0.0.1:8081/x", rules=rules)
    check_webhook_url("http://10.0.0.1/x", allow_private=True)
    with pytest.raises(ValueError):
        parse_allow_list("127.0.0.1")


def test_targets_show_no_path_query_or_user():
    assert (
        target_of("https://user:pw@Hooks.Example.org/t/abc?token=x")
        == "https://hooks.example.org:443"
    )
    assert webhook_urls(["webhook:https://example.org/a", "email:x@y"]) == ["https://example.org/a"]


# --- backoff, give-up ------------------------------------------------------------------------


def entry(**source) -> Entry:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    base = {
        "attempts": 0,
        "state": "pending",
        "created_at": now.isoformat(),
        "target": "t",
        "channel": "c",
        "kind": "alert",
        "alert_ids": ["a"],
        "due_at": now.isoformat(),
    }
    return Entry("msg_x", {**base, **source})


def test_backoff_grows_with_jitter_and_a_cap():
    settings = Settings(webhook_backoff_s=1, webhook_backoff_max_s=10)
    delays = [retry_delay(n, settings) for n in range(1, 8)]
    assert 0.5 <= delays[0] <= 1 and 2 <= delays[2] <= 4 and all(d <= 10 for d in delays)


def test_retries_end_in_failed_by_age_or_attempts():
    created = datetime(2026, 1, 1, tzinfo=UTC)
    outbox = Outbox(
        None, Settings(webhook_max_age_s=60, webhook_max_attempts=5, webhook_backoff_s=1)
    )
    soon = outbox.decide(
        entry(), Result("retrying", error="HTTP 500"), created + timedelta(seconds=1)
    )
    assert soon.state == "retrying" and soon.next_attempt_at > created
    late = outbox.decide(
        entry(attempts=2), Result("retrying", error="HTTP 500"), created + timedelta(seconds=59)
    )
    assert late.state == "failed" and "max age" in late.error
    many = outbox.decide(entry(attempts=4), Result("retrying", error="HTTP 500"), created)
    assert many.state == "failed" and "5 attempts" in many.error
    deferred = outbox.decide(
        entry(), Result("retrying", attempted=False, error="circuit open"), created
    )
    assert deferred.state == "pending"  # not attempted: no attempt counted


# --- digests ---------------------------------------------------------------------------------


def test_digest_periods_are_aligned_in_the_subscription_time_zone():
    settings = Settings(digest_hourly_s=3600, digest_daily_s=86400)
    at = datetime(2026, 7, 1, 22, 30, tzinfo=UTC)
    sub = Subscription(id="s", query="q")
    assert digest_period(sub, settings, at) is None
    start, end = digest_period(sub.model_copy(update={"digest": "daily"}), settings, at)
    assert (start.isoformat(), end - start) == ("2026-07-01T00:00:00+00:00", timedelta(days=1))
    paris = sub.model_copy(update={"digest": "daily", "timezone": "Europe/Paris"})
    start, _ = digest_period(paris, settings, at)  # 00:30 on 2 July in Paris
    assert start == datetime(2026, 7, 1, 22, 0, tzinfo=UTC)
    start, end = digest_period(sub.model_copy(update={"digest": "hourly"}), settings, at)
    assert start == datetime(2026, 7, 1, 22, 0, tzinfo=UTC) and end - start == timedelta(hours=1)


# --- subscriptions: limits, sealed secrets ----------------------------------------------------


def test_subscription_limits_are_enforced_with_a_clear_error():
    settings = Settings(webhook_allow_targets="127.0.0.1:9")
    ok = dict(
        query="memorandum",
        owner="me",
        urls=["http://127.0.0.1:9/x"],
        others=[],
        digest="daily",
        tz="UTC",
    )
    check_limits(settings, **ok)
    for change, words in [
        ({"owner": "x" * 40_000}, "owner must be"),
        ({"query": "a " * 1000}, "query is"),
        ({"urls": ["http://127.0.0.1:9/x"] * 11}, "channels"),
        ({"urls": ["http://127.0.0.1:9/" + "x" * 3000]}, "characters"),
        ({"urls": ["http://127.0.0.1:10/x"]}, "refused"),
        ({"others": ["email:x@y"]}, "unknown channel"),
        ({"digest": "weekly"}, "digest must be"),
        ({"tz": "Mars/Olympus"}, "time zone"),
    ]:
        with pytest.raises(SubscriptionRejected, match=words):
            check_limits(settings, **{**ok, **change})


def test_webhook_secrets_are_sealed(tmp_path):
    settings = Settings(data_dir=tmp_path)
    sealed = seal(settings, WebhookSecret("https://example.org/h?token=t0k", "whsec_abc"))
    assert "t0k" not in sealed and "example" not in sealed
    assert unseal(settings, sealed).url.endswith("token=t0k")
    assert "t0k" not in repr(unseal(settings, sealed))
    assert (tmp_path / "secrets.key").stat().st_mode & 0o077 == 0
    assert json.loads(json.dumps({"s": sealed}))


# --- dispatcher: circuit breaker, per-target capacity; alert summaries ------------------------


def test_the_circuit_breaker_opens_after_consecutive_failures_and_closes_on_success():
    from pipeline.alerts.dispatcher import Breaker, Dispatcher
    from pipeline.alerts.webhook import Outcome

    dispatcher = Dispatcher(
        Settings(webhook_breaker_failures=3, webhook_breaker_cooldown_s=10), None, lambda _: None
    )
    breaker, now = Breaker(), datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(2):
        dispatcher._breaker(breaker, Outcome("retry", 500), now)
    assert not breaker.is_open(now)
    dispatcher._breaker(breaker, Outcome("retry", 500), now)
    assert breaker.is_open(now + timedelta(seconds=9)) and not breaker.is_open(
        now + timedelta(seconds=10)
    )
    dispatcher._breaker(breaker, Outcome("delivered", 200), now)
    assert breaker.failures == 0 and not breaker.is_open(now)


def test_entries_are_leased_within_each_targets_capacity():
    from pipeline.alerts.dispatcher import Dispatcher

    dispatcher = Dispatcher(Settings(webhook_inflight_per_target=2), None, lambda _: None)
    dispatcher.leased = {"http://a:80": 2, "http://b:80": 1}
    assert dispatcher.capacity("http://a:80") == 0
    assert dispatcher.capacity("http://b:80") == 1 and dispatcher.capacity("http://c:80") == 2


def test_an_alerts_status_is_its_least_settled_delivery():
    from pipeline.alerts.outbox import summary

    assert summary([], published=True) == "delivered" and summary([], published=False) == "pending"
    states = lambda *s: [{"state": x} for x in s]  # noqa: E731
    assert summary(states("delivered", "retrying", "failed"), True) == "retrying"
    assert summary(states("delivered", "refused"), True) == "refused"
    assert summary(states("delivered", "failed", "refused"), True) == "failed"
