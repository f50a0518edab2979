"""How a conversation is laid out in a row: one column list, one mapping each way, for every backend.

Both schemas store a conversation in the same columns in the same order
(migrations `sqlite/` and `postgres/`), so a record goes in and comes out the
same way whichever database holds it; the drivers differ only in how they bind
and return values, and those differences are absorbed here (SQLite stores a
bool as 0/1, PostgreSQL as boolean; `bool()` reads either).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from palaver.domain.conversation import ENDS_FROM, ShutdownReason
from palaver.domain.timers import Deadline, TimerSettings
from palaver.storage.base import ConversationRecord

CONVERSATION_COLUMNS = (
    "conversation_id, account_id, conversation_name, status, test_mode, replica_id, persona_id, "
    "callback_url, system_prompt, meeting_token, request, shutdown_reason, created_at, updated_at, ended_at, "
    "created_epoch, max_call_duration, participant_absent_timeout, participant_left_timeout, deadline, deadline_reason"
)
CONVERSATION_COLUMN_COUNT = CONVERSATION_COLUMNS.count(",") + 1


def conversation_from_row(row: Sequence[Any]) -> ConversationRecord:
    """A record from a row selected as CONVERSATION_COLUMNS (extra columns after them are ignored)."""
    return ConversationRecord(
        conversation_id=row[0],
        account_id=row[1],
        conversation_name=row[2],
        status=row[3],
        test_mode=bool(row[4]),
        replica_id=row[5],
        persona_id=row[6],
        callback_url=row[7],
        system_prompt=row[8],
        meeting_token=row[9],
        request=json.loads(row[10]),
        shutdown_reason=row[11],
        created_at=row[12],
        updated_at=row[13],
        ended_at=row[14],
        created_epoch=row[15] or 0.0,
        timers=TimerSettings(row[16], row[17], row[18]),
        # A deadline outlives its conversation's end until the timer sweep clears it: not shown then.
        deadline=Deadline(row[19], ShutdownReason(row[20])) if row[19] is not None and row[3] == ENDS_FROM else None,
    )


def conversation_row(c: ConversationRecord) -> tuple[object, ...]:
    """The values of CONVERSATION_COLUMNS for a record, in that order."""
    return (
        c.conversation_id,
        c.account_id,
        c.conversation_name,
        c.status,
        c.test_mode,
        c.replica_id,
        c.persona_id,
        c.callback_url,
        c.system_prompt,
        c.meeting_token,
        json.dumps(c.request),
        c.shutdown_reason,
        c.created_at,
        c.updated_at,
        c.ended_at,
        c.created_epoch,
        c.timers.max_call_duration,
        c.timers.participant_absent_timeout,
        c.timers.participant_left_timeout,
        c.deadline.at if c.deadline else None,
        c.deadline.reason if c.deadline else None,
    )
