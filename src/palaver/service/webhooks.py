"""Webhook housekeeping that belongs to the server: forgetting outbox rows the delivery worker has taken."""

from __future__ import annotations

import asyncio
import logging

from palaver.storage.base import DeliveryLedger, Storage

log = logging.getLogger("palaver.webhooks")

TRIM_INTERVAL = 10.0  # seconds


async def trim_outbox(storage: Storage, ledger: DeliveryLedger) -> int:
    """Delete the outbox changes the ledger's cursor has passed.

    The server does it, not the delivery worker, so the main database keeps one
    writing process; one DELETE every few seconds is a short write.
    """
    return await storage.trim_outbox(await ledger.cursor())


async def trim_outbox_forever(storage: Storage, ledger: DeliveryLedger, interval: float = TRIM_INTERVAL) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await trim_outbox(storage, ledger)
        except Exception:
            log.exception("outbox trim failed; will retry")
