"""The JavaScript drop-in (`/static/palaver-call.js`) and its example page, in headless Chromium, on both backends.

The example page is what docs/rooms-javascript.md shows: a Tavus-style app on
Daily's call-object calls. A scripted participant (tests/room_client.py) is the
other side: app messages both ways, joins and leaves, and the replica's messages.
"""

from __future__ import annotations

import json
import time
from urllib.parse import quote

from playwright.sync_api import Page, expect
from room_client import REPLICA, RoomParticipant
from room_client import create_room as create


def open_example(page: Page, server, conversation_url: str = "") -> None:
    page.goto(f"{server.base_url}/static/examples/drop-in.html?url={quote(conversation_url, safe='')}")
    expect(page.locator("#state")).to_have_text("new")


def logged(page: Page, event: str):
    return page.locator(f'#log li[data-event="{event}"]')


def test_example_page_exchanges_app_messages(page, client, server):
    conv = create(client)
    open_example(page, server, conv["conversation_url"])
    expect(page.locator("#url")).to_have_value(conv["conversation_url"])
    page.locator("#name").fill("Example app")
    page.locator("#join").click()
    expect(page.locator("#state")).to_have_text("joined-meeting")
    expect(logged(page, "joined-meeting")).to_have_count(1)
    expect(logged(page, "joined-meeting")).to_contain_text('"user_name":"Example app"')
    # The replica is a participant, and its messages come fromId "replica".
    expect(logged(page, "participant-joined")).to_contain_text([f'"user_id":"tavus-replica-{REPLICA}"'])
    expect(logged(page, "app-message")).to_contain_text(['"fromId":"replica"'])

    with RoomParticipant(conv["conversation_url"], name="Scripted Bob") as bob:
        welcome = bob.wait_for("room.joined")
        bob_id = welcome["properties"]["participant"]["participant_id"]
        app = next(p for p in welcome["properties"]["participants"] if p["user_name"] == "Example app")
        expect(logged(page, "participant-joined").first).to_contain_text('"user_name":"Scripted Bob"')
        expect(logged(page, "participant-joined").first).to_contain_text(f'"session_id":"{bob_id}"')
        expect(page.locator("#participants")).to_have_text(f"Example app (you), {REPLICA}, Scripted Bob")

        # From the scripted participant to the page.
        bob.send_raw(json.dumps({"message_type": "room", "event_type": "room.app_message",
                                 "properties": {"data": {"hello": "page", "n": 1}}}))  # fmt: skip
        expect(logged(page, "app-message").first).to_contain_text(
            f'{{"fromId":"{bob_id}","data":{{"hello":"page","n":1}}}}'
        )

        # From the page to the scripted participant: app data, wrapped for the room.
        page.locator("#app-data").fill('{"ping": 42}')
        page.locator("#send-app").click()
        relayed = bob.wait_for("room.app_message")
        assert relayed["properties"]["from"] == app["participant_id"]
        assert relayed["properties"]["data"] == {
            "message_type": "room",
            "event_type": "room.app_message",
            "properties": {"data": {"ping": 42}},
        }

        # An Interactions Protocol message goes as it is: the replica speaks, everyone hears it.
        page.locator("#text").fill("Echo from the page")
        page.locator("#echo").click()
        relayed = bob.wait_for("room.app_message")
        assert relayed["properties"]["data"] == {
            "message_type": "conversation",
            "event_type": "conversation.echo",
            "conversation_id": conv["conversation_id"],
            "properties": {"text": "Echo from the page"},
        }
        assert bob.wait_for("conversation.utterance", role="replica")["properties"]["speech"] == "Echo from the page"
        expect(logged(page, "app-message").first).to_contain_text(
            '"event_type":"conversation.replica.stopped_speaking"'
        )
        expect(logged(page, "app-message")).to_contain_text(['"speech":"Echo from the page"'])

        page.locator("#text").fill("A question from the page")
        page.locator("#respond").click()
        said = bob.wait_for("conversation.utterance", role="user")
        assert said["properties"]["speech"] == "A question from the page"

        # Bob's own Interactions Protocol message reaches the page as an app-message from Bob.
        bob.send("conversation.respond", {"text": "Bob asks too"})
        expect(logged(page, "app-message")).to_contain_text(
            [f'"fromId":"{bob_id}","data":{{"message_type":"conversation"']
        )

    expect(logged(page, "participant-left")).to_have_count(1)
    expect(logged(page, "participant-left")).to_contain_text('"user_name":"Scripted Bob"')
    expect(page.locator("#participants")).to_have_text(f"Example app (you), {REPLICA}")

    page.locator("#leave").click()
    expect(page.locator("#state")).to_have_text("left-meeting")
    expect(logged(page, "left-meeting")).to_have_count(1)
    expect(page.locator("#participants")).to_have_text("Example app (you)")


JOIN_AND_RECORD = """async ({url, token, name}) => {
  const call = Daily.createCallObject();
  window.calls = window.calls || [];
  window.calls.push(call);
  call.events = [];
  for (const event of ['joining-meeting', 'joined-meeting', 'left-meeting', 'participant-joined',
                       'participant-left', 'app-message', 'error', 'nonfatal-error']) {
    call.on(event, (e) => call.events.push(JSON.parse(JSON.stringify(e))));
  }
  try {
    const participants = await call.join({url, token, userName: name});
    return {ok: true, participants: JSON.parse(JSON.stringify(participants)), state: call.meetingState()};
  } catch (error) {
    return {ok: false, message: error.message, type: error.type, state: call.meetingState()};
  }
}"""


def join(page: Page, url: str, name: str, token: str | None = None) -> dict:
    return page.evaluate(JOIN_AND_RECORD, {"url": url, "token": token, "name": name})


def events_of(page: Page, index: int, action: str) -> list[dict]:
    return page.evaluate("([i, action]) => window.calls[i].events.filter((e) => e.action === action)", [index, action])


def test_call_object_join_refusals_and_the_end(page, client, server):
    conv = create(client, require_auth=True)
    open_example(page, server)
    assert page.evaluate("window.Daily === window.PalaverCall")  # no daily-js here: the alias

    refused = join(page, conv["conversation_url"], "No token")
    assert refused == {"ok": False, "message": "You are not allowed to join this meeting.",
                       "type": "not-allowed", "state": "error"}  # fmt: skip
    [error] = events_of(page, 0, "error")
    assert error["error"]["type"] == "not-allowed" and error["errorMsg"] == refused["message"]
    assert events_of(page, 0, "left-meeting") == []  # it never joined

    joined = join(page, conv["conversation_url"], "With token", conv["meeting_token"])
    assert joined["ok"] and joined["state"] == "joined-meeting"
    local = joined["participants"]["local"]
    assert local["local"] is True and local["user_name"] == "With token" and local["session_id"]
    assert local["tracks"]["video"]["state"] == "off"  # text only
    page.wait_for_function("() => window.calls[1].participants().replica !== undefined")
    replica = page.evaluate("window.calls[1].participants().replica")
    assert replica["user_id"] == f"tavus-replica-{REPLICA}" and replica["local"] is False
    # The token can also ride in the URL, as Tavus's ?t=.
    in_url = join(page, f"{conv['conversation_url']}?t={conv['meeting_token']}", "Token in URL")
    assert in_url["ok"], in_url

    t0 = time.monotonic()
    assert client.post(f"/v2/conversations/{conv['conversation_id']}/end").status_code == 200
    page.wait_for_function("() => window.calls[1].events.some((e) => e.action === 'left-meeting')", polling="raf")
    elapsed = time.monotonic() - t0
    assert elapsed < 1.5, f"left-meeting {elapsed:.2f}s after the end request"
    [error] = events_of(page, 1, "error")
    assert error["error"]["type"] == "ejected"
    assert error["errorMsg"] == "This conversation has ended."
    assert error["error"]["details"] == {"code": 4410, "shutdown_reason": "end_conversation_endpoint_hit"}
    assert page.evaluate("window.calls[1].meetingState()") == "error"

    late = join(page, conv["conversation_url"], "Late", conv["meeting_token"])
    assert late == {"ok": False, "message": "This conversation has ended.", "type": "exp-room", "state": "error"}
    unknown = join(page, f"{server.base_url}/rooms/c0000000000000aa", "Lost")
    assert unknown["type"] == "no-room" and unknown["message"] == "There is no such conversation."


def test_call_object_addressed_messages_and_participants(page, client, server):
    conv = create(client)
    url = conv["conversation_url"]
    open_example(page, server)
    for name in ("One", "Two", "Three"):
        assert join(page, url, name)["ok"]
    page.wait_for_function("() => window.calls[0].events.filter((e) => e.action === 'participant-joined').length === 3")
    ids = page.evaluate("window.calls.map((c) => c.participants().local.session_id)")
    remote = page.evaluate("Object.keys(window.calls[0].participants()).sort()")
    assert remote == sorted(["local", "replica", ids[1], ids[2]])
    assert page.evaluate(f"window.calls[0].participants()['{ids[1]}'].user_name") == "Two"

    page.evaluate(f"window.calls[0].sendAppMessage({{for: 'two only'}}, '{ids[1]}')")
    page.evaluate("window.calls[0].sendAppMessage({for: 'everyone'})")
    page.wait_for_function(
        "() => window.calls[2].events.some((e) => e.action === 'app-message' && e.data && e.data.for === 'everyone')"
    )
    to_two = [e["data"] for e in events_of(page, 1, "app-message") if e["fromId"] == ids[0]]
    to_three = [e["data"] for e in events_of(page, 2, "app-message") if e["fromId"] == ids[0]]
    assert to_two == [{"for": "two only"}, {"for": "everyone"}]
    assert to_three == [{"for": "everyone"}]
    assert [e for e in events_of(page, 0, "app-message") if e["fromId"] != "replica"] == []  # not to the sender

    page.evaluate("window.calls[2].leave()")
    page.wait_for_function("() => window.calls[0].events.some((e) => e.action === 'participant-left')")
    [left] = events_of(page, 0, "participant-left")
    assert left["participant"]["session_id"] == ids[2] and left["participant"]["user_name"] == "Three"
    assert page.evaluate("window.calls[2].meetingState()") == "left-meeting"

    # A malformed message is a nonfatal error: the call goes on.
    page.evaluate("window.calls[0].sendAppMessage({message_type: 'conversation', event_type: 'conversation.dance'})")
    page.wait_for_function("() => window.calls[0].events.some((e) => e.action === 'nonfatal-error')")
    assert page.evaluate("window.calls[0].meetingState()") == "joined-meeting"
    page.evaluate("window.calls[0].destroy()")
    assert page.evaluate("window.calls[0].isDestroyed()") is True


def test_module_import(page, client, server):
    open_example(page, server)
    kind = page.evaluate(
        """async () => {
            const module = await import('/static/palaver-call.mjs');
            return [typeof module.default.createCallObject, module.default === window.PalaverCall,
                    module.PalaverCall === module.default];
        }"""
    )
    assert kind == ["function", True, True]
