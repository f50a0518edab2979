"""Request and response shapes of the Conversations API, as Tavus documents them.

Request models are strict (a string is not a boolean) and ignore unknown
fields, as Tavus does. Responses are built as plain dicts on the hot path; the
response models here exist to describe them in `/openapi.json`.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from palaver.domain.timers import TimerSettings
from palaver.service.conversations import CreateConversation


def _check_callback_url(value: str) -> str:
    if value == "":
        return value
    if len(value) > 2048:
        raise ValueError("must be at most 2048 characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c <= " " or c == "\x7f" for c in value):
        raise ValueError("must be a well-formed http(s) URL")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise ValueError("must be a well-formed http(s) URL") from exc
    return value


class ConversationProperties(BaseModel):
    """`properties` of a create request; fields not listed are kept as given."""

    model_config = ConfigDict(strict=True, extra="allow")

    max_call_duration: int | None = Field(None, ge=1, le=86_400, description="Seconds from creation; default 3600.")
    participant_left_timeout: int | None = Field(
        None, ge=0, le=86_400, description="Seconds after the last participant leaves; default 0."
    )
    participant_absent_timeout: int | None = Field(
        None, ge=0, le=86_400, description="Seconds from creation if nobody joins; default 300."
    )
    enable_recording: bool | None = None
    enable_closed_captions: bool | None = None
    apply_greenscreen: bool | None = None
    language: str | None = None
    recording_s3_bucket_name: str | None = None
    recording_s3_bucket_region: str | None = None
    aws_assume_role_arn: str | None = None
    recording_storage: dict[str, Any] | None = None
    require_auth: bool | None = None
    livekit_ws_url: str | None = None
    livekit_room_token: str | None = None


class CreateConversationRequest(BaseModel):
    """Body of `POST /v2/conversations`. Every field is optional, as in Tavus's schema."""

    model_config = ConfigDict(strict=True, extra="ignore")

    replica_id: str | None = Field(None, max_length=64, description="Overrides the persona's default replica.")
    persona_id: str | None = Field(None, max_length=64)
    face_id: str | None = Field(None, max_length=64, description="Alias of replica_id (newer clients).")
    pal_id: str | None = Field(None, max_length=64, description="Alias of persona_id (newer clients).")
    audio_only: bool | None = None
    callback_url: str | None = Field(None, description="Webhook target; http(s) only.")
    conversation_name: str | None = Field(None, max_length=1024)
    conversational_context: str | None = Field(None, max_length=200_000)
    custom_greeting: str | None = Field(None, max_length=10_000)
    memory_stores: list[str] | None = None
    document_ids: list[str] | None = None
    document_retrieval_strategy: Literal["speed", "balanced", "quality"] | None = None
    document_tags: list[str] | None = None
    test_mode: bool | None = None
    require_auth: bool | None = None
    max_participants: int | None = Field(None, ge=2, le=1000)
    enable_dynamic_greeting: bool | None = None
    policy: str | None = None
    properties: ConversationProperties | None = None

    @field_validator("callback_url")
    @classmethod
    def _callback(cls, value: str | None) -> str | None:
        return None if value is None else _check_callback_url(value)

    @model_validator(mode="after")
    def _aliases_agree(self) -> CreateConversationRequest:
        for name, alias in (("replica_id", "face_id"), ("persona_id", "pal_id")):
            a, b = getattr(self, name), getattr(self, alias)
            if a is not None and b is not None and a != b:
                raise ValueError(f"{name} and {alias} name different objects")
        return self

    def to_command(self) -> CreateConversation:
        props = self.properties
        require_auth = bool(self.require_auth or (props is not None and props.require_auth))
        return CreateConversation(
            replica_id=self.replica_id or self.face_id,
            persona_id=self.persona_id or self.pal_id,
            conversation_name=self.conversation_name,
            callback_url=self.callback_url or "",
            conversational_context=self.conversational_context,
            test_mode=bool(self.test_mode),
            require_auth=require_auth,
            timers=_timer_settings(props),
            request=self.model_dump(mode="json", exclude_none=True),
        )


def _timer_settings(props: ConversationProperties | None) -> TimerSettings:
    """The request's timer properties, each falling back to Tavus's default when absent."""
    defaults = TimerSettings()
    if props is None:
        return defaults

    def pick(value: int | None, default: int) -> int:
        return default if value is None else value

    return TimerSettings(
        max_call_duration=pick(props.max_call_duration, defaults.max_call_duration),
        participant_absent_timeout=pick(props.participant_absent_timeout, defaults.participant_absent_timeout),
        participant_left_timeout=pick(props.participant_left_timeout, defaults.participant_left_timeout),
    )


class Conversation(BaseModel):
    conversation_id: str = Field(examples=["c477c9dd7aa6e4f"])
    conversation_name: str
    conversation_url: str
    status: Literal["active", "ended", "error"]
    callback_url: str = Field(description='"" when none was given')
    replica_id: str
    persona_id: str
    created_at: str = Field(examples=["2025-05-13T06:42:58.291561Z"])
    updated_at: str
    meeting_token: str | None = Field(None, description="Only when require_auth was true.")


class CreatedConversation(BaseModel):
    conversation_id: str
    conversation_name: str
    conversation_url: str
    status: Literal["active", "ended"]
    callback_url: str
    replica_id: str
    persona_id: str
    created_at: str
    meeting_token: str | None = Field(None, description="Only when require_auth was true.")


class ConversationEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    event_type: str = Field(examples=["system.shutdown"])
    message_type: Literal["system", "application"]
    timestamp: str
    properties: dict[str, Any]
    conversation_id: str
    webhook_url: str


class WebhookAttempt(BaseModel):
    at: str
    status_code: int | None = Field(description="None when no HTTP response came (network error, refused target).")
    latency_ms: float | None
    error: str | None


class WebhookDelivery(BaseModel):
    event_id: str = Field(description="The webhook-id header; the same on every retry.")
    event_type: str
    url: str
    status: Literal["pending", "delivered", "failed"]
    attempts: list[WebhookAttempt]


class VerboseConversation(Conversation):
    events: list[ConversationEvent] | None = Field(None, description="Only with verbose=true.")
    webhook_deliveries: list[WebhookDelivery] | None = Field(
        None,
        description="Palaver's addition, only with verbose=true: each webhook sent to callback_url and its attempts.",
    )


class ConversationList(BaseModel):
    data: list[Conversation]
    total_count: int = Field(description="Matches under the filters, not the page size.")


class ErrorBody(BaseModel):
    error: str = Field(examples=["Invalid conversation_id"])


class MessageBody(BaseModel):
    message: str = Field(examples=["Invalid access token"])
