"""Replicas and faces: the document a client reads, and the stock ones every account has.

A replica is the likeness and voice a conversation shows; the newer API calls
it a face. Stock replicas (reference 14) are `system` objects shared by every
account; an account's own replicas come from training (service/replicas.py).
Members starting with `_` (the training request, where its footage is kept)
are the server's own and never shown.
"""

from __future__ import annotations

import secrets
from typing import Any

from palaver.domain.catalog import STOCK_REPLICAS
from palaver.domain.vocabulary import Vocabulary

REPLICA = Vocabulary("replica", {})
FACE = Vocabulary(
    "face",
    {"replica_id": "face_id", "replica_name": "face_name", "replica_type": "face_type"},
)
STATUSES = ("started", "completed", "error")
STOCK_CREATED_AT = "2025-01-01T00:00:00.000000Z"
# Faces the 2026 docs name as Phoenix-4; the older stock replicas are Phoenix-3.
PHOENIX_4 = frozenset(
    {"r5dc7c7d0bcb", "r4067604db72", "rc9cff32ceba", "rb32069a3012", "r3f4182ef554", "r5f0577fc829", "rc8992fe8e8e",
     "rbb3ca3630f7", "r90bbd427f71"}
)  # fmt: skip
SHOWN_ONLY_VERBOSE = ("replica_type",)  # the spec: "If `verbose` query parameter is set to true"


def new_replica_id() -> str:
    return "r" + secrets.token_hex(6)


def replica_document(
    replica_id: str,
    replica_name: str,
    *,
    status: str,
    model_name: str,
    created_at: str,
    replica_type: str = "user",
    training_progress: str = "0/100",
    thumbnail_video_url: str | None = None,
    error_message: str | None = None,
) -> dict[str, Any]:
    """Every field a replica shows, in the order the spec lists them."""
    return {
        "replica_id": replica_id,
        "replica_name": replica_name,
        "thumbnail_video_url": thumbnail_video_url,
        "training_progress": training_progress,
        "status": status,
        "created_at": created_at,
        "updated_at": created_at,
        "error_message": error_message,
        "replica_type": replica_type,
        "model_name": model_name,
    }


STOCK_DOCUMENTS: dict[str, dict[str, Any]] = {
    rid: replica_document(
        rid,
        stock.replica_name,
        status="completed",
        model_name="phoenix-4" if rid in PHOENIX_4 else "phoenix-3",
        created_at=STOCK_CREATED_AT,
        replica_type="system",
        training_progress="100/100",
    )
    for rid, stock in STOCK_REPLICAS.items()
}


def shown(document: dict[str, Any], vocabulary: Vocabulary, *, verbose: bool) -> dict[str, Any]:
    view = {k: v for k, v in document.items() if verbose or k not in SHOWN_ONLY_VERBOSE}
    return vocabulary.render(view)
