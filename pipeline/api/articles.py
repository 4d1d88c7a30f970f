"""``POST /articles`` (the contract and dead-letter path of ``newspipe ingest``) and
``GET /articles/{id}`` (one indexed article with its entities and events)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from pipeline.alerts.backfill import article_from_document
from pipeline.api.context import ERRORS, ApiContext
from pipeline.sources.ingest import Rejected, iter_request, publish
from schemas import EnrichedArticle
from schemas.api import ErrorResponse, IngestFailure, IngestRejection, IngestResponse

NDJSON_TYPES = (
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/jsonlines",
)

REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {"$ref": "#/components/schemas/RawArticle"},
                    {"type": "array", "items": {"$ref": "#/components/schemas/RawArticle"}},
                ]
            }
        },
        "application/x-ndjson": {
            "schema": {"type": "string", "description": "one article object per line"}
        },
    },
}


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["articles"], dependencies=[Depends(ctx.authorised())], responses=ERRORS)

    @api.post(
        "/articles",
        status_code=202,
        response_model=IngestResponse,
        openapi_extra={"requestBody": REQUEST_BODY},
        responses={
            413: {
                "model": ErrorResponse,
                "description": "request larger than NEWS_MAX_MESSAGE_BYTES",
            },
            422: {
                "model": IngestResponse | ErrorResponse,
                "description": "nothing accepted: every item rejected (reasons; dead-lettered), or an empty body",
            },
            503: {
                "model": IngestResponse,
                "description": "the broker did not take every message: send again",
            },
        },
    )
    async def ingest(request: Request):
        """Publish one article (JSON object), a JSON list, or a batch (NDJSON, ``Content-Type:
        application/x-ndjson``) to the raw topic. Items that are not articles go to the
        dead-letter topic and are listed with their reason; the rest are answered with their
        ids (202: accepted for processing; 422 when no item was an article)."""
        declared = request.headers.get("content-length")
        limit = ctx.settings.max_message_bytes
        if declared and declared.isdigit() and int(declared) > limit:
            raise HTTPException(413, f"request body over {limit} bytes")
        data = bytearray()
        async for chunk in request.stream():
            data.extend(chunk)
            if len(data) > limit:
                raise HTTPException(413, f"request body over {limit} bytes")
        if not bytes(data).strip():
            raise HTTPException(
                422, "empty request body: send an article (JSON) or articles (NDJSON)"
            )
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        items = list(iter_request(bytes(data), lines=kind in NDJSON_TYPES, settings=ctx.settings))
        report = await run_in_threadpool(publish, items, ctx.producer, ctx.settings, False)
        rejected = [
            IngestRejection(item=n, origin=item.origin, reason=item.reason)
            for n, item in enumerate(items)
            if isinstance(item, Rejected)
        ]
        body = IngestResponse(
            accepted=report.sent,
            ids=report.ids,
            rejected=rejected,
            failed=[IngestFailure(key=f.key, error=f.error) for f in report.failed],
        )
        status = 503 if report.failed or report.stopped else 202 if report.sent else 422
        return JSONResponse(body.model_dump(mode="json"), status_code=status)

    @api.get(
        "/articles/{article_id}",
        response_model=EnrichedArticle,
        responses={404: {"model": ErrorResponse}},
    )
    def article(article_id: str) -> EnrichedArticle:
        """One indexed article: clean text, entities (with offsets) and events (with evidence)."""
        from pipeline.ops.retention import get_by_id

        doc = get_by_id(ctx.pipeline.es, ctx.settings.index("articles"), article_id)
        if doc is None:
            raise HTTPException(404, f"no article {article_id}")
        return article_from_document(doc["_source"])

    return api
