"""JSON Patch as the API applies it: whole or not at all, refused when malformed."""

from __future__ import annotations

import pytest

from palaver.domain.errors import InvalidPatch
from palaver.domain.patches import apply_patch

DOC = {"persona_id": "p1", "persona_name": "A", "document_ids": [], "layers": {"llm": {"model": "m"}}}
RO = frozenset({"persona_id"})


def test_applies_every_op_to_a_copy() -> None:
    ops = [
        {"op": "replace", "path": "/persona_name", "value": "B"},
        {"op": "add", "path": "/document_ids/-", "value": "d1"},
        {"op": "add", "path": "/layers/tts", "value": {"tts_engine": "cartesia"}},
        {"op": "test", "path": "/persona_name", "value": "B"},
        {"op": "copy", "from": "/persona_name", "path": "/greeting"},
        {"op": "remove", "path": "/layers/llm"},
    ]
    out = apply_patch(DOC, ops, read_only=RO)
    assert out == {"persona_id": "p1", "persona_name": "B", "document_ids": ["d1"],
                   "layers": {"tts": {"tts_engine": "cartesia"}}, "greeting": "B"}  # fmt: skip
    assert DOC["document_ids"] == [] and DOC["layers"] == {"llm": {"model": "m"}}  # the input is untouched


@pytest.mark.parametrize(
    "ops",
    [
        {"op": "replace", "path": "/persona_name", "value": "B"},  # not a list
        [],
        ["replace"],
        [{"op": "frobnicate", "path": "/persona_name"}],
        [{"op": "replace", "path": "/persona_name"}],  # the SDK drops a null value
        [{"op": "move", "path": "/x"}],
        [{"op": "add", "path": "persona_name", "value": 1}],  # not a JSON pointer
        [{"op": "replace", "path": "/persona_id", "value": "p2"}],  # read-only
        [{"op": "remove", "path": "/persona_id"}],
        [{"op": "move", "from": "/persona_id", "path": "/other"}],
        [{"op": "replace", "path": "", "value": {"persona_name": "x"}}],  # drops the id
        [{"op": "replace", "path": "", "value": [1]}],
    ],
)
def test_malformed_or_read_only_patches_are_refused(ops) -> None:
    with pytest.raises(InvalidPatch) as exc:
        apply_patch(DOC, ops, read_only=RO)
    assert exc.value.message == "Invalid JSON patch format" and exc.value.status == 422


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "replace", "path": "/persona_name", "value": "B"}, {"op": "test", "path": "/persona_name", "value": "A"}],
        [{"op": "replace", "path": "/persona_name", "value": "B"}, {"op": "remove", "path": "/missing"}],
        [{"op": "replace", "path": "/nope/deeper", "value": 1}],
    ],
)
def test_a_failing_op_applies_nothing_and_says_why(ops) -> None:
    failed = InvalidPatch("could not apply:", status=400, key="error")
    with pytest.raises(InvalidPatch) as exc:
        apply_patch(DOC, ops, read_only=RO, failed=failed)
    assert exc.value.message.startswith("could not apply: ") and len(exc.value.message) > len("could not apply: ")
    assert (exc.value.status, exc.value.key) == (400, "error")
    assert DOC["persona_name"] == "A"
