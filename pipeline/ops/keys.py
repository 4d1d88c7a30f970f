"""Per-owner API keys: each key belongs to an owner (or is an admin key), is stored hashed in
the project's ``<prefix>-apikeys`` index, and is created, listed and revoked with
``newspipe keys add/list/revoke``.

A key reads ``np_<key id>_<secret>``: the key id (public, the document ``_id``) finds the
record, and the SHA-256 of the whole key is compared in constant time with the stored one.
The secret has 256 random bits, so a fast hash is enough (no password stretching needed),
and the key itself is shown once, at creation.

The HTTP API resolves a request's bearer key with
:meth:`pipeline.api.context.ApiContext.caller_of` (the deployment token is an admin, a key is
its owner) and restricts what it reads and changes with :meth:`Caller.may_access` /
:meth:`Caller.owner_filter`. :func:`owner_from_key` and :func:`key_dependency` are the same
as stand-alone FastAPI dependencies (for other apps over the same store)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from elasticsearch import Elasticsearch
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

PREFIX = "np"


@dataclass(frozen=True)
class Caller:
    """Who a request's key belongs to."""

    owner: str
    admin: bool = False
    key_id: str | None = None

    def may_access(self, owner: str) -> bool:
        """May this caller read or change what ``owner`` owns?"""
        return self.admin or owner == self.owner

    def owner_filter(self, requested: str | None = None) -> str | None:
        """The owner a listing is restricted to: the caller's own (an owner key), or what an
        admin asked for (None = everybody's). An owner key asking for another owner gets
        :class:`PermissionError`."""
        if self.admin:
            return requested
        if requested is not None and requested != self.owner:
            raise PermissionError(f"key of {self.owner!r} may not list {requested!r}")
        return self.owner


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    owner: str
    admin: bool
    note: str | None
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_key(key: str) -> str | None:
    """The key id of a well-formed key, else None."""
    parts = key.split("_", 2)  # the secret (urlsafe base64) may contain "_"
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


class KeyStore:
    """API keys in an Elasticsearch index (or its alias)."""

    def __init__(self, es: Elasticsearch, index: str):
        self.es = es
        self.index = index

    def add(
        self, owner: str, *, admin: bool = False, note: str | None = None
    ) -> tuple[KeyInfo, str]:
        """Create a key; returns its record and the key itself (shown once, never stored)."""
        owner = owner.strip()
        if not owner:
            raise ValueError("a key needs an owner")
        key_id = secrets.token_hex(8)
        key = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        info = KeyInfo(
            key_id=key_id, owner=owner, admin=admin, note=note, created_at=datetime.now(UTC)
        )
        self.es.create(
            index=self.index,
            id=key_id,
            document={
                "key_id": key_id,
                "owner": owner,
                "admin": admin,
                "note": note,
                "secret_sha256": _digest(key),
                "created_at": info.created_at.isoformat(),
                "revoked_at": None,
            },
            refresh="wait_for",
        )
        return info, key

    def authenticate(self, key: str) -> Caller | None:
        """The caller a key belongs to; None for an unknown, malformed or revoked key."""
        key_id = parse_key(key or "")
        if key_id is None:
            return None
        found = self.es.options(ignore_status=404).get(index=self.index, id=key_id)
        if not found.get("found"):
            return None
        doc = found["_source"]
        if doc.get("revoked_at") or not hmac.compare_digest(doc["secret_sha256"], _digest(key)):
            return None
        return Caller(owner=doc["owner"], admin=bool(doc.get("admin")), key_id=key_id)

    def list(self, owner: str | None = None, *, include_revoked: bool = False) -> list[KeyInfo]:
        filters = [{"term": {"owner": owner}}] if owner else []
        if not include_revoked:
            filters.append({"bool": {"must_not": {"exists": {"field": "revoked_at"}}}})
        self.es.indices.refresh(index=self.index)
        hits = self.es.search(
            index=self.index,
            query={"bool": {"filter": filters}},
            size=1000,
            sort=[{"created_at": "asc"}],
        )["hits"]["hits"]
        return [_info(h["_source"]) for h in hits]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key (kept, for the record); False when there is no such active key."""
        found = self.es.options(ignore_status=404).get(index=self.index, id=key_id)
        if not found.get("found") or found["_source"].get("revoked_at"):
            return False
        self.es.update(
            index=self.index,
            id=key_id,
            doc={"revoked_at": datetime.now(UTC).isoformat()},
            refresh="wait_for",
        )
        return True


def _info(doc: dict) -> KeyInfo:
    revoked = doc.get("revoked_at")
    return KeyInfo(
        key_id=doc["key_id"],
        owner=doc["owner"],
        admin=bool(doc.get("admin")),
        note=doc.get("note"),
        created_at=datetime.fromisoformat(doc["created_at"]),
        revoked_at=datetime.fromisoformat(revoked) if revoked else None,
    )


# --- FastAPI ---------------------------------------------------------------------------------
_bearer = HTTPBearer(auto_error=False)


def key_dependency(store: KeyStore, *, admin_token: str | None = None):
    """A FastAPI dependency resolving ``Authorization: Bearer <key>`` to a :class:`Caller`
    (401 otherwise). ``admin_token``: a legacy single token still accepted as an admin key."""
    from fastapi import HTTPException, status

    def caller(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Caller:
        key = credentials.credentials if credentials else ""
        if admin_token and key and hmac.compare_digest(key, admin_token):
            return Caller(owner="admin", admin=True)
        found = store.authenticate(key) if key else None
        if found is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing, unknown or revoked API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return found

    return caller


@lru_cache(maxsize=1)
def _default_dependency():
    from pipeline.infra.es import make_client
    from pipeline.settings import get_settings

    settings = get_settings()
    legacy = settings.api_token if settings.api_token != "change-me" else None  # never the default
    return key_dependency(
        KeyStore(make_client(settings), settings.index("apikeys")), admin_token=legacy
    )


def owner_from_key(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Caller:
    """FastAPI dependency: the :class:`Caller` of the request's API key, from the store of the
    settings (``<prefix>-apikeys``); the legacy NEWS_API_TOKEN, when changed from its default,
    is an admin key. Use: ``caller: Caller = Depends(owner_from_key)``."""
    return _default_dependency()(credentials)
