"""The API's bearer token: never empty, never the documented default.

``NEWS_API_TOKEN`` is used when it is set to something else than ``change-me``. Otherwise the
token is read from ``<NEWS_DATA_DIR>/api-token``, generated there (mode 0600) on first start;
one log line says where it is.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from pipeline.settings import Settings

log = logging.getLogger("newspipe.api")

DEFAULT_TOKEN = "change-me"
TOKEN_FILE = "api-token"


def usable(token: str | None) -> bool:
    return bool(token and token.strip() and token.strip() != DEFAULT_TOKEN)


def token_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / TOKEN_FILE


def resolve_token(settings: Settings) -> tuple[str, Path | None]:
    """The token the API accepts, and the file it came from (None: from NEWS_API_TOKEN)."""
    if usable(settings.api_token):
        return settings.api_token.strip(), None
    path = token_path(settings)
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    if usable(existing):
        log.warning("NEWS_API_TOKEN is unset or the default; the API token is in %s", path)
        return existing, path
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    log.warning("NEWS_API_TOKEN is unset or the default; generated an API token into %s", path)
    return token, path


def token_matches(given: str | None, token: str) -> bool:
    return bool(given) and usable(given) and secrets.compare_digest(given.encode(), token.encode())
