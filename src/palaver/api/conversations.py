"""`/v2/conversations` routes: parse, call the service, shape the response."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from palaver.api import deps
from palaver.api.bodies import parse_body, request_body_schema
from palaver.api.schemas import (
    Conversation,
    ConversationList,
    CreateConversationRequest,
    CreatedConversation,
    ErrorBody,
    MessageBody,
    VerboseConversation,
)
from palaver.domain.conversation import Status
from palaver.service.conversations import ConversationService
from palaver.storage.base import ConversationRecord

router = APIRouter(prefix="/v2/conversations", tags=["Conversations"])

_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": MessageBody, "description": "Missing or invalid x-api-key"}
}
_INVALID_ID: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorBody,
        "description": 'Unknown, malformed, deleted or foreign id: `{"error": "Invalid conversation_id"}`',
    },
    **_UNAUTHORIZED,
}


def _conversation(record: ConversationRecord, service: ConversationService) -> dict[str, Any]:
    body: dict[str, Any] = {
        "conversation_id": record.conversation_id,
        "conversation_name": record.conversation_name,
        "conversation_url": service.conversation_url(record.conversation_id),
        "status": record.status,
        "callback_url": record.callback_url,
        "replica_id": record.replica_id,
        "persona_id": record.persona_id,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }
    if record.meeting_token:
        body["meeting_token"] = record.meeting_token
    return body


@router.post(
    "",
    summary="Create Conversation",
    response_model=CreatedConversation,
    openapi_extra=request_body_schema(CreateConversationRequest),
    responses={
        400: {
            "description": "Invalid request (`error`), or the concurrency limit (`message`)",
            "model": ErrorBody | MessageBody,
        },
        413: {"model": ErrorBody, "description": "Body over 1 MiB"},
        **_UNAUTHORIZED,
    },
)
async def create_conversation(request: Request) -> JSONResponse:
    body = await parse_body(request, CreateConversationRequest)
    service = deps.conversations(request)
    record = await service.create(deps.account_id(request), body.to_command())
    created = _conversation(record, service)
    del created["updated_at"]
    return JSONResponse(created)


@router.get(
    "",
    summary="List Conversations",
    response_model=ConversationList,
    responses={400: {"model": ErrorBody}, **_UNAUTHORIZED},
)
async def list_conversations(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size (1-1000).")] = 10,
    page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number.")] = 1,
    status: Annotated[Status | None, Query(description="Exact status filter.")] = None,
) -> JSONResponse:
    service = deps.conversations(request)
    records, total = await service.list(deps.account_id(request), status=status, limit=limit, page=page)
    return JSONResponse({"data": [_conversation(r, service) for r in records], "total_count": total})


@router.get("/{conversation_id}", summary="Get Conversation", response_model=VerboseConversation, responses=_INVALID_ID)
async def get_conversation(
    request: Request,
    conversation_id: str,
    verbose: Annotated[bool, Query(description="Include the conversation's events.")] = False,
) -> JSONResponse:
    service = deps.conversations(request)
    view = await service.get(deps.account_id(request), conversation_id, verbose=verbose)
    body = _conversation(view.record, service)
    if verbose:
        body["events"] = view.events
        body["webhook_deliveries"] = view.webhook_deliveries
    return JSONResponse(body)


@router.delete(
    "/{conversation_id}",
    summary="Delete Conversation",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Deleted: empty body"}, **_INVALID_ID},
)
async def delete_conversation(
    request: Request,
    conversation_id: str,
    hard: Annotated[bool, Query(description="Purge the row and its events irrevocably.")] = False,
) -> Response:
    await deps.conversations(request).delete(deps.account_id(request), conversation_id, hard=hard)
    return Response(status_code=204)


__all__ = ["router", "Conversation"]
