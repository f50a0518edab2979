"""Connecting to PostgreSQL: the URL, the pool and its sizes, opened on first use.

asyncpg is the driver (docs/decisions.md #62): it speaks the binary protocol and
prepares each statement once per connection, which keeps the end path's cost
per batch small. A pool is opened lazily, on the first call that needs it, so
`open_storage(url)` stays synchronous for both backends.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

# Connections per pool. A process runs one pool for its API storage (group-committed
# ends, creates, reads) and a small one for the delivery ledger's reads; the delivery
# worker has its own. docs/deployment.md adds them up for N processes.
DEFAULT_POOL_SIZE = 10
MIN_POOL_SIZE = 1
# Per-connection settings: a name that shows in pg_stat_activity, and no JIT, whose
# compilation of a large scan (the metrics counts) costs more than it saves.
SERVER_SETTINGS = {"application_name": "palaver", "jit": "off"}


def is_postgres_url(database_url: str) -> bool:
    return database_url.startswith(("postgresql://", "postgres://"))


async def _keep_session(connection: asyncpg.Connection) -> None:
    """What a connection returned to the pool needs beyond asyncpg's own cleanup: nothing.

    asyncpg's default runs a reset query (`RESET ALL; UNLISTEN *; ...`) on every
    release: a round trip per use of the pool (a pool use, acquire, one query and
    release, measured 107 -> 61 us of client CPU without it; docs/performance.md). Palaver leaves no session
    state behind: no SET, no LISTEN, transactions always closed (asyncpg still
    rolls back one left open), and the one session advisory lock taken on a pool
    connection (storage/postgres.py, refresh_statistics) is released before it
    goes back.
    """


class LazyPool:
    """An asyncpg pool created on first use, on the loop that first uses it."""

    def __init__(self, url: str, *, max_size: int) -> None:
        if not is_postgres_url(url):
            raise ValueError(f"not a PostgreSQL URL: {url!r}")
        self.url = url
        self.max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._opening: asyncio.Lock | None = None

    async def get(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self.url,
                    min_size=min(MIN_POOL_SIZE, self.max_size),
                    max_size=self.max_size,
                    server_settings=SERVER_SETTINGS,
                    command_timeout=60,
                    reset=_keep_session,
                )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def one_off(self) -> Any:
        """A connection outside the pool (migrations hold a session lock on it)."""
        return await asyncpg.connect(self.url, server_settings=SERVER_SETTINGS)
