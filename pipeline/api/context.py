"""What every route shares: settings, the pipeline's clients, the subscription store, the
token, and the authorisation dependencies."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, HTTPException, Query, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipeline.alerts.subscriptions import SubscriptionStore
from pipeline.api.auth import token_matches
from pipeline.stream.process import Pipeline
from pipeline.settings import Settings
from schemas.api import ErrorResponse

bearer = HTTPBearer(auto_error=False, description="NEWS_API_TOKEN (or the generated api-token file)")

#: error answers every authorised route may give (documented in the OpenAPI document)
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "bad request (e.g. a cursor or id Elasticsearch refuses)"},
    401: {"model": ErrorResponse, "description": "missing or wrong bearer token"},
    422: {"model": ErrorResponse, "description": "invalid request (one line), or an invalid query: "
          "its reason and 0-based position"},
    503: {"model": ErrorResponse, "description": "Kafka or Elasticsearch unavailable: retry"},
}


@dataclass
class ApiContext:
    settings: Settings
    token: str
    pipeline: Pipeline
    store: SubscriptionStore
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
        return HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token",
                             headers={"WWW-Authenticate": "Bearer"})

    def authorised(self):
        """Dependency: ``Authorization: Bearer <token>``."""

        def check(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
            if credentials is None or not token_matches(credentials.credentials, self.token):
                raise self._refuse()

        return check

    def authorised_or_query(self):
        """Dependency for clients that cannot set headers (EventSource, feed readers): the
        bearer header or ``?access_token=``."""

        def check(
            credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
            access_token: str | None = Query(None, description="the token, for clients that cannot send headers"),
        ) -> None:
            given = credentials.credentials if credentials else access_token
            if not token_matches(given, self.token):
                raise self._refuse()

        return check
