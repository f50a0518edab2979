"""The delivery worker: takes changes from the outbox, renders their webhooks, sends them, records every attempt.

It runs in a process of its own (`palaver deliver`, started by `palaver serve`;
see delivery/process.py), because sending tens of thousands of webhooks a
second is CPU work that would otherwise be taken from request handling on the
server's event loop. It only reads the main database; what became of each
webhook goes to the delivery ledger (storage/sqlite_ledger.py).

What matters is on disk: an outbox change is taken into the ledger, rendered,
in the same ledger transaction that advances the cursor, and a delivery stays
pending in the ledger until its outcome is recorded. A crash at any point is
followed by sending again what was not recorded (at least once, same
webhook-id). The in-memory queues only make the common path cheap: no query
per webhook to find what is due.

Events of one conversation go out one at a time, in order; different
conversations go out in parallel, up to `concurrency` at once.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
from collections import deque
from dataclasses import replace

from palaver.delivery.attempts import SigningSecrets, attempt
from palaver.delivery.sender import WebhookSender
from palaver.domain.clock import Clock
from palaver.domain.conversation import lifecycle_events
from palaver.domain.events import REPLICA_JOINED, SHUTDOWN, TRANSCRIPTION_READY
from palaver.domain.lanes import LANES, Lane, lane_of
from palaver.domain.retry import DeliveryStatus, RetryPolicy
from palaver.domain.shards import ALL, Shard
from palaver.storage.base import OutboxChange, Storage
from palaver.storage.ledger import AttemptResult, DeliveryRecord, NewDelivery, ShardLedger

log = logging.getLogger("palaver.webhooks")

# The lifecycle events an outbox change brings: a conversation created, its replica
# joined; ended, its shutdown and then its transcript.
EVENTS_OF_CHANGE: dict[str, tuple[str, ...]] = {
    "created": (REPLICA_JOINED,),
    "ended": (SHUTDOWN, TRANSCRIPTION_READY),
}

STOP_GRACE = 2.0  # seconds a stopping worker waits for attempts in flight
RECORD_BATCH = 1000  # attempt outcomes recorded per ledger transaction
MAX_RECORD_DELAY = 5.0  # seconds the oldest outcome may wait to be recorded while lifecycle events wait to be sent
MAX_UNRECORDED = 50_000  # ... and how many outcomes may wait


def render(changes: list[OutboxChange], lane: Lane | None = None) -> tuple[list[NewDelivery], list[str], list[str]]:
    """The deliveries outbox changes imply (in one lane, or both), and the conversations to purge and
    events to replay (which belong to the system lane, taken first).

    A change names what happened; its events come from the conversation's facts
    (domain/conversation.py), the same function the verbose view uses, so the
    bodies agree with it byte for byte. A conversation that is gone (hard
    deleted) renders nothing.
    """
    new: list[NewDelivery] = []
    purge: list[str] = []
    replay: list[str] = []
    for change in changes:
        if change.change in ("purged", "replay"):
            if lane is Lane.APPLICATION:
                continue
            if change.change == "purged":
                purge.append(change.conversation_id)
            elif change.detail:
                replay.append(change.detail)
            continue
        if change.change == "callback":
            callback = callback_delivery(change, lane)
            if callback is not None:
                new.append(callback)
            continue
        history, account_id = change.history, change.account_id
        if history is None or account_id is None or not history.callback_url:
            continue
        wanted = [t for t in EVENTS_OF_CHANGE.get(change.change, ()) if lane is None or lane_of(t) is lane]
        if not wanted:
            continue
        for event in lifecycle_events(history, wanted):
            body = json.dumps(event.envelope(), separators=(",", ":"))
            new.append(
                NewDelivery(
                    event.event_id,
                    event.conversation_id,
                    account_id,
                    event.event_type,
                    event.webhook_url,
                    body,
                    change.at_epoch,
                )
            )
    return new, purge, replay


def callback_delivery(change: OutboxChange, lane: Lane | None) -> NewDelivery | None:
    """The delivery of a resource callback (storage/resources.py, `Callback`): rendered when queued."""
    try:
        detail = json.loads(change.detail or "")
        event_type, url, account_id, body = detail["event_type"], detail["url"], detail["account_id"], detail["body"]
    except (ValueError, KeyError, TypeError):
        log.error("outbox callback %s is malformed; dropped", change.seq)
        return None
    if lane is not None and lane_of(event_type) is not lane:
        return None
    event_id = f"{change.conversation_id}.{event_type}"
    return NewDelivery(event_id, change.conversation_id, account_id, event_type, url, body, change.at_epoch)


class DeliveryWorker:
    def __init__(
        self,
        storage: Storage,
        ledger: ShardLedger,
        clock: Clock,
        *,
        policy: RetryPolicy | None = None,
        allow_private: bool = False,
        concurrency: int = 64,
        poll_interval: float = 0.02,
        flush_interval: float = 0.05,
        ingest_batch: int = 1000,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        shard: Shard = ALL,
    ) -> None:
        self._storage = storage
        self._shard = shard
        self._ledger = ledger
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._allow_private = allow_private
        self._concurrency = concurrency
        self._poll_interval = poll_interval
        self._flush_interval = flush_interval
        self._ingest_batch = ingest_batch
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._cursors: dict[Lane, int] = {}  # the last outbox seq taken, per lane; empty until loaded
        self._queues: dict[str, deque[DeliveryRecord]] = {}  # pending deliveries per conversation, in order
        # Conversations whose first delivery is due now, in two lanes: system events
        # (replica_joined, shutdown) go before application events (transcripts, and
        # later recordings and perception analyses) of other conversations.
        self._ready_system: deque[str] = deque()
        self._ready_other: deque[str] = deque()
        self._later: list[tuple[float, str]] = []  # (due time, conversation): retries waiting for their time
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._results: list[AttemptResult] = []
        self._unrecorded_since = 0.0  # when the oldest outcome in _results finished
        self._secrets = SigningSecrets(storage, clock)
        self._flushed_at = float("-inf")

    def sender(self) -> WebhookSender:
        return WebhookSender(
            allow_private=self._allow_private,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            max_connections=self._concurrency,
        )

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Deliver until cancelled or `stop` is set; a failing step is logged, never fatal."""
        stop = stop or asyncio.Event()
        async with self.sender() as sender:
            await self.load()
            try:
                while not stop.is_set():
                    busy = False
                    try:
                        busy = await self.step(sender)
                    except Exception:
                        log.exception("webhook delivery step failed")
                    if busy:
                        await asyncio.sleep(0)  # let attempts whose answers came in move on
                    else:
                        try:
                            await asyncio.wait_for(stop.wait(), self._poll_interval)
                        except TimeoutError:
                            pass
            finally:
                # Let attempts in flight finish (briefly) so their outcome is recorded
                # rather than sent again by the next worker.
                if self._tasks:
                    await asyncio.wait(set(self._tasks), timeout=STOP_GRACE)
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                await self.flush()

    async def load(self) -> None:
        """The ledger's pending deliveries back into the queues (after a start or restart)."""
        self._cursors = {lane: await self._ledger.cursor(self._shard, lane) for lane in LANES}
        for delivery in await self._ledger.pending(self._shard):
            self._enqueue(delivery)

    async def step(self, sender: WebhookSender) -> bool:
        """Take new outbox changes, start what is due, record finished attempts. True if more may be waiting."""
        taken = taken_later = 0
        if not self._backlogged():
            taken = await self.ingest()
            if taken < self._ingest_batch and len(self._ready_system) < self._concurrency:
                taken_later = await self.ingest_application()
        self.dispatch(sender)
        recorded = 0
        if self._results and self._record_now():
            # One batch per step: events that become ready meanwhile are taken and
            # sent between batches, not after all the outcomes of a burst.
            recorded = await self.flush(RECORD_BATCH)
        return max(taken, taken_later) >= self._ingest_batch or (recorded == RECORD_BATCH and bool(self._results))

    def _record_now(self) -> bool:
        """Whether to record finished attempts now, or let them wait while lifecycle events do.

        Why they may wait: recording is about a seventh of what a webhook costs the
        worker (10.5 of ~76 us in-process, docs/performance.md), and under a burst of
        ends every millisecond spent on it delays the shutdowns still waiting for a
        connection. Their outcome only says what happened; if the worker dies
        before recording it, the webhooks are sent again at restart (at least
        once, same webhook-id). The wait is bounded in time (from the oldest
        outcome) and in count; the bounds are wider than the backlog of a
        20,000-end burst lasts, because recording within it delays its last
        shutdowns by all the recording's time (decision #61).
        """
        now = self._clock.now()
        if (
            self._ready_system
            and now - self._unrecorded_since < MAX_RECORD_DELAY
            and len(self._results) < MAX_UNRECORDED
        ):
            return False
        return len(self._results) >= RECORD_BATCH or now - self._flushed_at >= self._flush_interval

    async def ingest(self) -> int:
        """Take the system events of new outbox changes, and their purges and replays."""
        return await self._take(Lane.SYSTEM)

    async def ingest_application(self) -> int:
        """Take the application events of changes the system lane has taken.

        Called only when the system lane has caught up with the outbox and its
        ready events fit in the connections: under a burst of ends, taking and
        storing the transcripts was a third of the worker's work before the last
        shutdown of the burst could go out (docs/performance.md).
        """
        return await self._take(Lane.APPLICATION)

    async def _take(self, lane: Lane) -> int:
        if not self._cursors:
            await self.load()
        after = self._cursors[lane]
        through = None if lane is Lane.SYSTEM else self._cursors[Lane.SYSTEM]
        if through is not None and after >= through:
            return 0
        # The system lane renders shutdowns only: it does not read the transcripts.
        changes = await self._storage.read_outbox(
            after, self._ingest_batch, through, transcripts=lane is not Lane.SYSTEM
        )
        if not changes:
            return 0
        new, purge, replay = render([c for c in changes if self._shard.owns(c.conversation_id)], lane)
        queued = await self._ledger.ingest(
            new, changes[-1].seq, purge=purge, replay=replay, shard=self._shard, lane=lane
        )
        self._cursors[lane] = changes[-1].seq
        for conversation_id in purge:
            self._queues.pop(conversation_id, None)
        for delivery in queued:
            self._enqueue(delivery)
        return len(changes)

    async def flush(self, limit: int | None = None) -> int:
        """Record finished attempts (all, or the oldest `limit`), a transaction per RECORD_BATCH,
        answers handled in between; how many were recorded."""
        self._flushed_at = self._clock.now()
        left = len(self._results) if limit is None else min(limit, len(self._results))
        recorded = 0
        while recorded < left:
            batch = self._results[: min(RECORD_BATCH, left - recorded)]
            await self._ledger.record(batch)  # if it fails, the results stay for the next flush
            del self._results[: len(batch)]  # new results were appended behind them meanwhile
            recorded += len(batch)
            if recorded < left:
                await asyncio.sleep(0)
        return recorded

    async def drain(self, sender: WebhookSender) -> None:
        """Step until nothing is due or in flight, then record everything (for tests and tools)."""
        while True:
            await self.step(sender)
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
                continue
            self.dispatch(sender)
            if (
                not self._tasks
                and not self._has_ready()
                and self._cursors[Lane.APPLICATION] >= self._cursors[Lane.SYSTEM]
                and not await self._storage.read_outbox(self._cursors[Lane.SYSTEM], 1, transcripts=False)
            ):
                break
        await self.flush()

    # -- queues ------------------------------------------------------------------------

    def _enqueue(self, delivery: DeliveryRecord) -> None:
        queue = self._queues.get(delivery.conversation_id)
        if queue is None:
            self._queues[delivery.conversation_id] = deque([delivery])
            self._schedule(delivery)
        elif all(d.delivery_id != delivery.delivery_id for d in queue):
            queue.append(delivery)

    def _schedule(self, head: DeliveryRecord) -> None:
        """Make a conversation's first delivery ready now, or at its retry time."""
        if head.next_attempt_epoch <= self._clock.now():
            self._make_ready(head)
        else:
            heapq.heappush(self._later, (head.next_attempt_epoch, head.conversation_id))

    def _make_ready(self, head: DeliveryRecord) -> None:
        """Queue a conversation in its head event's lane.

        Why two lanes: under a backlog (a burst of ends makes two webhooks each), a
        system.shutdown would otherwise wait behind the transcripts of conversations
        that ended before it. Lifecycle signals are what integrations act on at
        once; payloads can follow. Order within a conversation is unchanged: only
        its first pending event is ever queued.
        """
        lane = self._ready_system if lane_of(head.event_type) is Lane.SYSTEM else self._ready_other
        lane.append(head.conversation_id)

    def _backlogged(self) -> bool:
        """Enough lifecycle events are ready to keep every connection busy: send them before taking more.

        Why: taking a batch of changes is tens of milliseconds of CPU during which
        no answer is handled. Under a burst of ends the outbox always has a full
        batch waiting, and without this the worker took changes until it caught
        up with the burst, sending almost nothing meanwhile. The backlog is in the
        outbox either way; ready events are older than anything not yet taken.
        """
        return len(self._ready_system) >= self._ingest_batch

    def _has_ready(self) -> bool:
        return bool(self._ready_system or self._ready_other)

    def dispatch(self, sender: WebhookSender) -> None:
        """Start attempts for due conversations, up to the concurrency limit."""
        now = self._clock.now()
        while self._later and self._later[0][0] <= now:
            queue = self._queues.get(heapq.heappop(self._later)[1])
            if queue:
                self._make_ready(queue[0])
        while self._has_ready() and len(self._tasks) < self._concurrency:
            lane = self._ready_system or self._ready_other
            conversation_id = lane.popleft()
            queue = self._queues.get(conversation_id)
            if not queue or conversation_id in self._in_flight or queue[0].next_attempt_epoch > now:
                continue  # purged, already sent, or a stale entry for a retry not yet due
            self._in_flight.add(conversation_id)
            task = asyncio.create_task(self._attempt(sender, queue[0]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _attempt(self, sender: WebhookSender, delivery: DeliveryRecord) -> None:
        conversation_id = delivery.conversation_id
        try:
            result = await attempt(
                sender, delivery, await self._secrets.of(delivery.account_id), self._policy, self._clock
            )
            if not self._results:
                self._unrecorded_since = self._clock.now()
            self._results.append(result)
        except Exception:
            log.exception("webhook %s: attempt failed unexpectedly; will try again", delivery.event_id)
            status, decision_at = DeliveryStatus.PENDING, self._clock.now() + 1.0
        else:
            status, decision_at = DeliveryStatus(result.status), result.next_attempt_epoch or 0.0
        finally:
            self._in_flight.discard(conversation_id)
        self._advance(delivery, status, decision_at)
        # Free this attempt's slot, then fill it. Left to the task's done callback,
        # the slot is freed only after every answer that came in with this one was
        # handled: answers arriving together then found every slot taken and started
        # nothing until the next step, up to a poll interval later (measured: waves
        # of 64 webhooks per 20 ms in a burst's backlog, docs/performance.md).
        task = asyncio.current_task()
        if task is not None:
            self._tasks.discard(task)
        self.dispatch(sender)

    def _advance(self, delivery: DeliveryRecord, status: DeliveryStatus, retry_at: float) -> None:
        """After an attempt: the conversation's next event becomes due, or this one waits for its retry."""
        queue = self._queues.get(delivery.conversation_id)
        if not queue or queue[0].delivery_id != delivery.delivery_id:
            return  # purged while in flight
        if status is DeliveryStatus.PENDING:
            queue[0] = replace(delivery, attempts=delivery.attempts + 1, next_attempt_epoch=retry_at)
            self._schedule(queue[0])
        else:
            queue.popleft()
            if queue:
                self._schedule(queue[0])
            else:
                del self._queues[delivery.conversation_id]
