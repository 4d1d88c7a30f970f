"""Webhook URLs and signing secrets, sealed at rest.

A webhook URL often carries a token, and its signing secret is a key: neither may appear in
logs, API answers after creation, topics in clear or documents Kibana shows. They are kept
only *sealed* (Fernet: AES-128-CBC + HMAC-SHA256) in the subscription record on the compacted
subscriptions topic (:attr:`schemas.WebhookChannel.sealed`); the subscriptions index and every
API answer carry the channel without it. The key is ``NEWS_SECRETS_KEY`` or, by default, a key
generated on first use into ``<NEWS_DATA_DIR>/secrets.key`` (mode 0600). Every process that
creates subscriptions or delivers alerts needs the same key.

Signing secrets follow Standard Webhooks: ``whsec_`` + base64 of 32 random bytes.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from pipeline.settings import Settings

SECRET_PREFIX = "whsec_"


class SecretsUnavailable(RuntimeError):
    """A sealed value cannot be opened (another key sealed it)."""


@dataclass(frozen=True)
class WebhookSecret:
    url: str
    secret: str

    def __repr__(self) -> str:  # never print the URL or the secret by accident
        return "WebhookSecret(<sealed>)"


def new_signing_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _key(settings: Settings) -> bytes:
    if settings.secrets_key:
        return settings.secrets_key.encode("ascii")
    return _file_key(str(Path(settings.data_dir).resolve() / "secrets.key"))


@lru_cache(maxsize=8)
def _file_key(path: str) -> bytes:
    file = Path(path)
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        try:
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(key)
            return key
    return file.read_bytes().strip()


def seal(settings: Settings, value: WebhookSecret) -> str:
    data = json.dumps({"url": value.url, "secret": value.secret}).encode("utf-8")
    return Fernet(_key(settings)).encrypt(data).decode("ascii")


def unseal(settings: Settings, token: str) -> WebhookSecret:
    try:
        data = json.loads(Fernet(_key(settings)).decrypt(token.encode("ascii")))
    except (InvalidToken, ValueError) as exc:
        raise SecretsUnavailable(
            "a webhook channel was sealed with another key (NEWS_SECRETS_KEY / secrets.key)"
        ) from exc
    return WebhookSecret(url=data["url"], secret=data["secret"])
