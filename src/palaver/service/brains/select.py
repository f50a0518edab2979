"""Choosing a persona's brain, and the system prompt and tools it works with.

`BrainFactory.mind(account_id, persona)` is the one call a room makes when it
starts (and again after a persona change, if it wants): it returns the brain
and everything persona-level the prompt needs. What changes during the
conversation (its `conversational_context`, which `overwrite_llm_context`
replaces, and what `append_llm_context` adds) stays with the room, which
builds each turn's system message with `system_message`.

Selection (docs/brains.md):

1. `pipeline_mode: echo` (the stock echo personas included): the echo brain.
2. `layers.llm.base_url` set: the LLM brain on that endpoint, with the layer's
   `model`, `api_key`, `headers`, `extra_body` and `default_query`, through the
   private-address guard (unless the server allows private callbacks).
3. Otherwise, when the operator configured a default endpoint
   (`--llm-base-url`): the LLM brain there, trusted (no guard). The model is
   the layer's if it names one that is not Tavus-hosted (`tavus-*`, which only
   Tavus serves), else the operator's `--llm-model`. The layer's `extra_body`
   (generation settings) applies; its `api_key` and `headers` do not (they are
   credentials for the persona's own endpoint, which it does not name).
4. Otherwise: the offline brain, answering from the knowledge base.

`speech-to-speech` personas are treated as `full`: Palaver's rooms are text,
so the replica answers with whatever brain rules 2 to 4 give.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from palaver.domain.guardrails import is_set
from palaver.service.brains.base import Brain
from palaver.service.brains.echo import EchoBrain
from palaver.service.brains.llm import LlmBrain, LlmEndpoint, LlmTimeouts
from palaver.service.brains.offline import OfflineBrain
from palaver.service.brains.prompting import guardrails_section, join_sections, objectives_section
from palaver.service.documents import DocumentService
from palaver.service.guardrails import GuardrailService
from palaver.service.objectives import ObjectivesService
from palaver.service.tools import ToolService
from palaver.settings import Settings

TAVUS_MODEL_PREFIX = "tavus-"  # models only Tavus hosts (tavus-gpt-oss, tavus-gemma-4, ...)
DEFAULT_MODEL = "default"  # sent when nobody named a model (llama.cpp's server, for one, ignores it)


@dataclass(frozen=True)
class ReplicaMind:
    """A persona's brain and the persona-level parts of every prompt it gets."""

    brain: Brain
    # The persona's system prompt, its (deprecated) context, then its objectives and guardrails as
    # instructions; not the conversation's conversational_context (see `system_message`).
    system_prompt: str = ""
    # Chat-completions tools: the persona's registry tools (`tool_ids`), then inline `layers.llm.tools`.
    tools: list[dict[str, Any]] = field(default_factory=list)
    document_ids: list[str] = field(default_factory=list)
    document_tags: list[str] = field(default_factory=list)


def system_message(mind: ReplicaMind, conversational_context: str | None, appended: list[str]) -> str:
    """A turn's system message: the mind's prompt, the conversation's context, then what was appended.

    Tavus appends a conversation's `conversational_context` to the persona's
    prompt, `conversation.overwrite_llm_context` replaces that context, and
    `conversation.append_llm_context` adds to it: the room passes the current
    context and the appended pieces in the order they came.
    """
    return join_sections(mind.system_prompt, conversational_context, *appended)


class BrainFactory:
    """Builds a persona's `ReplicaMind` from the server's settings and the account's resources."""

    def __init__(
        self,
        settings: Settings,
        documents: DocumentService,
        tools: ToolService,
        objectives: ObjectivesService,
        guardrails: GuardrailService,
    ) -> None:
        self.settings = settings
        self.documents = documents
        self.tools = tools
        self.objectives = objectives
        self.guardrails = guardrails

    async def mind(self, account_id: str, persona: dict[str, Any]) -> ReplicaMind:
        """The mind for `persona` (its canonical document, as `PersonaService.document` returns it)."""
        document_ids = list(persona.get("document_ids") or [])
        document_tags = list(persona.get("document_tags") or [])
        if persona.get("pipeline_mode") == "echo":
            return ReplicaMind(EchoBrain(), document_ids=document_ids, document_tags=document_tags)
        prompt = join_sections(
            persona.get("system_prompt"),
            persona.get("context"),
            await self._objectives(account_id, persona),
            guardrails_section(await self._guardrails(account_id, persona)),
        )
        return ReplicaMind(
            brain=self.brain_for(persona),
            system_prompt=prompt,
            tools=await self._tools(account_id, persona),
            document_ids=document_ids,
            document_tags=document_tags,
        )

    def brain_for(self, persona: dict[str, Any]) -> Brain:
        """The brain alone, by the selection rules of the module docstring."""
        if persona.get("pipeline_mode") == "echo":
            return EchoBrain()
        layer = (persona.get("layers") or {}).get("llm") or {}
        timeouts = LlmTimeouts(self.settings.llm_first_token_timeout, self.settings.llm_idle_timeout)
        extra_body = _dict(layer.get("extra_body"))
        named_model = layer.get("model") if isinstance(layer.get("model"), str) and layer.get("model") else None
        if isinstance(layer.get("base_url"), str) and layer["base_url"]:
            endpoint = LlmEndpoint(
                base_url=layer["base_url"],
                model=named_model or DEFAULT_MODEL,
                api_key=layer.get("api_key") if isinstance(layer.get("api_key"), str) else None,
                headers={str(k): str(v) for k, v in _dict(layer.get("headers")).items()},
                extra_body=extra_body,
                default_query=_dict(layer.get("default_query")),
                guarded=True,
            )
            return LlmBrain(
                endpoint,
                allow_private=self.settings.allow_private_callbacks,
                timeouts=timeouts,
                knowledge=self.documents,
            )
        if self.settings.llm_base_url:
            own_model = named_model if named_model and not named_model.startswith(TAVUS_MODEL_PREFIX) else None
            endpoint = LlmEndpoint(
                base_url=self.settings.llm_base_url,
                model=own_model or self.settings.llm_model or named_model or DEFAULT_MODEL,
                api_key=self.settings.llm_api_key,
                extra_body=extra_body,
                guarded=False,
            )
            return LlmBrain(endpoint, timeouts=timeouts, knowledge=self.documents)
        return OfflineBrain(self.documents)

    # the persona's resources ----------------------------------------------------------------------

    async def _tools(self, account_id: str, persona: dict[str, Any]) -> list[dict[str, Any]]:
        """Registry tools the model may call (origin `llm`; perception tools are not the model's), then
        the inline ones; a name already taken is skipped, as is a tool deleted since it was attached."""
        found: list[dict[str, Any]] = []
        for tool_id in persona.get("tool_ids") or ():
            tool = await self.tools.find(account_id, tool_id)
            if tool is None or tool.get("origin", "llm") != "llm":
                continue
            function: dict[str, Any] = {"name": tool["name"], "description": tool.get("description") or ""}
            if tool.get("parameters"):
                function["parameters"] = tool["parameters"]
            found.append({"type": "function", "function": function})
        layer = (persona.get("layers") or {}).get("llm") or {}
        for inline in layer.get("tools") or ():
            if isinstance(inline, dict) and isinstance(inline.get("function"), dict) and inline["function"].get("name"):
                found.append({**inline, "type": inline.get("type") or "function"})
        names: set[str] = set()
        unique = []
        for tool in found:
            if tool["function"]["name"] not in names:
                names.add(tool["function"]["name"])
                unique.append(tool)
        return unique

    async def _objectives(self, account_id: str, persona: dict[str, Any]) -> str:
        objectives_id = persona.get("objectives_id")
        if not objectives_id:
            return ""
        record = await self.objectives.resources.find(account_id, objectives_id)
        return objectives_section(record.body.get("data") or []) if record is not None else ""

    async def _guardrails(self, account_id: str, persona: dict[str, Any]) -> list[dict[str, Any]]:
        """The persona's guardrails: its legacy set (`guardrails_id`), those it names (`guardrail_ids`),
        then those carrying one of its `guardrail_tags` (by name, for a stable order)."""
        found: list[dict[str, Any]] = []
        ids = [persona.get("guardrails_id"), *(persona.get("guardrail_ids") or ())]
        for guardrail_id in dict.fromkeys(i for i in ids if i):
            record = await self.guardrails.resources.find(account_id, guardrail_id)
            if record is not None:
                found += record.body["data"] if is_set(record.body) else [record.body]
        tags = list(persona.get("guardrail_tags") or ())
        if tags:
            tagged = await self.guardrails.list(account_id, legacy=False, tags=tags)
            found += sorted(tagged, key=lambda g: (str(g.get("guardrail_name")), str(g.get("uuid"))))
        return found


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}
