"""The delivery ledger's interface and the records it speaks in: what became of each webhook.

Apart from storage/base.py (the main database's interface) because the ledger
is its own store on SQLite (a file next to the database, written only by the
delivery workers) and its own tables on PostgreSQL; the server reads it for
`GET /metrics` and the CLI, the workers write it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from palaver.domain.lanes import Lane
from palaver.domain.shards import Shard


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One webhook in the delivery ledger."""

    delivery_id: int
    event_id: str
    conversation_id: str
    account_id: str
    event_type: str
    url: str
    body: str
    status: str
    attempts: int
    created_epoch: float
    next_attempt_epoch: float
    last_status_code: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """An event rendered from an outbox change, to be stored in the ledger."""

    event_id: str
    conversation_id: str
    account_id: str
    event_type: str
    url: str
    body: str
    created_epoch: float


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    delivery_id: int
    attempt: int
    at_epoch: float
    status_code: int | None
    latency_ms: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """An attempt and the state it leaves its delivery in, as the worker hands it to the ledger."""

    attempt: AttemptRecord
    status: str  # pending | delivered | failed
    next_attempt_epoch: float | None
    outcome: str  # for the totals: delivered | retry | failed


# Upper bounds of the delivery latency histogram, in seconds (prometheus_client's defaults).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, float("inf"))


@dataclass(frozen=True, slots=True)
class LedgerTotals:
    by_status: dict[str, int]  # deliveries stored, by status
    attempts: dict[str, int]  # attempts ever recorded, by outcome (delivered | retry | failed)
    latency_buckets: dict[float, int]  # attempts by latency bucket (its upper bound in seconds), not cumulative
    latency_sum: float  # seconds, over every attempt that made a request

    @classmethod
    def from_named(cls, by_status: dict[str, int], named: dict[str, float]) -> LedgerTotals:
        """From the running totals a ledger keeps by name (see `attempt_totals`)."""
        return cls(
            by_status=by_status,
            attempts={k.removeprefix("outcome:"): int(v) for k, v in named.items() if k.startswith("outcome:")},
            latency_buckets={float(k.removeprefix("le:")): int(v) for k, v in named.items() if k.startswith("le:")},
            latency_sum=named.get("latency_sum", 0.0),
        )


def attempt_totals(results: list[AttemptResult]) -> dict[str, float]:
    """What a batch of attempts adds to a ledger's running totals, by name, in the order to write them:
    `outcome:<outcome>` and `le:<bucket>` counts, and `latency_sum` in seconds. Sorted, so that two
    writers adding to the same rows take their locks in one order."""
    totals: dict[str, float] = {}
    for r in results:
        names = [f"outcome:{r.outcome}"]
        if r.attempt.latency_ms is not None:
            seconds = r.attempt.latency_ms / 1000
            names.append(f"le:{next(bound for bound in LATENCY_BUCKETS if seconds <= bound)}")
            totals["latency_sum"] = totals.get("latency_sum", 0.0) + seconds
        for name in names:
            totals[name] = totals.get(name, 0.0) + 1
    return dict(sorted(totals.items()))


class DeliveryLedger(Protocol):
    """What became of each webhook: written by the delivery workers, read by the server and the CLI.

    Both backends implement this; how a worker takes and claims work differs
    (`ShardLedger` for SQLite's one worker per shard, `PostgresDeliveryLedger.take_outbox`
    and `claim` for PostgreSQL's many workers, docs/decisions.md #63).
    """

    async def migrate(self) -> list[str]: ...

    async def close(self) -> None: ...

    async def cursor(self, shard: Shard | None = None, lane: Lane = ...) -> int:
        """The last outbox seq whose events of this lane this shard's worker took into the ledger (set
        up for the shard count given, resetting every cursor to the lowest if the count changed);
        without a shard, the lowest of all shards and lanes: every change at or below it is in the
        ledger, whole. (PostgreSQL: 0, its workers delete the changes they take.)"""
        ...

    async def record(self, results: list[AttemptResult]) -> None:
        """Store a batch of attempts and their deliveries' states in one transaction."""
        ...

    async def list_deliveries(
        self, *, conversation_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[DeliveryRecord]:
        """Deliveries in their delivery order (a conversation's in the order its events go out)."""
        ...

    async def find_delivery(self, event_id: str) -> DeliveryRecord | None: ...

    async def list_attempts(self, delivery_id: int) -> list[AttemptRecord]: ...

    async def totals(self) -> LedgerTotals:
        """For GET /metrics, in one consistent read."""
        ...


class ShardLedger(DeliveryLedger, Protocol):
    """SQLite's ledger as its delivery worker uses it: one worker per shard, a cursor into the outbox."""

    async def ingest(
        self,
        deliveries: list[NewDelivery],
        cursor: int,
        *,
        purge: list[str],
        replay: list[str],
        shard: Shard = ...,
        lane: Lane = ...,
    ) -> list[DeliveryRecord]:
        """In one transaction: store new deliveries (an event_id already stored is skipped), delete the
        deliveries of purged conversations, queue replayed events again, and advance the shard's
        cursor of the lane. Returns the deliveries that became pending, in delivery order."""
        ...

    async def pending(self, shard: Shard = ...) -> list[DeliveryRecord]:
        """The shard's pending deliveries, in delivery order (its worker's queue after a restart)."""
        ...
