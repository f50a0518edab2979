"""Palaver's own OpenAPI document: FastAPI's, plus the `x-api-key` scheme and 401s."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from palaver.api.bodies import BODY_MODELS
from palaver.api.schemas import ErrorBody, MessageBody

END_PATH = "/v2/conversations/{conversation_id}/end"


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
        schema.setdefault("paths", {})[END_PATH] = _end_operation()
        components = schema["components"].setdefault("schemas", {})
        models: list[type[BaseModel]] = [ErrorBody, MessageBody, *BODY_MODELS]
        for model in models:
            _add_model(components, model)
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                # FastAPI adds a 422 for parameter validation; Palaver answers those with 400.
                # (A 422 a route documents itself, such as a malformed JSON Patch, stays.)
                responses = operation.get("responses", {})
                if "HTTPValidationError" in str(responses.get("422", "")):
                    responses.pop("422")
                if path.startswith("/v2"):
                    operation["security"] = [{"apiKey": []}]
                    _add_shared_answers(operation)
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]


def _ref(model: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
    }


def _add_shared_answers(operation: dict[str, Any]) -> None:
    """What every `/v2` route can answer whatever it declares: a malformed query parameter (400), a
    missing key (401), and, with a body, one over the size limit (413). Declared once here."""
    responses = operation.setdefault("responses", {})
    responses.setdefault("400", _ref("ErrorBody", "Invalid request"))
    responses.setdefault(
        "401", _ref("MessageBody", 'Missing or invalid x-api-key: `{"message": "Invalid access token"}`')
    )
    if "requestBody" in operation:
        responses.setdefault("413", _ref("ErrorBody", "Body over 1 MiB"))


def _add_model(components: dict[str, Any], model: type[BaseModel]) -> None:
    body = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in body.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = body


def _end_operation() -> dict[str, Any]:
    """The end route, served by api/fastpath.py outside FastAPI's router, described by hand."""

    def body(model: str, description: str) -> dict[str, Any]:
        ref = {"$ref": f"#/components/schemas/{model}"}
        return {"description": description, "content": {"application/json": {"schema": ref}}}

    return {
        "post": {
            "tags": ["Conversations"],
            "summary": "End Conversation",
            "description": (
                "Ends an active conversation: status becomes `ended`, `system.shutdown` "
                "(`end_conversation_endpoint_hit`) and `application.transcription_ready` are recorded. "
                "Ending an ended conversation is a 200 that changes nothing. Any request body is ignored."
            ),
            "operationId": "end_conversation",
            "parameters": [{"name": "conversation_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "Ended, or already ended: empty body"},
                "400": body(
                    "ErrorBody", 'Unknown, malformed, deleted or foreign id: `{"error": "Invalid conversation_id"}`'
                ),
                "401": body("MessageBody", 'Missing or invalid x-api-key: `{"message": "Invalid access token"}`'),
                "413": body("ErrorBody", "Body over 1 MiB"),
            },
        }
    }
