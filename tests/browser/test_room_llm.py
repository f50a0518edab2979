"""The room page with an LLM-backed replica: type, see the answer stream in token by token, end it.

The persona's `layers.llm.base_url` is a local OpenAI-compatible server (tests/llm_server.py)
that streams slowly enough for the page to show the partial answer before the whole.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from llm_server import Reply, serve_llm
from playwright.sync_api import expect

REPLICA = "r90bbd427f71"


@pytest.fixture(scope="module")
def llm_server(server_factory):
    return server_factory(name="browser-llm", extra_args=("--allow-private-callbacks",))


def test_type_and_see_the_llm_answer_stream_in(page, llm_server):
    with serve_llm() as llm, llm_server.client(llm_server.new_account_key()) as api:
        persona = api.post(
            "/v2/personas",
            json={
                "persona_name": "Streamer",
                "system_prompt": "You answer briefly.",
                "default_replica_id": REPLICA,
                "layers": {"llm": {"model": "test-model", "base_url": llm.url}},
            },
        ).json()["persona_id"]
        conv = api.post("/v2/conversations", json={"persona_id": persona, "custom_greeting": "Ask me anything."}).json()
        page.goto(f"{conv['conversation_url']}?{urlencode({'name': 'Ada'})}")
        expect(page.locator("#status")).to_have_text("In call")
        replica = page.locator("#transcript .line.replica")
        expect(replica.locator(".text")).to_have_text(["Ask me anything."])

        llm.script(Reply(tokens=["The", " answer", " is", " forty", "-two", "."], delay=0.25))
        page.locator("#message").fill("What is the answer?")
        page.locator("#send").click()
        expect(page.locator("#transcript .line.user .text")).to_have_text(["What is the answer?"])
        # Part of the answer is on the page before all of it: it streams in.
        expect(replica.nth(1)).to_have_class("line replica streaming")
        partial = replica.nth(1).locator(".text").inner_text()
        assert partial and partial != "The answer is forty-two.", partial
        expect(replica.nth(1).locator(".text")).to_have_text("The answer is forty-two.")
        expect(replica.nth(1)).to_have_class("line replica")
        assert llm.requests[-1].messages[-1] == {"role": "user", "content": "What is the answer?"}

        t0 = time.monotonic()
        assert api.post(f"/v2/conversations/{conv['conversation_id']}/end").status_code == 200
        page.wait_for_function("() => document.getElementById('room').dataset.state === 'ended'", timeout=5000)
        assert time.monotonic() - t0 < 1.0
        expect(page.locator("#status")).to_have_text("Ended")
