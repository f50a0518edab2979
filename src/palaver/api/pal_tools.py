"""`/v2/pals/{pal_id}/tools/`: the tools attached to a PAL (also under `/v2/personas/{persona_id}/tools/`).

The SDK sends the collection with a trailing slash and the item without;
both spellings of the collection are served (api/resources.py).
"""

# No `from __future__ import annotations`: the routes are closures built per vocabulary,
# and FastAPI evaluates their annotations at registration.
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from palaver.api import deps
from palaver.api.bodies import parse_body, request_body_schema
from palaver.api.resources import checked_id, invalid_id_responses, no_content, route
from palaver.api.schemas import ErrorBody
from palaver.domain.errors import InvalidId
from palaver.domain.personas import MAX_LIST, PAL, PERSONA
from palaver.domain.tools import public_row
from palaver.domain.vocabulary import Vocabulary
from palaver.service.pal_capabilities import PalCapabilities


class AttachTools(BaseModel):
    """Body of `POST /v2/pals/{pal_id}/tools/`: 1 to 50 ids of the account's tools."""

    model_config = ConfigDict(extra="forbid", strict=True)

    tool_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(min_length=1, max_length=MAX_LIST)


def capabilities(request: Request) -> PalCapabilities:
    return request.app.state.pal_capabilities


def rows(documents: list[dict[str, Any]]) -> JSONResponse:
    data = [public_row(document) for document in documents]
    return JSONResponse({"data": data, "total_count": len(data)})


def pal_tools_router(vocabulary: Vocabulary, prefix: str, tag: str) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=[tag])
    id_field = vocabulary.name("persona_id")
    noun = "PAL" if vocabulary is PAL else "Persona"
    invalid = invalid_id_responses(id_field)
    not_attached: dict[int | str, dict[str, Any]] = {
        404: {"model": ErrorBody, "description": f"The tool is not attached to this {vocabulary.noun}"},
    }

    def missing() -> InvalidId:
        return InvalidId(id_field)

    async def list_tools(request: Request, resource_id: Annotated[str, Path(alias=id_field)]) -> JSONResponse:
        checked_id(resource_id, missing)
        return rows(await capabilities(request).tools_of(deps.account_id(request), resource_id, vocabulary))

    async def attach(request: Request, resource_id: Annotated[str, Path(alias=id_field)]) -> JSONResponse:
        checked_id(resource_id, missing)
        body = await parse_body(request, AttachTools)
        account = deps.account_id(request)
        return rows(await capabilities(request).attach_tools(account, resource_id, body.tool_ids, vocabulary))

    async def detach(request: Request, resource_id: Annotated[str, Path(alias=id_field)], tool_id: str) -> Response:
        checked_id(resource_id, missing)
        # The tool id is only looked for in the PAL's list, never in storage: no format check needed.
        account = deps.account_id(request)
        await capabilities(request).detach_tool(account, resource_id, tool_id, vocabulary)
        return no_content()

    collection = "/{" + id_field + "}/tools"
    route(router, collection, list_tools, methods=["GET"], summary=f"List {noun} Tools", responses=invalid)
    route(router, collection, attach, methods=["POST"], summary=f"Attach Tools to {noun}",
          openapi_extra=request_body_schema(AttachTools), responses=invalid)  # fmt: skip
    route(router, collection + "/{tool_id}", detach, methods=["DELETE"], summary=f"Detach Tool from {noun}",
          both_slashes=False, status_code=204, response_class=Response,
          responses={**invalid, **not_attached})  # fmt: skip
    return router


def routers() -> list[APIRouter]:
    return [pal_tools_router(PAL, "/v2/pals", "PALs"), pal_tools_router(PERSONA, "/v2/personas", "Personas")]
