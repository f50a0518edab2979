"""PLACEHOLDER until the brains branch lands (not committed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from palaver.service.brains.base import Brain
from palaver.service.brains.echo import EchoBrain


@dataclass(frozen=True)
class ReplicaMind:
    brain: Brain
    system_prompt: str
    tools: list[dict[str, Any]] = field(default_factory=list)
    document_ids: list[str] = field(default_factory=list)
    document_tags: list[str] = field(default_factory=list)


def system_message(mind: ReplicaMind, conversational_context: str | None, appended: list[str]) -> str:
    return "\n\n".join(p for p in (mind.system_prompt, conversational_context, *appended) if p)


class BrainFactory:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def mind(self, account_id: str, persona: dict[str, Any]) -> ReplicaMind:
        return ReplicaMind(EchoBrain(), persona.get("system_prompt") or "")
