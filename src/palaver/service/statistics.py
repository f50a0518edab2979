"""Keeping PostgreSQL's planner statistics fresh for Palaver's busy tables (storage/postgres.py says why)."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

log = logging.getLogger("palaver.storage")

STATISTICS_INTERVAL = 2.0  # seconds between checks


class RefreshesStatistics(Protocol):
    async def refresh_statistics(self) -> list[str]: ...


async def refresh_statistics_forever(storage: RefreshesStatistics, interval: float = STATISTICS_INTERVAL) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            analyzed = await storage.refresh_statistics()
            if analyzed:
                log.info("analyzed %s", ", ".join(analyzed))
        except Exception:
            log.exception("refreshing statistics failed; will retry")
