"""Webhook sending: target rules, Standard Webhooks signatures, redirects, one attempt.

Target rules (docs/alerts.md, "Delivery"): a webhook may only reach public addresses.
Loopback, private, link-local, shared, reserved, multicast and cloud-metadata addresses are
refused, unless ``NEWS_WEBHOOK_ALLOW_PRIVATE=true`` (all or nothing) or the target's
``host:port`` is in ``NEWS_WEBHOOK_ALLOW_TARGETS``. The rule is enforced where the connection
is made (:class:`GuardedBackend`): the host name is resolved, *every* address it resolves to
must be allowed, and the connection goes to the address that was checked, so neither a DNS
name nor a redirect (each hop connects anew, at most ``NEWS_WEBHOOK_MAX_REDIRECTS``) nor a
DNS answer that changes between check and connect can reach a refused address.

Signing follows the Standard Webhooks specification: headers ``webhook-id`` (the idempotency
key: the same for every attempt of one delivery), ``webhook-timestamp`` (Unix seconds of the
attempt) and ``webhook-signature`` (``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body`` under
the subscription's ``whsec_`` secret).

Nothing here logs or returns a URL: errors name ``scheme://host:port`` only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from pipeline.settings import Settings

WEBHOOK_PREFIX = "webhook:"
REDIRECTS = (301, 302, 303, 307, 308)
#: metadata services some clouds run on addresses that are otherwise public
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "fd00:ec2::254",
        "100.100.100.200",
        "168.63.129.16",
    )
)


class WebhookRefused(ValueError):
    """The webhook target is not allowed (scheme, or a non-public address)."""


class WebhookUnresolved(OSError):
    """The webhook host does not resolve (now): retried like a network error."""


@dataclass(frozen=True)
class TargetRules:
    allow_private: bool = False
    allow: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, settings: Settings) -> TargetRules:
        return cls(settings.webhook_allow_private, parse_allow_list(settings.webhook_allow_targets))

    def allows(self, host: str, port: int) -> bool:
        return self.allow_private or (host.lower().strip("[]"), port) in self.allow


def parse_allow_list(text: str) -> frozenset[tuple[str, int]]:
    """``"127.0.0.1:8080, hooks.lan:443, [::1]:9000"`` -> {(host, port), …}."""
    out = set()
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"NEWS_WEBHOOK_ALLOW_TARGETS: {item!r} is not host:port")
        out.add((host.lower().strip("[]"), int(port)))
    return frozenset(out)


def webhook_urls(channels: list[str]) -> list[str]:
    """URLs of ``webhook:URL`` channel strings (how the CLI and API name webhooks)."""
    return [c[len(WEBHOOK_PREFIX) :] for c in channels if c.startswith(WEBHOOK_PREFIX)]


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused("webhook URL must be http(s)://host/…")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise WebhookRefused("webhook URL has an invalid port") from exc
    return parts.hostname.lower(), port


def target_of(url: str) -> str:
    """What may be shown of a URL: ``scheme://host:port``."""
    host, port = host_port(url)
    shown = f"[{host}]" if ":" in host else host
    return f"{urlsplit(url).scheme}://{shown}:{port}"


def address_refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address may not be a webhook target (None: it may)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if (
        address.is_multicast
        or address.is_unspecified
        or address.is_reserved
        or not address.is_global
    ):
        return "not a public address"
    return None


def resolve_checked(host: str, port: int, rules: TargetRules) -> list[str]:
    """Every address ``host`` resolves to, if all are allowed; else WebhookRefused."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise WebhookUnresolved(f"{host} does not resolve: {exc.strerror}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if rules.allows(host, port):
        return addresses
    for text in addresses:
        reason = address_refusal(ipaddress.ip_address(text.split("%")[0]))
        if reason and not rules.allows(text, port):
            named = host if host == text else f"{host} resolves to {text}, which is"
            raise WebhookRefused(
                f"{named} {reason}; allow it with NEWS_WEBHOOK_ALLOW_TARGETS={text}:{port} "
                "(or NEWS_WEBHOOK_ALLOW_PRIVATE=true)"
            )
    return addresses


def check_webhook_url(
    url: str, *, allow_private: bool = False, rules: TargetRules | None = None
) -> None:
    """Raise WebhookRefused unless ``url`` is an allowed http(s) target (resolves the host)."""
    rules = rules or TargetRules(allow_private=allow_private)
    host, port = host_port(url)
    try:
        resolve_checked(host, port, rules)
    except WebhookUnresolved as exc:
        raise WebhookRefused(str(exc)) from exc


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to checked addresses: the rules hold at every connection (every hop)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, rules: TargetRules):
        self.inner = inner
        self.rules = rules

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> Any:
        addresses = await asyncio.to_thread(resolve_checked, host, port, self.rules)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host} has no address")

    async def connect_unix_socket(
        self, *args: Any, **kwargs: Any
    ) -> Any:  # pragma: no cover - never a webhook
        raise WebhookRefused("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def make_client(settings: Settings, *, rules: TargetRules | None = None) -> httpx.AsyncClient:
    """The HTTP client of deliveries: guarded connections, no redirects followed by httpx
    (:func:`send` follows them itself), no proxies from the environment."""
    for chatty in (
        "httpx",
        "httpcore",
    ):  # their INFO lines carry full URLs (tokens): never log them
        logging.getLogger(chatty).setLevel(logging.WARNING)
    transport = httpx.AsyncHTTPTransport(retries=0)
    pool = transport._pool  # httpx has no public way to give the pool a network backend
    pool._network_backend = GuardedBackend(
        pool._network_backend, rules or TargetRules.from_settings(settings)
    )
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(settings.webhook_timeout_s),
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": "newspipe-webhooks/1"},
    )


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks ``webhook-signature`` value (``v1,<base64 HMAC-SHA256>``)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


Result = Literal["delivered", "retry", "gone", "refused"]


@dataclass(frozen=True)
class Outcome:
    result: Result
    status_code: int | None = None
    error: str | None = None


async def send(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    *,
    msg_id: str,
    secret: str | None,
    max_redirects: int = 3,
) -> Outcome:
    """One delivery attempt: POST ``body`` signed, following up to ``max_redirects`` redirects
    (re-POSTed, each hop under the target rules). Never raises for delivery problems."""
    current = url
    for hop in range(max_redirects + 1):
        where = "" if hop == 0 else f"redirect {hop}: "
        try:
            shown = target_of(current)
        except WebhookRefused as exc:
            return Outcome("refused", None, where + str(exc))
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
        }
        if secret:
            headers["webhook-signature"] = sign(secret, msg_id, timestamp, body)
        try:
            response = await client.post(current, content=body, headers=headers)
        except WebhookRefused as exc:
            return Outcome("refused", None, f"{where}{shown}: {exc}")
        except WebhookUnresolved as exc:
            return Outcome("retry", None, f"{where}{exc}")
        except httpx.TimeoutException:
            return Outcome("retry", None, f"{where}{shown}: no answer in time")
        except (httpx.HTTPError, OSError) as exc:
            return Outcome(
                "retry", None, f"{where}{shown}: {type(exc).__name__}: {_scrub(exc, current)}"
            )
        code = response.status_code
        if 200 <= code < 300:
            return Outcome("delivered", code)
        if code in REDIRECTS:
            location = response.headers.get("location")
            if not location:
                return Outcome("retry", code, f"{where}{shown}: redirect without Location")
            current = urljoin(current, location)
            continue
        if code == 410:
            return Outcome("gone", code, f"{where}{shown}: 410 Gone (the receiver asked to stop)")
        return Outcome("retry", code, f"{where}{shown}: HTTP {code}")
    return Outcome("refused", None, f"more than {max_redirects} redirects")


def _scrub(exc: BaseException, url: str) -> str:
    text = str(exc) or "connection failed"
    for secret_part in (url, urlsplit(url).path, urlsplit(url).query):
        if secret_part and len(secret_part) > 1:
            text = text.replace(secret_part, "…")
    return text[:300]
