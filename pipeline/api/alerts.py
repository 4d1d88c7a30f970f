"""Subscriptions (add, list, get, remove), alert history, the live alert stream (SSE) and the
Atom feed of a subscription.

Each is the caller's own (:class:`pipeline.ops.keys.Caller`): an owner's key sees, changes and
streams only that owner's subscriptions and alerts, and another owner's subscription answers
404 as if it did not exist; an admin key (or the deployment token) sees every owner's."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from pipeline.alerts.digest import latest_digests
from pipeline.alerts.subscriptions import SubscriptionRejected
from pipeline.api.atom import render_feed
from pipeline.api.context import ERRORS, ApiContext
from pipeline.api.stream import BadEventId, alert_events, open_stream, parse_event_id
from pipeline.ops.keys import Caller
from pipeline.query.language import QuerySyntaxError
from schemas import Alert, Subscription
from schemas.api import ErrorResponse, SubscriptionCreated, SubscriptionRequest
from schemas.models import utcnow

NOT_FOUND = {
    404: {"model": ErrorResponse, "description": "no such subscription (or another owner's)"}
}
OTHER_OWNER = {
    403: {"model": ErrorResponse, "description": "an owner's key asked for another owner's list"}
}


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["alerts"], responses=ERRORS)
    caller_of = ctx.authorised()
    caller_or_query = ctx.authorised_or_query()

    def subscription_or_404(subscription_id: str, caller: Caller) -> Subscription:
        """The subscription, when the caller may see it; 404 alike for none and another owner's."""
        found = ctx.store.get(subscription_id)
        if found is None or not caller.may_access(found.owner):
            raise HTTPException(404, f"no subscription {subscription_id}")
        return found

    def owner_of_listing(caller: Caller, owner: str | None) -> str | None:
        try:
            return caller.owner_filter(owner)
        except PermissionError:
            raise HTTPException(
                403, f"this key lists only the subscriptions and alerts of {caller.owner!r}"
            ) from None

    @api.post(
        "/subscriptions",
        status_code=201,
        response_model=SubscriptionCreated,
        responses={
            422: {"model": ErrorResponse, "description": "invalid query (reason, position)"}
        },
    )
    def add_subscription(
        request: SubscriptionRequest, caller: Caller = Depends(caller_of)
    ) -> SubscriptionCreated:
        """Subscribe to a query (the same query twice is one subscription). With ``backfill``,
        the already-indexed matching articles fire now (once, marked ``backfill``). The owner
        is the key's owner; an admin key may name any ``owner``."""
        owner = request.owner if caller.admin else caller.owner
        try:
            created = ctx.store.create(
                request.query,
                owner=owner,
                webhooks=request.webhooks,
                digest=request.digest,
                timezone=request.timezone,
                per_story=request.per_story,
            )
        except QuerySyntaxError as exc:
            raise HTTPException(422, {"error": str(exc), "position": exc.position}) from exc
        except SubscriptionRejected as exc:
            raise HTTPException(422, {"error": str(exc), "position": None}) from exc
        subscription = created.subscription
        fired = []
        if request.backfill:
            from pipeline.alerts.backfill import backfill_alerts

            fired = backfill_alerts(ctx.pipeline, subscription)
        return SubscriptionCreated(
            subscription=subscription, backfill=fired, webhook_secrets=created.webhook_secrets
        )

    @api.get("/subscriptions", response_model=list[Subscription], responses=OTHER_OWNER)
    def list_subscriptions(
        owner: str | None = Query(None, description="only this owner's (admin keys)"),
        caller: Caller = Depends(caller_of),
    ) -> list[Subscription]:
        """The caller's subscriptions (an admin key: everybody's, or ``owner``'s)."""
        return ctx.store.list(owner=owner_of_listing(caller, owner))

    @api.get("/subscriptions/{subscription_id}", response_model=Subscription, responses=NOT_FOUND)
    def get_subscription(subscription_id: str, caller: Caller = Depends(caller_of)) -> Subscription:
        return subscription_or_404(subscription_id, caller)

    @api.delete(
        "/subscriptions/{subscription_id}",
        status_code=204,
        responses=NOT_FOUND,
        response_class=Response,
    )
    def remove_subscription(subscription_id: str, caller: Caller = Depends(caller_of)) -> Response:
        subscription_or_404(subscription_id, caller)
        if not ctx.store.remove(subscription_id):
            raise HTTPException(404, f"no subscription {subscription_id}")
        return Response(status_code=204)

    @api.get("/alerts", response_model=list[Alert], responses={**NOT_FOUND, **OTHER_OWNER})
    def alert_history(
        subscription_id: str | None = None,
        owner: str | None = Query(None, description="only this owner's (admin keys)"),
        size: int = Query(50, ge=1, le=1000),
        caller: Caller = Depends(caller_of),
    ) -> list[Alert]:
        """The latest alerts with their delivery states, newest first: the caller's (an admin
        key: everybody's, or ``owner``'s), of one subscription when given."""
        found = ctx.pipeline.ledger.history(
            subscription_id, size=size, owner=owner_of_listing(caller, owner)
        )
        if subscription_id and not found and not caller.admin:
            subscription_or_404(subscription_id, caller)  # another owner's: 404, not an empty list
        return found

    @api.get(
        "/alerts/stream",
        response_class=StreamingResponse,
        responses={
            **NOT_FOUND,
            200: {
                "description": "text/event-stream: `ready`, then `alert` events (data: an Alert)",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
        },
    )
    async def alert_stream(
        request: Request,
        subscription_id: list[str] = Query([], description="only these subscriptions' alerts"),
        last_event_id: str | None = Header(
            None, description="resume after this event (set by EventSource)"
        ),
        resume: str | None = Query(
            None, description="the same as Last-Event-ID, for a first connection"
        ),
        caller: Caller = Depends(caller_or_query),
    ) -> StreamingResponse:
        """Alerts as they fire, as Server-Sent Events (the caller's; an admin key: everybody's).
        Event ids are positions on the alerts topic: reconnecting with ``Last-Event-ID`` misses
        nothing and repeats nothing."""
        if not caller.admin:
            for one in subscription_id:
                await run_in_threadpool(subscription_or_404, one, caller)
        position = last_event_id or resume
        try:
            start = parse_event_id(position) if position else None
        except BadEventId as exc:
            raise HTTPException(400, str(exc)) from exc
        stream = await open_stream(ctx.settings, start)
        events = alert_events(
            stream,
            set(subscription_id),
            request.is_disconnected,
            owner=None if caller.admin else caller.owner,
        )
        return StreamingResponse(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @api.get(
        "/subscriptions/{subscription_id}/feed.atom",
        response_class=Response,
        responses={
            **NOT_FOUND,
            200: {
                "description": "an Atom 1.0 feed of the latest alerts",
                "content": {"application/atom+xml": {"schema": {"type": "string"}}},
            },
        },
    )
    async def atom_feed(
        request: Request,
        subscription_id: str,
        size: int = Query(50, ge=1, le=500),
        caller: Caller = Depends(caller_or_query),
    ) -> Response:
        """The subscription's latest alerts as an Atom feed (for feed readers): one entry per
        alert, or per closed digest period (grouped by story) for hourly/daily subscriptions."""
        subscription = await run_in_threadpool(subscription_or_404, subscription_id, caller)
        urls = {
            "self_url": str(request.url.remove_query_params("access_token")),
            "page_url": str(request.base_url),
        }
        if subscription.digest != "as_it_happens":
            digests, titles = await run_in_threadpool(
                latest_digests,
                ctx.pipeline.ledger,
                ctx.pipeline.es,
                ctx.settings,
                subscription,
                size,
                utcnow(),
            )
            body = render_feed(subscription, [], digests=digests, titles=titles, **urls)
        else:
            alerts = await run_in_threadpool(
                ctx.pipeline.ledger.history,
                subscription_id,
                size,
                None if caller.admin else caller.owner,
            )
            body = render_feed(subscription, alerts, **urls)
        return Response(body, media_type="application/atom+xml")

    return api
