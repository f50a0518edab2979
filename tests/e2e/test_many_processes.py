"""Three Palaver processes on one PostgreSQL behave as one service, even when one is killed -9.

Each process is a real `palaver serve` (with its delivery worker) in a process
group of its own, so `kill -9` of the group takes the server and its worker
down at once, as a machine dying would. A bounded load creates conversations
(with a callback URL to a local receiver, some with a short max_call_duration
timer) and ends them, through the three processes at random; midway one group
is killed and then started again. Afterwards the service must show:

- every acknowledged end reads back `ended`, with exactly one shutdown event;
- every webhook arrived at least once with its stable id, in order per
  conversation, and an id arrived twice only if it was first sent before the
  kill (the killed worker held it and never recorded it);
- every timer fired once, with its reason, and timers of conversations the killed process had
  created fired while it was down;
- racing creates through all three processes never passed the account's
  concurrency limit, and the active count never exceeded it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from backends import PostgresBackend
from servers import LISTENING_RE, create_key, run_cli, wait_until
from webhook_receiver import Receiver

LIFECYCLE = ["system.replica_joined", "system.shutdown", "application.transcription_ready"]
LIMIT = 10
LEASE = "3"  # seconds: the killed worker's claims pass to another worker this soon


class Node:
    """One `palaver serve` in its own process group."""

    def __init__(self, database_url: str, workdir: Path, name: str) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.name = name
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def start(self) -> None:
        log = open(self.workdir / f"{self.name}.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "palaver",
                "serve",
                "--port",
                "0",
                "--database-url",
                self.database_url,
                "--allow-private-callbacks",
                "--webhook-lease",
                LEASE,
                "--webhook-max-attempts",
                "20",
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        log.close()
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        for line in self.proc.stdout:
            match = LISTENING_RE.match(line.strip())
            if match:
                self.base_url = match.group(1)
                break
            assert time.monotonic() < deadline, f"{self.name} did not start"
        assert self.base_url, f"{self.name} exited: {(self.workdir / f'{self.name}.log').read_text()[-3000:]}"
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # keep the pipe drained

    def kill_group(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)  # the server and its delivery worker at once
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture
def cluster_of_three(pg_cluster, tmp_path: Path):
    database = PostgresBackend(pg_cluster, prefix="three")
    run_cli("migrate", "--database-url", database.url)
    nodes = [Node(database.url, tmp_path, f"node{i}") for i in range(3)]
    for node in nodes:
        node.start()
    yield database, nodes
    for node in nodes:
        node.stop()
    database.drop()


class Load:
    """Creates and ends through random nodes; remembers what each node acknowledged."""

    def __init__(self, nodes: list[Node], key: str, receiver: Receiver) -> None:
        self.nodes = nodes
        self.key = key
        self.receiver = receiver
        self.lock = threading.Lock()
        self.created: dict[str, float] = {}  # conversation -> max_call_duration (0: no short timer)
        self.ended: set[str] = set()  # acknowledged ends
        self.active_samples: list[int] = []
        self.refused = 0
        self.unanswered = 0

    def request(self, method: str, path: str, **kwargs: object) -> httpx.Response | None:
        node = random.choice(self.nodes)
        try:
            return httpx.request(method, node.base_url + path, headers={"x-api-key": self.key}, timeout=10, **kwargs)
        except httpx.HTTPError:
            with self.lock:
                self.unanswered += 1  # that node is down: not acknowledged, no claim made on it
            return None

    def one_conversation(self, rng: random.Random) -> None:
        timer = rng.choice([0, 0, 0, 0, 2, 3])
        body: dict[str, object] = {"replica_id": "r90bbd427f71", "callback_url": self.receiver.url("/many")}
        if timer:
            body["properties"] = {"max_call_duration": timer}
        r = self.request("POST", "/v2/conversations", json=body)
        if r is None:
            return
        if r.status_code == 400 and "maximum concurrent" in r.text:
            with self.lock:
                self.refused += 1
            return
        assert r.status_code == 200, r.text
        cid = r.json()["conversation_id"]
        with self.lock:
            self.created[cid] = timer
        if timer:
            return  # its timer ends it
        time.sleep(rng.uniform(0, 0.3))
        r = self.request("POST", f"/v2/conversations/{cid}/end")
        if r is not None:
            assert r.status_code == 200, r.text
            with self.lock:
                self.ended.add(cid)

    def sample_active(self) -> None:
        r = self.request("GET", "/v2/conversations", params={"status": "active", "limit": 1})
        if r is not None and r.status_code == 200:
            with self.lock:
                self.active_samples.append(r.json()["total_count"])


def racing_creates(nodes: list[Node], key: str, count: int = 40) -> int:
    """`count` creates at the same moment through all three nodes; how many were accepted."""
    barrier = threading.Barrier(count)

    def create(i: int) -> int:
        node = nodes[i % len(nodes)]
        with httpx.Client(base_url=node.base_url, headers={"x-api-key": key}, timeout=10) as c:
            c.get("/health")  # connected before the start
            barrier.wait()
            r = c.post("/v2/conversations", json={"replica_id": "r90bbd427f71"})
        assert r.status_code in (200, 400), r.text
        return int(r.status_code == 200)

    with ThreadPoolExecutor(count) as pool:
        return sum(pool.map(create, range(count)))


def timers_through(node: Node, key: str, receiver: Receiver) -> list[str]:
    """Three conversations created through `node` with a 1 s max_call_duration: they come due while it is down."""
    made: list[str] = []
    deadline = time.monotonic() + 10
    while len(made) < 3 and time.monotonic() < deadline:
        r = httpx.post(
            f"{node.base_url}/v2/conversations",
            headers={"x-api-key": key},
            timeout=10,
            json={
                "replica_id": "r90bbd427f71",
                "callback_url": receiver.url("/many"),
                "properties": {"max_call_duration": 1},
            },
        )
        if r.status_code == 400 and "maximum concurrent" in r.text:
            time.sleep(0.02)  # the load holds the account at its limit for a moment; its ends free a slot
            continue
        assert r.status_code == 200, r.text
        made.append(r.json()["conversation_id"])
    assert len(made) == 3, made
    return made


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def end_all_active(node: Node, key: str) -> None:
    with httpx.Client(base_url=node.base_url, headers={"x-api-key": key}, timeout=10) as c:
        for conv in c.get("/v2/conversations", params={"status": "active", "limit": 100}).json()["data"]:
            assert c.post(f"/v2/conversations/{conv['conversation_id']}/end").status_code == 200


def test_three_processes_are_one_service_through_a_kill_9(cluster_of_three, receiver, tmp_path) -> None:
    database, nodes = cluster_of_three
    key = create_key(database.url, name="many", max_concurrent=LIMIT).key
    assert wait_until(
        lambda: all(
            httpx.get(f"{n.base_url}/v2/conversations", headers={"x-api-key": key}).status_code == 200 for n in nodes
        ),
        timeout=5,
    )

    # Racing creates through all three processes never pass the limit.
    for _ in range(5):
        assert racing_creates(nodes, key) == LIMIT
        end_all_active(nodes[0], key)

    load = Load(nodes, key, receiver)
    victim = nodes[1]
    kill_at = restarting_at = 0.0
    orphans: list[str] = []
    with ThreadPoolExecutor(8) as pool:
        futures = []
        for i in range(240):
            futures.append(pool.submit(load.one_conversation, random.Random(i)))
            if i % 10 == 0:
                futures.append(pool.submit(load.sample_active))
            if i == 120:
                time.sleep(0.5)
                orphans = timers_through(victim, key, receiver)
                kill_at = time.time()
                victim.kill_group()
            if i == 175:  # down for 55 rounds (over 1.6 s): the orphans' 1 s timers come due meanwhile
                restarting_at = time.time()
                victim.start()
            time.sleep(0.03)
        for future in futures:
            future.result()
    assert kill_at and victim.proc is not None and victim.proc.poll() is None

    # The load refused some creates at the limit and the active count never passed it.
    assert load.refused > 0 and len(load.created) > 50
    assert max(load.active_samples) <= LIMIT

    # Every conversation ends: by its acknowledged end, by its timer, or (an end that was
    # sent to the dead node, unacknowledged) by the test now.
    client = httpx.Client(base_url=nodes[2].base_url, headers={"x-api-key": key}, timeout=10)
    for cid, timer in load.created.items():
        if not timer and cid not in load.ended:
            assert client.post(f"/v2/conversations/{cid}/end").status_code == 200
    assert wait_until(
        lambda: client.get("/v2/conversations", params={"status": "active", "limit": 1}).json()["total_count"] == 0,
        timeout=20,
    ), "timers did not end every conversation"

    views = {cid: client.get(f"/v2/conversations/{cid}", params={"verbose": "true"}).json() for cid in load.created}
    for cid, view in views.items():
        assert view["status"] == "ended", view
        shutdowns = [e for e in view["events"] if e["event_type"] == "system.shutdown"]
        assert len(shutdowns) == 1, view["events"]
        reason = shutdowns[0]["properties"]["shutdown_reason"]
        if load.created[cid]:
            # A timer fired, once, with its reason, not before its time.
            assert reason == "max_call_duration reached", view
        elif cid in load.ended:
            assert reason == "end_conversation_endpoint_hit", view

    # Timers of conversations the killed process created fired while it was down, by another process.
    for cid in orphans:
        view = client.get(f"/v2/conversations/{cid}", params={"verbose": "true"}).json()
        (shutdown,) = [e for e in view["events"] if e["event_type"] == "system.shutdown"]
        assert shutdown["properties"]["shutdown_reason"] == "max_call_duration reached", view
        fired = epoch(shutdown["timestamp"])
        # Before the victim was started again: another process fired it.
        assert epoch(view["created_at"]) + 1 <= fired < restarting_at, (view, kill_at, restarting_at)
    load.created.update({cid: 1 for cid in orphans})
    expected_orphan_hooks = {f"{cid}.{t}" for cid in orphans for t in LIFECYCLE}

    # Every webhook arrives, with its stable id, in order; repeats only of what the killed worker held.
    expected = {f"{cid}.{t}" for cid in load.created for t in LIFECYCLE}
    assert expected_orphan_hooks <= expected
    assert wait_until(lambda: expected <= set(receiver.ids("/many")), timeout=60), (
        f"{len(expected - set(receiver.ids('/many')))} webhooks never arrived"
    )
    time.sleep(1.0)  # any late duplicate lands now
    arrivals = receiver.at("/many")
    assert set(receiver.ids("/many")) == expected  # nothing that is not one of the events
    first_seen: dict[str, float] = {}
    counts: dict[str, int] = defaultdict(int)
    for r in arrivals:
        event_id = r.headers["webhook-id"]
        counts[event_id] += 1
        first_seen.setdefault(event_id, r.at)
    repeated = [event_id for event_id, n in counts.items() if n > 1]
    for event_id in repeated:
        assert first_seen[event_id] <= kill_at + 0.05, f"{event_id} repeated, but first sent after the kill"
    for cid in load.created:
        # In order per conversation: the first copies arrive in lifecycle order, and so do the copies a
        # surviving worker sends again for events the killed one had sent without recording them
        # (shutdown, transcript, shutdown, transcript is both in order; transcript before shutdown is not).
        ids = [r.headers["webhook-id"] for r in arrivals if r.headers["webhook-id"].startswith(cid)]
        seen: set[str] = set()
        firsts, again = [], []
        for event_id in ids:
            (again if event_id in seen else firsts).append(event_id)
            seen.add(event_id)
        assert firsts == [f"{cid}.{t}" for t in LIFECYCLE], ids
        ranks = [LIFECYCLE.index(event_id.split(".", 1)[1]) for event_id in again]
        assert ranks == sorted(ranks), ids
