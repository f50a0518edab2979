"""`/v2/deployments`: create (200), list (pages from 0, `total`), get (with an ETag), patch, delete.

Create answers 200, as Tavus documents it. The list counts pages from 0 (the
SDK asks for page 0 first) and carries its count as `total`, which the SDK
reads, and as `total_count`, which every other Palaver list carries. `limit`
goes up to 1000: the SDK's own recipe asks for 200. The item answers carry
`ETag` (weak, from `updated_at`); a PATCH with a stale `If-Match` is 412.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at registration.
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from palaver.api import deps
from palaver.api.bodies import parse_json, parse_object
from palaver.api.resources import UNAUTHORIZED, checked_id, item_routes, listing, newest_first, no_content, route
from palaver.api.schemas import ErrorBody, MessageBody
from palaver.domain.paging import MAX_LIMIT
from palaver.service.deployments import DeploymentService, PreconditionFailed, etag, not_found

router = APIRouter(prefix="/v2/deployments", tags=["Deployments"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": '`{"error": "Deployment not found"}`'},
    **UNAUTHORIZED,
}
INVALID: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": '`{"error": "Invalid request: ..."}` or `{"error": "Invalid pal_id"}`'},
}


def deployments(request: Request) -> DeploymentService:
    return request.app.state.deployments


def _id(value: str) -> str:
    return checked_id(value, not_found)


def _with_etag(document: dict[str, Any]) -> JSONResponse:
    return JSONResponse(document, headers={"ETag": etag(document)})


async def create(request: Request) -> JSONResponse:
    """`{pal_id, channel, status?, name?, allowed_origins?, limits?, customization?}` -> 200 with the deployment."""
    document = await deployments(request).create(deps.account_id(request), await parse_object(request))
    return _with_etag(document)


async def list_all(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (1-1000).")] = 10,
    page: Annotated[int, Query(ge=0, le=1_000_000, description="0-based.")] = 0,
    pal_id: Annotated[str | None, Query(max_length=64, description="Only this PAL's deployments.")] = None,
    channel: Annotated[Literal["landing-page", "embed", "widget"] | None, Query()] = None,
    status: Annotated[Literal["draft", "active", "inactive"] | None, Query()] = None,
    sort: Annotated[Literal["asc", "desc"], Query(description="By creation: desc (default) or asc")] = "desc",
) -> JSONResponse:
    documents = await deployments(request).list(deps.account_id(request), pal_id=pal_id, channel=channel,
                                                status=status)  # fmt: skip
    if not newest_first(sort):
        documents.reverse()
    return listing(documents, page=page, limit=limit, first_page=0,
                   extra={"total": len(documents), "page": page, "limit": limit})  # fmt: skip


async def get(request: Request, deployment_id: str) -> JSONResponse:
    return _with_etag(await deployments(request).get(deps.account_id(request), _id(deployment_id)))


async def patch(request: Request, deployment_id: str) -> Response:
    deployment_id = _id(deployment_id)
    try:
        document = await deployments(request).patch(
            deps.account_id(request),
            deployment_id,
            await parse_json(request),
            if_match=request.headers.get("if-match"),
        )
    except PreconditionFailed as exc:
        return JSONResponse({"error": exc.message}, status_code=412)
    return _with_etag(document)


async def delete(request: Request, deployment_id: str) -> Response:
    await deployments(request).delete(deps.account_id(request), _id(deployment_id))
    return no_content()


route(
    router,
    "",
    create,
    methods=["POST"],
    summary="Create deployment",
    responses={**INVALID, **UNAUTHORIZED},
)
BAD_QUERY: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A query parameter out of range"},
    **UNAUTHORIZED,
}
route(router, "", list_all, methods=["GET"], summary="List deployments (pages from 0)", responses=BAD_QUERY)
item_routes(
    router,
    "/{deployment_id}",
    noun="deployment",
    missing=NOT_FOUND,
    get=get,
    patch=patch,
    delete=delete,
    patch_summary="RFC 6902 JSON Patch, or a JSON merge patch object",
    patch_responses={
        **INVALID,
        412: {"model": ErrorBody, "description": "`If-Match` names another version"},
        422: {"model": MessageBody, "description": '`{"message": "Invalid JSON patch format"}`'},
    },
)
