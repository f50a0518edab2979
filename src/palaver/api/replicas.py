"""`/v2/replicas` and `/v2/faces`: one set of routes, built once per vocabulary.

Training (`POST`) lives in api/replica_training.py; these are the reads, the
rename and the delete every replica has.
"""

# No `from __future__ import annotations`: the routes are closures whose parameter
# annotations name this call's vocabulary, and FastAPI evaluates them at registration.
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import JSONResponse, Response

from palaver.api import deps
from palaver.api.bodies import parse_object
from palaver.api.resources import checked_id, invalid_id_responses, listing, route
from palaver.domain.errors import InvalidId
from palaver.domain.replicas import FACE, REPLICA
from palaver.domain.vocabulary import Vocabulary
from palaver.service.replicas import ReplicaService


def replicas(request: Request) -> ReplicaService:
    return request.app.state.replicas


def replica_router(vocabulary: Vocabulary, prefix: str, tag: str) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=[tag])
    id_field = vocabulary.name("replica_id")
    noun = vocabulary.noun.capitalize()
    invalid = invalid_id_responses(id_field)

    def missing() -> InvalidId:
        return InvalidId(id_field)

    async def list_all(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 10,
        page: Annotated[int, Query(ge=0, le=1_000_000, description="1-based; 0 is read as 1.")] = 1,
        kind: Annotated[
            Literal["user", "system"] | None, Query(alias=vocabulary.name("replica_type"), description="user | system")
        ] = None,
        ids: Annotated[
            str | None,
            Query(alias=vocabulary.name("replica_id") + "s", max_length=10_000, description="Comma-separated"),
        ] = None,
        model_name: Annotated[str | None, Query(max_length=64)] = None,
        verbose: Annotated[bool, Query(description=f"Include {vocabulary.name('replica_type')}.")] = False,
    ) -> JSONResponse:
        wanted = {i.strip() for i in ids.split(",") if i.strip()} if ids else None
        documents = await replicas(request).list(
            deps.account_id(request),
            vocabulary,
            replica_type=kind,
            replica_ids=wanted,
            model_name=model_name,
            verbose=verbose,
        )
        return listing(documents, page=page, limit=limit, first_page=1)

    async def get(
        request: Request,
        resource_id: Annotated[str, Path(alias=id_field)],
        verbose: Annotated[bool, Query(description=f"Include {vocabulary.name('replica_type')}.")] = False,
    ) -> JSONResponse:
        checked_id(resource_id, missing)
        return JSONResponse(
            await replicas(request).get(deps.account_id(request), resource_id, vocabulary, verbose=verbose)
        )

    async def rename(request: Request, resource_id: Annotated[str, Path(alias=id_field)]) -> JSONResponse:
        checked_id(resource_id, missing)
        body = await parse_object(request)
        name = body.get(vocabulary.name("replica_name"))
        return JSONResponse(await replicas(request).rename(deps.account_id(request), resource_id, name, vocabulary))

    async def delete(
        request: Request,
        resource_id: Annotated[str, Path(alias=id_field)],
        hard: Annotated[bool, Query(description="Also purge the training footage and thumbnail.")] = False,
    ) -> Response:
        checked_id(resource_id, missing)
        await replicas(request).delete(deps.account_id(request), resource_id, vocabulary, hard=hard)
        return Response(status_code=200)

    item = "/{" + id_field + "}"
    route(router, "", list_all, methods=["GET"], summary=f"List {noun}s", responses=invalid)
    route(router, item, get, methods=["GET"], summary=f"Get {noun}", both_slashes=False, responses=invalid)
    route(router, item + "/name", rename, methods=["PATCH"], summary=f"Rename {noun}", responses=invalid)
    route(
        router,
        item,
        delete,
        methods=["DELETE"],
        summary=f"Delete {noun}",
        both_slashes=False,
        response_class=Response,
        responses={200: {"description": "Deleted: empty body"}, **invalid},
    )
    return router


def routers() -> list[APIRouter]:
    return [replica_router(REPLICA, "/v2/replicas", "Replicas"), replica_router(FACE, "/v2/faces", "Faces")]
