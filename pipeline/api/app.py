"""The newspipe HTTP API (FastAPI; OpenAPI at ``/openapi.json``, docs at ``/docs``) and the web
page at ``/``. Every route but ``/``, ``/static/*``, ``/health`` and
``/metrics`` (Prometheus; admin-only with ``NEWS_API_METRICS_AUTH``) needs ``Authorization: Bearer
<key>``: an owner's API key (``newspipe keys add OWNER``) sees only that owner's subscriptions
and alerts; an admin key, or the deployment token (``NEWS_API_TOKEN``; when unset or
``change-me`` a token is generated into ``<NEWS_DATA_DIR>/api-token``), sees every owner's. Run with ``newspipe api`` (binds 127.0.0.1 unless ``--host``).
See docs/api.md."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from elasticsearch import ApiError, NotFoundError
from elasticsearch import ConnectionError as ESConnectionError
from elasticsearch import ConnectionTimeout as ESConnectionTimeout
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.staticfiles import StaticFiles
from kafka.errors import KafkaError
from starlette.routing import Match

from pipeline.alerts.subscriptions import SubscriptionStore
from pipeline.api import alerts, articles, search
from pipeline.api.auth import resolve_token
from pipeline.api.context import ERRORS, ApiContext, bearer
from pipeline.ops.keys import Caller, KeyStore
from pipeline.ops.metrics import exposition, instrument_api
from pipeline.settings import Settings, get_settings
from pipeline.stream.process import Pipeline
from schemas import RawArticle
from schemas.api import Health, Identity

log = logging.getLogger("newspipe.api")

STATIC = Path(__file__).parent / "static"


def validation_line(exc: RequestValidationError) -> str:
    """FastAPI's validation errors as one line: ``query.size: Input should be ... ; ...``."""
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


class AllowHeader:
    """ASGI middleware: a 405 answer's ``Allow`` lists every method of the path (Starlette
    names only the methods of the first route that matched the path)."""

    def __init__(self, app, app_routes):
        self.app = app
        self.app_routes = app_routes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_allow(message):
            if message["type"] == "http.response.start" and message["status"] == 405:
                methods = set()
                for route in self.app_routes():
                    if isinstance(route, APIRoute) and route.matches(scope)[0] != Match.NONE:
                        methods |= route.methods
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                headers.append((b"allow", ", ".join(sorted(methods)).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_allow)


def create_api(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    token, _ = resolve_token(settings)
    pipeline = Pipeline(settings)
    ctx = ApiContext(
        settings=settings,
        token=token,
        pipeline=pipeline,
        store=SubscriptionStore(settings, pipeline.es),
        keys=KeyStore(pipeline.es, settings.index("apikeys")),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        ctx.close()

    api = FastAPI(title="newspipe", version="1", description=__doc__, lifespan=lifespan)
    api.state.ctx = ctx

    @api.exception_handler(ESConnectionError)
    @api.exception_handler(ESConnectionTimeout)
    @api.exception_handler(KafkaError)
    async def unavailable(_request: Request, exc: Exception) -> JSONResponse:
        log.warning("server unavailable: %s: %s", type(exc).__name__, exc)
        return JSONResponse(
            {"detail": f"{type(exc).__name__}: server unavailable, retry"}, status_code=503
        )

    @api.exception_handler(ApiError)
    async def refused(_request: Request, exc: ApiError) -> JSONResponse:
        if isinstance(exc, NotFoundError):
            return JSONResponse(
                {"detail": "not found (index missing: run newspipe setup)"}, status_code=404
            )
        if exc.meta.status in (429, 502, 503, 504):
            return JSONResponse(
                {"detail": f"Elasticsearch busy ({exc.meta.status}), retry"}, status_code=503
            )
        if 400 <= exc.meta.status < 500:
            return JSONResponse(
                {"detail": f"Elasticsearch refused the request: {exc.message}"}, status_code=400
            )
        log.error("Elasticsearch error %s: %s", exc.meta.status, exc)
        return JSONResponse({"detail": f"Elasticsearch error {exc.meta.status}"}, status_code=503)

    @api.get("/health", tags=["meta"], response_model=Health)
    def health() -> Health:
        return Health()

    @api.get("/me", tags=["meta"], response_model=Identity, responses=ERRORS)
    def me(caller: Caller = Depends(ctx.authorised())) -> Identity:
        """Who the request's key belongs to (the web page shows it)."""
        return Identity(owner=caller.owner, admin=caller.admin, key_id=caller.key_id)

    @api.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_line(exc)}, status_code=422)

    @api.get("/metrics", include_in_schema=False)
    def prometheus_metrics(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
    ) -> Response:
        """Prometheus metrics of this process (pipeline/ops/metrics.py). Open by default, like the
        worker's metrics port (the API binds 127.0.0.1 unless --host; compose scrapes it on the
        stack's network); with NEWS_API_METRICS_AUTH only an admin key or the deployment token."""
        if settings.api_metrics_auth:
            caller = ctx.caller_of(credentials.credentials if credentials else None)
            if not caller.admin:
                raise HTTPException(status.HTTP_403_FORBIDDEN, "the metrics need an admin key")
        body, content_type = exposition(request.headers.get("accept"))
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    api.add_middleware(AllowHeader, app_routes=lambda: api.routes)
    instrument_api(api, serve=False)  # outermost: counts every request by route template
    api.include_router(articles.router(ctx))
    api.include_router(search.router(ctx))
    api.include_router(alerts.router(ctx))

    @api.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    api.mount("/static", StaticFiles(directory=STATIC), name="static")

    def openapi() -> dict:
        """The generated document, plus the article contract ``POST /articles`` refers to."""
        if api.openapi_schema is None:
            document = get_openapi(
                title=api.title, version=api.version, description=api.description, routes=api.routes
            )
            components = document.setdefault("components", {}).setdefault("schemas", {})
            raw = RawArticle.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(raw.pop("$defs", {}))
            components["RawArticle"] = raw
            api.openapi_schema = document
        return api.openapi_schema

    api.openapi = openapi
    return api
