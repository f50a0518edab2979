"""The official `tavus` SDK (PyPI `tavus`, the same code as its CLI) driven against a live Palaver.

Each scenario runs the SDK in a subprocess, in an empty working directory (the
SDK loads `./.env`) with `TAVUS_PUBLIC_API_BASE_URL` pointing at Palaver, exactly
as a developer would run it, and prints what it read back as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PRELUDE = """
import asyncio, json
from tavus_mcp.sdk import TavusClient
from tavus_mcp.sdk.errors import TavusApiError

async def scenario(c):
{body}

async def main():
    async with TavusClient.from_env() as c:
        print(json.dumps(await scenario(c)))

asyncio.run(main())
"""


def run_sdk(server, key: str, body: str, tmp_path: Path) -> dict:
    workdir = tmp_path / "sdk"
    workdir.mkdir(exist_ok=True)
    script = workdir / "scenario.py"
    script.write_text(PRELUDE.format(body=textwrap.indent(textwrap.dedent(body), "    ")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAVUS_")}
    env.update(HOME=str(workdir), TAVUS_PUBLIC_API_BASE_URL=f"{server.base_url}/v2", TAVUS_API_KEY=key)
    done = subprocess.run([sys.executable, str(script)], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def sdk_key(new_account) -> str:
    return new_account()


def test_quickstart_pal_crud_and_meeting_recipe(server, sdk_key, tmp_path) -> None:
    out = run_sdk(server, sdk_key, """
        from tavus_mcp.sdk.recipes.quickstart import quickstart
        from tavus_mcp.sdk.recipes.meetings import configure_meeting
        out = {}
        q = await quickstart(c, system_prompt="You are a helpful PAL.")
        pal_id = q["pal"]["pal_id"]
        out["face_id"] = q["face_id"]
        out["listed"] = (await c.pals.list(limit=1, page=0))["total_count"]
        out["mine"] = [p["pal_id"] for p in (await c.pals.list(limit=10, page=0, pal_type="user"))["data"]]
        got = await c.pals.get(pal_id, include_settings="true")
        out["got"] = {k: got[k] for k in ("pal_name", "default_face_id", "document_ids", "tool_ids", "layers")}
        await c.pals.patch(pal_id, [{"op": "replace", "path": "/pal_name", "value": "Patched"},
                                    {"op": "replace", "path": "/document_tags", "value": ["faq"]}])
        out["patched"] = (await c.pals.get(pal_id))["pal_name"]
        out["meeting"] = await configure_meeting(c, pal_id, wake_phrase="hey pal")
        out["face"] = (await c.faces.get(q["face_id"]))["face_id"]
        out["pal_id"] = pal_id
        await c.pals.delete(pal_id)
        try:
            await c.pals.get(pal_id)
        except TavusApiError as e:
            out["after_delete"] = [e.status_code, e.body]
        return out
    """, tmp_path)
    pal_id = out["pal_id"]
    assert out["mine"] == [pal_id]
    assert out["got"]["pal_name"] == "Agentic Tavus Pal" and out["got"]["default_face_id"] == out["face_id"]
    assert out["got"]["document_ids"] == [] and out["got"]["tool_ids"] == []
    assert out["patched"] == "Patched"
    assert out["meeting"]["settings_verified"] is True and out["meeting"]["wake_phrase"] == "hey pal"
    assert out["face"] == out["face_id"]
    assert out["after_delete"] == [400, {"error": "Invalid pal_id"}]


def test_sdk_conversation_with_a_pal(server, sdk_key, tmp_path) -> None:
    out = run_sdk(server, sdk_key, """
        pal = await c.pals.create({"pal_name": "Caller", "system_prompt": "Hi", "default_face_id": "rfe12d8b9597"})
        conv = await c.conversations.create({"persona_id": pal["pal_id"], "conversation_name": "sdk"})
        got = await c.conversations.get(conv["conversation_id"])
        await c.conversations.end(conv["conversation_id"])
        ended = await c.conversations.get(conv["conversation_id"])
        return {"replica_id": got["replica_id"], "status": ended["status"], "url": conv["conversation_url"]}
    """, tmp_path)
    assert out["replica_id"] == "rfe12d8b9597" and out["status"] == "ended"
    assert out["url"].startswith(server.base_url)
