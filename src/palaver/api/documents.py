"""`/v2/documents`: the knowledge base's HTTP surface (reference 10; rules in service/documents.py).

Query parameters are read as text and checked here, so that a bad one gets
Tavus's own wording (`Invalid request: limit must be a positive integer`)
rather than the framework's. Pages count from 0 (reference 1.4).
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at registration.
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from palaver.api import deps
from palaver.api.bodies import parse_object, request_body_schema
from palaver.api.resources import UNAUTHORIZED, checked_id, no_content, route
from palaver.api.schemas import ErrorBody, MessageBody
from palaver.domain.documents import CreateDocument, PatchDocument, RecrawlDocument
from palaver.domain.errors import ValidationFailed
from palaver.domain.paging import MAX_LIMIT, page_of
from palaver.service.documents import DocumentFilter, DocumentService, RecrawlConflict, TooManyRequests, missing

router = APIRouter(prefix="/v2/documents", tags=["Documents"])

BAD = {400: {"model": ErrorBody, "description": 'A malformed body or query: `{"error": "Invalid request: ..."}`'}}
# Item routes: 404 for an unknown id, and 400 for a malformed query parameter (`verbose`, ...).
NOT_FOUND = {404: {"model": MessageBody, "description": '`{"message": "Document not found"}`'}, **BAD, **UNAUTHORIZED}
LIMITED = {429: {"model": ErrorBody, "description": "Crawl document limit, concurrent crawls or recrawl cooldown"}}
MAX_CHUNK_LIMIT = 1000


def documents(request: Request) -> DocumentService:
    return request.app.state.documents


def _integer(value: str | None, default: int, name: str, *, minimum: int, wording: str) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise ValidationFailed(f"Invalid request: {name} must be {wording}")
    return number


def _limit(value: str | None, default: int, cap: int = MAX_LIMIT) -> int:
    return min(_integer(value, default, "limit", minimum=1, wording="a positive integer"), cap)


def _offset(value: str | None, name: str) -> int:
    return _integer(value, 0, name, minimum=0, wording="a non-negative integer")


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _newest_first(sort: str | None) -> bool:
    """Tavus's default is ascending (oldest first); `desc`/`descending` turns it round."""
    value = (sort or "ascending").strip().lower()
    if value in ("asc", "ascending"):
        return False
    if value in ("desc", "descending"):
        return True
    raise ValidationFailed("Invalid request: sort must be ascending or descending")


def _id(document_id: str) -> str:
    return checked_id(document_id, missing)


async def create(request: Request) -> JSONResponse:
    try:
        document = await documents(request).create(deps.account_id(request), await parse_object(request))
    except TooManyRequests as exc:
        return JSONResponse({"error": exc.message}, status_code=429)
    return JSONResponse(document)


async def list_documents(
    request: Request,
    page: Annotated[str | None, Query(max_length=20, description="0-based page (default 0).")] = None,
    limit: Annotated[str | None, Query(max_length=20, description="Page size (default 10).")] = None,
    sort: Annotated[str | None, Query(max_length=20, description="ascending (default) | descending")] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    name_or_uuid: Annotated[str | None, Query(max_length=500)] = None,
    tags: Annotated[str | None, Query(max_length=5000, description="Comma-separated; any of them.")] = None,
    participant_tags: Annotated[str | None, Query(max_length=5000)] = None,
    scope: Annotated[str | None, Query(max_length=50, description="Accepted, not used.")] = None,
    verbose: Annotated[str | None, Query(max_length=10, description="Accepted; lists are always complete.")] = None,
) -> JSONResponse:
    size = _limit(limit, 10)
    number = _offset(page, "page")
    where = DocumentFilter(status or None, name_or_uuid, _csv(tags), _csv(participant_tags))
    found = await documents(request).list(deps.account_id(request), where, newest_first=_newest_first(sort))
    body = {"data": page_of(found, number, size, 0), "total_count": len(found), "page": number, "limit": size}
    return JSONResponse(body)


async def list_tags(
    request: Request,
    search: Annotated[str | None, Query(max_length=200)] = None,
    page: Annotated[str | None, Query(max_length=20, description="0-based page (default 0).")] = None,
    limit: Annotated[str | None, Query(max_length=20, description="Page size (default 100).")] = None,
) -> JSONResponse:
    size = _limit(limit, 100)
    number = _offset(page, "page")
    tags = await documents(request).tags(deps.account_id(request), search)
    return JSONResponse({"tags": page_of(tags, number, size, 0), "total_count": len(tags)})


async def get(
    request: Request,
    document_id: str,
    verbose: Annotated[str | None, Query(max_length=10, description="Accepted; the object is always complete.")] = None,
) -> JSONResponse:
    return JSONResponse(await documents(request).get(deps.account_id(request), _id(document_id)))


async def patch(request: Request, document_id: str) -> JSONResponse:
    service, account = documents(request), deps.account_id(request)
    return JSONResponse(await service.update(account, _id(document_id), await parse_object(request)))


async def delete(request: Request, document_id: str) -> Response:
    account = deps.account_id(request)
    await documents(request).delete(account, _id(document_id))
    await request.app.state.personas.detach(account, "document_ids", document_id)
    return no_content()


async def recrawl(request: Request, document_id: str) -> JSONResponse:
    service, account = documents(request), deps.account_id(request)
    document_id = _id(document_id)
    try:
        document = await service.recrawl(account, document_id, await parse_object(request))
    except RecrawlConflict as exc:
        return JSONResponse({"error": exc.message}, status_code=409)
    except TooManyRequests as exc:
        return JSONResponse({"error": exc.message}, status_code=429)
    return JSONResponse(document, status_code=202)


async def chunks(
    request: Request,
    document_id: str,
    collection: Annotated[str | None, Query(max_length=50, description="Accepted (`regular`).")] = None,
    limit: Annotated[str | None, Query(max_length=20, description="Chunks per page (default 100).")] = None,
    offset: Annotated[str | None, Query(max_length=20)] = None,
) -> JSONResponse:
    service, account = documents(request), deps.account_id(request)
    size, start = _limit(limit, 100, MAX_CHUNK_LIMIT), _offset(offset, "offset")
    found, total = await service.chunk_page(account, _id(document_id), limit=size, offset=start)
    rows: list[dict[str, Any]] = [
        {"chunk_id": f"{c.document_id}-{c.index}", "document_id": c.document_id, "index": c.index,
         "content": c.content, "text": c.content}
        for c in found
    ]  # fmt: skip
    return JSONResponse({"chunks": rows, "total_count": total, "limit": size, "offset": start})


# `/tags` before `/{document_id}`: routes match in the order they are added.
route(router, "", create, methods=["POST"], summary="Create Document",
      openapi_extra=request_body_schema(CreateDocument), responses={**BAD, **LIMITED, **UNAUTHORIZED})  # fmt: skip
route(router, "", list_documents, methods=["GET"], summary="List Documents", responses={**BAD, **UNAUTHORIZED})
route(router, "/tags", list_tags, methods=["GET"], summary="List Document Tags", responses={**BAD, **UNAUTHORIZED})
item = "/{document_id}"
route(router, item, get, methods=["GET"], summary="Get Document", both_slashes=False, responses=NOT_FOUND)
route(router, item, patch, methods=["PATCH"], summary="Update Document (name, tags)", both_slashes=False,
      openapi_extra=request_body_schema(PatchDocument), responses={**BAD, **NOT_FOUND})  # fmt: skip
route(router, item, delete, methods=["DELETE"], summary="Delete Document", both_slashes=False, status_code=204,
      response_class=Response, responses=NOT_FOUND)  # fmt: skip
route(router, f"{item}/recrawl", recrawl, methods=["POST"], summary="Recrawl Document", status_code=202,
      openapi_extra=request_body_schema(RecrawlDocument),
      responses={**BAD, 409: {"model": ErrorBody}, **LIMITED, **NOT_FOUND})  # fmt: skip
route(router, f"{item}/chunks", chunks, methods=["GET"], summary="List Document Chunks", responses={**BAD, **NOT_FOUND})
