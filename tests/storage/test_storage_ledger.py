"""The delivery ledger: what became of each webhook, written by the delivery worker alone."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from palaver.domain.lanes import Lane
from palaver.domain.shards import ALL, Shard
from palaver.storage.base import open_ledger
from palaver.storage.ledger import AttemptRecord, AttemptResult, DeliveryLedger, NewDelivery
from palaver.storage.migrations import split_statements
from palaver.storage.sqlite_ledger import ledger_path


@pytest.fixture
def ledger(tmp_path: Path, run) -> Iterator[DeliveryLedger]:
    store = open_ledger(f"sqlite:///{tmp_path / 'main.db'}")
    run(store.migrate())
    try:
        yield store
    finally:
        run(store.close())


def new(cid: str, event_type: str, at: float = 1.0) -> NewDelivery:
    return NewDelivery(f"{cid}.{event_type}", cid, "acc", event_type, "https://example.com/h", "{}", at)


def result(delivery_id: int, status: str, code: int | None = 200, latency_ms: float | None = 12.0) -> AttemptResult:
    outcome = {"delivered": "delivered", "pending": "retry", "failed": "failed"}[status]
    error = None if code == 200 else "HTTP 503"
    return AttemptResult(AttemptRecord(delivery_id, 0, 5.0, code, latency_ms, error), status, None, outcome)


def test_the_file_sits_next_to_the_database() -> None:
    assert ledger_path("/data/palaver.db") == "/data/palaver.webhooks.db"
    assert ledger_path("/data/palaver") == "/data/palaver.webhooks.db"


def test_a_new_ledger_has_8_kib_pages_and_an_existing_one_keeps_its_own(tmp_path: Path, run) -> None:
    def page_size(path: Path) -> int:
        conn = sqlite3.connect(path)
        try:
            return int(conn.execute("PRAGMA page_size").fetchone()[0])
        finally:
            conn.close()

    ledger_at(tmp_path / "old.webhooks.db", "0001_initial.sql").close()  # made by an older Palaver: 4 KiB
    for name in ("new", "old"):
        store = open_ledger(f"sqlite:///{tmp_path / name}.db")
        run(store.migrate())
        run(store.close())
    assert (page_size(tmp_path / "new.webhooks.db"), page_size(tmp_path / "old.webhooks.db")) == (8192, 4096)


def test_ingest_stores_in_order_advances_the_cursor_and_skips_known_events(ledger: DeliveryLedger, run) -> None:
    assert run(ledger.cursor()) == 0
    first = run(ledger.ingest([new("a", "x"), new("a", "y"), new("b", "x")], 3, purge=[], replay=[]))
    assert [d.event_id for d in first] == ["a.x", "a.y", "b.x"]
    assert [d.delivery_id for d in first] == sorted(d.delivery_id for d in first)
    assert all(d.status == "pending" and d.attempts == 0 for d in first)
    # the same events again (a change taken twice) store nothing new
    assert run(ledger.ingest([new("a", "x")], 4, purge=[], replay=[])) == []
    assert run(ledger.cursor(ALL, Lane.SYSTEM)) == 4
    # the outbox may be trimmed only through what both lanes have taken
    assert run(ledger.cursor()) == 0
    assert run(ledger.ingest([new("a", "z")], 3, purge=[], replay=[], lane=Lane.APPLICATION))[0].event_id == "a.z"
    assert (run(ledger.cursor(ALL, Lane.APPLICATION)), run(ledger.cursor())) == (3, 3)
    assert [d.event_id for d in run(ledger.pending())] == ["a.x", "a.y", "b.x", "a.z"]


def test_record_stores_every_attempt_and_the_state_it_leaves(ledger: DeliveryLedger, run) -> None:
    (d,) = run(ledger.ingest([new("a", "x")], 1, purge=[], replay=[]))
    run(ledger.record([result(d.delivery_id, "pending", 503, 30.0)]))
    run(ledger.record([result(d.delivery_id, "delivered", 200, 2.0)]))
    (stored,) = run(ledger.list_deliveries())
    assert (stored.status, stored.attempts, stored.last_status_code) == ("delivered", 2, 200)
    assert [(a.attempt, a.status_code) for a in run(ledger.list_attempts(d.delivery_id))] == [(1, 503), (2, 200)]
    assert run(ledger.pending()) == []
    totals = run(ledger.totals())
    assert totals.by_status == {"delivered": 1}
    assert totals.attempts == {"retry": 1, "delivered": 1}
    assert totals.latency_buckets == {0.005: 1, 0.05: 1} and totals.latency_sum == pytest.approx(0.032)


def test_replay_queues_a_finished_event_again_and_numbering_goes_on(ledger: DeliveryLedger, run) -> None:
    (d,) = run(ledger.ingest([new("a", "x")], 1, purge=[], replay=[]))
    assert run(ledger.ingest([], 2, purge=[], replay=["a.x"])) == []  # still pending: nothing to replay
    run(ledger.record([result(d.delivery_id, "failed", 410)]))
    (again,) = run(ledger.ingest([], 3, purge=[], replay=["a.x", "nope.x"]))
    assert (again.delivery_id, again.status, again.attempts) == (d.delivery_id, "pending", 0)
    run(ledger.record([result(d.delivery_id, "delivered")]))
    assert [a.attempt for a in run(ledger.list_attempts(d.delivery_id))] == [1, 2]


def test_purge_drops_a_conversations_deliveries_and_attempts(ledger: DeliveryLedger, run) -> None:
    a, b = run(ledger.ingest([new("a", "x"), new("b", "x")], 2, purge=[], replay=[]))
    run(ledger.record([result(a.delivery_id, "pending", 503)]))
    run(ledger.ingest([], 3, purge=["a"], replay=[]))
    assert [d.event_id for d in run(ledger.list_deliveries())] == ["b.x"]
    assert run(ledger.list_attempts(a.delivery_id)) == []
    # an attempt that finishes after its delivery was purged is dropped, not orphaned
    run(ledger.record([result(a.delivery_id, "delivered")]))
    assert run(ledger.list_attempts(a.delivery_id)) == []


def test_a_failed_ingest_changes_nothing(ledger: DeliveryLedger, run) -> None:
    run(ledger.ingest([new("p", "x")], 1, purge=[], replay=[]))
    bad = new("a", "x")
    object.__setattr__(bad, "created_epoch", object())  # no SQL value: the second row cannot be written
    with pytest.raises(sqlite3.Error):
        # the purge and the first row are written, then the batch fails: both must be undone with it
        run(ledger.ingest([new("b", "x"), bad], 9, purge=["p"], replay=[]))
    assert run(ledger.cursor(ALL)) == 1
    assert [d.event_id for d in run(ledger.list_deliveries())] == ["p.x"]
    run(ledger.ingest([new("b", "x")], 9, purge=[], replay=[]))  # and the ledger is usable again
    assert run(ledger.cursor(ALL)) == 9


def test_two_connections_see_each_others_writes(tmp_path: Path) -> None:
    """The worker writes and the server reads through separate connections (separate processes)."""

    async def scenario() -> list[str]:
        url = f"sqlite:///{tmp_path / 'main.db'}"
        writer, reader = open_ledger(url), open_ledger(url)
        await writer.migrate()
        await reader.migrate()
        await writer.ingest([new("a", "x")], 1, purge=[], replay=[])
        seen = [d.event_id for d in await reader.list_deliveries(conversation_id="a")]
        await writer.close()
        await reader.close()
        return seen

    assert asyncio.run(scenario()) == ["a.x"]


def test_each_shard_and_lane_keeps_its_own_cursor_and_a_new_count_restarts_from_the_lowest(
    ledger: DeliveryLedger, run
) -> None:
    def cursors(shard: Shard) -> tuple[int, int]:
        return run(ledger.cursor(shard, Lane.SYSTEM)), run(ledger.cursor(shard, Lane.APPLICATION))

    one = Shard(0, 1)
    assert cursors(one) == (0, 0)
    run(ledger.ingest([], 12, purge=[], replay=[], shard=one))
    run(ledger.ingest([], 10, purge=[], replay=[], shard=one, lane=Lane.APPLICATION))
    assert cursors(one) == (12, 10)
    # two workers now: every shard and lane starts from the lowest cursor the single one had
    a, b = Shard(0, 2), Shard(1, 2)
    assert (cursors(a), cursors(b)) == ((10, 10), (10, 10))
    run(ledger.ingest([], 25, purge=[], replay=[], shard=a))
    run(ledger.ingest([], 20, purge=[], replay=[], shard=a, lane=Lane.APPLICATION))
    run(ledger.ingest([], 15, purge=[], replay=[], shard=b))
    run(ledger.ingest([], 14, purge=[], replay=[], shard=b, lane=Lane.APPLICATION))
    assert (cursors(a), cursors(b), run(ledger.cursor())) == ((25, 20), (15, 14), 14)
    # back to one: it must not skip what shard b's application lane has not taken yet
    assert cursors(one) == (14, 14)


def test_pending_is_split_by_shard(ledger: DeliveryLedger, run) -> None:
    cids = [f"c{n:015x}" for n in range(20)]
    run(ledger.ingest([new(c, "x") for c in cids], 1, purge=[], replay=[]))
    halves = [{d.conversation_id for d in run(ledger.pending(Shard(i, 2)))} for i in range(2)]
    assert halves[0] | halves[1] == set(cids) and not halves[0] & halves[1] and all(halves)


def test_a_shard_owns_each_conversation_exactly_once() -> None:
    cids = [f"c{n:015x}" for n in range(1000)]
    for count in (1, 2, 3, 7):
        owners = [[i for i in range(count) if Shard(i, count).owns(c)] for c in cids]
        assert all(len(o) == 1 for o in owners)
        assert {o[0] for o in owners} == set(range(count))  # every shard gets some
    with pytest.raises(ValueError):
        Shard(2, 2)


def ledger_at(path: Path, *names: str) -> sqlite3.Connection:
    """A ledger file as an older Palaver left it: these migrations applied, and no later ones."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT)")
    for name in names:
        script = resources.files("palaver.storage.migrations").joinpath("sqlite_ledger", name).read_text()
        for statement in split_statements(script):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (int(name[:4]), name))
    return conn


def test_a_ledger_from_before_lanes_keeps_its_cursor_for_both(tmp_path: Path, run) -> None:
    """Upgrading: a ledger with one cursor per shard (migration 0002) gets it for both lanes."""
    conn = ledger_at(tmp_path / "main.webhooks.db", "0001_initial.sql", "0002_shards.sql")
    conn.execute("UPDATE ingest_cursors SET outbox_seq = 7")
    conn.close()
    store = open_ledger(f"sqlite:///{tmp_path / 'main.db'}")
    try:
        assert run(store.migrate())[0] == "0003_lanes.sql"
        assert (run(store.cursor(ALL, Lane.SYSTEM)), run(store.cursor(ALL, Lane.APPLICATION))) == (7, 7)
    finally:
        run(store.close())


def test_a_ledger_from_before_conversation_numbers_keeps_its_deliveries_ids_and_attempts(tmp_path: Path, run) -> None:
    """Upgrading to migration 0005: every delivery is still found, keeps its id, and is not stored twice."""
    conn = ledger_at(
        tmp_path / "main.webhooks.db",
        "0001_initial.sql",
        "0002_shards.sql",
        "0003_lanes.sql",
        "0004_no_conversation_index.sql",
    )
    for delivery_id, event_id, status in ((3, "ca.x", "delivered"), (5, "cb.x", "failed"), (8, "ca.y", "pending")):
        cid, event_type = event_id.split(".")
        conn.execute(
            "INSERT INTO deliveries (delivery_id, event_id, conversation_id, account_id, event_type, url, body, "
            "status, attempts, created_epoch) VALUES (?, ?, ?, 'acc', ?, 'https://example.com/h', '{}', ?, ?, 1.0)",
            (delivery_id, event_id, cid, event_type, status, int(status != "pending")),
        )
    conn.execute("INSERT INTO attempts (delivery_id, attempt, at_epoch, status_code) VALUES (3, 1, 2.0, 200)")
    conn.execute("UPDATE sqlite_sequence SET seq = 20 WHERE name = 'deliveries'")  # 9-20 were purged
    conn.close()
    store = open_ledger(f"sqlite:///{tmp_path / 'main.db'}")
    try:
        assert run(store.migrate()) == ["0005_conversation_numbers.sql"]
        assert [(d.delivery_id, d.event_id) for d in run(store.list_deliveries(conversation_id="ca"))] == [
            (3, "ca.x"),
            (8, "ca.y"),
        ]
        found = run(store.find_delivery("cb.x"))
        assert found is not None and (found.delivery_id, found.status) == (5, "failed")
        assert [a.status_code for a in run(store.list_attempts(3))] == [200]
        stored = run(store.ingest([new("ca", "x"), new("cb", "y")], 1, purge=[], replay=["cb.x"]))
        assert [d.event_id for d in stored] == ["cb.y", "cb.x"]  # ca.x was there already
        assert stored[0].delivery_id > 20 and stored[1].delivery_id == 5  # no id is given twice
        assert [d.event_id for d in run(store.pending())] == ["cb.x", "ca.y", "cb.y"]
    finally:
        run(store.close())


def test_an_event_id_that_is_not_one_finds_nothing(ledger: DeliveryLedger, run) -> None:
    run(ledger.ingest([new("ca", "x")], 1, purge=[], replay=["ca", ".x", "ca."]))
    assert [run(ledger.find_delivery(e)) for e in ("ca", "ca.", ".x", "ca.x.y", "cb.x")] == [None] * 5
    found = run(ledger.find_delivery("ca.x"))
    assert found is not None and found.status == "pending"


def test_a_conversations_deliveries_are_its_own_even_when_another_id_extends_it(ledger: DeliveryLedger, run) -> None:
    """They are found by the conversation's number; "c12" must not take in "c123"'s."""
    run(ledger.ingest([new("c12", "x"), new("c123", "x"), new("c12", "y"), new("c1", "x")], 1, purge=[], replay=[]))
    assert [d.event_id for d in run(ledger.list_deliveries(conversation_id="c12"))] == ["c12.x", "c12.y"]
    run(ledger.ingest([], 2, purge=["c12"], replay=[]))
    assert [d.event_id for d in run(ledger.list_deliveries())] == ["c123.x", "c1.x"]
    assert run(ledger.list_deliveries(conversation_id="c12")) == []


def test_a_purge_leaves_no_trace_of_the_conversation_in_the_ledger(tmp_path: Path, ledger: DeliveryLedger, run) -> None:
    """Hard delete is the privacy tool (decisions.md #46): not even the id stays behind."""
    run(ledger.ingest([new("c12", "x"), new("c34", "x")], 1, purge=[], replay=[]))
    run(ledger.ingest([], 2, purge=["c12"], replay=[]))
    conn = sqlite3.connect(tmp_path / "main.webhooks.db")
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        found = {t: [row for row in conn.execute(f"SELECT * FROM {t}") if "c12" in repr(row)] for t in tables}
    finally:
        conn.close()
    assert {t: rows for t, rows in found.items() if rows} == {}
    assert [d.event_id for d in run(ledger.list_deliveries())] == ["c34.x"]
