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


def run_sdk(server, key: str, body: str, tmp_path: Path, extra_env: dict[str, str] | None = None) -> dict:
    workdir = tmp_path / "sdk"
    workdir.mkdir(exist_ok=True)
    script = workdir / "scenario.py"
    script.write_text(PRELUDE.format(body=textwrap.indent(textwrap.dedent(body), "    ")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAVUS_")}
    env.update(HOME=str(workdir), TAVUS_PUBLIC_API_BASE_URL=f"{server.base_url}/v2", TAVUS_API_KEY=key)
    env.update(extra_env or {})
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


def test_tools_guardrails_objectives_dictionaries_skills_and_knowledge(server, sdk_key, tmp_path) -> None:
    out = run_sdk(server, sdk_key, """
        from tavus_mcp.sdk.recipes.capabilities import attach_pal_capability, list_pal_capabilities
        from tavus_mcp.sdk.recipes.knowledge import add_pal_knowledge, list_pal_knowledge
        from tavus_mcp.sdk.recipes.options import describe_pal_options
        out = {}
        pal = await c.pals.create({"pal_name": "Full", "system_prompt": "Help.", "default_face_id": "r90bbd427f71"})
        pal_id = pal["pal_id"]
        # tools: create, read back scrubbed, plain PATCH, attach to the PAL, detach, delete
        tool = await c.tools.create({"name": "lookup_order", "description": "Find an order",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
            "delivery": {"api": {"url": "https://api.example.com/orders/{order_id}", "method": "GET",
                                 "auth": {"type": "bearer", "token": "s3cret"}}}})
        tool_id = tool.get("tool_id") or tool.get("uuid")
        got = await c.tools.get(tool_id)
        out["tool_token"] = got["delivery"]["api"]["auth"]["token"]
        await c.tools.patch(tool_id, {"description": "Find an order by id"})
        out["tool_description"] = (await c.tools.get(tool_id))["description"]
        out["listed_tools"] = [t.get("tool_id") for t in (await c.tools.list(limit=100))["data"]]
        await c.pals.attach_tools(pal_id, [tool_id])
        out["pal_tool_ids"] = (await c.pals.get(pal_id))["tool_ids"]
        await c.pals.detach_tool(pal_id, tool_id)
        out["pal_tool_ids_after"] = (await c.pals.get(pal_id))["tool_ids"]
        # guardrails: create (POST /guardrails/), patch with add ops, tags, attach by patch, delete detaches
        guardrail = await c.guardrails.create({"guardrail_name": "no_medical", "guardrail_prompt": "No advice.",
                                               "tags": ["safety"]})
        gid = guardrail.get("guardrail_id") or guardrail.get("uuid")
        await c.guardrails.patch(gid, {"guardrail_prompt": "Never give medical advice."})
        out["guardrail_prompt"] = (await c.guardrails.get(gid)).get("guardrail_prompt")
        out["guardrail_tags"] = (await c.guardrails.tags())["tags"]
        await c.pals.patch(pal_id, [{"op": "add", "path": "/guardrail_ids/-", "value": gid}])
        await c.guardrails.delete(gid)
        out["pal_guardrails_after_delete"] = (await c.pals.get(pal_id))["guardrail_ids"]
        # objectives: validate (stores nothing), create (POST /objectives/), patch, read
        objectives = {"name": "intake", "data": [
            {"objective_name": "greet", "objective_prompt": "Say hello", "next_required_objective": "ask"},
            {"objective_name": "ask", "objective_prompt": "Ask their name"}]}
        out["validate"] = await c.objectives.validate(objectives)
        created = await c.objectives.create(objectives)
        oid = created.get("objectives_id") or created.get("uuid")
        await c.objectives.patch(oid, [{"op": "replace", "path": "/data/1/objective_prompt", "value": "Ask politely"}])
        out["objective_prompt"] = (await c.objectives.get(oid))["data"]["data"][1]["objective_prompt"]
        # pronunciation dictionaries: create, patch (add ops), referenced from the PAL's TTS layer
        dictionary = await c.pronunciation_dictionaries.create({"name": "brand", "rules": [
            {"text": "Tavus", "pronunciation": "TAH-vus", "type": "alias"}]})
        did = dictionary["pronunciation_dictionary_id"]
        await c.pronunciation_dictionaries.patch(did, {"name": "brand names"})
        out["dictionary_name"] = (await c.pronunciation_dictionaries.get(did))["name"]
        await c.pals.patch(pal_id, [{"op": "add", "path": "/layers/tts",
                                     "value": {"tts_engine": "cartesia", "pronunciation_dictionary_id": did}}])
        # skills through the capabilities recipe
        await attach_pal_capability(c, pal_id, "memory")
        out["capabilities"] = await list_pal_capabilities(c, pal_id)
        out["skills"] = sorted(await c.pals.list_skills(pal_id))
        # knowledge: a document (its URL cannot be fetched here; its status does not matter to the recipe)
        document = await c.documents.create_from_url("https://docs.example.invalid/faq.txt", document_name="FAQ",
                                                     tags=["faq"])
        await add_pal_knowledge(c, pal_id, document_ids=[document["document_id"]], document_tags=["faq"])
        out["knowledge"] = await list_pal_knowledge(c, pal_id)
        out["options"] = sorted(await describe_pal_options(c, pal_id))
        out["voices"] = (await c.voices.list(limit=5, page=0))["total_count"]
        out["ids"] = {"tool": tool_id, "objectives": oid, "document": document["document_id"]}
        return out
    """, tmp_path)
    assert out["tool_token"] == "********"
    assert out["tool_description"] == "Find an order by id"
    assert out["ids"]["tool"] in out["listed_tools"]
    assert out["pal_tool_ids"] == [out["ids"]["tool"]] and out["pal_tool_ids_after"] == []
    assert out["guardrail_prompt"] == "Never give medical advice."
    assert "safety" in out["guardrail_tags"]
    assert out["pal_guardrails_after_delete"] == []
    assert out["objective_prompt"] == "Ask politely"
    assert out["dictionary_name"] == "brand names"
    assert "memory" in out["skills"]
    assert out["knowledge"]["document_ids"] == [out["ids"]["document"]]
    assert out["voices"] > 0


def test_deployments_through_the_sdk_recipes(server, sdk_key, tmp_path) -> None:
    """The recipe names an unnamed deployment from the PAL and the list (page 0, `total`), reads it back with
    its PAL's page tools, and its landing page link is Palaver's own page when the PAL Maker URL is Palaver."""
    out = run_sdk(server, sdk_key, """
        import os
        from tavus_mcp.sdk.recipes.deployments import compact_deployment_list, create_deployment, get_deployment
        from tavus_mcp.sdk.schemas.deployment import DEPLOYMENT_CREATE_ADAPTER
        out = {}
        pal = await c.pals.create({"pal_name": "Greeter", "system_prompt": "Hi", "default_face_id": "rfe12d8b9597"})
        page = DEPLOYMENT_CREATE_ADAPTER.validate_python({"pal_id": pal["pal_id"], "channel": "landing-page",
            "unique_memory_per_visitor": True, "page_title": "Meet Greeter", "page_description": "Say hello.",
            "context": "From the SDK.", "limits": {"daily_call_limit": 10, "max_call_duration": 300}})
        widget = DEPLOYMENT_CREATE_ADAPTER.validate_python({"pal_id": pal["pal_id"], "channel": "widget",
            "unique_memory_per_visitor": False, "allowed_origins": ["https://shop.example.com"]})
        first = await create_deployment(c, page)
        second = await create_deployment(c, widget)
        got = await get_deployment(c, first["deployment_id"])
        out["names"] = [first["name"], second["name"]]
        out["landing"] = {k: got[k] for k in ("pal_id", "channel", "status", "limits", "customization")}
        out["link"] = [got["integration"]["landing_page_url"], got["landing_page_url"]]
        out["snippet"] = second["snippet"]
        out["listed"] = compact_deployment_list(await c.deployments.list(pal_id=pal["pal_id"], limit=200, page=0))
        await c.deployments.patch(second["deployment_id"], [{"op": "replace", "path": "/status", "value": "inactive"}])
        out["patched"] = (await c.deployments.get(second["deployment_id"]))["status"]
        await c.deployments.delete(second["deployment_id"])
        try:
            await c.deployments.get(second["deployment_id"])
        except TavusApiError as e:
            out["after_delete"] = [e.status_code, e.body]
        out["ids"] = [first["deployment_id"], second["deployment_id"]]
        return out
    """, tmp_path, extra_env={"TAVUS_PAL_MAKER_URL": server.base_url})
    page_id, widget_id = out["ids"]
    assert out["names"] == ["Greeter Link", "Greeter Widget"]
    assert out["landing"]["status"] == "active" and out["landing"]["channel"] == "landing-page"
    assert out["landing"]["limits"] == {"daily_call_limit": 10, "max_call_duration": 300}
    assert out["landing"]["customization"] == {
        "conversation": {"unique_memory_tag": True, "context": "From the SDK."},
        "landing_page": {"title": "Meet Greeter", "description": "Say hello."},
    }
    assert out["link"] == [f"{server.base_url}/deployments/{page_id}"] * 2
    assert f"{server.base_url}/deployments/{widget_id}/embed.js" in out["snippet"]
    assert out["listed"]["total_count"] == 2
    assert [d["deployment_id"] for d in out["listed"]["data"]] == [widget_id, page_id]
    assert out["patched"] == "inactive"
    assert out["after_delete"] == [404, {"error": "Deployment not found"}]
