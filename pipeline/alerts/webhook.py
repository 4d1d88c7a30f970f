"""Webhook delivery of alerts: POST the alert JSON, with timeouts and retries with backoff.

Delivery to loopback, private, link-local or otherwise non-public addresses is refused unless
``NEWS_WEBHOOK_ALLOW_PRIVATE=true`` (a subscription must not be able to make the worker call
into the network it runs in).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from urllib.parse import urlsplit

import httpx

from schemas import Alert

log = logging.getLogger(__name__)

WEBHOOK_PREFIX = "webhook:"


class WebhookRefused(ValueError):
    """The webhook URL is not allowed (scheme, or a non-public address)."""


def webhook_urls(channels: list[str]) -> list[str]:
    return [c[len(WEBHOOK_PREFIX) :] for c in channels if c.startswith(WEBHOOK_PREFIX)]


def check_webhook_url(url: str, *, allow_private: bool) -> None:
    """Raise WebhookRefused unless ``url`` is http(s) to a public address (or private allowed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused(f"webhook URL must be http(s)://host/…, got {url!r}")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise WebhookRefused(f"webhook host {parts.hostname!r} does not resolve: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise WebhookRefused(
                f"webhook host {parts.hostname!r} resolves to non-public address {address}; "
                "set NEWS_WEBHOOK_ALLOW_PRIVATE=true to allow it"
            )


async def post_alert(
    client: httpx.AsyncClient,
    url: str,
    alert: Alert,
    *,
    retries: int,
    allow_private: bool,
    backoff_s: float = 0.5,
) -> bool:
    """POST one alert; retries on network errors and 5xx/429 with exponential backoff.
    Returns True when delivered. Never raises for delivery problems (they are logged)."""
    try:
        check_webhook_url(url, allow_private=allow_private)
    except WebhookRefused as exc:
        log.warning("alert %s: webhook refused: %s", alert.id, exc)
        return False
    body = alert.model_dump(mode="json")
    for attempt in range(retries + 1):
        try:
            response = await client.post(url, json=body, headers={"X-Newspipe-Alert": alert.id})
            if response.status_code < 400:
                return True
            if response.status_code != 429 and response.status_code < 500:
                log.warning("alert %s: webhook %s answered %s", alert.id, url, response.status_code)
                return False
        except httpx.HTTPError as exc:
            log.info("alert %s: webhook %s attempt %d failed: %s", alert.id, url, attempt + 1, exc)
        if attempt < retries:
            await asyncio.sleep(backoff_s * 2**attempt)
    log.warning("alert %s: webhook %s gave up after %d attempts", alert.id, url, retries + 1)
    return False
