"""The timer rules: which deadline applies, from what moment, with which reason."""

from __future__ import annotations

from palaver.domain.conversation import ShutdownReason
from palaver.domain.timers import Deadline, Presence, TimerSettings, next_deadline

T0 = 1_000_000.0


def test_nobody_joined_absent_timeout_comes_first_by_default() -> None:
    assert next_deadline(T0, TimerSettings(), Presence()) == Deadline(
        T0 + 300, ShutdownReason.PARTICIPANT_ABSENT_TIMEOUT
    )


def test_max_call_duration_wins_when_shorter_than_absent_timeout() -> None:
    settings = TimerSettings(max_call_duration=60, participant_absent_timeout=300)
    assert next_deadline(T0, settings, Presence()) == Deadline(T0 + 60, ShutdownReason.MAX_CALL_DURATION)


def test_someone_present_only_max_call_duration_applies() -> None:
    present = Presence().joined()
    assert next_deadline(T0, TimerSettings(), present) == Deadline(T0 + 3600, ShutdownReason.MAX_CALL_DURATION)


def test_last_participant_leaving_starts_left_timeout_from_the_leave() -> None:
    left = Presence().joined().left(at=T0 + 500)
    settings = TimerSettings(participant_left_timeout=30)
    assert next_deadline(T0, settings, left) == Deadline(T0 + 530, ShutdownReason.PARTICIPANT_LEFT_TIMEOUT)


def test_left_timeout_waits_for_the_last_participant() -> None:
    two_then_one = Presence().joined().joined().left(at=T0 + 500)
    assert two_then_one.participants == 1
    assert next_deadline(T0, TimerSettings(), two_then_one).reason is ShutdownReason.MAX_CALL_DURATION


def test_absent_timeout_never_applies_after_a_join_even_if_everyone_left() -> None:
    left = Presence().joined().left(at=T0 + 10)
    settings = TimerSettings(participant_absent_timeout=1, participant_left_timeout=100)
    assert next_deadline(T0, settings, left).reason is ShutdownReason.PARTICIPANT_LEFT_TIMEOUT


def test_a_stray_leave_never_goes_below_zero() -> None:
    assert Presence().left(at=T0).participants == 0
