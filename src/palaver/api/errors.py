"""The one place where errors become Tavus status codes and bodies.

Tavus's error bodies are not uniform (reference 1.2): most 400s carry `error`,
the concurrency limit and the 401 carry `message`. Every error Palaver answers,
including framework ones (bad JSON, unknown route, wrong method), is JSON in one
of these shapes; nothing ever leaks a stack trace.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from palaver.api.fastpath import is_one_segment
from palaver.domain.errors import (
    ConcurrencyLimitReached,
    InvalidBody,
    InvalidId,
    InvalidPatch,
    NotModified,
    PalaverError,
    ResourceNotFound,
)
from palaver.service.resources import ChangeConflict

log = logging.getLogger("palaver.api")

INVALID_ACCESS_TOKEN = {"message": "Invalid access token"}


def error(status: int, text: str) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=status)


def message(status: int, text: str) -> JSONResponse:
    return JSONResponse({"message": text}, status_code=status)


def _describe(exc: RequestValidationError) -> str:
    """A short human sentence from Pydantic's error list: `field: problem; ...`."""
    parts = []
    for err in exc.errors()[:5]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        kind = err.get("type", "")
        if kind == "json_invalid":
            parts.append("Request body is not valid JSON")
            continue
        if kind in ("model_attributes_type", "dict_type", "model_type") and not loc:
            parts.append("Request body must be a JSON object")
            continue
        where = ".".join(loc)
        text = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {text}" if where else text)
    return "; ".join(parts) or "Invalid request"


async def _palaver_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, PalaverError)
    if isinstance(exc, ConcurrencyLimitReached):  # Tavus uses `message` for this one
        return message(400, exc.message)
    if isinstance(exc, InvalidBody):
        return message(400, exc.message)
    if isinstance(exc, ResourceNotFound):
        return JSONResponse({exc.key: exc.message}, status_code=404)
    if isinstance(exc, InvalidPatch):
        return JSONResponse({exc.key: exc.message}, status_code=exc.status)
    if isinstance(exc, NotModified):
        # The reference gives a `message` body, but a 304 carries none (RFC 9110 15.4.5):
        # servers and clients drop it, so Palaver sends the status alone (docs/decisions.md).
        return Response(status_code=304)
    if isinstance(exc, ChangeConflict):
        return error(409, exc.message)
    return error(400, exc.message)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error(400, _describe(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404 and request.method in ("GET", "DELETE") and is_one_segment(request.scope):
        # `/v2/conversations/..%2Fx`: one segment, so an id (with an encoded
        # slash), not an unknown route.
        return error(400, InvalidId("conversation_id").message)
    texts = {404: "Not found", 405: "Method not allowed", 413: "Request body too large"}
    text = texts.get(exc.status_code) or str(exc.detail)
    response = error(exc.status_code, text)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error(500, "Internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PalaverError, _palaver_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
