"""The delivery worker in-process: outbox changes in, signed POSTs out, every attempt in the ledger.

A real HTTP receiver on 127.0.0.1, real storage and ledger files, and a
ManualClock for retry times, so a backoff of seconds is crossed without sleeping.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from webhook_receiver import Receiver

from palaver.delivery import worker as worker_module
from palaver.delivery.sender import SendResult
from palaver.delivery.worker import MAX_RECORD_DELAY, DeliveryWorker, render
from palaver.domain.clock import ManualClock
from palaver.domain.conversation import History
from palaver.domain.lanes import Lane
from palaver.domain.retry import RetryPolicy
from palaver.domain.shards import Shard
from palaver.service.conversations import ConversationService, CreateConversation
from palaver.service.keys import issue_key
from palaver.service.webhooks import trim_outbox
from palaver.storage import open_storage
from palaver.storage.base import OutboxChange, Storage, open_ledger
from palaver.storage.ledger import DeliveryLedger, NewDelivery

LIFECYCLE = ["system.replica_joined", "system.shutdown", "application.transcription_ready"]


@dataclass
class World:
    storage: Storage
    ledger: DeliveryLedger
    clock: ManualClock
    service: ConversationService
    account: str

    def worker(self, **options: Any) -> DeliveryWorker:
        options.setdefault("policy", RetryPolicy(max_attempts=3, base_delay=10.0))
        return DeliveryWorker(self.storage, self.ledger, self.clock, allow_private=True, **options)

    async def drain(self, worker: DeliveryWorker) -> None:
        async with worker.sender() as sender:
            await worker.drain(sender)

    async def conversation(self, url: str, *, end: bool = True) -> str:
        spec = CreateConversation(replica_id="r90bbd427f71", callback_url=url)
        cid = (await self.service.create(self.account, spec)).conversation_id
        if end:
            await self.service.end(self.account, cid)
        return cid


def scenario(tmp_path: Path, body: Callable[[World], Awaitable[None]]) -> None:
    async def main() -> None:
        url = f"sqlite:///{tmp_path / 'main.db'}"
        storage, ledger, clock = open_storage(url), open_ledger(url), ManualClock()
        await storage.migrate()
        await ledger.migrate()
        account = (await issue_key(storage, clock)).account_id
        world = World(storage, ledger, clock, ConversationService(storage, clock, "http://p.test"), account)
        try:
            await body(world)
        finally:
            await ledger.close()
            await storage.close()

    asyncio.run(main())


def test_every_event_arrives_once_in_order_and_is_recorded(tmp_path: Path, receiver: Receiver) -> None:
    async def body(w: World) -> None:
        cids = [await w.conversation(receiver.url("/hook")) for _ in range(5)]
        await w.drain(w.worker(concurrency=3))
        ids = receiver.ids("/hook")
        assert sorted(ids) == sorted(f"{c}.{t}" for c in cids for t in LIFECYCLE)
        for cid in cids:
            assert [i for i in ids if i.startswith(cid)] == [f"{cid}.{t}" for t in LIFECYCLE]
        deliveries = await w.ledger.list_deliveries()
        assert {d.status for d in deliveries} == {"delivered"} and len(deliveries) == 15
        assert await w.ledger.cursor() == max(c.seq for c in await w.storage.read_outbox(0, 100))
        shutdown = next(r.json for r in receiver.at("/hook") if r.headers["webhook-id"] == f"{cids[0]}.system.shutdown")
        assert shutdown["properties"]["shutdown_reason"] == "end_conversation_endpoint_hit"

    scenario(tmp_path, body)


def test_a_retry_waits_for_its_time_on_the_clock_and_keeps_order(tmp_path: Path, receiver: Receiver) -> None:
    async def body(w: World) -> None:
        receiver.plan["/hook"] = [(503, {})]  # the replica_joined's first attempt
        cid = await w.conversation(receiver.url("/hook"))
        worker = w.worker()
        await w.drain(worker)
        # one failed attempt; the rest of the conversation waits behind it
        assert receiver.ids("/hook") == [f"{cid}.system.replica_joined"]
        (first, *rest) = await w.ledger.list_deliveries(conversation_id=cid)
        assert (first.status, first.attempts, first.last_status_code) == ("pending", 1, 503)
        assert first.next_attempt_epoch > w.clock.now() and all(d.attempts == 0 for d in rest)
        w.clock.advance(first.next_attempt_epoch - w.clock.now())
        await w.drain(worker)
        assert receiver.ids("/hook") == [f"{cid}.system.replica_joined", *(f"{cid}.{t}" for t in LIFECYCLE)]
        attempts = await w.ledger.list_attempts(first.delivery_id)
        assert [a.status_code for a in attempts] == [503, 200]

    scenario(tmp_path, body)


def test_gives_up_after_max_attempts_and_a_4xx_stops_at_once(tmp_path: Path, receiver: Receiver) -> None:
    async def body(w: World) -> None:
        receiver.plan["/hook"] = [(500, {}), (500, {}), (500, {}), (410, {})]
        cid = await w.conversation(receiver.url("/hook"), end=False)
        worker = w.worker()
        for _ in range(3):
            await w.drain(worker)
            w.clock.advance(60)
        (d,) = await w.ledger.list_deliveries(conversation_id=cid)
        assert (d.status, d.attempts) == ("failed", 3)
        other = await w.conversation(receiver.url("/hook"), end=False)
        await w.drain(worker)
        (e,) = await w.ledger.list_deliveries(conversation_id=other)
        assert (e.status, e.attempts, e.last_error) == ("failed", 1, "HTTP 410")

    scenario(tmp_path, body)


def test_a_hard_delete_purges_what_is_still_waiting(tmp_path: Path, receiver: Receiver) -> None:
    async def body(w: World) -> None:
        receiver.plan["/hook"] = [(503, {})]
        cid = await w.conversation(receiver.url("/hook"))
        worker = w.worker()
        await w.drain(worker)
        await w.service.delete(w.account, cid, hard=True)
        w.clock.advance(3600)
        await w.drain(worker)
        assert receiver.ids("/hook") == [f"{cid}.system.replica_joined"]  # the one attempt made before the delete
        assert await w.ledger.list_deliveries(conversation_id=cid) == []

    scenario(tmp_path, body)


def test_a_new_worker_sends_what_an_old_one_took_but_never_sent(tmp_path: Path, receiver: Receiver) -> None:
    """A crash between taking changes into the ledger and sending them loses nothing."""

    async def body(w: World) -> None:
        cid = await w.conversation(receiver.url("/hook"))
        crashed = w.worker()
        await crashed.load()
        assert await crashed.ingest() == 2  # taken into the ledger, then the process "dies"
        assert receiver.ids("/hook") == []
        await w.drain(w.worker())
        assert receiver.ids("/hook") == [f"{cid}.{t}" for t in LIFECYCLE]

    scenario(tmp_path, body)


def test_replay_through_the_outbox_sends_the_same_event_again(tmp_path: Path, receiver: Receiver) -> None:
    async def body(w: World) -> None:
        cid = await w.conversation(receiver.url("/hook"), end=False)
        worker = w.worker()
        await w.drain(worker)
        await w.storage.request_replay(f"{cid}.system.replica_joined", cid)
        await w.drain(worker)
        assert receiver.ids("/hook") == [f"{cid}.system.replica_joined"] * 2
        first, second = receiver.at("/hook")
        assert first.body == second.body

    scenario(tmp_path, body)


def test_a_stopping_worker_records_the_attempts_in_flight(tmp_path: Path, receiver: Receiver) -> None:
    """Stopped mid-send, the worker waits for the answers and records them: nothing is sent twice."""

    async def body(w: World) -> None:
        receiver.delay = 0.3
        cid = await w.conversation(receiver.url("/hook"), end=False)
        stop = asyncio.Event()
        worker = w.worker()
        running = asyncio.create_task(worker.run(stop))
        while not receiver.ids("/hook"):  # the request has reached the receiver, whose answer is 0.3 s away
            await asyncio.sleep(0.01)
        stop.set()
        await running
        (d,) = await w.ledger.list_deliveries(conversation_id=cid)
        assert (d.status, d.attempts) == ("delivered", 1)

    scenario(tmp_path, body)


def history(**changes: Any) -> History:
    fields: dict[str, Any] = dict(
        conversation_id="c1",
        test_mode=False,
        replica_id="r1",
        callback_url="https://example.com/h",
        system_prompt="",
        created_at="2026-01-01T00:00:00.000000Z",
        ended_at="2026-01-01T00:01:00.000000Z",
        shutdown_reason="max_call_duration reached",
    )
    fields.update(changes)
    return History(**fields)


def change(kind: str, h: History | None, detail: str | None = None) -> OutboxChange:
    return OutboxChange(1, "c1", kind, detail, 5.0, None if h is None else "acc", h)


def test_render_turns_changes_into_their_events() -> None:
    new, purge, replay = render(
        [
            change("created", history()),
            change("ended", history()),
            change("ended", None),  # hard-deleted since: nothing to send
            change("created", history(callback_url="")),
            change("ended", history(test_mode=True)),
            change("purged", None),
            change("replay", None, "c1.system.shutdown"),
        ]
    )
    assert [d.event_type for d in new] == LIFECYCLE
    assert {d.created_epoch for d in new} == {5.0} and {d.account_id for d in new} == {"acc"}
    assert json.loads(new[1].body)["properties"]["shutdown_reason"] == "max_call_duration reached"
    assert (purge, replay) == (["c1"], ["c1.system.shutdown"])


def test_render_in_a_lane_gives_that_lanes_events_of_each_change_with_the_same_bodies() -> None:
    changes = [change("created", history()), change("ended", history()), change("purged", None)]
    everything, _, _ = render(changes)
    system, purge, _ = render(changes, Lane.SYSTEM)
    application, purge_again, _ = render(changes, Lane.APPLICATION)
    assert [d.event_type for d in system] == ["system.replica_joined", "system.shutdown"]
    assert [d.event_type for d in application] == ["application.transcription_ready"]
    assert system + application == everything
    assert (purge, purge_again) == (["c1"], [])  # purges and replays belong to the system lane


def test_two_sharded_workers_deliver_everything_once_between_them(tmp_path: Path, receiver: Receiver) -> None:
    async def body(w: World) -> None:
        cids = [await w.conversation(receiver.url("/hook")) for _ in range(12)]
        workers = [w.worker(shard=Shard(i, 2)) for i in range(2)]
        for worker in workers:
            await w.drain(worker)
        ids = receiver.ids("/hook")
        assert sorted(ids) == sorted(f"{c}.{t}" for c in cids for t in LIFECYCLE)
        per_worker = [
            {
                d.conversation_id
                for d in await w.ledger.list_deliveries(limit=1000)
                if Shard(i, 2).owns(d.conversation_id)
            }
            for i in range(2)
        ]
        assert all(per_worker)  # both had work
        assert await w.ledger.cursor() == max(c.seq for c in await w.storage.read_outbox(0, 1000))

    scenario(tmp_path, body)


class RecordingSender:
    """Stands in for the HTTP sender: answers 200 at once and remembers the order of the sends."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, url: str, body: bytes, headers: dict[str, str], now: float) -> SendResult:
        self.sent.append(headers["webhook-id"])
        await asyncio.sleep(0)
        return SendResult(200, 1.0)


def test_under_a_backlog_shutdowns_go_before_other_conversations_transcripts(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        url = "http://127.0.0.1:9/hook"

        def new(cid: str, event_type: str) -> NewDelivery:
            return NewDelivery(f"{cid}.{event_type}", cid, w.account, event_type, url, "{}", 1.0)

        # A ended first and only its transcript is left; B's replica_joined, shutdown and transcript wait behind.
        backlog = [
            new("a", "application.transcription_ready"),
            new("b", "system.replica_joined"),
            new("b", "system.shutdown"),
            new("b", "application.transcription_ready"),
            new("c", "system.shutdown"),
        ]
        await w.ledger.ingest(backlog, 0, purge=[], replay=[])
        worker = w.worker(concurrency=1)
        sender = RecordingSender()
        await worker.drain(sender)  # type: ignore[arg-type]
        assert sender.sent == [
            "b.system.replica_joined",
            "c.system.shutdown",
            "b.system.shutdown",
            "a.application.transcription_ready",
            "b.application.transcription_ready",
        ]

    scenario(tmp_path, body)


def test_transcripts_are_taken_once_the_system_lane_has_caught_up(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        cids = [await w.conversation("http://127.0.0.1:9/hook") for _ in range(3)]
        last_seq = max(c.seq for c in await w.storage.read_outbox(0, 100))
        worker, sender = w.worker(concurrency=1), RecordingSender()

        async def stored() -> list[str]:
            return [d.event_type for d in await w.ledger.list_deliveries()]

        # Three conversations' system events are ready, more than the connections: the
        # transcripts stay in the outbox, and so does the outbox row (the trim cursor).
        await worker.step(sender)  # type: ignore[arg-type]
        assert sorted(set(await stored())) == ["system.replica_joined", "system.shutdown"]
        assert await w.ledger.cursor() == 0
        await worker.drain(sender)  # type: ignore[arg-type]
        assert sorted(set(await stored())) == sorted(LIFECYCLE)
        assert await w.ledger.cursor() == last_seq
        for cid in cids:
            assert [i for i in sender.sent if i.startswith(cid)] == [f"{cid}.{t}" for t in LIFECYCLE]
        assert all(i.split(".", 1)[1].startswith("system.") for i in sender.sent[:6])

    scenario(tmp_path, body)


def test_a_worker_with_a_batch_of_system_events_ready_sends_before_taking_more(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        cids = [await w.conversation("http://127.0.0.1:9/hook") for _ in range(4)]
        worker, sender = w.worker(concurrency=1, ingest_batch=2), RecordingSender()

        async def taken() -> set[str]:
            return {d.conversation_id for d in await w.ledger.list_deliveries()}

        for _ in range(3):  # one conversation's two changes per step; the first goes out at once
            await worker.step(sender)  # type: ignore[arg-type]
        assert await taken() == set(cids[:3])
        # two conversations wait for the one connection: a full batch is ready, so nothing more is taken
        assert await worker.step(sender) is False  # type: ignore[arg-type]
        assert await taken() == set(cids[:3])
        await worker.drain(sender)  # type: ignore[arg-type]
        assert await taken() == set(cids)

    scenario(tmp_path, body)


def test_the_application_lane_never_passes_the_system_lane(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        first = await w.conversation("http://127.0.0.1:9/hook")
        worker = w.worker(ingest_batch=1)
        assert await worker.ingest() == 1  # first's `created` change only
        assert await worker.ingest_application() == 1
        assert await worker.ingest_application() == 0  # its `ended` change is not taken yet by the system lane
        assert [d.event_type for d in await w.ledger.list_deliveries(conversation_id=first)] == [
            "system.replica_joined"
        ]
        assert await worker.ingest() == 1
        assert await worker.ingest_application() == 1
        assert [d.event_type for d in await w.ledger.list_deliveries(conversation_id=first)] == LIFECYCLE

    scenario(tmp_path, body)


class GatedSender:
    """Stands in for the HTTP sender: each attempt answers 200 when the test releases it."""

    def __init__(self) -> None:
        self.waiting: deque[asyncio.Future[None]] = deque()
        self.open = False

    async def send(self, url: str, body: bytes, headers: dict[str, str], now: float) -> SendResult:
        if not self.open:
            answer = asyncio.get_running_loop().create_future()
            self.waiting.append(answer)
            await answer
        return SendResult(200, 1.0)

    async def release(self) -> None:
        await self.settle()  # the attempt started reaches its send
        self.waiting.popleft().set_result(None)
        await self.settle()  # it finishes, and the next one starts

    @staticmethod
    async def settle() -> None:
        for _ in range(5):
            await asyncio.sleep(0)


async def delivered(w: World) -> int:
    return sum(d.status == "delivered" for d in await w.ledger.list_deliveries())


def test_outcomes_wait_to_be_recorded_while_system_events_wait_for_a_connection(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        for _ in range(3):
            await w.conversation("http://127.0.0.1:9/hook")
        worker, sender = w.worker(concurrency=1), GatedSender()

        await worker.step(sender)  # type: ignore[arg-type]  # takes all; one attempt out, two conversations ready
        await sender.release()  # the first outcome; the second attempt goes out
        w.clock.advance(MAX_RECORD_DELAY / 2)  # past the flush interval, not past MAX_RECORD_DELAY
        await worker.step(sender)  # type: ignore[arg-type]
        await sender.release()  # a second outcome, younger
        w.clock.advance(MAX_RECORD_DELAY / 2 - 0.1)  # the first has waited just under the bound
        await worker.step(sender)  # type: ignore[arg-type]
        assert await delivered(w) == 0
        w.clock.advance(0.2)  # the first has waited past it: both are recorded, though a shutdown waits
        await worker.step(sender)  # type: ignore[arg-type]
        assert await delivered(w) == 2
        sender.open = True
        await sender.settle()
        while sender.waiting:
            await sender.release()
        await worker.drain(sender)  # type: ignore[arg-type]
        assert await delivered(w) == 9

    scenario(tmp_path, body)


def test_outcomes_past_the_bound_are_recorded_a_batch_per_step_while_system_events_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So that taking and sending the waiting shutdowns goes on between the batches."""
    monkeypatch.setattr(worker_module, "RECORD_BATCH", 1)

    async def body(w: World) -> None:
        for _ in range(4):
            await w.conversation("http://127.0.0.1:9/hook")
        worker, sender = w.worker(concurrency=1), GatedSender()

        await worker.step(sender)  # type: ignore[arg-type]
        await sender.release()
        await worker.step(sender)  # type: ignore[arg-type]
        await sender.release()
        w.clock.advance(MAX_RECORD_DELAY + 1)
        await worker.step(sender)  # type: ignore[arg-type]
        assert await delivered(w) == 1
        await worker.step(sender)  # type: ignore[arg-type]
        assert await delivered(w) == 2

    scenario(tmp_path, body)


def test_a_step_records_one_batch_and_says_more_is_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst's outcomes are recorded over several steps, each of which first takes and sends what
    became ready: the ends that follow a burst of creates do not wait for all its bookkeeping."""
    monkeypatch.setattr(worker_module, "RECORD_BATCH", 1)

    async def body(w: World) -> None:
        for _ in range(2):
            await w.conversation("http://127.0.0.1:9/hook", end=False)
        worker, sender = w.worker(concurrency=2), GatedSender()
        sender.open = True
        await worker.step(sender)  # type: ignore[arg-type]
        await sender.settle()  # both attempts finish; nothing else is ready
        assert await worker.step(sender) is True  # type: ignore[arg-type]
        assert [d.status for d in await w.ledger.list_deliveries()] == ["delivered", "pending"]
        assert await worker.step(sender) is False  # type: ignore[arg-type]
        assert [d.status for d in await w.ledger.list_deliveries()] == ["delivered", "delivered"]

    scenario(tmp_path, body)


def test_answers_that_arrive_together_start_the_next_attempts_without_waiting_for_a_step(tmp_path: Path) -> None:
    """Each finished attempt frees its connection slot and fills it: a burst's backlog does not go
    out in waves of `concurrency` per poll interval."""

    async def body(w: World) -> None:
        for _ in range(3):
            await w.conversation("http://127.0.0.1:9/hook", end=False)
        worker, sender = w.worker(concurrency=2), GatedSender()
        await worker.step(sender)  # type: ignore[arg-type]
        await sender.settle()
        assert len(sender.waiting) == 2
        for answer in list(sender.waiting):  # both answers in the same turn of the loop
            sender.waiting.popleft()
            answer.set_result(None)
        await sender.settle()
        assert len(sender.waiting) == 1  # the third conversation's event went out, no step taken

    scenario(tmp_path, body)


def test_outcomes_are_recorded_at_once_when_no_system_event_waits(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        await w.conversation("http://127.0.0.1:9/hook", end=False)
        await w.conversation("http://127.0.0.1:9/hook", end=False)
        worker, sender = w.worker(concurrency=1), GatedSender()
        await worker.step(sender)  # type: ignore[arg-type]
        await sender.release()
        await worker.step(sender)  # type: ignore[arg-type]
        await sender.release()
        w.clock.advance(0.1)  # the flush interval, and nothing else is ready
        await worker.step(sender)  # type: ignore[arg-type]
        assert [d.status for d in await w.ledger.list_deliveries()] == ["delivered", "delivered"]

    scenario(tmp_path, body)


def test_attempts_that_could_not_be_recorded_are_kept_for_the_next_flush(tmp_path: Path, receiver: Receiver) -> None:
    async def body(w: World) -> None:
        cid = await w.conversation(receiver.url("/hook"), end=False)
        worker = w.worker()
        real_record = w.ledger.record
        failures = [OSError("disk full")]

        async def flaky(results: Any) -> None:
            if failures:
                raise failures.pop()
            await real_record(results)

        w.ledger.record = flaky  # type: ignore[method-assign]
        with pytest.raises(OSError):
            await w.drain(worker)
        await w.drain(worker)
        (d,) = await w.ledger.list_deliveries(conversation_id=cid)
        assert (d.status, d.attempts) == ("delivered", 1)
        assert receiver.ids("/hook") == [f"{cid}.system.replica_joined"]  # recorded late, not sent twice

    scenario(tmp_path, body)


def test_the_server_trims_what_the_ledger_took_in_chunks(tmp_path: Path, receiver: Receiver) -> None:
    async def body(w: World) -> None:
        for _ in range(5):
            await w.conversation(receiver.url("/hook"))  # 10 outbox rows
        assert await trim_outbox(w.storage, w.ledger, chunk=3) == 0  # nothing taken yet
        await w.drain(w.worker())
        late = await w.conversation(receiver.url("/hook"), end=False)  # taken by nobody yet
        assert await trim_outbox(w.storage, w.ledger, chunk=3) == 10
        assert [c.conversation_id for c in await w.storage.read_outbox(0, 100)] == [late]

    scenario(tmp_path, body)


def test_resource_callbacks_are_delivered_once_and_signed(tmp_path: Path, receiver: Receiver) -> None:
    """A resource's callback (replica training, document status) goes through the same outbox and ledger."""
    from palaver.storage.resources import Callback

    async def body(w: World) -> None:
        url = receiver.url("/resource")
        first = Callback("rabc123", w.account, "replica.trained", url, {"replica_id": "rabc123", "status": "ready"})
        await w.storage.resources.enqueue_callback(first, w.clock.now())
        await w.storage.resources.enqueue_callback(first, w.clock.now())  # a job run again after a crash
        second = Callback("dabc-1", w.account, "document.status", url, {"document_id": "dabc", "status": "ready"})
        await w.storage.resources.enqueue_callback(second, w.clock.now())
        await w.drain(w.worker())
        # Each once (the repeat is the same event id); two keys are independent, so no order between them.
        assert sorted(receiver.ids("/resource")) == ["dabc-1.document.status", "rabc123.replica.trained"]
        bodies = {r.headers["webhook-id"]: r.json for r in receiver.at("/resource")}
        assert bodies == {"rabc123.replica.trained": {"replica_id": "rabc123", "status": "ready"},
                          "dabc-1.document.status": {"document_id": "dabc", "status": "ready"}}  # fmt: skip
        assert all("webhook-signature" in r.headers for r in receiver.at("/resource"))
        assert {d.status for d in await w.ledger.list_deliveries()} == {"delivered"}

    scenario(tmp_path, body)
