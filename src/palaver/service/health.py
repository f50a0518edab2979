"""Whether the database answers, for `GET /health`, checked at most once a second.

Load balancers and orchestrators probe health often, from many places; a
database round trip per probe would make a busy fleet's probes a load of their
own. The answer is remembered for `ttl` seconds, so any rate of probes costs at
most one query a second per process, and a database that stops answering shows
within about a second (plus the query's own timeout).
"""

from __future__ import annotations

import asyncio
import logging

from palaver.domain.clock import Clock
from palaver.storage.base import Storage

log = logging.getLogger("palaver.health")

PING_TIMEOUT = 2.0  # seconds


class DatabaseHealth:
    def __init__(self, storage: Storage, clock: Clock, ttl: float = 1.0) -> None:
        self._storage = storage
        self._clock = clock
        self._ttl = ttl
        self._checked_at = float("-inf")
        self._ok = False
        self._lock = asyncio.Lock()

    async def database_ok(self) -> bool:
        if self._clock.now() - self._checked_at < self._ttl:
            return self._ok
        async with self._lock:  # one query however many probes arrive at once
            if self._clock.now() - self._checked_at >= self._ttl:
                try:
                    await asyncio.wait_for(self._storage.ping(), PING_TIMEOUT)
                    self._ok = True
                except Exception as exc:  # noqa: BLE001 - any failure means "does not answer"
                    if self._ok or self._checked_at == float("-inf"):
                        log.warning("database does not answer: %r", exc)
                    self._ok = False
                self._checked_at = self._clock.now()
        return self._ok
