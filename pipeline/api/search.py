"""``GET /search``: the query language (``pipeline.query.language``) with filters, highlighted
snippets, facets and cursor paging (``pipeline.query.search.search_page``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query

from pipeline.api.context import ERRORS, ApiContext
from pipeline.query.language import QuerySyntaxError
from pipeline.query.search import CursorError, search_page
from schemas.api import DateBucket, ErrorResponse, FacetBucket, Facets, SearchHit, SearchResponse


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["search"], dependencies=[Depends(ctx.authorised())], responses=ERRORS)

    @api.get(
        "/search",
        response_model=SearchResponse,
        responses={
            422: {"model": ErrorResponse, "description": "invalid query (reason, position)"}
        },
    )
    def search(
        q: str = Query(
            "",
            max_length=2000,
            description='query language: words, "phrases", AND/OR/NOT, '
            "title:, entity:, event:, source:, lang: (docs/alerts.md)",
        ),
        entity: list[str] = Query([], description="only articles with this entity (name)"),
        event: list[str] = Query([], description="only articles with this event type"),
        source: list[str] = Query([], description="only articles from this source"),
        lang: list[str] = Query([], description="only articles in this language (ISO 639-1)"),
        since: datetime | None = Query(None, alias="from", description="published at or after"),
        until: datetime | None = Query(None, alias="to", description="published before"),
        sort: Literal["relevance", "newest"] = "relevance",
        size: int = Query(10, ge=1, le=100),
        cursor: str | None = Query(
            None, max_length=2000, description="next_cursor of the previous page"
        ),
    ) -> SearchResponse:
        """Articles matching ``q`` and every filter; facets count all matches."""
        try:
            result = search_page(
                ctx.pipeline.es,
                ctx.settings.index("articles"),
                q,
                ctx.pipeline.resolve_entity,
                entities=entity,
                events=event,
                sources=source,
                languages=lang,
                since=since,
                until=until,
                size=size,
                cursor=cursor,
                sort=sort,
            )
        except QuerySyntaxError as exc:
            raise HTTPException(422, {"error": str(exc), "position": exc.position}) from exc
        except CursorError as exc:
            raise HTTPException(400, str(exc)) from exc
        facets = {
            name: [FacetBucket(value=str(v), count=c) for v, c in buckets]
            for name, buckets in result.facets.items()
        }
        dates = [DateBucket(start=b.start, end=b.end, count=b.count) for b in result.dates]
        return SearchResponse(
            total=result.total,
            hits=[SearchHit(**vars(hit)) for hit in result.hits],
            facets=Facets(**facets, dates=dates),
            next_cursor=result.next_cursor,
        )

    return api
