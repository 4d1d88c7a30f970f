"""Webhook delivery against a real HTTP server on 127.0.0.1: retries, give-up, address guard."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from pipeline.alerts.webhook import WebhookRefused, check_webhook_url, post_alert, webhook_urls
from schemas import Alert, AlertMatch


class Receiver(BaseHTTPRequestHandler):
    statuses: list[int] = []
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Receiver.received.append(body)
        status = Receiver.statuses.pop(0) if Receiver.statuses else 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def receiver():
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    Receiver.statuses, Receiver.received = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


ALERT = Alert(
    id="a1", subscription_id="s1", query="memorandum", owner="o", article_id="x", title="T",
    matched=AlertMatch(terms=["memorandum"]), snippet="…«memorandum»…",
)


def deliver(url: str, *, allow_private: bool, retries: int = 3) -> bool:
    async def run():
        async with httpx.AsyncClient(timeout=2) as client:
            return await post_alert(client, url, ALERT, retries=retries, allow_private=allow_private, backoff_s=0.01)

    return asyncio.run(run())


def test_delivers_the_alert_json(receiver):
    assert deliver(receiver, allow_private=True)
    assert Receiver.received[0]["id"] == "a1" and Receiver.received[0]["query"] == "memorandum"


def test_retries_server_errors_then_delivers(receiver):
    Receiver.statuses = [500, 503]
    assert deliver(receiver, allow_private=True)
    assert len(Receiver.received) == 3


def test_gives_up_after_the_retries(receiver):
    Receiver.statuses = [500] * 10
    assert not deliver(receiver, allow_private=True, retries=2)
    assert len(Receiver.received) == 3


def test_does_not_retry_a_client_error(receiver):
    Receiver.statuses = [404]
    assert not deliver(receiver, allow_private=True)
    assert len(Receiver.received) == 1


def test_loopback_is_refused_unless_allowed(receiver):
    assert not deliver(receiver, allow_private=False)
    assert Receiver.received == []


@pytest.mark.parametrize("url", ["http://127.0.0.1/x", "http://10.1.2.3/x", "http://192.168.0.1/", "http://[::1]/", "ftp://example.org/"])
def test_non_public_or_non_http_urls_are_refused(url):
    with pytest.raises(WebhookRefused):
        check_webhook_url(url, allow_private=False)


def test_webhook_channels():
    assert webhook_urls(["webhook:https://example.org/a", "email:x@y"]) == ["https://example.org/a"]
