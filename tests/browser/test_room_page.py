"""The room page at conversation_url, in headless Chromium, on both backends.

The replica is the stock echo persona (`pipecat0`): it answers nothing by itself,
so a scripted participant (tests/room_client.py) makes it speak with
`conversation.echo` pieces while the page shows the words streaming in.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

import httpx
from playwright.sync_api import Page, expect
from room_client import RoomParticipant
from room_client import create_room as create

ENDED = "This conversation has ended."


def open_room(page: Page, conv: dict, name: str = "Ada", **query: str) -> None:
    page.goto(f"{conv['conversation_url']}?{urlencode({'name': name, **query})}")
    expect(page.locator("#status")).to_have_text("In call")


def participants(page: Page):
    return page.locator("#participants li")


def replica_lines(page: Page):
    return page.locator("#transcript .line.replica")


def wait_until_ended(page: Page, since: float) -> float:
    """Seconds from `since` until the page says the conversation ended (checked every frame)."""
    ended = "() => document.getElementById('room').dataset.state === 'ended'"
    page.wait_for_function(ended, polling="raf", timeout=5000)
    return time.monotonic() - since


def test_greeting_participants_and_end_through_the_api(page, client):
    conv = create(client, conversation_name="Browser room 1", custom_greeting="Hello, I am Anna. Welcome!")
    open_room(page, conv)
    expect(page.locator("#conversation-name")).to_have_text("Browser room 1")
    expect(page.locator("#replica-name")).to_have_text("Anna")
    expect(page.locator("#avatar")).to_have_text("A")  # no thumbnail: the initials
    expect(replica_lines(page)).to_have_count(1)
    expect(replica_lines(page).locator(".text")).to_have_text("Hello, I am Anna. Welcome!")
    expect(replica_lines(page).locator(".who")).to_have_text("Anna")
    expect(participants(page)).to_have_text(["Anna replica", "Ada you"])

    with RoomParticipant(conv["conversation_url"], name="Scripted Bob") as bob:
        bob.wait_for("room.joined")
        expect(participants(page)).to_have_text(["Anna replica", "Ada you", "Scripted Bob"])
    expect(participants(page)).to_have_text(["Anna replica", "Ada you"])

    r = client.post(f"/v2/conversations/{conv['conversation_id']}/end")
    assert r.status_code == 200
    elapsed = wait_until_ended(page, time.monotonic())
    assert elapsed < 1.0, f"the page showed the end {elapsed:.2f}s after the end request's 200"
    expect(page.locator("#status")).to_have_text("Ended")
    expect(page.locator("#status-detail")).to_have_text(f"{ENDED} It was ended through the API.")
    expect(page.locator("#message")).to_be_disabled()
    expect(page.locator("#send")).to_be_disabled()
    expect(page.locator("#join")).to_be_hidden()
    expect(replica_lines(page)).to_have_count(1)  # the transcript stays to read


def test_the_reply_streams_into_one_line(page, client):
    conv = create(client)
    open_room(page, conv)
    with RoomParticipant(conv["conversation_url"], name="Driver") as driver:
        driver.wait_for("system.replica_joined")
        line = replica_lines(page)
        pieces = [("Streaming ", "Streaming"), ("is ", "Streaming is"), ("live.", "Streaming is live.")]
        for i, (piece, shown) in enumerate(pieces):
            done = i == len(pieces) - 1
            driver.send("conversation.echo", {"text": piece, "done": done, "inference_id": "inf-stream-1"})
            expect(line).to_have_count(1)
            expect(line.locator(".text")).to_have_text(shown)
            if not done:
                expect(line).to_have_class("line replica streaming")
        expect(line).to_have_class("line replica")
        said = driver.wait_for("conversation.utterance", role="replica")
        assert said["properties"]["speech"] == "Streaming is live."
        # The next utterance is a line of its own.
        driver.send("conversation.echo", {"text": "Second line."})
        expect(line).to_have_count(2)
        expect(line.nth(1).locator(".text")).to_have_text("Second line.")


def participant_named(listener: RoomParticipant, welcome: dict, name: str) -> dict:
    """A participant who joined just before `listener`, from its welcome or, when that participant's
    join had not yet come back through the bus (PostgreSQL: a NOTIFY), from the join that follows."""
    for participant in welcome["properties"]["participants"]:
        if participant["user_name"] == name:
            return participant
    while True:
        participant = listener.wait_for("room.participant_joined")["properties"]["participant"]
        if participant["user_name"] == name:
            return participant


def test_typing_speaks_to_the_room(page, client):
    conv = create(client)
    open_room(page, conv, name="Ada")
    with RoomParticipant(conv["conversation_url"], name="Listener") as listener:
        welcome = listener.wait_for("room.joined")
        ada = participant_named(listener, welcome, "Ada")
        expect(participants(page)).to_contain_text(["Listener"])

        page.locator("#message").fill("Hello from the browser")
        page.locator("#send").click()
        relayed = listener.wait_for("room.app_message")
        assert relayed["properties"]["from"] == ada["participant_id"]
        data = relayed["properties"]["data"]
        assert data["message_type"] == "conversation"
        assert data["event_type"] == "conversation.respond"
        assert data["properties"] == {"text": "Hello from the browser"}
        said = listener.wait_for("conversation.utterance", role="user")
        assert said["properties"]["speech"] == "Hello from the browser"
        user_lines = page.locator("#transcript .line.user")
        expect(user_lines.locator(".text")).to_have_text(["Hello from the browser"])
        expect(user_lines.locator(".who")).to_have_text(["Ada (you)"])
        expect(page.locator("#message")).to_have_value("")

        page.locator("#message").fill("Enter sends too")
        page.locator("#message").press("Enter")
        assert listener.wait_for("conversation.utterance", role="user")["properties"]["speech"] == "Enter sends too"
        expect(user_lines.locator(".text")).to_have_text(["Hello from the browser", "Enter sends too"])

        # What another participant says is named after them.
        listener.send("conversation.respond", {"text": "A question from the listener"})
        expect(user_lines.locator(".who")).to_have_text(["Ada (you)", "Ada (you)", "Listener"])
        listener.send("conversation.echo", {"text": "An answer for both of you."})
        expect(replica_lines(page).locator(".text")).to_have_text(["An answer for both of you."])


def test_room_errors_show_inline_and_the_call_goes_on(page, client):
    conv = create(client)
    open_room(page, conv)
    page.locator("#message").fill("x" * 16_001)  # over the protocol's 16,000 characters
    page.locator("#send").click()
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("properties.text is too long")
    expect(page.locator("#status")).to_have_text("In call")
    page.locator("#message").fill("y" * 70_000)  # over the socket's 64 KiB: the page keeps it rather than send
    page.locator("#send").click()
    expect(page.locator("#error")).to_have_text("That message is too long to send.")
    expect(page.locator("#message")).to_have_value("y" * 70_000)
    expect(page.locator("#status")).to_have_text("In call")
    page.locator("#message").fill("A normal one")
    page.locator("#send").click()
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#transcript .line.user .text")).to_have_text(["A normal one"])


def test_a_late_joiner_sees_what_was_said(page, client):
    conv = create(client, custom_greeting="Greetings, early bird.")
    with RoomParticipant(conv["conversation_url"], name="Early") as early:
        early.wait_for("conversation.utterance", role="replica")
        early.send("conversation.respond", {"text": "I was here first"})
        early.wait_for("conversation.utterance", role="user")
        open_room(page, conv, name="Late")
        expect(page.locator("#transcript .line .text")).to_have_text(["Greetings, early bird.", "I was here first"])
        expect(participants(page)).to_have_text(["Anna replica", "Late you", "Early"])


def test_leave_and_rejoin(page, client):
    conv = create(client)
    open_room(page, conv, name="Ada")
    with RoomParticipant(conv["conversation_url"], name="Watcher") as watcher:
        watcher.wait_for("room.joined")
        page.locator("#leave").click()
        expect(page.locator("#status")).to_have_text("Left")
        expect(page.locator("#status-detail")).to_have_text("You left the call.")
        left = watcher.wait_for("room.participant_left")
        assert left["properties"]["participant"]["user_name"] == "Ada"
        expect(page.locator("#message")).to_be_disabled()
        expect(page.locator("#join-name")).to_have_value("Ada")
        page.locator("#join-button").click()
        expect(page.locator("#status")).to_have_text("In call")
        joined = watcher.wait_for("room.participant_joined")
        assert joined["properties"]["participant"]["user_name"] == "Ada"


def test_name_prompt_and_an_end_seen_without_joining(page, client):
    conv = create(client)
    page.goto(conv["conversation_url"])
    expect(page.locator("#join")).to_be_visible()
    expect(page.locator("#status")).to_have_text("Not joined")
    page.locator("#join-name").fill("Grace")
    page.locator("#join-button").click()
    expect(page.locator("#status")).to_have_text("In call")
    expect(participants(page)).to_contain_text(["Grace you"])

    other = create(client)
    page.goto(other["conversation_url"])
    expect(page.locator("#join-name")).to_have_value("Grace")  # remembered
    assert client.post(f"/v2/conversations/{other['conversation_id']}/end").status_code == 200
    elapsed = wait_until_ended(page, time.monotonic())
    assert elapsed < 1.0, f"the page at the name prompt showed the end after {elapsed:.2f}s"
    expect(page.locator("#status-detail")).to_have_text(f"{ENDED} It was ended through the API.")
    expect(page.locator("#join")).to_be_hidden()


def test_deleted_while_open_then_not_found(page, client):
    conv = create(client)
    open_room(page, conv)
    r = client.delete(f"/v2/conversations/{conv['conversation_id']}")
    assert r.status_code in (200, 204)
    elapsed = wait_until_ended(page, time.monotonic())
    assert elapsed < 1.0, f"the page showed the delete after {elapsed:.2f}s"
    expect(page.locator("#status-detail")).to_contain_text(ENDED)
    response = page.reload()
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("No such room")


def test_a_late_visitor_sees_it_ended(page, client, server):
    conv = create(client, conversation_name="Over already")
    assert client.post(f"/v2/conversations/{conv['conversation_id']}/end").status_code == 200
    served = httpx.get(conv["conversation_url"])
    assert served.status_code == 200
    assert ENDED in served.text  # rendered by the server: the record says so
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(f"{conv['conversation_url']}?name=Late")
    expect(page.locator("#status")).to_have_text("Ended")
    expect(page.locator("#status-detail")).to_have_text(f"{ENDED} It was ended through the API.")
    expect(page.locator("#conversation-name")).to_have_text("Over already")
    expect(page.locator("#join")).to_be_hidden()
    expect(page.locator("#call")).to_be_hidden()
    page.wait_for_timeout(300)
    assert sockets == []  # nothing to join


def test_require_auth_needs_the_token(page, client):
    # The room outlives its last participant for a minute: the page leaves it between the two joins.
    conv = create(client, require_auth=True, properties={"participant_left_timeout": 60})
    open_url = conv["conversation_url"]
    page.goto(f"{open_url}?name=Mallory")
    expect(page.locator("#status-detail")).to_have_text("You are not allowed to join this meeting.")
    expect(page.locator("#status")).to_have_text("Not allowed")
    expect(page.locator("#message")).to_be_disabled()
    open_room(page, conv, name="Invited", t=conv["meeting_token"])  # Tavus documents ?t=
    open_room(page, conv, name="Invited too", token=conv["meeting_token"])


def test_unknown_rooms_are_not_found(page, server):
    for cid in ("c0000000000000aa", "not-an-id"):
        response = page.goto(f"{server.base_url}/rooms/{cid}")
        assert response is not None and response.status == 404
        expect(page.locator("h1")).to_have_text("No such room")
        expect(page.locator("main")).to_contain_text("Not found")


def test_names_are_shown_as_text(page, client):
    evil = '<img src=x onerror="window.pwned=1">'
    conv = create(client, conversation_name=evil)
    open_room(page, conv, name="<i>Ada</i>")
    with RoomParticipant(conv["conversation_url"], name='<b id="bold">Bob</b>') as bob:
        bob.wait_for("room.joined")
        expect(participants(page)).to_contain_text(['<b id="bold">Bob</b>'])
        bob.send("conversation.echo", {"text": '<script>window.pwned=2</script>"quoted"'})
        expect(replica_lines(page).locator(".text")).to_have_text(['<script>window.pwned=2</script>"quoted"'])
    expect(page.locator("#conversation-name")).to_have_text(evil)
    expect(participants(page)).to_contain_text(["<i>Ada</i> you"])
    assert page.locator("#bold, #participants i, #room img").count() == 0
    assert page.evaluate("window.pwned") is None
