"""Which delivery worker owns a conversation's webhooks.

Events of one conversation must go out in order, one at a time, so all of a
conversation's deliveries belong to one worker; different conversations spread
over the workers by a stable hash of their id (stable across processes and
restarts, unlike Python's salted `hash`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shard:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count}")

    def owns(self, conversation_id: str) -> bool:
        return self.count == 1 or zlib.crc32(conversation_id.encode()) % self.count == self.index


ALL = Shard()  # the only shard when one worker delivers everything
