"""Webhook housekeeping that belongs to the server: forgetting outbox rows the delivery worker has taken."""

from __future__ import annotations

import asyncio
import logging

from palaver.storage.base import Storage
from palaver.storage.ledger import DeliveryLedger

log = logging.getLogger("palaver.webhooks")

TRIM_INTERVAL = 10.0  # seconds
# Rows per DELETE. The writer runs on the event loop: measured, deleting 200,000 outbox rows
# (10 s of ends at full speed) in one statement held it for 37 ms; 5,000 take about 1 ms, and
# requests are served between the chunks.
TRIM_CHUNK = 5_000


async def trim_outbox(storage: Storage, ledger: DeliveryLedger, chunk: int = TRIM_CHUNK) -> int:
    """Delete the outbox changes the ledger's cursor has passed, in chunks; returns how many.

    The server does it, not the delivery worker, so the main database keeps one
    writing process.
    """
    through, trimmed = await ledger.cursor(), 0
    while deleted := await storage.trim_outbox(through, chunk):
        trimmed += deleted
    return trimmed


async def trim_outbox_forever(storage: Storage, ledger: DeliveryLedger, interval: float = TRIM_INTERVAL) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await trim_outbox(storage, ledger)
        except Exception:
            log.exception("outbox trim failed; will retry")
