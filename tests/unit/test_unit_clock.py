"""Timestamps and clocks (palaver.domain.clock)."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from palaver.domain.clock import ManualClock, SystemClock, iso_timestamp

FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


@pytest.fixture
def far_timezone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run with a local timezone far from UTC, so local-time bugs show."""
    monkeypatch.setenv("TZ", "XYZ-5:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (0, "1970-01-01T00:00:00.000000Z"),
        (1_700_000_000, "2023-11-14T22:13:20.000000Z"),
        (1_700_000_000.5, "2023-11-14T22:13:20.500000Z"),
        (1_770_000_000.123456, "2026-02-02T02:40:00.123456Z"),
        (1_770_000_000.000001, "2026-02-02T02:40:00.000001Z"),
    ],
)
def test_iso_timestamp_values(epoch: float, expected: str, far_timezone: None) -> None:
    """UTC with six fractional digits and a Z, even for whole seconds, whatever the local zone."""
    assert iso_timestamp(epoch) == expected


@pytest.mark.parametrize("epoch", [0, 1, 59.999999, 1_700_000_000, 1_770_000_000.25, 1_999_999_999.654321])
def test_iso_timestamp_format_and_round_trip(epoch: float) -> None:
    stamp = iso_timestamp(epoch)
    assert FORMAT.fullmatch(stamp), stamp
    parsed = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert parsed.timestamp() == pytest.approx(epoch, abs=1e-6)


def test_iso_timestamps_sort_like_time() -> None:
    epochs = [1_700_000_000, 1_700_000_000.000001, 1_700_000_009.9, 1_700_000_010]
    stamps = [iso_timestamp(e) for e in epochs]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


def test_manual_clock_moves_only_when_advanced() -> None:
    clock = ManualClock(start=1000.0)
    assert clock.now() == 1000.0
    assert clock.now() == 1000.0
    clock.advance(1.5)
    assert clock.now() == 1001.5
    clock.advance(0.25)
    assert clock.now() == 1001.75


def test_manual_clock_default_start_is_a_plausible_epoch() -> None:
    assert ManualClock().now() > 1_600_000_000


def test_system_clock_is_wall_time() -> None:
    before = time.time()
    now = SystemClock().now()
    assert before <= now <= time.time()


def test_iso_timestamp_is_datetimes_text_whatever_the_second_before() -> None:
    """The per-second part is reused from call to call: alternating seconds, rounding into the next
    second and times before 1970 must still give exactly what `datetime` gives."""
    rng = random.Random(11)
    epochs = [1_700_000_000.9999996, 1_700_000_000.25, 1_700_000_001.0000004, -1.5, -0.0000004, 0.9999995]
    epochs += [rng.choice([1_700_000_000, 1_800_000_000]) + rng.random() for _ in range(2000)]
    epochs += [rng.uniform(-2e9, 4e9) for _ in range(2000)]
    for epoch in epochs:
        expected = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")[:-6] + "Z"
        assert iso_timestamp(epoch) == expected, epoch
