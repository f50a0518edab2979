"""`/v2/guardrails`: legacy guardrail sets and single guardrails (reference 9; SDK surface, Guardrails).

The SDK creates at `/v2/guardrails/` (with the slash). GET of a set wraps it
in `{"data": {...}}` as the saved spec shows; a single guardrail, the newer
object, is answered flat like a PAL. `/v2/guardrails/tags` is registered
before the item routes so that `tags` is never read as an id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from palaver.api import deps
from palaver.api.bodies import parse_json, parse_object
from palaver.api.objectives import BAD_QUERY, BadRequestBody
from palaver.api.resources import UNAUTHORIZED, checked_id, item_routes, listing, newest_first, no_content, route
from palaver.api.schemas import ErrorBody, MessageBody
from palaver.domain.errors import InvalidId
from palaver.domain.guardrails import is_set
from palaver.service.guardrails import GuardrailService

router = APIRouter(prefix="/v2/guardrails", tags=["Guardrails"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": '`{"error": "Invalid guardrails_id"}` for an id that cannot be one'},
    404: {"model": ErrorBody, "description": '`{"error": "Guardrails not found"}`: unknown or another account\'s'},
    **UNAUTHORIZED,
}


def guardrails(request: Request) -> GuardrailService:
    return request.app.state.guardrails


def _id(value: str) -> str:
    return checked_id(value, lambda: InvalidId("guardrails_id"))


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


async def create(request: Request) -> JSONResponse:
    """A legacy set (`{name, data: [...]}`) or a single guardrail (`{guardrail_name, guardrail_prompt, ...}`)."""
    document = await guardrails(request).create(deps.account_id(request), await parse_object(request))
    if not is_set(document):
        return JSONResponse(document)
    answer = {
        "guardrails_id": document["guardrails_id"],
        "uuid": document["uuid"],
        "guardrails_name": document["name"],
        "status": document["status"],
        "created_at": document["created_at"],
    }
    return JSONResponse(answer)


async def list_all(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 10,
    page: Annotated[int, Query(ge=0, le=1_000_000, description="1-based; 0 is read as 1.")] = 1,
    legacy: Annotated[
        bool | None, Query(description="true: sets only; false: single guardrails only; absent: both")
    ] = None,
    sort: Annotated[str | None, Query(max_length=20, description="asc|ascending for oldest first")] = None,
    name_or_uuid: Annotated[str | None, Query(max_length=200)] = None,
    tags: Annotated[str | None, Query(max_length=4000, description="csv; guardrails carrying any of them")] = None,
    kind: Annotated[str | None, Query(alias="type", max_length=20, description="user | system | all")] = None,
    verbose: Annotated[bool | None, Query(description="Accepted; items are always complete")] = None,
) -> JSONResponse:
    documents: list[dict[str, Any]] = []
    if kind != "system":
        documents = await guardrails(request).list(
            deps.account_id(request), legacy=legacy, name_or_uuid=name_or_uuid, tags=_csv(tags)
        )
    if not newest_first(sort):
        documents.reverse()
    return listing(documents, page=page, limit=limit, first_page=1)


async def list_tags(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
    page: Annotated[int, Query(ge=0, le=1_000_000, description="1-based; 0 is read as 1.")] = 1,
    search: Annotated[str | None, Query(max_length=200)] = None,
) -> JSONResponse:
    """The distinct tags of the account's guardrails: `{tags, total_count}`."""
    names = await guardrails(request).tags(deps.account_id(request), search=search)
    start = max(page - 1, 0) * limit
    return JSONResponse({"tags": names[start : start + limit], "total_count": len(names)})


async def get(request: Request, guardrail_id: str) -> JSONResponse:
    document = await guardrails(request).get(deps.account_id(request), _id(guardrail_id))
    return JSONResponse({"data": document} if is_set(document) else document)


async def patch(request: Request, guardrail_id: str) -> JSONResponse:
    guardrail_id = _id(guardrail_id)
    await guardrails(request).patch(deps.account_id(request), guardrail_id, await parse_json(request))
    return JSONResponse({"message": "Guardrails updated successfully"})


async def delete(request: Request, guardrail_id: str) -> Response:
    await guardrails(request).delete(deps.account_id(request), _id(guardrail_id))
    return no_content()


ITEM = "/{guardrail_id}"
route(
    router,
    "",
    create,
    methods=["POST"],
    summary="Create a guardrail set or a single guardrail",
    responses={
        400: {"model": BadRequestBody, "description": '`{"message": "guardrail_name is required"}`'},
        **UNAUTHORIZED,
    },
)
route(router, "", list_all, methods=["GET"], summary="List guardrails", responses=BAD_QUERY)
route(router, "/tags", list_tags, methods=["GET"], summary="List guardrail tags", responses=BAD_QUERY)
item_routes(
    router,
    ITEM,
    noun="guardrails",
    missing=NOT_FOUND,
    get=get,
    patch=patch,
    delete=delete,
    patch_summary="RFC 6902 JSON Patch",
    patch_responses={200: {"model": MessageBody}, 304: {"description": "The patch changed nothing"}},
)
