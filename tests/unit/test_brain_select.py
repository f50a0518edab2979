"""Choosing a persona's brain, and the system prompt, tools and knowledge it gets (resource services faked)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

import pytest

from palaver.service.brains.echo import EchoBrain
from palaver.service.brains.llm import LlmBrain
from palaver.service.brains.offline import OfflineBrain
from palaver.service.brains.prompting import GUARDRAILS_HEADING, OBJECTIVES_HEADING, flow_order
from palaver.service.brains.select import BrainFactory, ReplicaMind, system_message
from palaver.service.personas import STOCK_DOCUMENTS
from palaver.settings import Settings


@dataclass
class Record:
    body: dict[str, Any]


class Store:
    """What the factory reads of a resource service: `resources.find`."""

    def __init__(self, items: dict[str, dict[str, Any]]) -> None:
        self.items = items
        self.resources = self

    async def find(self, account_id: str, resource_id: str) -> Any:
        return Record(self.items[resource_id]) if resource_id in self.items else None


class Tools(Store):
    async def find(self, account_id: str, tool_id: str) -> Any:  # ToolService.find gives the body itself
        return self.items.get(tool_id)


class Guardrails(Store):
    async def list(self, account_id: str, *, legacy: bool | None = None, tags: list[str] | None = None) -> list[Any]:
        wanted = {t.lower() for t in tags or ()}
        return [g for g in self.items.values() if "data" not in g and wanted & {t.lower() for t in g.get("tags", ())}]


OBJECTIVES = {
    "o1": {
        "objectives_id": "o1",
        "data": [
            {"objective_name": "book_visit", "objective_prompt": "Offer a time slot", "output_variables": ["slot"],
             "modality": "verbal", "next_required_objective": None, "next_conditional_objectives": None},
            {"objective_name": "ask_if_new_patient", "objective_prompt": "Ask if the patient is new or returning.",
             "output_variables": ["patient_status"], "modality": "verbal", "next_required_objective": None,
             "next_conditional_objectives": {"new_patient_intake": "If the patient has never been here.",
                                             "book_visit": "if the patient has been here before"}},
            {"objective_name": "new_patient_intake", "objective_prompt": "Collect name and date of birth",
             "output_variables": ["name", "dob"], "modality": "verbal", "next_required_objective": "book_visit",
             "next_conditional_objectives": None},
            {"objective_name": "check_id_card", "objective_prompt": "Look at the ID card on camera",
             "output_variables": [], "modality": "visual", "next_required_objective": None,
             "next_conditional_objectives": None},
        ],
    }
}  # fmt: skip
GUARDRAILS = {
    "gset": {"guardrails_id": "gset", "name": "legacy", "data": [
        {"guardrail_name": "no_medical_advice", "guardrail_prompt": "Never give a diagnosis", "modality": "verbal"},
        {"guardrail_name": "no_phones", "guardrail_prompt": "Flag phones seen on camera", "modality": "visual"},
    ]},
    "g1": {"guardrail_id": "g1", "uuid": "g1", "guardrail_name": "no_competitors",
           "guardrail_prompt": "Never discuss competitor products.", "modality": "verbal", "tags": []},
    "g2": {"guardrail_id": "g2", "uuid": "g2", "guardrail_name": "polite", "guardrail_prompt": "Stay polite!",
           "modality": "verbal", "tags": ["Tone"]},
    "g3": {"guardrail_id": "g3", "uuid": "g3", "guardrail_name": "brief", "guardrail_prompt": "Keep answers short",
           "modality": "verbal", "tags": ["tone"]},
}  # fmt: skip
TOOLS = {
    "t1": {"tool_id": "t1", "name": "get_weather", "description": "Weather for a city", "origin": "llm",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
    "t2": {"tool_id": "t2", "name": "ping", "description": "No arguments", "origin": "llm", "parameters": {}},
    "t3": {"tool_id": "t3", "name": "spot_logo", "description": "Vision", "origin": "vision", "parameters": {}},
}  # fmt: skip
INLINE = [
    {"type": "function", "function": {"name": "get_weather", "description": "a duplicate name: skipped"}},
    {"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object", "properties": {}}}},
    {"type": "function", "function": {"description": "no name: skipped"}},
]


def factory(**settings: Any) -> BrainFactory:
    documents = cast(Any, object())
    return BrainFactory(Settings(**settings), documents, cast(Any, Tools(TOOLS)), cast(Any, Store(OBJECTIVES)),
                        cast(Any, Guardrails(GUARDRAILS)))  # fmt: skip


def mind(persona: dict[str, Any], **settings: Any) -> ReplicaMind:
    return asyncio.run(factory(**settings).mind("acct", persona))


def full(**fields: Any) -> dict[str, Any]:
    return {"pipeline_mode": "full", "system_prompt": "You are Ada.", "layers": {}, **fields}


# selection ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona_id", ["pipecat0", "pipecat-stream", "pb87e71797da"])
def test_echo_personas_get_the_echo_brain(persona_id: str) -> None:
    chosen = mind(STOCK_DOCUMENTS[persona_id], llm_base_url="http://127.0.0.1:1/v1")
    assert isinstance(chosen.brain, EchoBrain) and chosen.system_prompt == "" and chosen.tools == []


def test_a_persona_base_url_gets_a_guarded_llm_brain_with_its_layer() -> None:
    layer = {"base_url": "https://llm.example/v1", "model": "gpt-x", "api_key": "sk-p", "headers": {"X-A": "1"},
             "extra_body": {"temperature": 0.3}, "default_query": {"v": "2"}, "speculative_inference": 1}  # fmt: skip
    brain = mind(full(layers={"llm": layer}), llm_base_url="http://127.0.0.1:1/v1", llm_model="op").brain
    assert isinstance(brain, LlmBrain) and brain.allow_private is False
    e = brain.endpoint
    assert (e.base_url, e.model, e.api_key, e.guarded) == ("https://llm.example/v1", "gpt-x", "sk-p", True)
    assert e.headers == {"X-A": "1"} and e.extra_body == {"temperature": 0.3} and e.default_query == {"v": "2"}
    assert isinstance(mind(full(layers={"llm": layer}), allow_private_callbacks=True).brain, LlmBrain)
    assert cast(LlmBrain, mind(full(layers={"llm": layer}), allow_private_callbacks=True).brain).allow_private


@pytest.mark.parametrize(
    ("layer_model", "operator_model", "sent"),
    [
        ("tavus-gemma-4", "llama3.2", "llama3.2"),  # a Tavus-hosted model: the operator's instead
        (None, "llama3.2", "llama3.2"),
        ("qwen2.5:7b", "llama3.2", "qwen2.5:7b"),  # a model of its own: asked of the operator's server
        ("tavus-gpt-oss", None, "tavus-gpt-oss"),  # nobody named another: sent as named
        (None, None, "default"),
    ],
)
def test_the_operators_endpoint_serves_personas_without_base_url(
    layer_model: str | None, operator_model: str | None, sent: str
) -> None:
    layer = {"model": layer_model, "extra_body": {"temperature": 0}, "api_key": "persona-key", "headers": {"X": "y"}}
    brain = mind(full(layers={"llm": layer}), llm_base_url="http://10.0.0.5:8080/v1", llm_model=operator_model,
                 llm_api_key="sk-op", llm_first_token_timeout=7, llm_idle_timeout=9).brain  # fmt: skip
    assert isinstance(brain, LlmBrain)
    e = brain.endpoint
    assert (e.base_url, e.model, e.api_key, e.guarded) == ("http://10.0.0.5:8080/v1", sent, "sk-op", False)
    assert e.extra_body == {"temperature": 0} and e.headers == {}  # the persona's credentials are not sent there
    assert (brain.timeouts.first_token, brain.timeouts.idle) == (7, 9)


def test_without_any_llm_the_offline_brain_answers() -> None:
    assert isinstance(mind(full(layers={"llm": {"model": "tavus-gpt-oss"}})).brain, OfflineBrain)
    assert isinstance(mind(STOCK_DOCUMENTS["pcb7a34da5fe"]).brain, OfflineBrain)  # a stock full persona


def test_speech_to_speech_is_treated_as_full() -> None:
    persona = {"pipeline_mode": "speech-to-speech", "layers": {}}
    assert isinstance(mind(persona).brain, OfflineBrain)
    assert isinstance(mind(persona, llm_base_url="http://127.0.0.1:1/v1").brain, LlmBrain)


# the prompt ----------------------------------------------------------------------------------------


def test_the_system_prompt_holds_the_persona_objectives_and_guardrails_in_that_order() -> None:
    persona = full(context="You work at Acme Clinic.", objectives_id="o1", guardrails_id="gset",
                   guardrail_ids=["g1", "gset"], guardrail_tags=["TONE"])  # fmt: skip
    assert mind(persona).system_prompt == "\n\n".join([
        "You are Ada.",
        "You work at Acme Clinic.",
        "\n".join([
            OBJECTIVES_HEADING,
            "1. ask_if_new_patient: Ask if the patient is new or returning. Gather: patient_status. Next, depending "
            "on the conversation: if the patient has never been here, new_patient_intake; if the patient has been "
            "here before, book_visit.",
            "2. new_patient_intake: Collect name and date of birth. Gather: name, dob. Next: book_visit.",
            "3. book_visit: Offer a time slot. Gather: slot.",
        ]),
        "\n".join([
            GUARDRAILS_HEADING,
            "- no_medical_advice: Never give a diagnosis.",
            "- no_competitors: Never discuss competitor products.",
            "- brief: Keep answers short.",
            "- polite: Stay polite!",
        ]),
    ])  # fmt: skip


def test_missing_objectives_and_guardrails_leave_just_the_prompt() -> None:
    persona = full(objectives_id="o-deleted", guardrail_ids=["g-deleted"], guardrail_tags=["none"])
    assert mind(persona).system_prompt == "You are Ada."
    assert OBJECTIVES_HEADING.startswith("Objectives:") and "Never break them." in GUARDRAILS_HEADING


def test_objectives_follow_their_flow_even_in_a_loop() -> None:
    data = [
        {"objective_name": "c", "next_required_objective": "a"},
        {"objective_name": "b", "next_required_objective": "c"},
        {"objective_name": "a", "next_required_objective": "b"},
    ]
    assert [o["objective_name"] for o in flow_order(data)] == ["c", "a", "b"]  # no root: the first listed


def test_tools_are_the_registry_ones_then_the_inline_ones() -> None:
    persona = full(tool_ids=["t1", "t3", "t2", "t-deleted"], layers={"llm": {"tools": INLINE}})
    assert mind(persona).tools == [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                          "parameters": TOOLS["t1"]["parameters"]}},
        {"type": "function", "function": {"name": "ping", "description": "No arguments"}},
        INLINE[1],
    ]  # fmt: skip


def test_the_mind_carries_the_personas_knowledge() -> None:
    chosen = mind(full(document_ids=["d1", "d2"], document_tags=["faq"]))
    assert (chosen.document_ids, chosen.document_tags) == (["d1", "d2"], ["faq"])


def test_system_message_adds_the_conversation_context_then_what_was_appended() -> None:
    chosen = ReplicaMind(EchoBrain(), system_prompt="You are Ada.\n\nGuardrails: ...")
    assert system_message(chosen, "The user is Bob.", ["He likes jazz.", "  ", "He is in Paris."]) == (
        "You are Ada.\n\nGuardrails: ...\n\nThe user is Bob.\n\nHe likes jazz.\n\nHe is in Paris."
    )
    assert system_message(chosen, None, []) == "You are Ada.\n\nGuardrails: ..."
    assert system_message(ReplicaMind(EchoBrain()), "  context  ", []) == "context"
