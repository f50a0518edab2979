"""When a conversation ends by itself, as Tavus documents it.

- `max_call_duration` (default 3600 s) counts from creation;
- `participant_absent_timeout` (default 300 s) counts from creation, and only
  while nobody has ever joined;
- `participant_left_timeout` (default 0 s) counts from the moment the last
  participant leaves.

Only the earliest pending deadline matters; it is recomputed on every join and
leave and stored with the conversation, so a restart neither forgets nor
repeats it.
"""

from __future__ import annotations

from dataclasses import dataclass

from palaver.domain.conversation import ShutdownReason

DEFAULT_MAX_CALL_DURATION = 3600
DEFAULT_PARTICIPANT_ABSENT_TIMEOUT = 300
DEFAULT_PARTICIPANT_LEFT_TIMEOUT = 0


@dataclass(frozen=True, slots=True)
class TimerSettings:
    max_call_duration: int = DEFAULT_MAX_CALL_DURATION
    participant_absent_timeout: int = DEFAULT_PARTICIPANT_ABSENT_TIMEOUT
    participant_left_timeout: int = DEFAULT_PARTICIPANT_LEFT_TIMEOUT


@dataclass(frozen=True, slots=True)
class Presence:
    """Who is in the room: enough to know which participant timer applies."""

    participants: int = 0
    ever_joined: bool = False
    last_left: float | None = None  # epoch seconds

    def joined(self) -> Presence:
        return Presence(self.participants + 1, True, self.last_left)

    def left(self, at: float) -> Presence:
        return Presence(max(self.participants - 1, 0), self.ever_joined, at)


@dataclass(frozen=True, slots=True)
class Deadline:
    at: float  # epoch seconds
    reason: ShutdownReason


def next_deadline(created: float, settings: TimerSettings, presence: Presence) -> Deadline:
    """The earliest deadline that applies now; ties go to the call-duration limit."""
    candidates = [Deadline(created + settings.max_call_duration, ShutdownReason.MAX_CALL_DURATION)]
    if not presence.ever_joined:
        candidates.append(
            Deadline(created + settings.participant_absent_timeout, ShutdownReason.PARTICIPANT_ABSENT_TIMEOUT)
        )
    elif presence.participants == 0 and presence.last_left is not None:
        candidates.append(
            Deadline(presence.last_left + settings.participant_left_timeout, ShutdownReason.PARTICIPANT_LEFT_TIMEOUT)
        )
    return min(candidates, key=lambda d: d.at)
