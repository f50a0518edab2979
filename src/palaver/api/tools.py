"""`/v2/tools`: the account's tool registry.

Create takes the SDK's `ToolCreate` body, PATCH a plain partial object (the
SDK's `ToolUpdate`, not JSON Patch); every answer is a tool row with its
secrets scrubbed (domain/tools.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from palaver.api import deps
from palaver.api.bodies import parse_object, request_body_schema
from palaver.api.resources import UNAUTHORIZED, checked_id, listing, newest_first, no_content, route
from palaver.api.schemas import ErrorBody
from palaver.domain.tools import ToolDelivery, ToolDocument, public_row
from palaver.service.tools import ToolService, tool_not_found

router = APIRouter(prefix="/v2/tools", tags=["Tools"])

BAD_BODY: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body breaks a tool rule"},
    413: {"model": ErrorBody, "description": "Body over 1 MiB"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": 'Unknown, malformed or foreign id: `{"error": "Tool not found"}`'},
    **UNAUTHORIZED,
}


class ToolUpdate(BaseModel):
    """Body of `PATCH /v2/tools/{tool_id}`: any of these fields; each given one replaces the stored value.

    `on_call`, `on_resolve` and `static_filler` may be set to null; the result must still be a valid tool.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(None, max_length=64)
    description: str = Field(None, min_length=1)
    parameters: dict[str, Any] = Field(None)
    delivery: ToolDelivery = Field(None)
    origin: Literal["llm", "vision", "audio"] = Field(None)
    on_call: Literal["generate_filler", "static_filler", "silent", "passthrough"] | None = None
    on_resolve: Literal["generate_response", "response_in_result", "add_to_context", "fire_and_forget"] | None = None
    static_filler: str | None = Field(None, max_length=1000)
    tags: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(None, max_length=50)


def tools(request: Request) -> ToolService:
    return request.app.state.tools


async def create(request: Request) -> JSONResponse:
    document = await tools(request).create(deps.account_id(request), await parse_object(request))
    return JSONResponse(public_row(document))


async def list_all(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 10,
    page: Annotated[int, Query(ge=0, le=1_000_000, description="1-based; 0 is read as 1.")] = 1,
    tool_type: Annotated[Literal["user", "system", "all"], Query(alias="type", description="user | system | all")] = (
        "user"
    ),
    sort: Annotated[str | None, Query(max_length=20, description="asc | desc (default: newest first)")] = None,
    name_or_uuid: Annotated[
        str | None, Query(max_length=256, description="A tool_id, or part of a name (any case).")
    ] = None,
) -> JSONResponse:
    documents = await tools(request).list(deps.account_id(request), tool_type=tool_type, name_or_uuid=name_or_uuid)
    if not newest_first(sort):
        documents.reverse()
    return listing([public_row(d) for d in documents], page=page, limit=limit, first_page=1)


async def get(request: Request, tool_id: str) -> JSONResponse:
    checked_id(tool_id, tool_not_found)
    return JSONResponse(public_row(await tools(request).get(deps.account_id(request), tool_id)))


async def patch(request: Request, tool_id: str) -> JSONResponse:
    checked_id(tool_id, tool_not_found)
    changes = await parse_object(request)
    return JSONResponse(public_row(await tools(request).update(deps.account_id(request), tool_id, changes)))


async def delete(request: Request, tool_id: str) -> Response:
    checked_id(tool_id, tool_not_found)
    await tools(request).delete(deps.account_id(request), tool_id)
    return no_content()


ITEM = "/{tool_id}"
route(router, "", create, methods=["POST"], summary="Create Tool",
      openapi_extra=request_body_schema(ToolDocument), responses={**BAD_BODY, **UNAUTHORIZED})  # fmt: skip
route(router, "", list_all, methods=["GET"], summary="List Tools", responses={**BAD_BODY, **UNAUTHORIZED})
route(router, ITEM, get, methods=["GET"], summary="Get Tool", both_slashes=False, responses=NOT_FOUND)
route(router, ITEM, patch, methods=["PATCH"], summary="Update Tool (partial object)", both_slashes=False,
      openapi_extra=request_body_schema(ToolUpdate), responses={**BAD_BODY, **NOT_FOUND})  # fmt: skip
route(router, ITEM, delete, methods=["DELETE"], summary="Delete Tool (detaches it from every PAL)",
      both_slashes=False, status_code=204, response_class=Response, responses=NOT_FOUND)  # fmt: skip
