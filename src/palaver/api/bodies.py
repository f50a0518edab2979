"""JSON request bodies, parsed the way Tavus clients send them.

Bodies are read as JSON whatever the Content-Type says (curl's `-d` sends a
form type; some clients send none), an empty body is an empty object, and every
failure is a `RequestValidationError`, which `errors.py` turns into a 400.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


async def parse_json(request: Request, *, empty: Any = None) -> Any:
    """The body as any JSON value (`empty` when there is none), NUL-free, or a 400."""
    raw = await request.body()
    data: Any = empty
    if raw.strip():
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": "invalid JSON"}]) from None
        except RecursionError:
            raise RequestValidationError(
                [{"type": "value_error", "loc": ("body",), "msg": "Request body is nested too deeply"}]
            ) from None
    where = nul_path(data)
    if where is not None:
        raise RequestValidationError(
            [{"type": "string_type", "loc": ("body", *where), "msg": "must not contain the NUL character (U+0000)"}]
        )
    return data


async def parse_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object (an empty body is `{}`), or a 400."""
    data = await parse_json(request, empty={})
    if not isinstance(data, dict):
        raise RequestValidationError([{"type": "model_type", "loc": ("body",), "msg": "not an object"}])
    return data


async def parse_body(request: Request, model: type[M]) -> M:
    data = await parse_object(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None


def nul_path(value: Any) -> tuple[str | int, ...] | None:
    """Where a string (or a key) holds U+0000, if anywhere (walked without recursion: bodies nest deep).

    JSON allows it (as `\\u0000`), but PostgreSQL text cannot store it, so a body
    with one is refused on every backend alike, before anything is stored.
    """
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    return (*path, key)
                stack.append(((*path, key), child))
        elif isinstance(item, list):
            stack.extend(((*path, index), child) for index, child in enumerate(item))
    return None


BODY_MODELS: list[type[BaseModel]] = []


def request_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` describing a body the route parses itself; openapi.py adds the model's schema."""
    if model not in BODY_MODELS:
        BODY_MODELS.append(model)
    return {
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        },
    }
