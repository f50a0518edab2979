"""The stock voices `GET /v2/voices` lists, derived from the stock replicas (domain/catalog.py).

Tavus lists one voice per stock replica whose voice an image-trained replica
may borrow (`voice_name` on Create Replica). Palaver has no audio, so a voice
here is a name and its replica: one voice per distinct first name among the
named stock replicas (the first such replica in the catalog), its slug the
first name in lower case ("Anna (casual)" is `anna`). The tags (gender,
accent, style) are Palaver's own description for filtering, not Tavus's data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from palaver.domain.catalog import STOCK_REPLICAS

# Palaver's tags per voice: gender, accent, style.
_TAGS: dict[str, tuple[str, ...]] = {
    "anna": ("female", "american", "professional"),
    "nathan": ("male", "american", "professional"),
    "charlie": ("male", "american", "casual"),
    "sabrina": ("female", "american", "friendly"),
    "patrick": ("male", "american", "professional"),
    "lucy": ("female", "british", "friendly"),
    "rose": ("female", "american", "warm"),
    "helen": ("female", "british", "professional"),
    "benjamin": ("male", "american", "calm"),
    "isabella": ("female", "american", "warm"),
    "sandra": ("female", "american", "professional"),
    "gloria": ("female", "american", "energetic"),
    "santa": ("male", "american", "festive"),
    "luna": ("female", "american", "casual"),
    "lucas": ("male", "american", "professional"),
    "brooke": ("female", "american", "friendly"),
}


@dataclass(frozen=True, slots=True)
class Voice:
    voice_name: str
    replica_id: str
    tags: tuple[str, ...]

    def render(self) -> dict[str, Any]:
        return {
            "voice_name": self.voice_name,
            "replica_id": self.replica_id,
            "audio_url": None,
            "tags": [{"tag_name": tag} for tag in self.tags],
        }


def _slug(replica_name: str) -> str | None:
    if replica_name.lower().startswith("stock replica"):
        return None
    first = re.split(r"[\s()\-–]+", replica_name.strip(), maxsplit=1)[0]
    return first.lower() or None


def _voices() -> list[Voice]:
    found: dict[str, Voice] = {}
    for replica in STOCK_REPLICAS.values():
        slug = _slug(replica.replica_name)
        if slug and slug not in found:
            found[slug] = Voice(slug, replica.replica_id, _TAGS.get(slug, ()))
    return sorted(found.values(), key=lambda v: v.voice_name)


STOCK_VOICES: list[Voice] = _voices()


def find_voices(*, search: str | None = None, tags: list[str] | None = None, descending: bool = False) -> list[Voice]:
    """Voices by `voice_name` (ascending unless `descending`), whose name contains `search` (any case)
    and that carry every one of `tags` (any case)."""
    voices = list(STOCK_VOICES)
    if search:
        voices = [v for v in voices if search.lower() in v.voice_name]
    for tag in tags or ():
        voices = [v for v in voices if tag.lower() in v.tags]
    return voices[::-1] if descending else voices
