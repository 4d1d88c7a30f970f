"""What every route shares: settings, the pipeline's clients, the subscription store, the
token, and the authorisation dependencies.

Every authorised route resolves its request to a :class:`pipeline.ops.keys.Caller`: an owner's
API key (``newspipe keys add OWNER``) is that owner; an admin key, or the deployment token
(``NEWS_API_TOKEN`` / the generated ``api-token`` file), is an admin who sees every owner's."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import NotFoundError
from fastapi import Depends, HTTPException, Query, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipeline.alerts.subscriptions import SubscriptionStore
from pipeline.api.auth import token_matches
from pipeline.ops.keys import Caller, KeyStore
from pipeline.settings import Settings
from pipeline.stream.process import Pipeline
from schemas.api import ErrorResponse

bearer = HTTPBearer(
    auto_error=False,
    description="an API key (newspipe keys add OWNER), or the deployment "
    "token NEWS_API_TOKEN (or the generated api-token file), which is an admin key",
)

#: the deployment token's caller: an admin (the single-token setup, the CLI and the demo)
DEPLOYMENT = Caller(owner="admin", admin=True)

#: error answers every authorised route may give (documented in the OpenAPI document)
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorResponse,
        "description": "bad request (e.g. a cursor or id Elasticsearch refuses)",
    },
    401: {"model": ErrorResponse, "description": "missing, unknown or revoked API key"},
    422: {
        "model": ErrorResponse,
        "description": "invalid request (one line), or an invalid query: "
        "its reason and 0-based position",
    },
    503: {"model": ErrorResponse, "description": "Kafka or Elasticsearch unavailable: retry"},
}


@dataclass
class ApiContext:
    settings: Settings
    token: str
    pipeline: Pipeline
    store: SubscriptionStore
    keys: KeyStore | None = None
    _producer: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def producer(self):
        """One Kafka producer for the process (thread-safe), made on first use."""
        with self._lock:
            if self._producer is None:
                from pipeline.infra.kafka import make_producer

                self._producer = make_producer(self.settings, client_id="newspipe-api")
            return self._producer

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
        self.store.close()

    # --- authorisation ---------------------------------------------------------------------
    def _refuse(self) -> HTTPException:
        return HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing, unknown or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )

    def caller_of(self, given: str | None) -> Caller:
        """The caller of a bearer key: the deployment token is an admin; an API key is its
        owner (or an admin); anything else is refused (401)."""
        if not given:
            raise self._refuse()
        if token_matches(given, self.token):
            return DEPLOYMENT
        found = None
        if self.keys is not None:
            try:
                found = self.keys.authenticate(given)
            except NotFoundError:  # no apikeys index (setup not run since): only the token
                found = None
        if found is None:
            raise self._refuse()
        return found

    def authorised(self):
        """Dependency: ``Authorization: Bearer <key>`` -> the :class:`Caller`."""

        def check(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Caller:
            return self.caller_of(credentials.credentials if credentials else None)

        return check

    def authorised_or_query(self):
        """Dependency for clients that cannot set headers (EventSource, feed readers): the
        bearer header or ``?access_token=`` -> the :class:`Caller`."""

        def check(
            credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
            access_token: str | None = Query(
                None, description="the key, for clients that cannot send headers"
            ),
        ) -> Caller:
            return self.caller_of(credentials.credentials if credentials else access_token)

        return check
