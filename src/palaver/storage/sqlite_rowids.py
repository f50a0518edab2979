"""The rowid of each active conversation this process knows of, so that an end skips the id index.

At a million stored conversations the bulk end's walk of the index of random
conversation ids is the part of an end that grows with the database: those
pages no longer stay in the page cache. The writer process makes every create
it serves, so it can remember where each row went (`seq`, the table's rowid,
never reused: AUTOINCREMENT) and end it by rowid instead
(docs/decisions.md #76, docs/performance.md).

A hint, never the truth: the end by rowid still checks the row's id, account,
status and deletion, so an entry that is stale (a create whose transaction
rolled back, a conversation ended or deleted by another process on the same
file) can only miss, and a miss goes down the id path as before. Entries are
dropped for every conversation this process tries to end, and for those the
timer tick finds ended, so the map holds (at most) the active conversations
created or loaded here.
"""

from __future__ import annotations

import sqlite3

from palaver.domain.conversation import ENDS_FROM


class ActiveRowids:
    """conversation_id -> seq for active conversations; see the module docstring for why it may be stale."""

    __slots__ = ("seqs",)

    def __init__(self) -> None:
        self.seqs: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.seqs)

    def add(self, conversation_id: str, seq: int) -> None:
        self.seqs[conversation_id] = seq

    def drop(self, conversation_ids: list[str]) -> None:
        pop = self.seqs.pop
        for conversation_id in conversation_ids:
            pop(conversation_id, None)

    def merge(self, loaded: dict[str, int]) -> None:
        """Take the rows a start-up scan found; entries made since (creates) win over the scan's."""
        loaded.update(self.seqs)
        self.seqs = loaded


def scan_active(conn: sqlite3.Connection) -> dict[str, int]:
    """Every active, visible conversation's id and rowid, through the partial index of active rows.

    Run once at open (in `migrate`'s thread, on its own connection): 1.3 million
    active conversations took ~1 s (docs/decisions.md #76).
    """
    return dict(
        conn.execute(
            f"SELECT conversation_id, seq FROM conversations WHERE status = '{ENDS_FROM}' AND deleted_at IS NULL"
        ).fetchall()
    )
