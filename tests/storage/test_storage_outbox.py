"""The outbox commits with the transition or not at all."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from palaver.domain.clock import ManualClock
from palaver.service.conversations import ConversationService, CreateConversation
from palaver.service.keys import issue_key
from palaver.storage import open_storage


def test_an_end_whose_webhooks_cannot_be_queued_is_not_committed(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"

    async def scenario() -> None:
        storage = open_storage(f"sqlite:///{path}")
        await storage.migrate()
        clock = ManualClock()
        account = (await issue_key(storage, clock)).account_id
        service = ConversationService(storage, clock, "http://palaver.test")
        spec = CreateConversation(replica_id="r90bbd427f71", callback_url="https://example.com/hook")
        cid = (await service.create(account, spec)).conversation_id

        raw = sqlite3.connect(path)
        raw.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON webhook_deliveries "
            "WHEN NEW.event_type = 'system.shutdown' BEGIN SELECT RAISE(ABORT, 'outbox refused'); END"
        )
        raw.commit()
        with pytest.raises(sqlite3.IntegrityError, match="outbox refused"):
            await service.end(account, cid)
        # Nothing of the end stayed: still active, its slot still taken, no shutdown queued.
        view = await service.get(account, cid, verbose=True)
        assert view.record.status == "active" and view.record.ended_at is None
        assert [e["event_type"] for e in view.events or []] == ["system.replica_joined"]
        (active,) = raw.execute("SELECT active_conversations FROM accounts WHERE account_id = ?", (account,)).fetchone()
        assert active == 1

        raw.execute("DROP TRIGGER refuse")
        raw.commit()
        raw.close()
        await service.end(account, cid)
        deliveries = await storage.list_deliveries(conversation_id=cid)
        assert [d.event_type for d in deliveries] == [
            "system.replica_joined",
            "system.shutdown",
            "application.transcription_ready",
        ]
        await storage.close()

    asyncio.run(scenario())
