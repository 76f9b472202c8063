"""Window and period maths (``pipeline.windows``): epoch buckets, the live bucket range and the
calendar periods of the original platform (weeks from Monday 00:00 UTC, quarters on Jan/Apr/Jul/Oct 1)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.windows import (
    PERIODS,
    Period,
    bucket_start_s,
    current_windows,
    live_bucket_range_s,
    minute_start_s,
    period_next,
    period_start,
    period_starts,
    previous_period_start,
    previous_so_far_window,
    so_far_window,
    window_of,
)

PLUS_5 = timezone(timedelta(hours=5))
MINUS_8 = timezone(timedelta(hours=-8))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# Aware datetimes in any fixed offset or IANA zone, kept well inside datetime's range so that a
# conversion to UTC or a step to the next year cannot overflow.
offsets = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
)
zones = st.one_of(st.just(UTC), offsets.map(timezone), st.timezones())
aware = st.datetimes(
    min_value=datetime(1971, 1, 1),  # noqa: DTZ001 - hypothesis takes naive bounds
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001
    timezones=zones,
)
periods = st.sampled_from(PERIODS)


# --- epoch buckets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts_s", "size_s", "expected"),
    [
        (0, 10, 0),
        (9, 10, 0),
        (10, 10, 10),
        (19, 10, 10),
        (1_700_000_007, 10, 1_700_000_000),
        (1_700_000_007, 1, 1_700_000_007),
        (-1, 10, -10),  # before the epoch the bucket still starts at or before ts
    ],
)
def test_bucket_start_s_table(ts_s: int, size_s: int, expected: int) -> None:
    assert bucket_start_s(ts_s, size_s) == expected


@pytest.mark.parametrize("size_s", [0, -1, -60])
def test_bucket_start_s_refuses_non_positive_size(size_s: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        bucket_start_s(100, size_s)


@given(
    ts_s=st.integers(min_value=-(2**40), max_value=2**40), size_s=st.integers(min_value=1, max_value=10**6)
)
def test_bucket_start_s_is_the_aligned_start_holding_ts(ts_s: int, size_s: int) -> None:
    start = bucket_start_s(ts_s, size_s)
    assert start % size_s == 0
    assert start <= ts_s < start + size_s


@pytest.mark.parametrize(
    ("ts_ms", "expected_s"),
    [
        (0, 0),
        (59_999, 0),
        (60_000, 60),
        (
            int(utc(2024, 3, 10, 12, 34, 56, 789_000).timestamp() * 1000),
            int(utc(2024, 3, 10, 12, 34).timestamp()),
        ),
    ],
)
def test_minute_start_s_table(ts_ms: int, expected_s: int) -> None:
    assert minute_start_s(ts_ms) == expected_s


@given(ts_ms=st.integers(min_value=0, max_value=2**45))
def test_minute_start_s_holds_the_millisecond(ts_ms: int) -> None:
    start = minute_start_s(ts_ms)
    assert start % 60 == 0
    assert start * 1000 <= ts_ms < (start + 60) * 1000


# --- live bucket range ----------------------------------------------------------------------------


def _overlapping_bucket_starts(now_ms: int, window_s: int, bucket_s: int) -> set[int]:
    """By definition: the buckets holding any millisecond of ``(now - window, now]``."""
    first_second = (now_ms - window_s * 1000 + 1) // 1000
    last_second = now_ms // 1000
    return {bucket_start_s(s, bucket_s) for s in range(first_second, last_second + 1)}


@given(
    now_ms=st.integers(min_value=0, max_value=2**42),
    window_s=st.integers(min_value=1, max_value=3600),
    bucket_s=st.integers(min_value=1, max_value=600),
)
@settings(max_examples=200)
def test_live_bucket_range_is_exactly_the_overlapping_buckets(
    now_ms: int, window_s: int, bucket_s: int
) -> None:
    first, last = live_bucket_range_s(now_ms, window_s, bucket_s)
    assert set(range(first, last + 1, bucket_s)) == _overlapping_bucket_starts(now_ms, window_s, bucket_s)


@given(
    now_ms=st.integers(min_value=0, max_value=2**42),
    window_s=st.integers(min_value=1, max_value=3600),
    bucket_s=st.integers(min_value=1, max_value=600),
)
def test_live_bucket_range_covers_window_and_at_most_one_bucket_more(
    now_ms: int, window_s: int, bucket_s: int
) -> None:
    first, last = live_bucket_range_s(now_ms, window_s, bucket_s)
    now_s = now_ms // 1000
    assert first % bucket_s == 0
    assert last % bucket_s == 0
    assert last <= now_s < last + bucket_s
    assert window_s <= now_s - first < window_s + bucket_s


def test_live_bucket_range_on_bucket_boundaries() -> None:
    now_s = int(utc(2024, 3, 10, 12, 0, 0).timestamp())
    # now is a bucket start and now - window is one too: (now-300, now] touches 31 buckets of 10 s,
    # from the one starting at now-300 (it holds now-299.999) up to the one starting at now.
    first, last = live_bucket_range_s(now_s * 1000, 300, 10)
    assert (first, last) == (now_s - 300, now_s)
    assert len(range(first, last + 1, 10)) == 31


@pytest.mark.parametrize(("window_s", "bucket_s"), [(0, 10), (-1, 10), (300, 0), (300, -10)])
def test_live_bucket_range_refuses_non_positive_sizes(window_s: int, bucket_s: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        live_bucket_range_s(1_700_000_000_000, window_s, bucket_s)


# --- calendar periods -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "period", "expected"),
    [
        (utc(2024, 3, 10, 12, 34, 56, 789), "minute", utc(2024, 3, 10, 12, 34)),
        (utc(2024, 3, 10, 12, 34, 56, 789), "hour", utc(2024, 3, 10, 12)),
        (utc(2024, 3, 10, 12, 34, 56, 789), "day", utc(2024, 3, 10)),
        # Sunday 20:00 UTC belongs to the week that began the Monday before.
        (utc(2024, 3, 10, 20, 0), "week", utc(2024, 3, 4)),
        # Monday 00:00 UTC starts a week of its own; one microsecond earlier is still last week.
        (utc(2024, 3, 11, 0, 0), "week", utc(2024, 3, 11)),
        (utc(2024, 3, 10, 23, 59, 59, 999_999), "week", utc(2024, 3, 4)),
        # 03:00 on Monday at +05:00 is 22:00 Sunday UTC: still the previous week.
        (datetime(2024, 3, 11, 3, 0, tzinfo=PLUS_5), "week", utc(2024, 3, 4)),
        # 20:00 on Sunday at -08:00 is 04:00 Monday UTC: already the new week.
        (datetime(2024, 3, 10, 20, 0, tzinfo=MINUS_8), "week", utc(2024, 3, 11)),
        # A +05:00 morning on the 1st is still the last day of the previous month in UTC.
        (datetime(2024, 4, 1, 2, 0, tzinfo=PLUS_5), "day", utc(2024, 3, 31)),
        (datetime(2024, 4, 1, 2, 0, tzinfo=PLUS_5), "month", utc(2024, 3, 1)),
        (datetime(2024, 4, 1, 2, 0, tzinfo=PLUS_5), "quarter", utc(2024, 1, 1)),
        (datetime(2025, 1, 1, 4, 0, tzinfo=PLUS_5), "year", utc(2024, 1, 1)),
        (utc(2024, 1, 1), "quarter", utc(2024, 1, 1)),
        (utc(2024, 2, 15, 8), "quarter", utc(2024, 1, 1)),
        (utc(2024, 3, 31, 23, 59, 59, 999_999), "quarter", utc(2024, 1, 1)),
        (utc(2024, 4, 1), "quarter", utc(2024, 4, 1)),
        (utc(2024, 5, 31, 12), "quarter", utc(2024, 4, 1)),
        (utc(2024, 9, 30, 23, 59), "quarter", utc(2024, 7, 1)),
        (utc(2024, 10, 1), "quarter", utc(2024, 10, 1)),
        (utc(2024, 12, 31, 23, 59), "quarter", utc(2024, 10, 1)),
        (utc(2024, 12, 31, 23, 59), "month", utc(2024, 12, 1)),
        (utc(2024, 12, 31, 23, 59), "year", utc(2024, 1, 1)),
        # Leap day.
        (utc(2024, 2, 29, 12), "day", utc(2024, 2, 29)),
        (utc(2024, 2, 29, 12), "week", utc(2024, 2, 26)),
        (utc(2024, 2, 29, 12), "month", utc(2024, 2, 1)),
        (utc(2024, 2, 29, 12), "quarter", utc(2024, 1, 1)),
    ],
)
def test_period_start_table(value: datetime, period: Period, expected: datetime) -> None:
    start = period_start(value, period)
    assert start == expected
    assert start.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", [utc(2024, 3, 10, 20), datetime(2024, 3, 11, 3, tzinfo=PLUS_5)])
def test_week_starts_on_a_monday_at_midnight_utc(value: datetime) -> None:
    start = period_start(value, "week")
    assert start.weekday() == 0
    assert (start.hour, start.minute, start.second, start.microsecond) == (0, 0, 0, 0)
    assert start <= value < start + timedelta(weeks=1)


@pytest.mark.parametrize(
    ("start", "period", "expected"),
    [
        (utc(2024, 3, 10, 23, 59), "minute", utc(2024, 3, 11, 0, 0)),
        (utc(2024, 12, 31, 23), "hour", utc(2025, 1, 1)),
        (utc(2024, 2, 28), "day", utc(2024, 2, 29)),
        (utc(2024, 2, 29), "day", utc(2024, 3, 1)),
        (utc(2023, 2, 28), "day", utc(2023, 3, 1)),
        (utc(2024, 12, 30), "week", utc(2025, 1, 6)),
        (utc(2024, 1, 1), "month", utc(2024, 2, 1)),
        (utc(2024, 2, 1), "month", utc(2024, 3, 1)),
        (utc(2024, 11, 1), "month", utc(2024, 12, 1)),
        (utc(2024, 12, 1), "month", utc(2025, 1, 1)),
        (utc(2024, 1, 1), "quarter", utc(2024, 4, 1)),
        (utc(2024, 7, 1), "quarter", utc(2024, 10, 1)),
        (utc(2024, 10, 1), "quarter", utc(2025, 1, 1)),
        (utc(2024, 1, 1), "year", utc(2025, 1, 1)),
    ],
)
def test_period_next_table(start: datetime, period: Period, expected: datetime) -> None:
    assert period_next(start, period) == expected


def test_period_starts_across_the_leap_day() -> None:
    got = period_starts(utc(2024, 2, 28, 6), utc(2024, 3, 2), "day")
    assert got == [utc(2024, 2, 28), utc(2024, 2, 29), utc(2024, 3, 1)]


def test_period_starts_across_the_year_end() -> None:
    assert period_starts(utc(2024, 11, 15), utc(2025, 2, 1), "month") == [
        utc(2024, 11, 1),
        utc(2024, 12, 1),
        utc(2025, 1, 1),
    ]
    assert period_starts(utc(2024, 8, 15), utc(2025, 4, 1), "quarter") == [
        utc(2024, 7, 1),
        utc(2024, 10, 1),
        utc(2025, 1, 1),
    ]


def test_period_starts_end_is_exclusive_and_start_is_rounded_down() -> None:
    assert period_starts(utc(2024, 3, 10, 10, 0, 30), utc(2024, 3, 10, 10, 3), "minute") == [
        utc(2024, 3, 10, 10, 0),
        utc(2024, 3, 10, 10, 1),
        utc(2024, 3, 10, 10, 2),
    ]
    assert period_starts(utc(2024, 3, 10, 10), utc(2024, 3, 10, 10, 0, 0, 1), "hour") == [
        utc(2024, 3, 10, 10)
    ]


@pytest.mark.parametrize("period", PERIODS)
def test_naive_datetimes_are_refused(period: Period) -> None:
    naive = datetime(2024, 3, 10, 12)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="naive"):
        period_start(naive, period)
    with pytest.raises(ValueError, match="naive"):
        period_starts(naive, utc(2024, 4, 1), period)


def test_unknown_period_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown period"):
        period_start(utc(2024, 3, 10), "fortnight")  # type: ignore[arg-type]


@given(value=aware, period=periods)
@settings(max_examples=300)
def test_period_start_holds_the_value_and_is_idempotent(value: datetime, period: Period) -> None:
    start = period_start(value, period)
    assert start.utcoffset() == timedelta(0)
    assert start <= value < period_next(start, period)
    assert period_start(start, period) == start
    # Any instant inside the period maps back to the same start.
    assert period_start(period_next(start, period) - timedelta(microseconds=1), period) == start


# How far a generated range may reach for each period, so period_starts stays small.
_SPAN = {
    "minute": timedelta(hours=3),
    "hour": timedelta(days=10),
    "day": timedelta(days=400),
    "week": timedelta(days=1500),
    "month": timedelta(days=3650),
    "quarter": timedelta(days=3650 * 2),
    "year": timedelta(days=365 * 60),
}


@st.composite
def ranges(draw: st.DrawFn) -> tuple[datetime, datetime, Period]:
    period = draw(periods)
    start = draw(aware)
    length = draw(st.timedeltas(min_value=timedelta(microseconds=1), max_value=_SPAN[period]))
    return start, start + length, period


@given(ranges())
@settings(max_examples=200)
def test_period_starts_covers_the_range_contiguously(case: tuple[datetime, datetime, Period]) -> None:
    start, end, period = case
    got = period_starts(start, end, period)
    assert got, "a non-empty range lies in at least one period"
    assert got[0] == period_start(start, period)
    for prev, cur in itertools.pairwise(got):
        assert cur == period_next(prev, period)
    # Every listed period begins before end, and the cover ends at or after end: [start, end) is
    # covered with no gap and no period too many.
    assert got[-1] < end <= period_next(got[-1], period)


# --- windows in epoch milliseconds ------------------------------------------------------------------

EPOCH = utc(1970, 1, 1)


def ms(*args: int) -> int:
    """UTC epoch milliseconds of a literal date, exactly."""
    return (utc(*args) - EPOCH) // timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("ts_ms", "period", "window"),
    [
        # Sunday 23:59:59.999 UTC is the last millisecond of the week that began on Monday 4 March.
        (ms(2024, 3, 10, 23, 59, 59, 999_000), "week", (ms(2024, 3, 4), ms(2024, 3, 11))),
        (ms(2024, 3, 11), "week", (ms(2024, 3, 11), ms(2024, 3, 18))),
        (ms(2024, 3, 31, 23, 59, 59, 999_000), "quarter", (ms(2024, 1, 1), ms(2024, 4, 1))),
        (ms(2024, 4, 1), "quarter", (ms(2024, 4, 1), ms(2024, 7, 1))),
        (ms(2024, 11, 15), "quarter", (ms(2024, 10, 1), ms(2025, 1, 1))),
        (ms(2024, 12, 31, 23, 59, 59, 999_000), "year", (ms(2024, 1, 1), ms(2025, 1, 1))),
        (ms(2024, 2, 29, 12), "month", (ms(2024, 2, 1), ms(2024, 3, 1))),
        (ms(2024, 2, 29, 12), "day", (ms(2024, 2, 29), ms(2024, 3, 1))),
        (ms(2024, 3, 10, 12, 34, 56, 789_000), "hour", (ms(2024, 3, 10, 12), ms(2024, 3, 10, 13))),
        (ms(2024, 3, 10, 12, 34, 56, 789_000), "minute", (ms(2024, 3, 10, 12, 34), ms(2024, 3, 10, 12, 35))),
        (-1, "day", (-86_400_000, 0)),  # before the epoch
        (0, "week", (ms(1969, 12, 29), ms(1970, 1, 5))),  # 1 January 1970 was a Thursday
    ],
)
def test_window_of_table(ts_ms: int, period: Period, window: tuple[int, int]) -> None:
    assert window_of(ts_ms, period) == window


@pytest.mark.parametrize(
    ("start", "period", "expected"),
    [
        (utc(2024, 3, 11), "week", utc(2024, 3, 4)),
        (utc(2024, 1, 1), "week", utc(2023, 12, 25)),
        (utc(2024, 3, 13, 15), "week", utc(2024, 3, 4)),  # not a period start: the period before its own
        (utc(2024, 1, 1), "quarter", utc(2023, 10, 1)),
        (utc(2024, 4, 1), "quarter", utc(2024, 1, 1)),
        (utc(2024, 3, 1), "month", utc(2024, 2, 1)),
        (utc(2024, 1, 1), "month", utc(2023, 12, 1)),
        (utc(2024, 3, 1), "day", utc(2024, 2, 29)),
        (utc(2024, 1, 1), "year", utc(2023, 1, 1)),
        (utc(2024, 1, 1), "hour", utc(2023, 12, 31, 23)),
        (utc(2024, 1, 1), "minute", utc(2023, 12, 31, 23, 59)),
        (datetime(2024, 3, 11, 3, tzinfo=PLUS_5), "week", utc(2024, 2, 26)),  # Sunday 22:00 UTC
    ],
)
def test_previous_period_start_table(start: datetime, period: Period, expected: datetime) -> None:
    assert previous_period_start(start, period) == expected


NOW_MS = ms(2024, 3, 13, 12)  # Wednesday noon


def test_this_week_so_far_is_monday_midnight_to_now() -> None:
    assert so_far_window(NOW_MS, "week") == (ms(2024, 3, 11), NOW_MS)
    assert previous_so_far_window(NOW_MS, "week") == (ms(2024, 3, 4), ms(2024, 3, 6, 12))


def test_current_windows_for_every_period() -> None:
    now = ms(2024, 3, 13, 12, 34, 56, 789_000)
    assert current_windows(now) == {
        "minute": (ms(2024, 3, 13, 12, 34), now),
        "hour": (ms(2024, 3, 13, 12), now),
        "day": (ms(2024, 3, 13), now),
        "week": (ms(2024, 3, 11), now),
        "month": (ms(2024, 3, 1), now),
        "quarter": (ms(2024, 1, 1), now),
        "year": (ms(2024, 1, 1), now),
    }
    assert current_windows(now, ("week",)) == {"week": (ms(2024, 3, 11), now)}


def test_at_the_first_millisecond_of_a_period_so_far_is_empty() -> None:
    assert so_far_window(ms(2024, 3, 11), "week") == (ms(2024, 3, 11), ms(2024, 3, 11))
    assert previous_so_far_window(ms(2024, 3, 11), "week") == (ms(2024, 3, 4), ms(2024, 3, 4))


def test_previous_so_far_is_capped_at_the_end_of_a_shorter_previous_period() -> None:
    # 30 days and 10 hours into March; February 2024 has 29 days, so all of it.
    assert previous_so_far_window(ms(2024, 3, 31, 10), "month") == (ms(2024, 2, 1), ms(2024, 3, 1))
    # 15 days into March: the first 15 days of February.
    assert previous_so_far_window(ms(2024, 3, 16), "month") == (ms(2024, 2, 1), ms(2024, 2, 16))
    # Q1 2023 has 90 days: 90.5 days into Q2 2023 is the whole of Q1.
    assert previous_so_far_window(ms(2023, 6, 30, 12), "quarter") == (ms(2023, 1, 1), ms(2023, 4, 1))
    # Q1 2024 (a leap year) has 91 days: 90 days 23 hours into Q2 is not quite all of it.
    assert previous_so_far_window(ms(2024, 6, 30, 23), "quarter") == (ms(2024, 1, 1), ms(2024, 3, 31, 23))
    # Q3 and Q4 both have 92 days.
    assert previous_so_far_window(ms(2024, 12, 31, 12), "quarter") == (ms(2024, 7, 1), ms(2024, 9, 30, 12))


ts_ms = st.integers(min_value=ms(1971, 1, 1), max_value=ms(2200, 1, 1))


@given(ts=ts_ms, period=periods)
@settings(max_examples=300)
def test_window_of_holds_the_timestamp_and_every_millisecond_in_it_maps_back(ts: int, period: Period) -> None:
    start, end = window_of(ts, period)
    assert start <= ts < end
    assert window_of(start, period) == (start, end)
    assert window_of(end - 1, period) == (start, end)
    assert window_of(end, period)[0] == end
    assert window_of(start - 1, period)[1] == start


@given(ts=ts_ms, period=periods)
def test_previous_period_start_is_the_period_just_before(ts: int, period: Period) -> None:
    start = period_start(EPOCH + timedelta(milliseconds=ts), period)
    prev = previous_period_start(start, period)
    assert period_next(prev, period) == start
    assert period_start(prev, period) == prev


@given(now=ts_ms, period=periods)
def test_previous_so_far_window_is_no_longer_and_ends_before_the_current_one(
    now: int, period: Period
) -> None:
    start, end = so_far_window(now, period)
    prev_start, prev_end = previous_so_far_window(now, period)
    assert (start, end) == (window_of(now, period)[0], now)
    assert window_of(prev_start, period)[1] == start
    assert prev_start <= prev_end <= start
    assert prev_end - prev_start <= end - start
