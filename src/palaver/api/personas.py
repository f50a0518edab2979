"""`/v2/personas` and `/v2/pals`: one set of routes, built once per vocabulary.

The two families serve the same objects (domain/personas.py); only the field
names, the `*_type` filter and the id in error bodies differ, which is what the
vocabulary passed to `persona_router` says.
"""

# No `from __future__ import annotations`: the routes are closures whose parameter
# annotations name this call's vocabulary, and FastAPI evaluates them at registration.
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import JSONResponse, Response

from palaver.api import deps
from palaver.api.bodies import parse_json, parse_object, request_body_schema
from palaver.api.resources import (
    checked_id,
    invalid_id_responses,
    item_routes,
    listing,
    newest_first,
    no_content,
    route,
)
from palaver.api.schemas import ErrorBody, MessageBody
from palaver.domain.errors import InvalidId
from palaver.domain.personas import PAL, PERSONA, PersonaDocument
from palaver.domain.vocabulary import Vocabulary
from palaver.service.personas import PersonaService


def personas(request: Request) -> PersonaService:
    return request.app.state.personas


def persona_router(vocabulary: Vocabulary, prefix: str, tag: str) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=[tag])
    id_field = vocabulary.name("persona_id")
    noun = vocabulary.noun.upper() if vocabulary.noun == "pal" else vocabulary.noun.capitalize()
    invalid = invalid_id_responses(id_field)

    def missing() -> InvalidId:
        return InvalidId(id_field)

    async def create(request: Request) -> JSONResponse:
        document = await personas(request).create(deps.account_id(request), await parse_object(request), vocabulary)
        view = vocabulary.render(document)
        name_field = vocabulary.name("persona_name")
        return JSONResponse({id_field: view[id_field], name_field: view[name_field], "created_at": view["created_at"]})

    async def list_all(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 10,
        page: Annotated[int, Query(ge=0, le=1_000_000, description="1-based; 0 is read as 1.")] = 1,
        kind: Annotated[
            Literal["user", "system"] | None, Query(alias=vocabulary.name("persona_type"), description="user | system")
        ] = None,
        sort: Annotated[str | None, Query(max_length=20, description="asc | desc (default: newest first)")] = None,
    ) -> JSONResponse:
        documents = await personas(request).list(deps.account_id(request), persona_type=kind)
        if not newest_first(sort):
            documents.reverse()
        return listing([vocabulary.render(d) for d in documents], page=page, limit=limit, first_page=1)

    async def get(request: Request, resource_id: Annotated[str, Path(alias=id_field)]) -> JSONResponse:
        checked_id(resource_id, missing)
        document = await personas(request).document(deps.account_id(request), resource_id, vocabulary)
        return JSONResponse(vocabulary.render(document))

    async def patch(request: Request, resource_id: Annotated[str, Path(alias=id_field)]) -> JSONResponse:
        checked_id(resource_id, missing)
        operations = await parse_json(request)
        document = await personas(request).patch(deps.account_id(request), resource_id, operations, vocabulary)
        return JSONResponse(vocabulary.render(document))

    async def delete(request: Request, resource_id: Annotated[str, Path(alias=id_field)]) -> Response:
        checked_id(resource_id, missing)
        await personas(request).delete(deps.account_id(request), resource_id, vocabulary)
        return no_content()

    item = "/{" + id_field + "}"
    route(
        router,
        "",
        create,
        methods=["POST"],
        summary=f"Create {noun}",
        openapi_extra=request_body_schema(PersonaDocument) if vocabulary is PERSONA else None,
        responses={400: {"model": ErrorBody}, **invalid},
    )
    route(router, "", list_all, methods=["GET"], summary=f"List {noun}s", responses=invalid)
    item_routes(
        router,
        item,
        noun=noun,
        missing=invalid,
        get=get,
        patch=patch,
        delete=delete,
        patch_summary="RFC 6902 JSON Patch",
        patch_responses={
            304: {"description": "The patch changed nothing"},
            422: {"model": MessageBody, "description": '`{"message": "Invalid JSON patch format"}`'},
        },
    )
    return router


def routers() -> list[APIRouter]:
    return [persona_router(PERSONA, "/v2/personas", "Personas"), persona_router(PAL, "/v2/pals", "PALs")]


__all__: list[Any] = ["routers"]
