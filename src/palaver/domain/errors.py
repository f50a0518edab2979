"""Domain errors.

They carry no HTTP knowledge beyond what differs per resource (which body key,
and for patches which status, the contract gives); `palaver.api.errors` is the
one place that maps each to Tavus's status code and body. The hierarchy:

    PalaverError
    ├── InvalidId               unknown, malformed, deleted or foreign id
    ├── ValidationFailed        a request that breaks the contract
    │   └── InvalidBody         the same, answered with `message` (objectives, guardrails)
    ├── ConcurrencyLimitReached the account's active slots are full
    ├── ResourceNotFound        an unknown id of a newer resource (404)
    ├── NotModified             a patch that changes nothing (304)
    ├── InvalidPatch            a malformed or inapplicable JSON Patch
    └── ReadOnly                a change to a stock object
"""

from __future__ import annotations


class PalaverError(Exception):
    """Base of every error the service raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidId(PalaverError):
    """The id names nothing this account may see.

    One class for unknown, malformed, soft-deleted and foreign ids, so the
    response cannot reveal which of them it was.
    """

    def __init__(self, kind: str) -> None:
        super().__init__(f"Invalid {kind}")
        self.kind = kind


class ValidationFailed(PalaverError):
    pass


class InvalidBody(ValidationFailed):
    """A create body that breaks the rules, where Tavus answers 400 with `message`, not `error`
    (objectives and guardrails: `{"message": "objective_name is required"}`, reference 1.2)."""


class ConcurrencyLimitReached(PalaverError):
    def __init__(self) -> None:
        super().__init__("User has reached maximum concurrent conversations")


class ResourceNotFound(PalaverError):
    """An unknown id of one of the newer resources, which Tavus answers with 404.

    `key` is the body's field: `error` for objectives and guardrails,
    `message` for documents and dictionaries (reference 1.2).
    """

    def __init__(self, message: str, key: str = "error") -> None:
        super().__init__(message)
        self.key = key


class NotModified(PalaverError):
    """A JSON Patch that leaves the object as it was (304)."""


class InvalidPatch(PalaverError):
    """A JSON Patch that is malformed or cannot be applied; nothing of it is applied.

    `status` and `key` are the resource's own: personas answer 422 with `message`,
    objectives and guardrails 400 with `error` (reference 6, 8, 9).
    """

    def __init__(self, message: str, *, status: int = 422, key: str = "message") -> None:
        super().__init__(message)
        self.status = status
        self.key = key


class ReadOnly(PalaverError):
    """A change to a stock (system) object, which every account shares and none may change."""


class RoomFull(Exception):
    """A join that `max_participants` (the replica counts as one) does not allow; raised by storage."""
