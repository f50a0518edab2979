"""`/v2/replacements` and `/v2/lipsync`: endpoints Tavus no longer supports (reference 2, 13).

Tavus's own reference marks them "no longer supported", so Palaver answers
every documented method on them with 410 Gone and
`{"error": "The <what> endpoint is no longer supported"}`, after authentication like any
`/v2` route (a missing key is still 401 first). A client learns at once that
the feature is gone, instead of polling for a job that will never run.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter
from starlette.responses import JSONResponse

from palaver.api.resources import UNAUTHORIZED, route
from palaver.api.schemas import ErrorBody

# In /openapi.json as deprecated operations whose only answer is 410, so the schema describes every
# path Palaver serves.
router = APIRouter(tags=["Deprecated"])

GONE: dict[int | str, dict[str, Any]] = {410: {"model": ErrorBody, "description": "No longer supported"},
                                         **UNAUTHORIZED}  # fmt: skip


def gone(what: str) -> Callable[..., Coroutine[Any, Any, JSONResponse]]:
    async def answer() -> JSONResponse:
        return JSONResponse({"error": f"The {what} endpoint is no longer supported"}, status_code=410)

    return answer


for _path, _what, _id in (
    ("/v2/replacements", "replacements", "replacement_id"),
    ("/v2/lipsync", "lipsync", "lipsync_id"),
):
    _answer = gone(_what)
    for _methods, _summary in ((["POST"], "Create"), (["GET"], "List")):
        route(router, _path, _answer, methods=_methods, summary=f"{_summary} {_what} (no longer supported)",
              deprecated=True, status_code=410, responses=GONE)  # fmt: skip
    for _methods, _summary in ((["GET"], "Get"), (["DELETE"], "Delete")):
        route(router, f"{_path}/{{{_id}}}", _answer, methods=_methods, both_slashes=False, deprecated=True,
              summary=f"{_summary} {_what} (no longer supported)", status_code=410, responses=GONE)  # fmt: skip
