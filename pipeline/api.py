"""The alerts HTTP API (FastAPI; OpenAPI docs at ``/docs``). Every route but ``/health`` needs
``Authorization: Bearer <NEWS_API_TOKEN>``. Run with ``newspipe api``."""

from __future__ import annotations

import secrets

from fastapi import Depends, FastAPI, HTTPException, Query, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from pipeline.alerts.query import QuerySyntaxError
from pipeline.alerts.subscriptions import SubscriptionStore
from pipeline.process import Pipeline
from pipeline.settings import Settings, get_settings
from schemas import Alert, Subscription


class SubscriptionRequest(BaseModel):
    query: str = Field(..., examples=['memorandum', '"prisoner exchange"', 'entity:"Vladimir Medinsky"'])
    owner: str = "default"
    webhooks: list[str] = Field(default_factory=list, description="URLs to POST alerts to")
    backfill: bool = Field(False, description="also report already-indexed matching articles")
    per_story: bool = Field(False, description="alert once per story; later articles are attached as updates")


class SubscriptionCreated(BaseModel):
    subscription: Subscription
    backfill: list[Alert] = Field(default_factory=list)


def create_api(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    pipeline = Pipeline(settings)
    store = SubscriptionStore(settings, pipeline.es)
    bearer = HTTPBearer(auto_error=False)

    def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if credentials is None or not secrets.compare_digest(credentials.credentials, settings.api_token):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    api = FastAPI(title="newspipe alerts", version="1", description=__doc__)

    @api.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @api.post("/subscriptions", status_code=201, dependencies=[Depends(authorised)])
    def add_subscription(request: SubscriptionRequest) -> SubscriptionCreated:
        try:
            subscription = store.add(request.query, owner=request.owner,
                                     channels=[f"webhook:{u}" for u in request.webhooks],
                                     per_story=request.per_story)
        except QuerySyntaxError as exc:
            raise HTTPException(422, {"error": str(exc), "position": exc.position}) from exc
        fired = []
        if request.backfill:
            from pipeline.alerts.backfill import backfill_alerts

            fired = backfill_alerts(pipeline, subscription)
        return SubscriptionCreated(subscription=subscription, backfill=fired)

    @api.get("/subscriptions", dependencies=[Depends(authorised)])
    def list_subscriptions(owner: str | None = None) -> list[Subscription]:
        return store.list(owner=owner)

    @api.get("/subscriptions/{subscription_id}", dependencies=[Depends(authorised)])
    def get_subscription(subscription_id: str) -> Subscription:
        found = store.get(subscription_id)
        if found is None:
            raise HTTPException(404, f"no subscription {subscription_id}")
        return found

    @api.delete("/subscriptions/{subscription_id}", status_code=204, dependencies=[Depends(authorised)])
    def remove_subscription(subscription_id: str) -> None:
        if not store.remove(subscription_id):
            raise HTTPException(404, f"no subscription {subscription_id}")

    @api.get("/alerts", dependencies=[Depends(authorised)])
    def alert_history(subscription_id: str | None = None, size: int = Query(50, le=1000)) -> list[Alert]:
        return pipeline.ledger.history(subscription_id, size=size)

    return api
