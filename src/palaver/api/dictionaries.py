"""`/v2/pronunciation-dictionaries`: create (201), list (pages from 0), get, JSON Patch, delete (reference 13).

The SDK creates at `/v2/pronunciation-dictionaries/` and pages from 0, which
is this resource's own numbering. Every unknown, malformed or foreign id is
404 `{"message": "Pronunciation dictionary not found"}`: the reference gives
this resource no 400 for ids.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from palaver.api import deps
from palaver.api.bodies import parse_json, parse_object
from palaver.api.objectives import BAD_QUERY
from palaver.api.resources import UNAUTHORIZED, checked_id, item_routes, listing, newest_first, no_content, route
from palaver.api.schemas import ErrorBody, MessageBody
from palaver.service.dictionaries import DictionaryService, not_found

router = APIRouter(prefix="/v2/pronunciation-dictionaries", tags=["Pronunciation dictionaries"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": MessageBody, "description": '`{"message": "Pronunciation dictionary not found"}`'},
    **UNAUTHORIZED,
}


def dictionaries(request: Request) -> DictionaryService:
    return request.app.state.dictionaries


def _id(value: str) -> str:
    return checked_id(value, not_found)


async def create(request: Request) -> JSONResponse:
    """`{name, rules?}` -> 201 with the dictionary."""
    document = await dictionaries(request).create(deps.account_id(request), await parse_object(request))
    return JSONResponse(document, status_code=201)


async def list_all(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size (1-100).")] = 10,
    page: Annotated[int, Query(ge=0, le=1_000_000, description="0-based.")] = 0,
    sort: Annotated[Literal["asc", "desc"], Query(description="By creation: desc (default) or asc")] = "desc",
) -> JSONResponse:
    documents = await dictionaries(request).list(deps.account_id(request))
    if not newest_first(sort):
        documents.reverse()
    return listing(documents, page=page, limit=limit, first_page=0, extra={"page": page, "limit": limit})


async def get(request: Request, dictionary_id: str) -> JSONResponse:
    return JSONResponse(await dictionaries(request).get(deps.account_id(request), _id(dictionary_id)))


async def patch(request: Request, dictionary_id: str) -> JSONResponse:
    dictionary_id = _id(dictionary_id)
    document = await dictionaries(request).patch(deps.account_id(request), dictionary_id, await parse_json(request))
    return JSONResponse(document)


async def delete(request: Request, dictionary_id: str) -> Response:
    await dictionaries(request).delete(deps.account_id(request), _id(dictionary_id))
    return no_content()


ITEM = "/{dictionary_id}"
route(
    router,
    "",
    create,
    methods=["POST"],
    summary="Create pronunciation dictionary",
    status_code=201,
    responses={
        400: {"model": ErrorBody, "description": '`{"error": "Invalid request: name is required"}`'},
        **UNAUTHORIZED,
    },
)
route(router, "", list_all, methods=["GET"], summary="List pronunciation dictionaries", responses=BAD_QUERY)
item_routes(
    router,
    ITEM,
    noun="pronunciation dictionary",
    missing=NOT_FOUND,
    get=get,
    patch=patch,
    delete=delete,
    patch_summary="RFC 6902 JSON Patch on name and rules",
    patch_responses={
        304: {"description": "The patch changed nothing"},
        400: {"model": ErrorBody, "description": "The patched dictionary breaks a rule"},
        422: {"model": MessageBody, "description": '`{"message": "Invalid JSON patch format"}`'},
    },
)
