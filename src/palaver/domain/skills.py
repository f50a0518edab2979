"""Skills: built-in abilities a PAL can be given, each with its own per-PAL config.

The catalogue is the four skills the official SDK attaches (its capabilities
recipe: `magic_canvas`, `presentation`, `internet_search`, `memory`); their
config fields and rules are the ones that recipe writes and documents:

* `magic_canvas`: `components`, a sparse map of component id (question, input,
  calendar, scheduling_embed, text, image, video, chart, alert) to its config
  (`enabled`, and for scheduling_embed `provider` and `scheduling_url`), and
  `usage_guidance`;
* `presentation` (the SDK's "slide presenter"): `document_ids` (required, at
  least one), `slides_trigger` (`on_demand` | `walk_the_deck`), `prompt`;
* `internet_search` and `memory`: no config (`{}`).

A PAL stores its skills as a map in its document (`skills`:
`{"<skill_id>": {"config": {...}}}`), which `SkillMap` validates wherever the
document is written, so a JSON Patch of `/skills` obeys the same rules.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from palaver.domain.errors import ValidationFailed

COMPONENTS = ("question", "input", "calendar", "scheduling_embed", "text", "image", "video", "chart", "alert")
Component = Literal["question", "input", "calendar", "scheduling_embed", "text", "image", "video", "chart", "alert"]
DocumentId = Annotated[str, Field(min_length=1, max_length=64)]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CanvasComponent(_Closed):
    enabled: bool | None = None
    provider: str | None = Field(None, min_length=1, max_length=64, description="scheduling_embed: e.g. calendly")
    scheduling_url: str | None = Field(None, max_length=2048, description="scheduling_embed: https URL")

    @field_validator("scheduling_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith("https://"):
            raise ValueError("must be an https:// URL")
        return value


class MagicCanvasConfig(_Closed):
    """Omitted components are on, except scheduling_embed, which needs a scheduling_url."""

    components: dict[Component, CanvasComponent] | None = None
    usage_guidance: str | None = Field(None, max_length=10_000)


class PresentationConfig(_Closed):
    document_ids: list[DocumentId] = Field(min_length=1, max_length=50, description="Display-ready documents.")
    slides_trigger: Literal["on_demand", "walk_the_deck"] | None = None
    prompt: str | None = Field(None, max_length=10_000)


class NoConfig(_Closed):
    """This skill takes no per-PAL config: `{}`."""


@dataclass(frozen=True, slots=True)
class Skill:
    skill_id: str
    display_name: str
    description: str
    config: type[BaseModel]

    def row(self) -> dict[str, Any]:
        return {
            "skill_id": self.skill_id,
            "name": self.display_name,
            "display_name": self.display_name,
            "description": self.description,
            "config_schema": self.config.model_json_schema(),
        }


CATALOGUE: dict[str, Skill] = {
    skill.skill_id: skill
    for skill in (
        Skill(
            "magic_canvas",
            "Magic Canvas",
            "Show interactive components (questions, inputs, calendars, charts, media) beside the call.",
            MagicCanvasConfig,
        ),
        Skill(
            "presentation",
            "Slide Presenter",
            "Walk participants through uploaded display-ready knowledge documents.",
            PresentationConfig,
        ),
        Skill("internet_search", "Web Search", "Look up current information on the web during a call.", NoConfig),
        Skill("memory", "Memory", "Carry user-specific context across conversations.", NoConfig),
    )
}


def skill(skill_id: str) -> Skill:
    """The catalogue's skill, or ValidationFailed naming the known ones."""
    found = CATALOGUE.get(skill_id)
    if found is None:
        raise ValidationFailed(f"Unknown skill_id {skill_id!r}; known skills: {', '.join(CATALOGUE)}")
    return found


def check_config(skill_id: str, config: Any) -> dict[str, Any]:
    """`config` as this skill stores it (nulls dropped), or ValidationFailed saying why not."""
    model = skill(skill_id).config
    if not isinstance(config, dict):
        raise ValidationFailed("config must be a JSON object")
    try:
        return model.model_validate(config).model_dump(exclude_none=True)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = ".".join(["config", *(str(p) for p in err.get("loc", ()))])
        text = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            text = f"unknown field for the {skill_id} skill"
        raise ValidationFailed(f"{loc}: {text}") from None


def merge_config(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A partial config merged into the current one (RFC 7386 style): objects merge member by
    member, a `null` removes the member, anything else replaces it."""
    merged = copy.deepcopy(current)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def entry(skill_id: str, value: Any) -> dict[str, Any]:
    """One attached skill as stored: `{"config": {...}}` (`{}` and a missing config mean no config)."""
    if not isinstance(value, dict):
        raise ValidationFailed(f'{skill_id}: must be an object {{"config": {{...}}}}')
    extra = sorted(set(value) - {"config"})
    if extra:
        raise ValidationFailed(f'{skill_id}.{extra[0]}: unknown field; an attached skill is {{"config": {{...}}}}')
    config = value.get("config")
    return {"config": check_config(skill_id, {} if config is None else config)}


def _check_map(skills: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    try:
        return {skill_id: entry(skill_id, value) for skill_id, value in skills.items()}
    except ValidationFailed as exc:
        raise ValueError(exc.message) from None


# The `skills` field of a persona document.
SkillMap = Annotated[dict[str, dict[str, Any]], AfterValidator(_check_map)]
