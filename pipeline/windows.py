"""Window and period maths. Pure: integers of UTC epoch milliseconds/seconds in, the same out.

Periods follow the original platform: weeks start Monday 00:00 UTC, quarters on Jan/Apr/Jul/Oct 1.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

Period = Literal["minute", "hour", "day", "week", "month", "quarter", "year"]
PERIODS: tuple[Period, ...] = ("minute", "hour", "day", "week", "month", "quarter", "year")


def bucket_start_s(ts_s: int, size_s: int) -> int:
    """Start of the fixed-size bucket (aligned to the epoch) that holds ``ts_s``."""
    if size_s <= 0:
        raise ValueError("bucket size must be positive")
    return ts_s - ts_s % size_s


def minute_start_s(ts_ms: int) -> int:
    return bucket_start_s(ts_ms // 1000, 60)


def live_bucket_range_s(now_ms: int, window_s: int, bucket_s: int) -> tuple[int, int]:
    """First and last bucket start (inclusive) of the buckets that overlap ``(now - window, now]``.

    "Users now" unions the visitor sets of these buckets, so it covers at least ``window_s``
    and at most ``window_s + bucket_s`` seconds of history.
    """
    if window_s <= 0 or bucket_s <= 0:
        raise ValueError("window and bucket must be positive")
    now_s = now_ms // 1000
    return bucket_start_s(now_s - window_s, bucket_s), bucket_start_s(now_s, bucket_s)


def period_start(value: datetime, period: Period) -> datetime:
    """Start of the period that holds ``value`` (aware, converted to UTC)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    v = value.astimezone(UTC)
    if period == "minute":
        return v.replace(second=0, microsecond=0)
    if period == "hour":
        return v.replace(minute=0, second=0, microsecond=0)
    day = v.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    if period == "quarter":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    if period == "year":
        return day.replace(month=1, day=1)
    raise ValueError(f"unknown period {period!r}")


def period_next(start: datetime, period: Period) -> datetime:
    """Start of the period after the one that begins at ``start``."""
    if period == "minute":
        return start + timedelta(minutes=1)
    if period == "hour":
        return start + timedelta(hours=1)
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(weeks=1)
    months = {"month": 1, "quarter": 3, "year": 12}[period]
    total = start.month - 1 + months
    return start.replace(year=start.year + total // 12, month=total % 12 + 1)


def period_starts(start: datetime, end: datetime, period: Period) -> list[datetime]:
    """Every period start from the one holding ``start`` up to (excluding) ``end`` rounded up."""
    out: list[datetime] = []
    cur = period_start(start, period)
    while cur < end:
        out.append(cur)
        cur = period_next(cur, period)
    return out


# --- windows in epoch milliseconds ------------------------------------------------------------------
#
# Events carry UTC epoch milliseconds. A window is the half-open range ``[start_ms, end_ms)``; an
# event belongs to the window that holds its own timestamp, however late it arrives.

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def _from_ms(ms: int) -> datetime:
    # Exact: timedelta arithmetic on integers, no float seconds on the way.
    return _EPOCH + timedelta(milliseconds=ms)


def _to_ms(value: datetime) -> int:
    return (value - _EPOCH) // _ONE_MS


def previous_period_start(start: datetime, period: Period) -> datetime:
    """Start of the period before the one that holds ``start`` (aware, UTC).

    For a period start this is simply the previous period: the Monday a week earlier, the
    quarter three months earlier (October of the year before for a January quarter).
    """
    return period_start(period_start(start, period) - timedelta(microseconds=1), period)


def window_of(ts_ms: int, period: Period) -> tuple[int, int]:
    """``(start_ms, end_ms)`` of the period that holds ``ts_ms``: start inclusive, end exclusive."""
    start = period_start(_from_ms(ts_ms), period)
    return _to_ms(start), _to_ms(period_next(start, period))


def so_far_window(now_ms: int, period: Period) -> tuple[int, int]:
    """The window a "current value" reports at ``now_ms``: from the start of the period holding
    now up to now, ``[period start, now_ms)`` ("this week so far" is Monday 00:00 UTC → now).

    An event stamped at exactly ``now_ms`` is not in it yet; the next read includes it. At the
    first millisecond of a period the window is empty.
    """
    start, _ = window_of(now_ms, period)
    return start, now_ms


def previous_so_far_window(now_ms: int, period: Period) -> tuple[int, int]:
    """The like-for-like window to compare :func:`so_far_window` with: the same time elapsed into
    the previous period, capped at that period's end (on 31 March the previous month "so far" is
    the whole of February)."""
    start, _ = window_of(now_ms, period)
    prev_start = _to_ms(previous_period_start(_from_ms(start), period))
    return prev_start, min(prev_start + (now_ms - start), start)


def current_windows(now_ms: int, periods: tuple[Period, ...] = PERIODS) -> dict[Period, tuple[int, int]]:
    """For each period, the window a "current value" read at ``now_ms`` reports (see
    :func:`so_far_window`)."""
    return {p: so_far_window(now_ms, p) for p in periods}
