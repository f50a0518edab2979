"""Request-scoped accessors: the caller's account and the app's services."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:
    from palaver.service.conversations import ConversationService


def account_id(request: Request) -> str:
    """Set by ApiKeyMiddleware before any `/v2` route runs."""
    return request.scope["state"]["account_id"]


def conversations(request: Request) -> ConversationService:
    return request.app.state.conversations
