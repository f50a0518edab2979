"""Palaver's own OpenAPI document: FastAPI's, plus the `x-api-key` scheme and 401s."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from palaver.api.bodies import BODY_MODELS


def install_openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["apiKey"] = {
            "type": "apiKey",
            "in": "header",
            "name": "x-api-key",
        }
        components = schema["components"].setdefault("schemas", {})
        for model in BODY_MODELS:
            _add_model(components, model)
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith("/v2"):
                continue
            for operation in operations.values():
                operation["security"] = [{"apiKey": []}]
                # FastAPI adds a 422 for parameter validation; Palaver answers those with 400.
                operation.get("responses", {}).pop("422", None)
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]


def _add_model(components: dict[str, Any], model: type[BaseModel]) -> None:
    body = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in body.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = body
