"""Pronunciation dictionaries: rules that tell the TTS layer how to say words (reference 13).

A dictionary is `{name, rules: [{text, pronunciation, type, ...}]}`. `alias`
rules replace the text with other text; `ipa` rules give an IPA string (their
`alphabet` is "ipa"). Each rule's `text` appears once in a dictionary. Errors
read like Tavus's: `{"error": "Invalid request: ..."}`.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from palaver.domain.objectives import first_problem

MAX_RULES = 10_000
# What a dictionary holds beyond its own fields; a patch that touches them is ignored (reference: "silently ignored").
SERVER_FIELDS = ("pronunciation_dictionary_id", "rules_count", "created_at", "updated_at")


def new_dictionary_id() -> str:
    return "pd_" + secrets.token_hex(8)


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(min_length=1, max_length=200)
    pronunciation: str = Field(min_length=1, max_length=500)
    type: Literal["alias", "ipa"]
    alphabet: Literal["ipa"] | None = None
    case_sensitive: bool = False
    word_boundaries: bool = True

    @model_validator(mode="after")
    def _alphabet(self) -> Rule:
        """An ipa rule's alphabet is "ipa" (also when not sent); an alias rule has none."""
        self.alphabet = "ipa" if self.type == "ipa" else None
        return self

    def stored(self) -> dict[str, Any]:
        rule = self.model_dump()
        if rule["alphabet"] is None:
            del rule["alphabet"]
        return rule


class Dictionary(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(max_length=255)
    rules: list[Rule] = Field(default_factory=list, max_length=MAX_RULES)


def check_dictionary(fields: dict[str, Any]) -> dict[str, Any] | str:
    """`{name, rules}` complete and checked, or the reason they are refused (already `Invalid request: ...`)."""
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip():
        return "Invalid request: name is required"
    try:
        parsed = Dictionary.model_validate(fields)
    except ValidationError as exc:
        return f"Invalid request: {first_problem(exc)}"
    texts = [rule.text for rule in parsed.rules]
    if len(set(texts)) != len(texts):
        return "Invalid request: duplicate text values in rules"
    return {"name": parsed.name, "rules": [rule.stored() for rule in parsed.rules]}
