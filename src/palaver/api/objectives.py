"""`/v2/objectives`: objectives sets (reference 8; SDK surface, Objectives).

The SDK creates at `/v2/objectives/` (with the slash), so every collection
route answers both spellings. GET of one set wraps it in `{"data": {...}}` as
the reference shows; a list item is the same object, unwrapped.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from palaver.api import deps
from palaver.api.bodies import parse_json, parse_object
from palaver.api.resources import UNAUTHORIZED, checked_id, item_routes, listing, newest_first, no_content, route
from palaver.api.schemas import ErrorBody, MessageBody
from palaver.domain.errors import InvalidId
from palaver.service.objectives import ObjectivesService

router = APIRouter(prefix="/v2/objectives", tags=["Objectives"])


class BadRequestBody(BaseModel):
    """A 400 of a create: `message` for a broken rule (reference 1.2), `error` for a body that is not JSON."""

    message: str | None = None
    error: str | None = None


BAD_QUERY: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A query parameter out of range"},
    **UNAUTHORIZED,
}

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": '`{"error": "Invalid objectives_id"}` for an id that cannot be one'},
    404: {"model": ErrorBody, "description": '`{"error": "Objective not found"}`: unknown or another account\'s'},
    **UNAUTHORIZED,
}


def objectives(request: Request) -> ObjectivesService:
    return request.app.state.objectives


def _id(value: str) -> str:
    return checked_id(value, lambda: InvalidId("objectives_id"))


async def create(request: Request) -> JSONResponse:
    """Create an objectives set: `{name?, data: [1..50 objectives], allow_loops?}`."""
    document = await objectives(request).create(deps.account_id(request), await parse_object(request))
    return JSONResponse(
        {
            "objectives_id": document["objectives_id"],
            "uuid": document["uuid"],
            "objective_name": document["name"],
            "status": document["status"],
            "created_at": document["created_at"],
        }
    )


async def validate(request: Request) -> JSONResponse:
    """Check a create body (references, one first objective, loops) without storing anything."""
    fields, problems = objectives(request).validate(await parse_object(request))
    if problems or fields is None:
        return JSONResponse({"valid": False, "message": problems[0], "errors": problems}, status_code=400)
    return JSONResponse({"valid": True, "message": "Objectives are valid", "objectives_count": len(fields["data"])})


async def list_all(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 10,
    page: Annotated[int, Query(ge=0, le=1_000_000, description="1-based; 0 is read as 1.")] = 1,
    sort: Annotated[str | None, Query(max_length=20, description="asc|ascending for oldest first")] = None,
    name_or_uuid: Annotated[str | None, Query(max_length=200)] = None,
    kind: Annotated[str | None, Query(alias="type", max_length=20, description="user | system | all")] = None,
) -> JSONResponse:
    documents = (
        [] if kind == "system" else await objectives(request).list(deps.account_id(request), name_or_uuid=name_or_uuid)
    )
    if not newest_first(sort):
        documents.reverse()
    return listing(documents, page=page, limit=limit, first_page=1)


async def get(request: Request, objectives_id: str) -> JSONResponse:
    document = await objectives(request).get(deps.account_id(request), _id(objectives_id))
    return JSONResponse({"data": document})


async def patch(request: Request, objectives_id: str) -> JSONResponse:
    objectives_id = _id(objectives_id)
    await objectives(request).patch(deps.account_id(request), objectives_id, await parse_json(request))
    return JSONResponse({"message": "Objective updated successfully"})


async def delete(request: Request, objectives_id: str) -> Response:
    await objectives(request).delete(deps.account_id(request), _id(objectives_id))
    return no_content()


ITEM = "/{objectives_id}"
route(
    router,
    "",
    create,
    methods=["POST"],
    summary="Create objectives",
    responses={
        400: {"model": BadRequestBody, "description": '`{"message": "objective_name is required"}`'},
        **UNAUTHORIZED,
    },
)
route(
    router,
    "/validate",
    validate,
    methods=["POST"],
    summary="Validate objectives without storing them",
    responses={400: {"description": '`{"valid": false, "message": "...", "errors": ["..."]}`'}, **UNAUTHORIZED},
)
route(router, "", list_all, methods=["GET"], summary="List objectives", responses=BAD_QUERY)
item_routes(
    router,
    ITEM,
    noun="objectives",
    missing=NOT_FOUND,
    get=get,
    patch=patch,
    delete=delete,
    patch_summary="RFC 6902 JSON Patch",
    patch_responses={200: {"model": MessageBody}, 304: {"description": "The patch changed nothing"}},
)
