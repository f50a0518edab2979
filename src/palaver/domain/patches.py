"""RFC 6902 JSON Patch, applied all or nothing, with the errors each resource answers.

The patching itself is the `jsonpatch` library's. This module adds what the API
needs around it: a patch is checked whole before anything is applied (a list of
operation objects, each a known op with the members it needs: the SDK drops a
`null` value, so `{"op": "replace", "path": "/pal_name"}` arrives and must be
refused rather than stored), it is applied to a copy, so a failing op
(including `test`) leaves the stored object untouched, and read-only fields
cannot be patched.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

from palaver.domain.errors import InvalidPatch

MAX_OPERATIONS = 1000
_NEEDS = {
    "add": ("path", "value"),
    "replace": ("path", "value"),
    "test": ("path", "value"),
    "remove": ("path",),
    "move": ("path", "from"),
    "copy": ("path", "from"),
}


def apply_patch(
    document: dict[str, Any],
    operations: Any,
    *,
    read_only: frozenset[str] = frozenset(),
    malformed: InvalidPatch | None = None,
    failed: InvalidPatch | None = None,
) -> dict[str, Any]:
    """The patched copy of `document`.

    `malformed` is raised for a patch that is not a valid RFC 6902 document or
    touches a read-only top-level field; `failed` (with the reason appended when
    its message ends with ':') for a valid patch that cannot be applied.
    """
    bad = malformed or InvalidPatch("Invalid JSON patch format")
    if not isinstance(operations, list) or not operations or len(operations) > MAX_OPERATIONS:
        raise bad
    for op in operations:
        if not isinstance(op, dict) or op.get("op") not in _NEEDS:
            raise bad
        for member in _NEEDS[op["op"]]:
            if member not in op:
                raise bad
        for member in ("path", "from"):
            if member in op and not _is_pointer(op[member]):
                raise bad
    try:
        patched = jsonpatch.apply_patch(copy.deepcopy(document), operations, in_place=True)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError, ValueError) as exc:
        if failed is None:
            raise bad from None
        text = failed.message + (f" {exc}" if failed.message.endswith(":") else "")
        raise InvalidPatch(text, status=failed.status, key=failed.key) from None
    if not isinstance(patched, dict):  # a whole-document replace with a non-object
        raise bad
    if any(patched.get(key, bad) != document.get(key, bad) for key in read_only):
        raise bad  # an id, a type or a timestamp changed, moved away or removed
    return patched


def _is_pointer(value: Any) -> bool:
    return isinstance(value, str) and (value == "" or value.startswith("/"))
