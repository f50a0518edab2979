"""`/v2/memory-stores` and `DELETE /v2/memories/{memory_store}/{memory_id}` (reference 11).

A store is addressed by the key conversations name it with. Another account's
store answers 404 like an unknown one, not the 403 of the reference: a 403
would tell a caller that someone else uses that key.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from palaver.api import deps
from palaver.api.objectives import BAD_QUERY
from palaver.api.resources import UNAUTHORIZED, item_routes, listing, newest_first, no_content, route
from palaver.api.schemas import MessageBody
from palaver.service.memories import MemoryService

router = APIRouter(tags=["Memories"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": MessageBody, "description": "Unknown store or memory, or another account's"},
    **UNAUTHORIZED,
}


def memories(request: Request) -> MemoryService:
    return request.app.state.memories


async def list_stores(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size (1-100).")] = 10,
    page: Annotated[int, Query(ge=0, le=1_000_000, description="1-based; 0 is read as 1.")] = 1,
    sort: Annotated[str | None, Query(max_length=20, description="asc|ascending for oldest first")] = None,
) -> JSONResponse:
    stores = await memories(request).list(deps.account_id(request))
    if not newest_first(sort):
        stores.reverse()
    return listing(stores, page=page, limit=limit, first_page=1)


async def get_store(request: Request, memory_store_id: str) -> JSONResponse:
    return JSONResponse(await memories(request).get(deps.account_id(request), memory_store_id))


async def delete_store(request: Request, memory_store_id: str) -> Response:
    await memories(request).delete_store(deps.account_id(request), memory_store_id)
    return no_content()


async def delete_memory(request: Request, memory_store: str, memory_id: str) -> Response:
    await memories(request).delete_memory(deps.account_id(request), memory_store, memory_id)
    return no_content()


STORE = "/v2/memory-stores/{memory_store_id}"
route(router, "/v2/memory-stores", list_stores, methods=["GET"], summary="List memory stores", responses=BAD_QUERY)
item_routes(router, STORE, noun="memory store", missing=NOT_FOUND, get=get_store, delete=delete_store)
item_routes(router, "/v2/memories/{memory_store}/{memory_id}", noun="memory", missing=NOT_FOUND, delete=delete_memory)
