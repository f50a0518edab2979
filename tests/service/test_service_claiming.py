"""PostgreSQL's delivery workers in-process: several of them on one ledger, claims, leases, order.

A real PostgreSQL (the session's throw-away cluster), a real HTTP receiver on
127.0.0.1, and a ManualClock for retry times and leases, so a backoff or a
lease of seconds is crossed without sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from backends import PostgresBackend
from webhook_receiver import Receiver

from palaver.delivery.claiming import ClaimingDeliveryWorker
from palaver.delivery.worker import render
from palaver.domain.clock import ManualClock
from palaver.domain.retry import RetryPolicy
from palaver.service.conversations import ConversationService, CreateConversation
from palaver.service.keys import issue_key
from palaver.storage.ledger import AttemptRecord, AttemptResult
from palaver.storage.postgres import PostgresStorage
from palaver.storage.postgres_ledger import PostgresDeliveryLedger

LIFECYCLE = ["system.replica_joined", "system.shutdown", "application.transcription_ready"]


@dataclass
class World:
    storage: PostgresStorage
    ledger: PostgresDeliveryLedger
    clock: ManualClock
    service: ConversationService
    account: str

    def worker(self, **options: Any) -> ClaimingDeliveryWorker:
        options.setdefault("policy", RetryPolicy(max_attempts=3, base_delay=10.0))
        options.setdefault("lease", 30.0)
        return ClaimingDeliveryWorker(self.storage, self.ledger, self.clock, allow_private=True, **options)

    async def drain(self, *workers: ClaimingDeliveryWorker) -> None:
        async def one(worker: ClaimingDeliveryWorker) -> None:
            async with worker.sender() as sender:
                await worker.drain(sender)

        await asyncio.gather(*(one(w) for w in workers))

    async def conversation(self, url: str, *, end: bool = True) -> str:
        spec = CreateConversation(replica_id="r90bbd427f71", callback_url=url)
        cid = (await self.service.create(self.account, spec)).conversation_id
        if end:
            await self.service.end(self.account, cid)
        return cid


def scenario(pg_cluster: Any, body: Callable[[World], Awaitable[None]]) -> None:
    database = PostgresBackend(pg_cluster, prefix="claims")

    async def main() -> None:
        storage, ledger, clock = PostgresStorage(database.url), PostgresDeliveryLedger(database.url), ManualClock()
        await storage.migrate()
        account = (await issue_key(storage, clock)).account_id
        world = World(storage, ledger, clock, ConversationService(storage, clock, "http://p.test"), account)
        try:
            await body(world)
        finally:
            await ledger.close()
            await storage.close()

    try:
        asyncio.run(main())
    finally:
        database.drop()


def in_order(ids: list[str], cids: list[str]) -> None:
    for cid in cids:
        assert [i for i in ids if i.startswith(cid)] == [f"{cid}.{t}" for t in LIFECYCLE], cid


def test_two_workers_send_each_event_once_and_each_conversation_in_order(pg_cluster, receiver: Receiver) -> None:
    async def body(w: World) -> None:
        cids = [await w.conversation(receiver.url("/hook")) for _ in range(30)]
        await w.drain(w.worker(concurrency=4), w.worker(concurrency=4))
        ids = receiver.ids("/hook")
        assert sorted(ids) == sorted(f"{c}.{t}" for c in cids for t in LIFECYCLE)  # each once
        in_order(ids, cids)
        deliveries = await w.ledger.list_deliveries(limit=1000)
        assert {d.status for d in deliveries} == {"delivered"} and len(deliveries) == 90
        assert await w.storage.read_outbox(0, 10) == []  # taken changes are gone from the outbox
        shutdown = next(r.json for r in receiver.at("/hook") if r.headers["webhook-id"] == f"{cids[0]}.system.shutdown")
        assert shutdown["properties"]["shutdown_reason"] == "end_conversation_endpoint_hit"

    scenario(pg_cluster, body)


def test_a_claim_takes_a_conversations_pending_events_in_order_and_nobody_else_can(pg_cluster) -> None:
    async def body(w: World) -> None:
        cid = await w.conversation("https://example.com/hook")
        assert await w.ledger.take_outbox(100, render) == 2  # created, ended
        now = w.clock.now()
        (chain,) = await w.ledger.claim("a", now, 30, 10)
        assert [(d.conversation_id, d.event_type) for d in chain] == [(cid, t) for t in LIFECYCLE]
        assert await w.ledger.claim("b", now, 30, 10) == []  # all claimed
        await w.ledger.record([delivered(chain[0].delivery_id, now)])
        assert await w.ledger.claim("b", now, 30, 10) == []  # the rest is still a's
        w.clock.advance(31)  # a died: its lease runs out
        (rest,) = await w.ledger.claim("b", w.clock.now(), 30, 10)
        assert [d.event_type for d in rest] == LIFECYCLE[1:]

    scenario(pg_cluster, body)


def test_events_behind_a_pending_head_cannot_be_claimed_alone(pg_cluster) -> None:
    async def body(w: World) -> None:
        await w.conversation("https://example.com/hook")
        await w.ledger.take_outbox(100, render)
        (chain,) = await w.ledger.claim("a", w.clock.now(), 30, 10)
        retry = AttemptResult(
            AttemptRecord(chain[0].delivery_id, 0, w.clock.now(), 503, 1.0, None),
            "pending",
            w.clock.now() + 60,
            "retry",
        )
        await w.ledger.record([retry])
        await w.ledger.release([d.delivery_id for d in chain[1:]])
        # The head waits for its retry; the events behind it are due and unclaimed, yet not claimable.
        assert await w.ledger.claim("b", w.clock.now(), 30, 10) == []
        assert not await w.ledger.has_due_work(w.clock.now())
        w.clock.advance(61)
        (again,) = await w.ledger.claim("b", w.clock.now(), 30, 10)
        assert [d.event_type for d in again] == LIFECYCLE

    scenario(pg_cluster, body)


def test_a_dead_workers_claims_pass_to_another_when_the_lease_runs_out(pg_cluster, receiver: Receiver) -> None:
    async def body(w: World) -> None:
        cids = [await w.conversation(receiver.url("/lease"), end=False) for _ in range(3)]
        await w.ledger.take_outbox(100, render)
        held = await w.ledger.claim("dead", w.clock.now(), 30, 10)  # claimed, then the worker "dies"
        assert {d.conversation_id for chain in held for d in chain} == set(cids)
        survivor = w.worker(lease=30.0)
        await w.drain(survivor)
        assert receiver.ids("/lease") == []  # still held
        w.clock.advance(31)
        await w.drain(survivor)
        assert sorted(receiver.ids("/lease")) == sorted(f"{c}.system.replica_joined" for c in cids)

    scenario(pg_cluster, body)


def test_racing_claims_never_share_a_delivery(pg_cluster) -> None:
    async def body(w: World) -> None:
        for _ in range(60):
            await w.conversation("https://example.com/hook", end=False)
        await w.ledger.take_outbox(1000, render)
        now = w.clock.now()
        batches = await asyncio.gather(*(w.ledger.claim(f"w{i}", now, 30, 7) for i in range(8)))
        claimed = [d.delivery_id for batch in batches for chain in batch for d in chain]
        assert len(claimed) == len(set(claimed)) == 56

    scenario(pg_cluster, body)


def test_one_taker_at_a_time(pg_cluster) -> None:
    async def body(w: World) -> None:
        for _ in range(5):
            await w.conversation("https://example.com/hook")
        started, release = asyncio.Event(), asyncio.Event()

        def slow_render(changes: list[Any]) -> Any:
            started.set()
            return render(changes)

        async def hold() -> int:
            # A taker that keeps its transaction open while another one tries.
            pool = await w.ledger._pool.get()
            async with pool.acquire() as conn, conn.transaction():
                assert await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", 0x70616C6176657202)
                started.set()
                await release.wait()
            return 0

        holder = asyncio.create_task(hold())
        await started.wait()
        assert await w.ledger.take_outbox(100, slow_render) == 0  # another taker holds the lock
        release.set()
        await holder
        assert await w.ledger.take_outbox(100, render) == 10

    scenario(pg_cluster, body)


def test_a_retry_waits_for_its_time_and_a_failed_event_does_not_block_the_next(pg_cluster, receiver: Receiver) -> None:
    async def body(w: World) -> None:
        receiver.plan["/retry"] = [(503, {}), (410, {})]  # replica_joined: retry, then a final 4xx
        cid = await w.conversation(receiver.url("/retry"))
        worker = w.worker()
        await w.drain(worker)
        assert receiver.ids("/retry") == [f"{cid}.system.replica_joined"]
        first = (await w.ledger.list_deliveries(conversation_id=cid))[0]
        assert (first.status, first.attempts, first.last_status_code) == ("pending", 1, 503)
        w.clock.advance(first.next_attempt_epoch - w.clock.now())
        await w.drain(worker)
        assert receiver.ids("/retry") == [f"{cid}.system.replica_joined"] * 2 + [f"{cid}.{t}" for t in LIFECYCLE[1:]]
        statuses = [(d.event_type, d.status) for d in await w.ledger.list_deliveries(conversation_id=cid)]
        assert statuses == [(LIFECYCLE[0], "failed"), (LIFECYCLE[1], "delivered"), (LIFECYCLE[2], "delivered")]
        attempts = await w.ledger.list_attempts(first.delivery_id)
        assert [a.status_code for a in attempts] == [503, 410]
        totals = await w.ledger.totals()
        assert totals.attempts == {"retry": 1, "failed": 1, "delivered": 2}

    scenario(pg_cluster, body)


def test_a_hard_delete_purges_and_a_replay_sends_again(pg_cluster, receiver: Receiver) -> None:
    async def body(w: World) -> None:
        receiver.plan["/purge"] = [(503, {})]
        purged = await w.conversation(receiver.url("/purge"))
        kept = await w.conversation(receiver.url("/kept"))
        worker = w.worker()
        await w.drain(worker)
        await w.service.delete(w.account, purged, hard=True)
        w.clock.advance(3600)
        await w.drain(worker)
        assert receiver.ids("/purge") == [f"{purged}.system.replica_joined"]  # nothing after the purge
        assert await w.ledger.list_deliveries(conversation_id=purged) == []
        event_id = f"{kept}.system.shutdown"
        await w.storage.request_replay(event_id, kept)
        await w.drain(worker)
        assert receiver.ids("/kept").count(event_id) == 2
        found = await w.ledger.find_delivery(event_id)
        assert found is not None and found.status == "delivered"
        assert len(await w.ledger.list_attempts(found.delivery_id)) == 2

    scenario(pg_cluster, body)


def delivered(delivery_id: int, at: float) -> AttemptResult:
    return AttemptResult(AttemptRecord(delivery_id, 0, at, 200, 1.0, None), "delivered", None, "delivered")


def test_a_resources_callbacks_go_one_at_a_time_in_the_order_queued(pg_cluster) -> None:
    """Callbacks of one resource share a rank: arrival order decides, and while the first is pending
    the next is no second head (found in the suite: `processing` sent before and beside `started`)."""
    from palaver.delivery.worker import render
    from palaver.storage.resources import Callback

    async def body(w: World) -> None:
        async def queue(status: str) -> None:
            callback = Callback("dabc-1", w.account, f"document.{status}", "http://127.0.0.1:9/x", {"s": status})
            await w.storage.resources.enqueue_callback(callback, w.clock.now())
            await w.ledger.take_outbox(100, render)

        await queue("started")
        first = await w.ledger.claim("a", w.clock.now(), 30, 10)
        assert [[d.event_type for d in chain] for chain in first] == [["document.started"]]
        await queue("processing")  # arrives while `started` is claimed and still pending
        await queue("ready")
        assert await w.ledger.claim("b", w.clock.now(), 30, 10) == []
        await w.ledger.release([d.delivery_id for chain in first for d in chain])
        again = await w.ledger.claim("b", w.clock.now(), 30, 10)
        assert [[d.event_type for d in chain] for chain in again] == [
            ["document.started", "document.processing", "document.ready"]
        ]

    scenario(pg_cluster, body)
