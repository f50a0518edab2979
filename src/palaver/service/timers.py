"""The worker that ends conversations when their deadline passes.

Deadlines live in the database (see `domain/timers.py`), so this worker keeps
no state of its own: each tick it asks storage to end whatever is due, in one
conditional write. It runs once at start, so a deadline that passed while the
server was down fires at once with its own reason, and never twice.
"""

from __future__ import annotations

import asyncio
import logging

from palaver.domain.clock import Clock, iso_timestamp
from palaver.storage.base import Storage

log = logging.getLogger("palaver.timers")


class TimerService:
    def __init__(self, storage: Storage, clock: Clock, interval: float = 0.25, batch: int = 500) -> None:
        self._storage = storage
        self._clock = clock
        self._interval = interval
        self._batch = batch

    async def fire_due(self) -> list[tuple[str, str, str]]:
        """End every conversation whose deadline has passed; returns (conversation_id, account_id, reason)."""
        fired: list[tuple[str, str, str]] = []
        while True:
            now = self._clock.now()
            done = await self._storage.fire_due(now, iso_timestamp(now), self._batch)
            fired.extend(done.fired)
            if not done.more:
                return fired

    async def run(self) -> None:
        """Tick until cancelled; a failed tick is logged and retried, never fatal."""
        while True:
            try:
                fired = await self.fire_due()
                if fired:
                    log.info("timers ended %d conversation(s)", len(fired))
            except Exception:
                log.exception("timer tick failed")
            await asyncio.sleep(self._interval)
