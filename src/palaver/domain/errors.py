"""Domain errors.

They carry no HTTP knowledge; `palaver.api.errors` is the one place that maps
each to Tavus's status code and body. The hierarchy:

    PalaverError
    ├── InvalidId               unknown, malformed, deleted or foreign id
    ├── ValidationFailed        a request that breaks the contract
    └── ConcurrencyLimitReached the account's active slots are full
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


class ConcurrencyLimitReached(PalaverError):
    def __init__(self) -> None:
        super().__init__("User has reached maximum concurrent conversations")
