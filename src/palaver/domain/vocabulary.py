"""Two names for one object: the classic Tavus vocabulary and the newer one.

Tavus renamed personas to PALs and replicas to faces. Both families of
endpoints are served, over the same stored objects: the document is stored in
the classic names and each request's vocabulary renames the fields it names
differently (`persona_id` -> `pal_id`, `replica_name` -> `face_name`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from palaver.domain.errors import ValidationFailed


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """How one family of endpoints names an object's fields."""

    noun: str  # persona | pal | replica | face
    renames: dict[str, str]  # canonical (classic) name -> this vocabulary's name

    def name(self, canonical: str) -> str:
        """This vocabulary's name for a canonical field."""
        return self.renames.get(canonical, canonical)

    def render(self, document: dict[str, Any]) -> dict[str, Any]:
        """The object as this vocabulary shows it; members starting with `_` are the server's own."""
        return {self.renames.get(key, key): value for key, value in document.items() if not key.startswith("_")}

    def parse(self, view: dict[str, Any]) -> dict[str, Any]:
        """A body or a patched view in this vocabulary, in the canonical names.

        A name of the other vocabulary is refused rather than silently kept twice.
        """
        back = {theirs: ours for ours, theirs in self.renames.items()}
        out: dict[str, Any] = {}
        for key, value in view.items():
            if key in self.renames and self.renames[key] != key:
                raise ValidationFailed(f"Unknown field {key!r} for a {self.noun}: use {self.renames[key]!r}")
            out[back.get(key, key)] = value
        return out
