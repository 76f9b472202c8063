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
