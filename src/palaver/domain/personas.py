"""Personas and PALs: one object, two vocabularies, and the rules it obeys.

Tavus's older API calls it a persona (`/v2/personas`: `persona_id`,
`persona_name`, `default_replica_id`); the official SDK and newer clients call
the same object a PAL (`/v2/pals`: `pal_id`, `pal_name`, `default_face_id`).
Palaver stores one canonical document in the persona vocabulary and renders it
in whichever vocabulary the request came in, so an object created as a PAL
reads back as a persona with the same id, and a JSON Patch written against
`/pal_name` changes what `/personas` calls `persona_name`.

The stored document is flat and complete: every field is present, lists as
`[]` and `layers` as `{}` when empty, so that JSON Patch `replace` (which needs
the member to exist, RFC 6902 4.3) works on a PAL created without them, as the
SDK's knowledge recipe expects.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from palaver.domain.errors import ValidationFailed
from palaver.domain.skills import SkillMap
from palaver.domain.vocabulary import Vocabulary

PIPELINE_MODES = ("full", "echo", "speech-to-speech")
MAX_LIST = 50  # guardrail_ids, guardrail_tags, tool_ids (reference 6; the SDK's own caps)
LAYERS = (
    "llm",
    "tts",
    "stt",
    "perception",
    "conversational_flow",
    "conferencing",
    "capabilities",
    "knowledge_base",
    "sts",
    "transport",
    "vqa",
)
# Fields a patch or a create cannot set: the server's own.
READ_ONLY = frozenset({"persona_id", "persona_type", "created_at", "updated_at"})


def new_persona_id() -> str:
    return "p" + secrets.token_hex(6)


PERSONA = Vocabulary("persona", {})
PAL = Vocabulary(
    "pal",
    {
        "persona_id": "pal_id",
        "persona_name": "pal_name",
        "default_replica_id": "default_face_id",
        "persona_type": "pal_type",
    },
)


class PersonaDocument(BaseModel):
    """Every field a persona has, with its type and bounds; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    persona_name: str | None = Field(None, max_length=200)
    system_prompt: str | None = Field(None, max_length=200_000)
    context: str | None = Field(None, max_length=200_000, description="Deprecated; kept as given.")
    pipeline_mode: Literal["full", "echo", "speech-to-speech"] = "full"
    default_replica_id: str | None = Field(None, max_length=64)
    greeting: str | None = Field(None, max_length=10_000)
    persona_description: str | None = Field(None, max_length=10_000)
    document_ids: list[str] = Field(default_factory=list, max_length=500)
    document_tags: list[str] = Field(default_factory=list, max_length=500)
    objectives_id: str | None = Field(None, max_length=64)
    guardrails_id: str | None = Field(None, max_length=64)
    guardrail_ids: list[str] = Field(default_factory=list, max_length=MAX_LIST)
    guardrail_tags: list[str] = Field(default_factory=list, max_length=MAX_LIST)
    tool_ids: list[str] = Field(default_factory=list, max_length=MAX_LIST)
    memories: list[str] = Field(default_factory=list, max_length=1000)
    is_template: bool = False
    layers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    skills: SkillMap = Field(default_factory=dict, description='Attached skills: {"<skill_id>": {"config": {...}}}.')

    @field_validator("layers")
    @classmethod
    def _known_layers(cls, layers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = sorted(set(layers) - set(LAYERS))
        if unknown:
            raise ValueError(f"unknown layer {unknown[0]!r}; known layers: {', '.join(LAYERS)}")
        base_url = layers.get("llm", {}).get("base_url")
        if base_url is not None and not (isinstance(base_url, str) and base_url.startswith(("http://", "https://"))):
            raise ValueError("llm.base_url must be an http(s) URL")
        return layers

    @field_validator("document_ids", "document_tags", "guardrail_ids", "guardrail_tags", "tool_ids")
    @classmethod
    def _non_empty_items(cls, items: list[str]) -> list[str]:
        if any(not item or len(item) > 256 for item in items):
            raise ValueError("items must be non-empty strings of at most 256 characters")
        return items

    @model_validator(mode="after")
    def _mode_rules(self) -> PersonaDocument:
        """The SDK's rules: `full` needs a system prompt; echo and speech-to-speech take none."""
        if self.pipeline_mode == "full" and not (self.system_prompt or "").strip():
            raise ValueError("system_prompt is required when pipeline_mode is 'full'")
        if self.pipeline_mode != "full" and (self.system_prompt or self.context):
            raise ValueError(f"system_prompt and context are not allowed when pipeline_mode is '{self.pipeline_mode}'")
        return self


FIELD_ORDER = ("persona_id", *PersonaDocument.model_fields, "persona_type", "created_at", "updated_at")


def check_document(fields: dict[str, Any], vocabulary: Vocabulary) -> dict[str, Any]:
    """The complete document for these fields (canonical names), or ValidationFailed saying why not.

    Server-owned fields present in `fields` are carried over untouched (the
    caller has made sure they were not changed).
    """
    own = {k: v for k, v in fields.items() if k not in READ_ONLY}
    try:
        model = PersonaDocument.model_validate(own)
    except ValidationError as exc:
        raise ValidationFailed(_describe(exc, vocabulary)) from None
    values = model.model_dump()
    values.update({k: v for k, v in fields.items() if k in READ_ONLY})
    return {key: values[key] for key in FIELD_ORDER if key in values}


def _describe(exc: ValidationError, vocabulary: Vocabulary) -> str:
    err = exc.errors(include_url=False)[0]
    loc = [vocabulary.renames.get(str(p), str(p)) if i == 0 else str(p) for i, p in enumerate(err.get("loc", ()))]
    text = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        text = f"unknown field for a {vocabulary.noun}"
    for ours, theirs in vocabulary.renames.items():
        text = text.replace(ours, theirs)
    return f"{'.'.join(loc)}: {text}" if loc else text
