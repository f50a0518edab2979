"""Time as a dependency, so tests can drive a lifecycle without sleeping."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (UTC)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to; used by tests."""

    def __init__(self, start: float = 1_770_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def iso_timestamp(epoch: float) -> str:
    """Tavus's timestamp format: ISO-8601 UTC with microseconds and a `Z`.

    `isoformat` rather than `strftime`: several times faster, and it runs on
    every create and end.
    """
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")[:-6] + "Z"
