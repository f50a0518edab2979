"""What the resource routes share: both slash spellings, paging, ids, JSON answers.

The official SDK sends some collection paths with a trailing slash
(`/v2/guardrails/`, `/v2/pals/{id}/tools/`) and counts any 3xx as success
without following it, so a redirect would turn a refused request into a silent
"success". Every route registered through `route` answers both spellings
directly; the app turns Starlette's slash redirects off altogether.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter
from starlette.responses import JSONResponse, Response

from palaver.api.schemas import ErrorBody, MessageBody
from palaver.domain.errors import PalaverError
from palaver.domain.ids import is_resource_id
from palaver.domain.paging import page_of

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": MessageBody, "description": "Missing or invalid x-api-key"}
}


def invalid_id_responses(field: str) -> dict[int | str, dict[str, Any]]:
    """The classic resources' answer to an unknown, malformed or foreign id (reference 1.2)."""
    return {
        400: {"model": ErrorBody, "description": f'Unknown, malformed or foreign id: `{{"error": "Invalid {field}"}}`'},
        **UNAUTHORIZED,
    }


def route(
    router: APIRouter,
    path: str,
    endpoint: Callable[..., Any],
    *,
    methods: list[str],
    both_slashes: bool = True,
    **kwargs: Any,
) -> None:
    """Register `endpoint` at `path` and, unless told otherwise, at `path/` too (described once)."""
    router.add_api_route(path, endpoint, methods=methods, **kwargs)
    if both_slashes:
        other = path[:-1] if path.endswith("/") else path + "/"
        router.add_api_route(other, endpoint, methods=methods, include_in_schema=False, **kwargs)


def checked_id(value: str, missing: Callable[[], PalaverError]) -> str:
    """A path id, refused before any lookup when it cannot be one (too long, odd characters)."""
    if not is_resource_id(value):
        raise missing()
    return value


def listing(
    items: Sequence[Any], *, page: int, limit: int, first_page: int, extra: dict[str, Any] | None = None
) -> JSONResponse:
    """`{data, total_count}` for one page of `items` (total_count counts every match, not the page)."""
    body: dict[str, Any] = {"data": page_of(items, page, limit, first_page), "total_count": len(items)}
    if extra:
        body.update(extra)
    return JSONResponse(body)


def newest_first(sort: str | None) -> bool:
    """`sort` as clients send it: asc/ascending for oldest first, anything else newest first."""
    return (sort or "").lower() not in ("asc", "ascending")


def no_content() -> Response:
    return Response(status_code=204)


def item_routes(
    router: APIRouter,
    item: str,
    *,
    noun: str,
    missing: dict[int | str, dict[str, Any]],
    get: Callable[..., Any] | None = None,
    patch: Callable[..., Any] | None = None,
    delete: Callable[..., Any] | None = None,
    patch_summary: str = "",
    patch_responses: dict[int | str, dict[str, Any]] | None = None,
) -> None:
    """GET, PATCH and DELETE of one object, registered alike for every resource (no trailing-slash twin:
    the SDK sends item paths without one). DELETE answers 204 with an empty body."""
    if get is not None:
        route(router, item, get, methods=["GET"], summary=f"Get {noun}", both_slashes=False, responses=missing)
    if patch is not None:
        summary = f"Patch {noun}" + (f" ({patch_summary})" if patch_summary else "")
        answers = {**(patch_responses or {}), **missing}
        route(router, item, patch, methods=["PATCH"], summary=summary, both_slashes=False, responses=answers)
    if delete is not None:
        route(router, item, delete, methods=["DELETE"], summary=f"Delete {noun}", both_slashes=False,
              status_code=204, response_class=Response, responses=missing)  # fmt: skip
