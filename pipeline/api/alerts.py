"""Subscriptions (add, list, get, remove), alert history, the live alert stream (SSE) and the
Atom feed of a subscription."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from pipeline.query.language import QuerySyntaxError
from pipeline.alerts.subscriptions import SubscriptionRejected
from pipeline.alerts.digest import latest_digests
from pipeline.api.atom import render_feed
from pipeline.api.context import ERRORS, ApiContext
from pipeline.api.stream import BadEventId, alert_events, open_stream, parse_event_id
from schemas import Alert, Subscription
from schemas.models import utcnow
from schemas.api import ErrorResponse, SubscriptionCreated, SubscriptionRequest

NOT_FOUND = {404: {"model": ErrorResponse, "description": "no such subscription"}}


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["alerts"], responses=ERRORS)
    auth = [Depends(ctx.authorised())]
    auth_or_query = [Depends(ctx.authorised_or_query())]

    def subscription_or_404(subscription_id: str) -> Subscription:
        found = ctx.store.get(subscription_id)
        if found is None:
            raise HTTPException(404, f"no subscription {subscription_id}")
        return found

    @api.post("/subscriptions", status_code=201, dependencies=auth, response_model=SubscriptionCreated,
              responses={422: {"model": ErrorResponse, "description": "invalid query (reason, position)"}})
    def add_subscription(request: SubscriptionRequest) -> SubscriptionCreated:
        """Subscribe to a query (the same query twice is one subscription). With ``backfill``,
        the already-indexed matching articles fire now (once, marked ``backfill``)."""
        try:
            created = ctx.store.create(request.query, owner=request.owner, webhooks=request.webhooks,
                                       digest=request.digest, timezone=request.timezone,
                                       per_story=request.per_story)
        except QuerySyntaxError as exc:
            raise HTTPException(422, {"error": str(exc), "position": exc.position}) from exc
        except SubscriptionRejected as exc:
            raise HTTPException(422, {"error": str(exc), "position": None}) from exc
        subscription = created.subscription
        fired = []
        if request.backfill:
            from pipeline.alerts.backfill import backfill_alerts

            fired = backfill_alerts(ctx.pipeline, subscription)
        return SubscriptionCreated(subscription=subscription, backfill=fired,
                                   webhook_secrets=created.webhook_secrets)

    @api.get("/subscriptions", dependencies=auth, response_model=list[Subscription])
    def list_subscriptions(owner: str | None = None) -> list[Subscription]:
        return ctx.store.list(owner=owner)

    @api.get("/subscriptions/{subscription_id}", dependencies=auth, response_model=Subscription,
             responses=NOT_FOUND)
    def get_subscription(subscription_id: str) -> Subscription:
        return subscription_or_404(subscription_id)

    @api.delete("/subscriptions/{subscription_id}", status_code=204, dependencies=auth,
                responses=NOT_FOUND, response_class=Response)
    def remove_subscription(subscription_id: str) -> Response:
        if not ctx.store.remove(subscription_id):
            raise HTTPException(404, f"no subscription {subscription_id}")
        return Response(status_code=204)

    @api.get("/alerts", dependencies=auth, response_model=list[Alert])
    def alert_history(subscription_id: str | None = None,
                      size: int = Query(50, ge=1, le=1000)) -> list[Alert]:
        """The latest alerts, newest first (of one subscription when given)."""
        return ctx.pipeline.ledger.history(subscription_id, size=size)

    @api.get(
        "/alerts/stream",
        dependencies=auth_or_query,
        response_class=StreamingResponse,
        responses={200: {"description": "text/event-stream: `ready`, then `alert` events (data: an Alert)",
                         "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
    )
    async def alert_stream(
        request: Request,
        subscription_id: list[str] = Query([], description="only these subscriptions' alerts"),
        last_event_id: str | None = Header(None, description="resume after this event (set by EventSource)"),
        resume: str | None = Query(None, description="the same as Last-Event-ID, for a first connection"),
    ) -> StreamingResponse:
        """Alerts as they fire, as Server-Sent Events. Event ids are positions on the alerts
        topic: reconnecting with ``Last-Event-ID`` misses nothing and repeats nothing."""
        position = last_event_id or resume
        try:
            start = parse_event_id(position) if position else None
        except BadEventId as exc:
            raise HTTPException(400, str(exc)) from exc
        stream = await open_stream(ctx.settings, start)
        events = alert_events(stream, set(subscription_id), request.is_disconnected)
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @api.get(
        "/subscriptions/{subscription_id}/feed.atom",
        dependencies=auth_or_query,
        response_class=Response,
        responses={**NOT_FOUND, 200: {"description": "an Atom 1.0 feed of the latest alerts",
                                      "content": {"application/atom+xml": {"schema": {"type": "string"}}}}},
    )
    async def atom_feed(request: Request, subscription_id: str,
                        size: int = Query(50, ge=1, le=500)) -> Response:
        """The subscription's latest alerts as an Atom feed (for feed readers): one entry per
        alert, or per closed digest period (grouped by story) for hourly/daily subscriptions."""
        subscription = await run_in_threadpool(subscription_or_404, subscription_id)
        urls = {"self_url": str(request.url.remove_query_params("access_token")), "page_url": str(request.base_url)}
        if subscription.digest != "as_it_happens":
            digests, titles = await run_in_threadpool(
                latest_digests, ctx.pipeline.ledger, ctx.pipeline.es, ctx.settings, subscription, size, utcnow())
            body = render_feed(subscription, [], digests=digests, titles=titles, **urls)
        else:
            alerts = await run_in_threadpool(ctx.pipeline.ledger.history, subscription_id, size)
            body = render_feed(subscription, alerts, **urls)
        return Response(body, media_type="application/atom+xml")

    return api
