"""Webhooks to callback_url, end to end: a live server and a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from palaver.settings import DELIVERY_NICENESS

LIFECYCLE = ["system.replica_joined", "system.shutdown", "application.transcription_ready"]


@pytest.fixture(scope="module")
def hook_server(server_factory):
    """A server that may call 127.0.0.1 (the receiver), with fast, few retries."""
    return server_factory(
        name="webhooks",
        extra_args=("--allow-private-callbacks", "--webhook-max-attempts", "3"),
    )


@pytest.fixture(scope="module")
def hook_account(hook_server):
    return hook_server.create_key(name="hooks")


@pytest.fixture
def hook_client(hook_server, hook_account) -> Iterator[httpx.Client]:
    with hook_server.client(hook_account.key) as c:
        yield c


def create(client: httpx.Client, callback_url: str, **extra: Any) -> str:
    r = client.post("/v2/conversations", json={"replica_id": "r90bbd427f71", "callback_url": callback_url, **extra})
    assert r.status_code == 200, r.text
    return r.json()["conversation_id"]


def test_all_events_arrive_in_order_with_the_tavus_envelope(receiver, hook_client) -> None:
    url = receiver.url("/order")
    cid = create(hook_client, url)
    assert hook_client.post(f"/v2/conversations/{cid}/end").status_code == 200
    got = receiver.wait_for("/order", 3)
    assert [r.json["event_type"] for r in got] == LIFECYCLE
    for r in got:
        body = r.json
        assert set(body) == {"properties", "conversation_id", "webhook_url", "event_type", "message_type", "timestamp"}
        assert body["conversation_id"] == cid and body["webhook_url"] == url
        assert body["message_type"] == body["event_type"].split(".")[0]
        assert r.headers["content-type"] == "application/json"
        assert r.headers["user-agent"].startswith("Palaver")
    assert got[1].json["properties"]["shutdown_reason"] == "end_conversation_endpoint_hit"
    assert got[2].json["properties"]["transcript"][0]["role"] == "system"
    # what was delivered is exactly what the verbose view shows
    verbose = hook_client.get(f"/v2/conversations/{cid}", params={"verbose": "true"}).json()
    assert [r.json for r in got] == verbose["events"]
    assert len({r.headers["webhook-id"] for r in got}) == 3
    # and the verbose view tells what became of each webhook
    deadline = time.monotonic() + 5
    while any(d["status"] != "delivered" for d in verbose["webhook_deliveries"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
        verbose = hook_client.get(f"/v2/conversations/{cid}", params={"verbose": "true"}).json()
    deliveries = verbose["webhook_deliveries"]
    assert [d["event_type"] for d in deliveries] == LIFECYCLE
    assert all(d["attempts"][-1]["status_code"] == 200 for d in deliveries)
    assert {d["event_id"] for d in deliveries} == {r.headers["webhook-id"] for r in got}


def test_signature_verifies_with_the_standard_webhooks_library(receiver, hook_client, hook_account) -> None:
    cid = create(hook_client, receiver.url("/signed"))
    hook_client.post(f"/v2/conversations/{cid}/end")
    got = receiver.wait_for("/signed", 3)
    assert hook_account.webhook_secret and hook_account.webhook_secret.startswith("whsec_")
    verifier = Webhook(hook_account.webhook_secret)
    for r in got:
        assert verifier.verify(r.body, r.headers) == r.json
    tampered = dict(got[0].headers, **{"webhook-signature": "v1,AAAA"})
    with pytest.raises(WebhookVerificationError):
        verifier.verify(got[0].body, tampered)


def test_retry_then_success_keeps_the_webhook_id(receiver, hook_client, hook_server) -> None:
    receiver.plan["/flaky"] = [(503, {}), (429, {"retry-after": "0"})]
    cid = create(hook_client, receiver.url("/flaky"))
    got = receiver.wait_for("/flaky", 3)  # 503, 429, then 200 for replica_joined
    assert {r.headers["webhook-id"] for r in got} == {f"{cid}.system.replica_joined"}
    listing = hook_server.cli("webhooks", "list", "--conversation", cid).stdout
    assert f"{cid}.system.replica_joined" in listing and "\tdelivered\t3\t" in listing


def test_gives_up_after_max_attempts_and_marks_failed(receiver, hook_client, hook_server) -> None:
    receiver.plan["/down"] = [(500, {})] * 10
    cid = create(hook_client, receiver.url("/down"))
    receiver.wait_for("/down", 3)
    time.sleep(0.5)
    assert len(receiver.at("/down")) == 3  # --webhook-max-attempts 3, then no more
    listing = hook_server.cli("webhooks", "list", "--conversation", cid, "--status", "failed").stdout
    assert f"{cid}.system.replica_joined" in listing


def test_no_retry_on_a_plain_4xx(receiver, hook_client, hook_server) -> None:
    receiver.plan["/gone"] = [(410, {})]
    cid = create(hook_client, receiver.url("/gone"))
    receiver.wait_for("/gone", 1)
    time.sleep(1.0)
    assert len(receiver.at("/gone")) == 1
    assert "\tfailed\t1\tHTTP 410\t" in hook_server.cli("webhooks", "list", "--conversation", cid).stdout


def test_replay_sends_a_failed_event_again_with_the_same_id(receiver, hook_client, hook_server) -> None:
    receiver.plan["/replay"] = [(410, {})]
    cid = create(hook_client, receiver.url("/replay"))
    first = receiver.wait_for("/replay", 1)[0]
    time.sleep(0.3)
    hook_server.cli("webhooks", "replay", f"{cid}.system.replica_joined")
    second = receiver.wait_for("/replay", 2)[1]
    assert second.headers["webhook-id"] == first.headers["webhook-id"] and second.body == first.body


def test_a_private_target_is_refused_without_the_flag(receiver, server, client) -> None:
    """The main test server runs without --allow-private-callbacks."""
    cid = create(client, receiver.url("/private"))
    client.post(f"/v2/conversations/{cid}/end")
    deadline = time.monotonic() + 5
    while True:
        listing = server.cli("webhooks", "list", "--conversation", cid, "--status", "failed").stdout
        if listing.count("\n") >= 1:
            break
        assert time.monotonic() < deadline, "the refused delivery was never marked failed"
        time.sleep(0.1)
    assert "refused callback target 127.0.0.1" in listing
    assert receiver.at("/private") == []


def test_test_mode_sends_nothing(receiver, hook_client, hook_server) -> None:
    cid = create(hook_client, receiver.url("/test-mode"), test_mode=True)
    hook_client.post(f"/v2/conversations/{cid}/end")
    time.sleep(0.5)
    assert receiver.at("/test-mode") == []
    assert hook_server.cli("webhooks", "list", "--conversation", cid).stdout.strip() == ""


def test_kill_9_with_deliveries_pending_loses_nothing(receiver, server_factory) -> None:
    srv = server_factory(name="webhook-crash", extra_args=("--allow-private-callbacks",))
    account = srv.create_key(name="crash")
    receiver.plan["/crash"] = [(503, {})] * 10_000  # keep everything pending for now
    with srv.client(account.key) as c:
        cids = [create(c, receiver.url("/crash")) for _ in range(15)]
        for cid in cids:
            assert c.post(f"/v2/conversations/{cid}/end").status_code == 200
    srv.kill()  # SIGKILL with deliveries pending and retries scheduled
    receiver.plan["/crash"] = []
    srv.start()
    expected = {f"{cid}.{t}" for cid in cids for t in LIFECYCLE}
    deadline = time.monotonic() + 20
    while True:
        listing = srv.cli("webhooks", "list", "--status", "delivered", "--limit", "1000").stdout
        missing = [i for i in expected if f"{i}\t" not in listing]
        if not missing:
            break
        assert time.monotonic() < deadline, f"{len(missing)} webhooks never marked delivered"
        time.sleep(0.2)
    # marked delivered only after the receiver answered, so every id has arrived by now
    delivered_ids = {r.headers["webhook-id"] for r in receiver.at("/crash")}
    assert delivered_ids == expected  # every id arrived, and no id that was not an event
    with srv.client(account.key) as c:
        for cid in cids:
            assert c.get(f"/v2/conversations/{cid}").json()["status"] == "ended"
    # in order per conversation: the last copy of each event arrived after the last copy of the one before
    for cid in cids:
        last_index = {
            t: max(i for i, r in enumerate(receiver.at("/crash")) if r.headers["webhook-id"] == f"{cid}.{t}")
            for t in LIFECYCLE
        }
        assert last_index[LIFECYCLE[0]] < last_index[LIFECYCLE[1]] < last_index[LIFECYCLE[2]]


def _delivery_children(pid: int) -> list[int]:
    """The `palaver deliver` processes a server started (Linux: /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"deliver" in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _nice(pid: int) -> int:
    return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[16])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_delivery_workers_are_lower_priority_children_that_die_with_their_server(server_factory) -> None:
    srv = server_factory(name="webhook-child", extra_args=("--delivery-workers", "2"))
    assert srv.proc is not None
    children = _delivery_children(srv.proc.pid)
    assert len(children) == 2
    deadline = time.monotonic() + 10  # each lowers its own priority as it starts
    while any(_nice(child) != DELIVERY_NICENESS for child in children):
        assert time.monotonic() < deadline, "a delivery worker kept the server's priority"
        time.sleep(0.05)
    srv.kill()  # SIGKILL: no chance to stop the children itself
    deadline = time.monotonic() + 5
    while any(_alive(child) for child in children):
        assert time.monotonic() < deadline, "a delivery worker outlived its server"
        time.sleep(0.05)
    srv.start()
    assert len(_delivery_children(srv.proc.pid)) == 2


def test_three_workers_share_the_conversations_and_keep_each_in_order(receiver, server_factory) -> None:
    srv = server_factory(name="webhook-shards", extra_args=("--allow-private-callbacks", "--delivery-workers", "3"))
    account = srv.create_key(name="shards")
    with srv.client(account.key) as c:
        cids = [create(c, receiver.url("/shards")) for _ in range(30)]
        for cid in cids:
            assert c.post(f"/v2/conversations/{cid}/end").status_code == 200
    got = receiver.wait_for("/shards", 90)
    ids = [r.headers["webhook-id"] for r in got]
    assert sorted(ids) == sorted(f"{cid}.{t}" for cid in cids for t in LIFECYCLE)  # each once
    for cid in cids:
        assert [i for i in ids if i.startswith(cid)] == [f"{cid}.{t}" for t in LIFECYCLE]


def test_no_delivery_then_palaver_deliver_sends_what_was_waiting(receiver, server_factory) -> None:
    srv = server_factory(name="webhook-separate", extra_args=("--allow-private-callbacks", "--no-delivery"))
    account = srv.create_key(name="separate")
    with srv.client(account.key) as c:
        cid = create(c, receiver.url("/separate"))
        c.post(f"/v2/conversations/{cid}/end")
    time.sleep(0.5)
    assert receiver.at("/separate") == []  # nobody delivers
    worker = subprocess.Popen(
        [sys.executable, "-m", "palaver", "deliver", "--database-url", srv.database_url, "--allow-private-callbacks"],
        stdin=subprocess.DEVNULL,
    )
    try:
        got = receiver.wait_for("/separate", 3)
        assert [r.headers["webhook-id"] for r in got] == [f"{cid}.{t}" for t in LIFECYCLE]
    finally:
        worker.terminate()
        worker.wait(10)
