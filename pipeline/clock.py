"""Time as a dependency: the edges hold a Clock; the core takes ``now`` as an argument."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class FrozenClock:
    """A clock for tests: stays where it is put."""

    def __init__(self, now_ms: int) -> None:
        self._now_ms = now_ms

    def now_ms(self) -> int:
        return self._now_ms

    def advance(self, ms: int) -> None:
        self._now_ms += ms


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def datetime_to_ms(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("naive datetime: perfplat works in aware UTC datetimes only")
    return int(value.timestamp() * 1000)


def iso_utc(ms: int) -> str:
    """``2026-11-22T03:04:05+00:00``: the original platform's output form (never ``Z``)."""
    return ms_to_datetime(ms).replace(microsecond=(ms % 1000) * 1000).isoformat(timespec="seconds")
