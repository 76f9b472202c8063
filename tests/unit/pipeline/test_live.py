"""Live journey figures (``pipeline.live``): the users-now and minute-count query objects, their
SQL builders and the shapers that turn store rows into responses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.clock import iso_utc, ms_to_datetime
from pipeline.errors import BadInput
from pipeline.live import (
    BUCKET_S,
    DEFAULT_RANGE,
    MAX_RANGE,
    WINDOW_S,
    MinuteCountsQuery,
    UsersNowQuery,
    minute_counts_query,
    minute_counts_sql,
    shape_minute_counts,
    shape_users_now,
    users_now_sql,
)
from pipeline.sql import render
from pipeline.windows import live_bucket_range_s

NOW = datetime(2024, 3, 10, 12, 0, 7, 250_000, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
PLUS_5 = timezone(timedelta(hours=5))


# --- users now ------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["checkout", None])
def test_users_now_sql_reads_the_live_bucket_range(service: str | None) -> None:
    sql, params = users_now_sql(UsersNowQuery(service, NOW_MS), "perfplat")
    first, last = live_bucket_range_s(NOW_MS, WINDOW_S, BUCKET_S)
    assert params["first"] == ms_to_datetime(first * 1000)
    assert params["last"] == ms_to_datetime(last * 1000)
    assert "FROM perfplat.visitors_live" in sql
    assert "bucket >= %(first)s AND bucket <= %(last)s" in sql
    render(sql, params)  # every placeholder has a parameter


def test_users_now_sql_filters_by_service_only_when_given() -> None:
    with_service, params = users_now_sql(UsersNowQuery("checkout", NOW_MS), "perfplat")
    assert "service = %(service)s" in with_service
    assert params["service"] == "checkout"
    everything, params = users_now_sql(UsersNowQuery(None, NOW_MS), "perfplat")
    assert "service" not in everything
    assert "service" not in params


def test_users_now_sql_carries_a_hostile_service_only_as_a_parameter() -> None:
    hostile = "x'; DROP TABLE perfplat.visitors_live; --"
    sql, params = users_now_sql(UsersNowQuery(hostile, NOW_MS), "perfplat")
    assert hostile not in sql
    assert params["service"] == hostile


def test_users_now_sql_refuses_an_unsafe_database_name() -> None:
    with pytest.raises(ValueError, match="identifier"):
        users_now_sql(UsersNowQuery(None, NOW_MS), "perfplat; DROP TABLE x")


@given(now_ms=st.integers(min_value=10**12, max_value=2 * 10**12))
def test_users_now_bucket_params_are_bucket_starts_inside_the_window(now_ms: int) -> None:
    _, params = users_now_sql(UsersNowQuery(None, now_ms), "perfplat")
    first_s, last_s = int(params["first"].timestamp()), int(params["last"].timestamp())
    assert first_s % BUCKET_S == 0
    assert last_s % BUCKET_S == 0
    assert last_s <= now_ms // 1000 < last_s + BUCKET_S
    assert WINDOW_S <= now_ms // 1000 - first_s < WINDOW_S + BUCKET_S


@pytest.mark.parametrize(
    ("rows", "expected"),
    [([], 0), ([(None,)], 0), ([(0,)], 0), ([(17,)], 17), ([("42",)], 42)],
)
@pytest.mark.parametrize("service", ["checkout", None])
def test_shape_users_now(rows: list[tuple[Any, ...]], expected: int, service: str | None) -> None:
    assert shape_users_now(UsersNowQuery(service, NOW_MS), rows) == {
        "service": service,
        "users_now": expected,
        "window_seconds": WINDOW_S,
        "as_of": iso_utc(NOW_MS),
    }


# --- minute counts: the query object --------------------------------------------------------------


def test_minute_counts_query_defaults_to_the_last_hour_ending_now() -> None:
    for start_at, end_at in [(None, None), ("", "")]:
        q = minute_counts_query("checkout", start_at, end_at, NOW_MS)
        assert q == MinuteCountsQuery("checkout", NOW - DEFAULT_RANGE, NOW)
        assert q.end - q.start == timedelta(hours=1)


def test_only_end_at_given_starts_an_hour_before_it() -> None:
    end = datetime(2024, 3, 9, 8, tzinfo=UTC)
    q = minute_counts_query("checkout", None, end.isoformat(), NOW_MS)
    assert (q.start, q.end) == (end - DEFAULT_RANGE, end)


def test_only_start_at_given_ends_now() -> None:
    start = datetime(2024, 3, 9, 8, tzinfo=UTC)
    q = minute_counts_query("checkout", start.isoformat(), None, NOW_MS)
    assert (q.start, q.end) == (start, NOW)


def test_given_instants_are_converted_to_utc() -> None:
    q = minute_counts_query("checkout", "2024-03-10T15:00:00+05:00", "2024-03-10T12:00:00Z", NOW_MS)
    assert (q.start, q.end) == (datetime(2024, 3, 10, 10, tzinfo=UTC), datetime(2024, 3, 10, 12, tzinfo=UTC))
    assert q.start.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("start_at", "end_at"),
    [
        ("2024-03-10T10:00:00Z", "2024-03-10T10:00:00Z"),
        ("2024-03-10T10:00:01Z", "2024-03-10T10:00:00Z"),
        ("2024-03-10T15:00:00+05:00", "2024-03-10T10:00:00Z"),  # the same instant in two zones
    ],
)
def test_start_must_be_before_end(start_at: str, end_at: str) -> None:
    with pytest.raises(BadInput, match="start_at must be before end_at") as caught:
        minute_counts_query("checkout", start_at, end_at, NOW_MS)
    assert caught.value.status == 400


def test_the_range_may_be_seven_days_but_not_more() -> None:
    end = datetime(2024, 3, 10, tzinfo=UTC)
    q = minute_counts_query("checkout", (end - MAX_RANGE).isoformat(), end.isoformat(), NOW_MS)
    assert q.end - q.start == timedelta(days=7)
    too_far = end - MAX_RANGE - timedelta(microseconds=1)
    with pytest.raises(BadInput, match="at most 7 days") as caught:
        minute_counts_query("checkout", too_far.isoformat(), end.isoformat(), NOW_MS)
    assert caught.value.status == 400


@pytest.mark.parametrize("name", ["start_at", "end_at"])
@pytest.mark.parametrize(
    "value",
    ["yesterday", "2024-13-01T00:00:00Z", "1710072000", "2024-03-10T10:00:00", "2024-03-10"],
    ids=["word", "month 13", "epoch digits", "naive", "date only (naive)"],
)
def test_invalid_or_naive_instants_are_bad_input(name: str, value: str) -> None:
    args = {"start_at": None, "end_at": None, name: value}
    with pytest.raises(BadInput) as caught:
        minute_counts_query("checkout", args["start_at"], args["end_at"], NOW_MS)
    assert caught.value.message.startswith(f"{name} is not a valid datetime")
    assert caught.value.status == 400


def test_minute_counts_sql_floors_the_start_to_the_minute() -> None:
    q = MinuteCountsQuery("checkout", NOW - timedelta(minutes=30), NOW)
    sql, params = minute_counts_sql(q, "perfplat")
    assert params == {"service": "checkout", "start": datetime(2024, 3, 10, 11, 30, tzinfo=UTC), "end": NOW}
    assert "FROM perfplat.journey_minute" in sql
    render(sql, params)


# --- minute counts: shaping -----------------------------------------------------------------------


def minute(h: int, m: int) -> datetime:
    return datetime(2024, 3, 10, h, m, tzinfo=UTC)


def test_every_minute_of_the_range_has_a_total_even_without_rows() -> None:
    q = MinuteCountsQuery("checkout", minute(10, 0), minute(10, 5))
    body = shape_minute_counts(q, [])
    assert body == {
        "service": "checkout",
        "start_at": minute(10, 0).isoformat(),
        "end_at": minute(10, 5).isoformat(),
        "totals": [{"_start_at": minute(10, m).isoformat(), "count": 0} for m in range(5)],
        "data": [],
    }


def test_an_unaligned_range_counts_the_minutes_it_touches() -> None:
    q = MinuteCountsQuery(
        "checkout", minute(10, 0) + timedelta(seconds=30), minute(10, 2) + timedelta(seconds=30)
    )
    totals = shape_minute_counts(q, [])["totals"]
    assert [t["_start_at"] for t in totals] == [minute(10, m).isoformat() for m in range(3)]


def test_breakdown_rows_are_summed_into_totals_and_kept_as_data() -> None:
    q = MinuteCountsQuery("checkout", minute(10, 0), minute(10, 3))
    rows = [
        (minute(10, 1), "start", "", "page", 3),
        (minute(10, 1), "submit", "form:address", "click", 4),
        (minute(10, 2), "start", "", "page", "5"),
    ]
    body = shape_minute_counts(q, rows)
    assert body["totals"] == [
        {"_start_at": minute(10, 0).isoformat(), "count": 0},
        {"_start_at": minute(10, 1).isoformat(), "count": 3 + 4},
        {"_start_at": minute(10, 2).isoformat(), "count": 5},
    ]
    assert body["data"] == [
        {"_start_at": minute(10, 1).isoformat(), "action": "start", "label": "", "kind": "page", "count": 3},
        {
            "_start_at": minute(10, 1).isoformat(),
            "action": "submit",
            "label": "form:address",
            "kind": "click",
            "count": 4,
        },
        {"_start_at": minute(10, 2).isoformat(), "action": "start", "label": "", "kind": "page", "count": 5},
    ]


def test_naive_minutes_from_the_store_are_utc() -> None:
    q = MinuteCountsQuery("checkout", minute(10, 0), minute(10, 2))
    naive = datetime(2024, 3, 10, 10, 1)  # noqa: DTZ001 - what ClickHouse returns for DateTime('UTC')
    other_zone = minute(10, 1).astimezone(PLUS_5)
    body = shape_minute_counts(q, [(naive, "a", "", "page", 2), (other_zone, "b", "", "page", 1)])
    assert body["totals"] == [
        {"_start_at": minute(10, 0).isoformat(), "count": 0},
        {"_start_at": minute(10, 1).isoformat(), "count": 3},
    ]
    assert [d["_start_at"] for d in body["data"]] == [minute(10, 1).isoformat()] * 2


@given(
    counts=st.dictionaries(
        st.integers(min_value=0, max_value=59),
        st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=3),
        max_size=20,
    )
)
def test_totals_are_the_sum_of_the_rows_of_each_minute(counts: dict[int, list[int]]) -> None:
    q = MinuteCountsQuery("checkout", minute(10, 0), minute(11, 0))
    rows = [
        (minute(10, m), f"a{i}", "", "page", n) for m, ns in sorted(counts.items()) for i, n in enumerate(ns)
    ]
    totals = shape_minute_counts(q, rows)["totals"]
    assert totals == [
        {"_start_at": minute(10, m).isoformat(), "count": sum(counts.get(m, []))} for m in range(60)
    ]
