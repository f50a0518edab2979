"""Guardrails in both of Tavus's shapes, and the rules each obeys.

Tavus first had guardrail *sets* (`{name, data: [{guardrail_name,
guardrail_prompt, modality, callback_url}]}`, the saved spec, reference 9);
since mid-2026 a guardrail is also a single object (`guardrail_name`,
`guardrail_prompt`, `modality`, `tags`, `app_message`, `tool_call`) that PALs
attach by id or tag (what the SDK creates). Both are stored as kind
"guardrail"; a stored set has a `data` list and a single guardrail has none,
which is how every read tells them apart.

Documents are complete (every field present) so that the SDK's patches, which
are `add` ops even for fields that exist (RFC 6902 `add` on an existing member
replaces it), and `replace` ops both work on an object created without them.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from palaver.domain.objectives import first_problem

NAME_PATTERN = r"^[A-Za-z0-9_]+$"  # `^\w+$` in ASCII: "only alphanumeric characters and underscores"
MAX_SET_ITEMS = 50
MAX_TAGS = 32
MAX_TAG = 64
READ_ONLY = frozenset({"guardrails_id", "guardrail_id", "uuid", "status", "created_at", "updated_at"})
Modality = Literal["verbal", "visual", "audio"]


def new_guardrail_id() -> str:
    return "g" + secrets.token_hex(6)


def is_set(document: dict[str, Any]) -> bool:
    """A legacy guardrail set (rather than a single guardrail)."""
    return isinstance(document.get("data"), list)


class SetItem(BaseModel):
    """One guardrail of a legacy set."""

    model_config = ConfigDict(extra="forbid", strict=True)

    guardrail_name: str = Field(max_length=100, pattern=NAME_PATTERN)
    guardrail_prompt: str = Field(min_length=1, max_length=10_000)
    modality: Modality = "verbal"
    callback_url: str = Field("", max_length=2048)


class GuardrailSet(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field("", max_length=200)
    data: list[SetItem] = Field(min_length=1, max_length=MAX_SET_ITEMS)


class Guardrail(BaseModel):
    """A single guardrail (the June 2026 model the SDK creates)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    guardrail_name: str = Field(max_length=100, pattern=NAME_PATTERN)
    guardrail_prompt: str = Field(min_length=1, max_length=1000)
    modality: Modality = "verbal"
    callback_url: str = Field("", max_length=2048)
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)
    app_message: bool = True
    tool_call: dict[str, Any] | None = None

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        if any(not tag.strip() or len(tag) > MAX_TAG for tag in tags):
            raise ValueError(f"tags must be non-empty strings of at most {MAX_TAG} characters")
        return tags


def _missing_name(items: list[Any]) -> bool:
    return any(isinstance(item, dict) and not item.get("guardrail_name") for item in items)


def check_set(fields: dict[str, Any]) -> dict[str, Any] | str:
    """A legacy set's complete fields, or the first reason they are refused."""
    data = fields.get("data")
    if isinstance(data, list) and _missing_name(data):
        return "guardrail_name is required"
    try:
        return GuardrailSet.model_validate(fields).model_dump()
    except ValidationError as exc:
        return first_problem(exc)


def check_single(fields: dict[str, Any]) -> dict[str, Any] | str:
    """A single guardrail's complete fields, or the first reason they are refused."""
    if _missing_name([fields]):
        return "guardrail_name is required"
    try:
        return Guardrail.model_validate(fields).model_dump()
    except ValidationError as exc:
        return first_problem(exc)
