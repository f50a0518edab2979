"""The LLM brain against a local OpenAI-compatible server (tests/llm_server.py): streaming, interrupts,
tool calls, failures and timeouts, what reaches the server, and the private-address guard."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from contextlib import aclosing
from typing import Any, cast

import pytest
from llm_server import LlmServer, Reply, ScriptedToolCall, serve_llm

from palaver.service.brains.base import BrainError, Output, Prompt, TextDelta, ToolCall
from palaver.service.brains.llm import LlmBrain, LlmEndpoint, LlmTimeouts
from palaver.service.brains.select import BrainFactory
from palaver.settings import Settings

QUICK = LlmTimeouts(first_token=0.5, idle=0.5)


@pytest.fixture
def llm() -> Iterator[LlmServer]:
    with serve_llm() as server:
        yield server


def prompt(text: str = "What's the weather?", **extra: Any) -> Prompt:
    messages = [{"role": "system", "content": "You are a test replica."}, {"role": "user", "content": text}]
    return Prompt("acct", "c123", messages, **extra)


def brain(llm: LlmServer, *, guarded: bool = False, allow_private: bool = False, **endpoint: Any) -> LlmBrain:
    timeouts = endpoint.pop("timeouts", LlmTimeouts(first_token=5, idle=5))
    return LlmBrain(
        LlmEndpoint(llm.url, "test-model", guarded=guarded, **endpoint), allow_private=allow_private, timeouts=timeouts
    )


def collect(brain: LlmBrain, p: Prompt) -> list[tuple[float, Output]]:
    """Every output with the time (monotonic) it arrived."""

    async def run() -> list[tuple[float, Output]]:
        return [(time.monotonic(), out) async for out in brain.reply(p)]

    return asyncio.run(run())


def text_of(outputs: list[tuple[float, Output]]) -> str:
    return "".join(out.text for _, out in outputs if isinstance(out, TextDelta))


def failure(brain: LlmBrain, p: Prompt) -> tuple[str, float]:
    """The BrainError's text and how long it took to come."""
    started = time.monotonic()
    with pytest.raises(BrainError) as caught:
        collect(brain, p)
    return str(caught.value), time.monotonic() - started


def test_tokens_stream_in_order_as_they_come(llm: LlmServer) -> None:
    llm.script(Reply(tokens=["The", " sky", " is", " blue", "."], delay=0.1))
    outputs = collect(brain(llm), prompt())
    assert [out for _, out in outputs] == [TextDelta(t) for t in ["The", " sky", " is", " blue", "."]]
    arrivals = [at for at, _ in outputs]
    assert arrivals[-1] - arrivals[0] >= 0.3, arrivals  # one at a time as sent (0.1 s apart), not all at the end
    sent = llm.requests[0].body
    assert sent["stream"] is True and sent["model"] == "test-model" and sent["messages"] == prompt().messages
    assert "tools" not in sent  # no tools: the member is left out, not sent empty


def test_cancelling_mid_stream_closes_the_connection_at_once(llm: LlmServer) -> None:
    llm.script(Reply(tokens=[f" w{i}" for i in range(200)], delay=0.05))
    got: list[Output] = []

    async def run() -> float:
        async def consume() -> None:
            async for out in brain(llm).reply(prompt()):
                got.append(out)

        task = asyncio.create_task(consume())
        while len(got) < 3:
            await asyncio.sleep(0.01)
        task.cancel()  # what conversation.interrupt does to the turn
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic()

    cancelled_at = asyncio.run(run())
    record = llm.requests[0]
    assert record.wait_disconnect(2.0), "the server never saw the client leave"
    assert record.disconnected_at is not None and record.disconnected_at - cancelled_at < 1.0
    assert not record.completed and 3 <= len(got) < 20


def test_leaving_the_loop_and_closing_the_generator_also_hangs_up(llm: LlmServer) -> None:
    llm.script(Reply(tokens=[f" w{i}" for i in range(200)], delay=0.05))

    async def run() -> float:
        async with aclosing(brain(llm).reply(prompt())) as outputs:
            async for _ in outputs:
                break
        return time.monotonic()

    closed_at = asyncio.run(run())
    record = llm.requests[0]
    assert record.wait_disconnect(2.0) and record.disconnected_at is not None
    assert record.disconnected_at - closed_at < 1.0


def test_a_streamed_tool_call_then_its_result_gives_the_final_answer(llm: LlmServer) -> None:
    weather = ScriptedToolCall("get_weather", {"location": "New York, NY", "unit": "celsius"}, "call_abc123")
    llm.script(Reply(tokens=["Let me check."], tool_calls=[weather], argument_piece=5))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    first = [out for _, out in collect(brain(llm), prompt(tools=tools))]
    assert first[0] == TextDelta("Let me check.")
    assert first[1:] == [ToolCall("call_abc123", "get_weather", json.dumps(weather.arguments))]
    assert llm.requests[0].tools == tools
    # The room sends conversation.tool_call, gets conversation.tool_result, and asks again:
    call = cast(ToolCall, first[1])
    follow_up = prompt(tools=tools).messages + [
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": call.tool_call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
        ]},
        {"role": "tool", "tool_call_id": call.tool_call_id, "content": "21 degrees and sunny"},
    ]  # fmt: skip
    second = collect(brain(llm), Prompt("acct", "c123", follow_up, tools=tools))
    assert text_of(second) == "The tool answered: 21 degrees and sunny"
    assert llm.requests[1].messages[-1] == {"role": "tool", "tool_call_id": "call_abc123",
                                            "content": "21 degrees and sunny"}  # fmt: skip


def test_several_tool_calls_come_out_complete_and_in_order(llm: LlmServer) -> None:
    calls = [ScriptedToolCall("first", {"a": 1}, "call_a"), ScriptedToolCall("second", "{}")]
    llm.script(Reply(tool_calls=calls, argument_piece=2))
    outputs = [out for _, out in collect(brain(llm), prompt())]
    assert outputs == [ToolCall("call_a", "first", '{"a": 1}'), ToolCall("call_1", "second", "{}")]


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (401, "invalid api key", "answered 401: invalid api key"),
        (500, "the model crashed", "answered 500: the model crashed"),
        (404, "model 'nope' not found", "answered 404: model 'nope' not found"),
    ],
)
def test_http_errors_become_a_clear_brain_error(llm: LlmServer, status: int, message: str, expected: str) -> None:
    llm.script(Reply(status=status, error=message))
    text, _ = failure(brain(llm), prompt())
    assert text == f"The language model at 127.0.0.1:{llm.port} {expected}"
    assert len(llm.requests) == 1  # no retries inside a turn


def test_an_error_event_inside_the_stream_is_reported(llm: LlmServer) -> None:
    llm.script(Reply(tokens=["Partial"], error_event=True, error="context length exceeded"))
    text, _ = failure(brain(llm), prompt())
    assert text == f"The language model at 127.0.0.1:{llm.port} reported an error: context length exceeded"


def test_a_connection_dropped_mid_answer_is_reported(llm: LlmServer) -> None:
    llm.script(Reply(tokens=["Once", " upon", " a", " time"], drop_after=3))
    got: list[Output] = []

    async def run() -> None:
        async for out in brain(llm).reply(prompt()):
            got.append(out)

    with pytest.raises(BrainError) as caught:
        asyncio.run(run())
    assert str(caught.value).startswith(f"The language model at 127.0.0.1:{llm.port} broke off its answer: ")
    assert got == [TextDelta("Once"), TextDelta(" upon")]  # what came before the drop was streamed


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(hang=True), "did not answer within 0.5 s"),  # not even the response headers
        (Reply(tokens=["x"], stall_after=0), "did not answer within 0.5 s"),  # headers, then nothing
        (Reply(tokens=["Hel", "lo"], stall_after=2), "stopped answering: nothing for 0.5 s"),  # mid-reply
    ],
)
def test_a_silent_server_fails_within_the_timeout(llm: LlmServer, reply: Reply, expected: str) -> None:
    llm.script(reply)
    text, took = failure(brain(llm, timeouts=QUICK), prompt())
    assert text == f"The language model at 127.0.0.1:{llm.port} {expected}"
    assert 0.45 < took < 1.5, took
    assert llm.requests[0].wait_disconnect(2.0)  # and the connection was closed, not left hanging


def test_an_unreachable_endpoint_is_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    endpoint = LlmEndpoint(f"http://127.0.0.1:{port}/v1", "m", guarded=False)
    text, took = failure(LlmBrain(endpoint, timeouts=QUICK), prompt())
    assert text.startswith(f"The language model at 127.0.0.1:{port} could not be reached: ") and took < 1.5


def test_api_key_headers_extra_body_and_conversation_id_reach_the_server(llm: LlmServer) -> None:
    llm.script(Reply(tokens=["ok"]))
    b = brain(llm, api_key="sk-test-123", headers={"X-Tenant": "acme"}, default_query={"api-version": "2024-06"},
              extra_body={"temperature": 0.2, "top_k": 5, "model": "not-this-one", "stream": False})  # fmt: skip
    assert text_of(collect(b, prompt())) == "ok"
    record = llm.requests[0]
    assert record.headers["authorization"] == "Bearer sk-test-123"
    assert record.headers["x-tenant"] == "acme" and record.headers["conversation_id"] == "c123"
    assert record.body["temperature"] == 0.2 and record.body["top_k"] == 5
    assert record.body["model"] == "test-model" and record.body["stream"] is True  # extra_body cannot replace them
    assert record.path == "/v1/chat/completions"


def test_no_api_key_sends_no_authorization_and_the_environment_never_leaks(
    llm: LlmServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-operator-secret")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-operator")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-operator")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "X-Operator: secret\nAuthorization: Bearer sk-env")
    llm.script(Reply(tokens=["ok"]))
    assert text_of(collect(brain(llm), prompt())) == "ok"
    headers = llm.requests[0].headers
    assert "authorization" not in headers and "x-operator" not in headers
    assert not [name for name in headers if name.startswith(("openai-", "x-stainless"))], headers
    assert "sk-operator-secret" not in json.dumps(headers)


def test_a_persona_endpoint_on_a_private_address_is_refused(llm: LlmServer) -> None:
    text, _ = failure(brain(llm, guarded=True), prompt())
    assert text.startswith(f"The language model at 127.0.0.1:{llm.port} is not allowed: ")
    assert "private" in text and "--allow-private-callbacks" in text
    assert llm.requests == []  # refused before connecting


def test_allow_private_callbacks_lets_a_persona_endpoint_reach_loopback(llm: LlmServer) -> None:
    llm.script(Reply(tokens=["local", " answer"]))
    assert text_of(collect(brain(llm, guarded=True, allow_private=True), prompt())) == "local answer"


def factory(settings: Settings) -> BrainFactory:
    unused = cast(Any, None)  # selection alone touches no resource service
    return BrainFactory(settings, documents=unused, tools=unused, objectives=unused, guardrails=unused)


def test_the_operators_default_endpoint_serves_a_persona_without_base_url_unguarded(llm: LlmServer) -> None:
    settings = Settings(llm_base_url=llm.url, llm_model="operator-model", llm_api_key="sk-op", llm_idle_timeout=5)
    persona = {"pipeline_mode": "full", "system_prompt": "Hi", "layers": {"llm": {"model": "tavus-gemma-4"}}}
    chosen = factory(settings).brain_for(persona)
    assert isinstance(chosen, LlmBrain) and chosen.endpoint.guarded is False
    llm.script(Reply(tokens=["from", " the", " operator"]))
    assert text_of(collect(chosen, prompt())) == "from the operator"  # loopback, allow_private_callbacks off
    record = llm.requests[0]
    assert record.body["model"] == "operator-model" and record.headers["authorization"] == "Bearer sk-op"


def test_a_persona_base_url_is_guarded_even_when_the_operator_has_a_default(llm: LlmServer) -> None:
    settings = Settings(llm_base_url="http://127.0.0.1:9/v1")
    persona = {"pipeline_mode": "full", "system_prompt": "Hi", "layers": {"llm": {"base_url": llm.url, "model": "m"}}}
    chosen = factory(settings).brain_for(persona)
    assert isinstance(chosen, LlmBrain) and chosen.endpoint.guarded and chosen.endpoint.base_url == llm.url
    text, _ = failure(chosen, prompt())
    assert "is not allowed" in text and llm.requests == []
