"""`GET /v2/voices`: the stock voice list (reference 13; domain/voices.py).

Pages are 1-based as the reference says; the SDK asks for `page=0`, which is
read as the first page (the answer's `page` echoes what was asked).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.responses import JSONResponse

from palaver.api.objectives import BAD_QUERY
from palaver.api.resources import listing, route
from palaver.domain.voices import find_voices

router = APIRouter(prefix="/v2/voices", tags=["Voices"])


async def list_voices(
    limit: Annotated[int, Query(ge=1, le=100, description="Page size (1-100).")] = 10,
    page: Annotated[int, Query(ge=0, le=1_000_000, description="1-based; 0 is read as 1.")] = 1,
    search: Annotated[str | None, Query(max_length=200, description="Part of voice_name, any case.")] = None,
    sort: Annotated[Literal["asc", "desc"], Query(description="By voice_name.")] = "asc",
    tag: Annotated[str | None, Query(max_length=500, description="csv; voices carrying every tag")] = None,
    tags: Annotated[str | None, Query(max_length=500, description="csv; the same as `tag`")] = None,
) -> JSONResponse:
    wanted = [t.strip() for t in f"{tag or ''},{tags or ''}".split(",") if t.strip()]
    voices = [v.render() for v in find_voices(search=search, tags=wanted, descending=sort == "desc")]
    return listing(voices, page=page, limit=limit, first_page=1, extra={"page": page, "limit": limit})


route(router, "", list_voices, methods=["GET"], summary="List stock voices", responses=BAD_QUERY)
