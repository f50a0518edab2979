"""BrainFactory.mind over real resources on each backend: a persona created through the persona service
with registry tools, an objectives set, a legacy guardrail set and tagged single guardrails, each made
through its own service, as an API client would."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from backends import Backend

from palaver.domain.clock import ManualClock
from palaver.domain.personas import PERSONA
from palaver.service.brains.offline import OfflineBrain
from palaver.service.brains.prompting import GUARDRAILS_HEADING, OBJECTIVES_HEADING
from palaver.service.brains.select import BrainFactory
from palaver.service.documents import DocumentService
from palaver.service.guardrails import GuardrailService
from palaver.service.jobs import JobRunner
from palaver.service.keys import issue_key
from palaver.service.objectives import ObjectivesService
from palaver.service.personas import PersonaService
from palaver.service.replicas import ReplicaService
from palaver.service.tools import ToolService
from palaver.settings import Settings

T = TypeVar("T")


def test_the_mind_of_a_persona_built_from_real_resources(backend: Backend) -> None:
    loop = asyncio.new_event_loop()

    def run(awaitable: Awaitable[T]) -> T:
        async def wrap() -> T:
            return await awaitable

        return loop.run_until_complete(wrap())

    storage = backend.open()
    try:
        run(storage.migrate())
        clock = ManualClock()
        store = storage.resources
        personas = PersonaService(store, clock, ReplicaService(store, clock))
        tools, objectives = ToolService(store, clock, personas), ObjectivesService(store, clock, personas)
        guardrails = GuardrailService(store, clock, personas)
        documents = DocumentService(store, storage.document_chunks, clock, JobRunner(store, clock), allow_private=False)
        account = run(issue_key(storage, clock)).account_id

        city = {"type": "object", "properties": {"city": {"type": "string"}}}
        weather = run(tools.create(account, {"name": "get_weather", "description": "Weather for a city",
                                             "parameters": city}))  # fmt: skip
        logo = run(tools.create(account, {"name": "spot_logo", "description": "Vision tool", "origin": "vision",
                                          "on_resolve": "fire_and_forget"}))  # fmt: skip
        flow = run(objectives.create(account, {"data": [
            {"objective_name": "get_name", "objective_prompt": "Ask for the caller's name",
             "output_variables": ["name"], "next_required_objective": "get_reason"},
            {"objective_name": "get_reason", "objective_prompt": "Ask why they are calling"},
        ]}))  # fmt: skip
        legacy = run(guardrails.create(account, {"name": "set", "data": [
            {"guardrail_name": "no_prices", "guardrail_prompt": "Never quote prices"}]}))  # fmt: skip
        run(guardrails.create(account, {"guardrail_name": "calm", "guardrail_prompt": "Stay calm", "tags": ["tone"]}))
        run(guardrails.create(account, {"guardrail_name": "other", "guardrail_prompt": "Untagged, unattached"}))
        persona = run(personas.create(account, {
            "persona_name": "Receptionist", "system_prompt": "You are the receptionist.", "objectives_id":
            flow["objectives_id"], "guardrails_id": legacy["guardrails_id"], "guardrail_tags": ["tone"],
            "tool_ids": [weather["tool_id"], logo["tool_id"]], "document_tags": ["faq"],
            "layers": {"llm": {"model": "tavus-gemma-4", "tools": [
                {"type": "function", "function": {"name": "end_call", "description": "Hang up"}}]}},
        }, PERSONA))  # fmt: skip

        factory = BrainFactory(Settings(), documents, tools, objectives, guardrails)
        mind = run(factory.mind(account, run(personas.document(account, persona["persona_id"], PERSONA))))
        assert isinstance(mind.brain, OfflineBrain) and mind.document_tags == ["faq"]
        assert mind.system_prompt == (
            f"You are the receptionist.\n\n{OBJECTIVES_HEADING}\n"
            "1. get_name: Ask for the caller's name. Gather: name. Next: get_reason.\n"
            "2. get_reason: Ask why they are calling.\n\n"
            f"{GUARDRAILS_HEADING}\n- no_prices: Never quote prices.\n- calm: Stay calm."
        )
        assert [t["function"]["name"] for t in mind.tools] == ["get_weather", "end_call"]
        assert mind.tools[0]["function"]["parameters"] == city
    finally:
        run(storage.close())
        loop.close()
