"""Backdrop read queries (``pipeline.query``, with the store-free parts of ``pipeline.query_shape``):
every §2.3 message, in the original's validator order; every parameter's valid forms; relative
windows; the raw-query rules; period bucketing at the edges; gap filling, shifting, sorting, CSV."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl

import pytest

from pipeline.errors import BadInput
from pipeline.query import (
    Collect,
    Filter,
    Prefix,
    Query,
    SortBy,
    Window,
    add_periods,
    parse_datetime,
    parse_query,
    resolve_window,
    shift_window,
)
from pipeline.query_shape import MAX_BUCKETS, bucket_start, shape, shift_amount, to_csv
from pipeline.query_sql import build
from pipeline.record_rows import SlotMap

NOW = datetime(2013, 3, 13, 15, 30, tzinfo=UTC)  # a Wednesday
S = "start_at=2013-01-07T00:00:00Z"
E = "end_at=2013-02-04T00:00:00Z"


def q(text: str, raw: bool = True, now: datetime = NOW) -> Query:
    return parse_query(parse_qsl(text, keep_blank_values=True), raw, now)


def error(text: str, raw: bool = True) -> str:
    with pytest.raises(BadInput) as caught:
        q(text, raw)
    assert caught.value.status == 400
    return caught.value.message


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# -- §2.3: every message, and which validator wins -------------------------------------------

EITHER = "Either 'duration' or both 'start_at' and 'end_at' are required for a period query"
COLON = "filter_by must be a field name and value separated by a colon (:) eg. authority:Westminster"
SORT_COLON = (
    "sort_by must be a field name and sort direction separated by a colon (:) eg. authority:ascending"
)
ABSOLUTE = (
    "Absolute and relative time cannot be requested at the same time - either ask for 'start_at' and "
    "'end_at', or ask for 'start_at'/'end_at' with 'duration'"
)
MESSAGES = [
    ("foo=bar", "An unrecognised parameter was provided"),
    ("date=2013-01-01T00:00:00Z", "An unrecognised parameter was provided"),
    ("start_at=foo&" + E, "start_at is not a valid datetime"),
    ("start_at=2013-02-30T00:00:00Z&" + E, "start_at is not a valid datetime"),
    ("start_at=2013-01-01T00:00:00&" + E, "start_at is not a valid datetime"),
    ("start_at=2013-01-01T00:00:00.5Z&" + E, "start_at is not a valid datetime"),
    ("start_at=2013-01-01T00:00:00+01:00&" + E, "start_at is not a valid datetime"),  # '+' became ' '
    ("start_at=2013-01-01T24:00:00Z&" + E, "start_at is not a valid datetime"),
    ("start_at=2013-01-01T00:00:00%2B25:00&" + E, "start_at is not a valid datetime"),
    (S + "&end_at=2013-01-01", "end_at is not a valid datetime"),
    ("period=week", EITHER),
    ("period=week&" + S, EITHER),
    (
        "period=week&duration=3&limit=2",
        "A period query can only be limited if it is grouped - please add 'group_by'",
    ),
    (
        "filter_by=aa:b&filter_by_prefix=aa:b",
        "Cannot use both filter_by and filter_by_prefix in the same query",
    ),
    (
        "filter_by=foo",
        "filter_by must be a field name and value separated by a colon (:) eg. authority:Westminster",
    ),
    (
        "filter_by_prefix=foo",
        "filter_by must be a field name and value separated by a colon (:) eg. authority:Westminster",
    ),
    ("filter_by=f-o:bar", "Cannot filter by an invalid field name"),
    ("filter_by=$where:1", "Cannot filter by an invalid field name"),
    ("filter_by=a:1", "Cannot filter by an invalid field name"),  # keys have two characters at least
    ("filter_by=foo:1&filter_by=b%C3%A4r:1", "Cannot filter by an invalid field name"),
    (
        "period=fortnight&duration=2",
        "'period' must be one of ['hour', 'day', 'week', 'month', 'quarter', 'year']",
    ),
    (
        "period=minute&duration=2",
        "'period' must be one of ['hour', 'day', 'week', 'month', 'quarter', 'year']",
    ),
    (
        "period=week&duration=2&sort_by=foo:ascending",
        "Cannot sort for period queries without group_by. Period queries are always sorted by time.",
    ),
    (
        "sort_by=foo",
        "sort_by must be a field name and sort direction separated by a colon (:) eg. authority:ascending",
    ),
    ("sort_by=foo:up", "Unrecognised sort direction. Supported directions include: ascending, descending"),
    ("sort_by=f-o:ascending", "Cannot sort by an invalid field name"),
    ("group_by=f-o", "Cannot group by an invalid field name"),
    (
        "group_by=foo&group_by=_week_start_at",
        "Cannot group by internal fields, internal fields start with an underscore",
    ),
    ("limit=-1", "limit must be a positive integer"),
    ("limit=ten", "limit must be a positive integer"),
    ("period=day&duration=-3", "duration must be a positive integer"),
    ("period=day&duration=1.5", "duration must be a positive integer"),
    ("collect=foo", "collect can be used only with either ['group_by', 'period']"),
    (
        "period=day&duration=3&" + S + "&" + E,
        "Absolute and relative time cannot be requested at the same time - either ask for 'start_at' and "
        "'end_at', or ask for 'start_at'/'end_at' with 'duration'",
    ),
    (S, "Use of 'start_at' requires 'end_at' or 'duration'"),
    (E, "Use of 'end_at' requires 'start_at' or 'duration'"),
    ("period=day&duration=0", "'duration' must not be zero"),
    (
        "duration=3",
        "If 'duration' is requested (for relative time), 'period' is required - please add a period "
        "(like 'day', 'month' etc)",
    ),
    ("group_by=foo&collect=bar:max", "Unknown collection method"),
    ("group_by=foo&collect=b-r", "Cannot collect an invalid field name"),
    ("group_by=foo&collect=bar&collect=b-r:sum", "Cannot collect an invalid field name"),
    ("group_by=foo&collect=_bar", "Cannot collect internal fields, internal fields start with an underscore"),
    ("group_by=foo&collect=foo", "Cannot collect by a field that is used for group_by"),
    ("group_by=foo&group_by=bar&collect=bar:sum", "Cannot collect by a field that is used for group_by"),
    ("group_by=foo&flatten=yes", "flatten must be either 'true' or 'false'"),
    ("inclusive=true", "inclusive can be used only with either ['start_at', 'end_at']"),
]


@pytest.mark.parametrize(("text", "message"), MESSAGES)
def test_each_validation_message(text: str, message: str) -> None:
    assert error(text) == message


PRECEDENCE = [
    ("foo=bar&limit=-1&start_at=x", "An unrecognised parameter was provided"),
    ("period=week&start_at=x", EITHER),  # the period rule runs before the datetime check
    ("start_at=x&filter_by=foo", "start_at is not a valid datetime"),
    ("filter_by=foo&period=fortnight&duration=1", COLON),
    ("sort_by=foo&group_by=_x", SORT_COLON),
    ("group_by=_x&limit=-1", "Cannot group by internal fields, internal fields start with an underscore"),
    ("limit=-1&collect=foo", "limit must be a positive integer"),
    ("collect=foo:max&duration=3", "collect can be used only with either ['group_by', 'period']"),
    ("period=day&duration=0&" + S + "&" + E, ABSOLUTE),
    ("group_by=foo&collect=bar:max&flatten=yes", "Unknown collection method"),
    ("group_by=foo&flatten=yes&inclusive=true", "flatten must be either 'true' or 'false'"),
]


@pytest.mark.parametrize(("text", "message"), PRECEDENCE)
def test_only_the_first_failing_validator_is_reported(text: str, message: str) -> None:
    assert error(text) == message


# -- raw_queries_allowed = false -------------------------------------------------------------

MONDAYS = "start_at=2013-01-07T00:00:00Z&end_at=2013-01-14T00:00:00Z"
RAW_RULES = [
    ("", "querying for raw data is not allowed"),
    (MONDAYS, "querying for raw data is not allowed"),
    ("filter_by=foo:bar&sort_by=foo:ascending", "querying for raw data is not allowed"),
    (
        "group_by=foo&start_at=2013-01-07T00:00:00Z&end_at=2013-01-13T23:59:59Z",
        "The minimum time span for a query is 7 days",
    ),
    (
        "group_by=foo&start_at=2013-01-14T00:00:00Z&end_at=2013-01-07T00:00:00Z",
        "The minimum time span for a query is 7 days",
    ),
    ("group_by=foo&start_at=2013-01-07T01:00:00Z&end_at=2013-01-14T01:00:00Z", "start_at must be midnight"),
    (
        "group_by=foo&start_at=2013-01-07T00:00:00%2B01:00&end_at=2013-01-14T00:00:00Z",
        "start_at must be midnight",
    ),
    ("group_by=foo&start_at=2013-01-07T00:00:00Z&end_at=2013-01-14T00:00:01Z", "end_at must be midnight"),
    ("period=week&start_at=2013-01-08T00:00:00Z&end_at=2013-01-21T00:00:00Z", "start_at must be a monday"),
    ("period=week&start_at=2013-01-07T00:00:00Z&end_at=2013-01-20T00:00:00Z", "end_at must be a monday"),
    # 2013-01-07T00:00Z is a Monday in UTC, but the client wrote it as Sunday 19:00 at -05:00
    (
        "period=week&start_at=2013-01-06T19:00:00-05:00&end_at=2013-01-21T00:00:00Z",
        "start_at must be a monday",
    ),
    (
        "period=month&start_at=2013-01-02T00:00:00Z&end_at=2013-03-01T00:00:00Z",
        "'start_at' must be the first of the month for period=month queries",
    ),
    (
        "period=month&start_at=2013-01-01T00:00:00Z&end_at=2013-02-28T00:00:00Z",
        "'end_at' must be the first of the month for period=month queries",
    ),
    (
        "period=month&start_at=2013-01-31T19:00:00-05:00&end_at=2013-04-01T00:00:00Z",
        "'start_at' must be the first of the month for period=month queries",
    ),
    ("foo=bar", "An unrecognised parameter was provided"),  # the common validators run first
]


@pytest.mark.parametrize(("text", "message"), RAW_RULES)
def test_rules_when_raw_queries_are_not_allowed(text: str, message: str) -> None:
    assert error(text.replace("-05:00", "-0500"), raw=False) == message
    if message != "An unrecognised parameter was provided":
        q(text.replace("-05:00", "-0500"), raw=True)  # fine where raw queries are allowed


@pytest.mark.parametrize(
    "text",
    [
        "group_by=foo",
        "period=week&duration=3",
        "group_by=foo&" + MONDAYS,
        "period=week&start_at=2013-01-07T05:00:00%2B05:00&end_at=2013-01-14T00:00:00Z",  # Monday there too
        "period=month&start_at=2013-01-01T00:00:00Z&end_at=2013-03-01T00:00:00Z",
        "period=hour&start_at=2013-01-07T03:00:00Z&end_at=2013-01-07T09:00:00Z",  # hours: no span rules
        "period=day&start_at=2013-01-08T00:00:00Z&end_at=2013-01-15T00:00:00Z",
    ],
)
def test_queries_a_non_raw_data_set_accepts(text: str) -> None:
    q(text, raw=False)


# -- valid forms -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2013-01-07T10:20:30Z", utc(2013, 1, 7, 10, 20, 30)),
        ("2013-01-07T10:20:30+01:00", utc(2013, 1, 7, 9, 20, 30)),
        ("2013-01-07T10:20:30+0100", utc(2013, 1, 7, 9, 20, 30)),
        ("2013-01-07T10:20:30-05:30", utc(2013, 1, 7, 15, 50, 30)),
        ("2013-01-07T00:20:30+01:00", utc(2013, 1, 6, 23, 20, 30)),
    ],
)
def test_datetime_forms(text: str, expected: datetime) -> None:
    assert parse_datetime(text) == expected
    query = parse_query([("start_at", text), ("end_at", "2014-01-01T00:00:00Z")], True, NOW)
    assert query.start_at == expected
    assert query.start_at is not None and query.start_at.utcoffset() == timedelta(0)


def test_percent_encoded_plus_arrives_decoded() -> None:
    assert q("start_at=2013-01-07T10:00:00%2B01:00&" + E).start_at == utc(2013, 1, 7, 9)


def test_every_parameter() -> None:
    query = q(
        "start_at=2013-01-07T00:00:00Z&end_at=2013-02-04T00:00:00Z&inclusive=true&period=week"
        "&group_by=channel&group_by=region&filter_by=flag:true&filter_by=off:false&filter_by=count:5"
        "&filter_by=_id:a:b&sort_by=amount:sum:descending&limit=3&collect=amount:sum&collect=amount"
        "&collect=region_name:count&flatten=true&format=csv"
    )
    assert query == Query(
        start_at=utc(2013, 1, 7),
        end_at=utc(2013, 2, 4),
        inclusive=True,
        period="week",
        group_by=("channel", "region"),
        filter_by=(Filter("flag", True), Filter("off", False), Filter("count", "5"), Filter("_id", "a:b")),
        sort_by=SortBy("amount:sum", False),
        limit=3,
        collect=(
            Collect("amount", "sum", False),
            Collect("amount", "set", True),
            Collect("region_name", "count", False),
        ),
        flatten=True,
        format="csv",
        window=Window(utc(2013, 1, 7), utc(2013, 2, 4), True),
    )
    assert [c.key for c in query.collect] == ["amount:sum", "amount:set", "region_name:count"]


def test_defaults_and_small_forms() -> None:
    query = q("limit=0&sort_by=foo:ascending&filter_by_prefix=name:Ab:c&format=json&flatten=false")
    assert query.limit is None and query.sort_by == SortBy("foo", True)
    assert query.filter_by_prefix == (Prefix("name", "Ab:c"),)
    assert (query.format, query.flatten, query.inclusive, query.is_raw) == ("json", False, False, True)
    assert q("start_at=2013-01-07T00:00:00Z&start_at=junk&" + E).start_at == utc(2013, 1, 7)  # first wins
    assert q(S + "&" + E + "&inclusive=false").window == Window(utc(2013, 1, 7), utc(2013, 2, 4), False)


# -- windows (§2.4) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "window"),
    [
        (
            "period=week&duration=10&start_at=2012-11-05T00:00:00Z",
            Window(utc(2012, 11, 5), utc(2013, 1, 14), False, 10),
        ),
        (
            "period=month&duration=2&start_at=2013-03-13T10:00:00Z",
            Window(utc(2013, 3, 1), utc(2013, 5, 1), False, 2),
        ),
        (
            "period=day&duration=3&end_at=2013-03-13T10:00:00Z",
            Window(utc(2013, 3, 10), utc(2013, 3, 13), False, -3),
        ),
        ("period=week&duration=2", Window(utc(2013, 2, 25), utc(2013, 3, 11), False, -2)),  # from now
        ("period=hour&duration=2", Window(utc(2013, 3, 13, 13), utc(2013, 3, 13, 15), False, -2)),
        ("period=quarter&duration=5", Window(utc(2011, 10, 1), utc(2013, 1, 1), False, -5)),
        (
            "period=year&duration=1&start_at=2012-06-01T00:00:00%2B05:00",
            Window(utc(2012, 1, 1), utc(2013, 1, 1), False, 1),
        ),
        ("group_by=a_b&" + S + "&" + E, Window(utc(2013, 1, 7), utc(2013, 2, 4))),
        ("group_by=a_b", Window()),
    ],
)
def test_windows(text: str, window: Window) -> None:
    assert q(text).window == window


def test_add_periods_and_shift() -> None:
    assert add_periods(utc(2012, 11, 1), "month", 3) == utc(2013, 2, 1)
    assert add_periods(utc(2013, 1, 1), "quarter", -1) == utc(2012, 10, 1)
    assert add_periods(utc(2013, 1, 1), "year", -2) == utc(2011, 1, 1)
    assert add_periods(utc(2013, 3, 11), "week", -1) == utc(2013, 3, 4)
    w = resolve_window(utc(2012, 11, 5), None, False, 10, "week", NOW)
    assert shift_window(w, "week", 4) == Window(utc(2012, 12, 3), utc(2013, 2, 11), False, 0)
    assert shift_window(Window(), "week", 4) == Window()


# -- period buckets at the edges -------------------------------------------------------------

WEEK_S = 604800


def sql_bucket(period: str, at: datetime) -> int:
    """What ``query_sql.BUCKETS`` computes in ClickHouse, redone in Python."""
    ts = int(at.timestamp())
    if period == "hour":
        return ts - ts % 3600
    if period == "week":
        return (ts + 259200) // WEEK_S
    day = at.astimezone(UTC).date()
    first = {"day": day, "month": day.replace(day=1), "year": day.replace(month=1, day=1)}.get(period)
    if first is None:
        first = day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return (first - utc(1970, 1, 1).date()).days


@pytest.mark.parametrize(
    ("period", "at", "start"),
    [
        ("week", utc(2013, 3, 10, 20), utc(2013, 3, 4)),  # Sunday 20:00 UTC: the previous Monday's week
        ("week", utc(2013, 3, 11), utc(2013, 3, 11)),
        (
            "week",
            datetime(2013, 3, 11, 3, tzinfo=timezone(timedelta(hours=5))),
            utc(2013, 3, 4),
        ),  # Sun 22:00 UTC
        ("day", datetime(2013, 3, 11, 3, tzinfo=timezone(timedelta(hours=5))), utc(2013, 3, 10)),
        ("hour", datetime(2013, 3, 11, 3, 59, 59, tzinfo=timezone(timedelta(hours=5))), utc(2013, 3, 10, 22)),
        ("week", utc(1970, 1, 1), utc(1969, 12, 29)),  # below toMonday's range on both engines
        ("week", utc(1970, 1, 4, 23, 59, 59), utc(1969, 12, 29)),
        ("week", utc(1970, 1, 5), utc(1970, 1, 5)),
        ("month", utc(2013, 3, 31, 23, 59, 59), utc(2013, 3, 1)),
        ("month", utc(2013, 4, 1), utc(2013, 4, 1)),
        ("quarter", utc(2013, 3, 31, 23, 59, 59), utc(2013, 1, 1)),
        ("quarter", utc(2013, 4, 1), utc(2013, 4, 1)),
        ("quarter", utc(2013, 12, 31), utc(2013, 10, 1)),
        ("year", utc(2013, 12, 31, 23, 59, 59), utc(2013, 1, 1)),
        ("year", utc(2014, 1, 1), utc(2014, 1, 1)),
    ],
)
def test_bucket_numbers_map_back_to_period_starts(period: Any, at: datetime, start: datetime) -> None:
    assert bucket_start(period, sql_bucket(period, at)) == start


# -- gap filling, shifting, sorting ----------------------------------------------------------


def run_empty(query: Query, window: Window | None = None) -> list[dict[str, Any]]:
    w = window or query.window
    compiled = build(query, "ds", SlotMap(), "db", w)
    data: list[dict[str, Any]] = shape(query, compiled.columns, [], w)["data"]
    return data


def test_month_query_rounds_the_end_up() -> None:
    data = run_empty(
        q("period=month&start_at=2013-01-01T00:00:00Z&end_at=2013-04-02T00:00:00Z&collect=amount")
    )
    assert [r["_start_at"] for r in data] == [
        "2013-01-01T00:00:00+00:00",
        "2013-02-01T00:00:00+00:00",
        "2013-03-01T00:00:00+00:00",
        "2013-04-01T00:00:00+00:00",
    ]
    assert data[-1] == {
        "_start_at": "2013-04-01T00:00:00+00:00",
        "_end_at": "2013-05-01T00:00:00+00:00",
        "_count": 0,
        "amount:set": None,
    }


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("period=month&start_at=2013-01-01T00:00:00Z&end_at=2013-04-01T00:00:00Z", 3),
        ("period=week&start_at=2013-01-09T00:00:00Z&end_at=2013-01-21T00:00:00Z", 2),
        ("period=week&start_at=2013-01-09T00:00:00Z&end_at=2013-01-21T00:00:01Z", 3),
        ("period=hour&start_at=2013-01-09T00:30:00Z&end_at=2013-01-09T03:00:00Z", 3),
        ("period=quarter&start_at=2013-02-01T00:00:00Z&end_at=2013-07-02T00:00:00Z", 3),
        ("period=year&start_at=2012-12-31T00:00:00Z&end_at=2013-01-01T00:00:00Z", 1),
        ("period=day&duration=4&end_at=2013-01-09T12:00:00Z", 4),
    ],
)
def test_gap_filled_bucket_counts(text: str, n: int) -> None:
    assert len(run_empty(q(text))) == n


def test_too_many_buckets_are_refused() -> None:
    with pytest.raises(BadInput, match=str(MAX_BUCKETS)):
        run_empty(q("period=hour&start_at=1900-01-01T00:00:00Z&end_at=2100-01-01T00:00:00Z"))


def rows(counts: list[int]) -> list[dict[str, Any]]:
    return [{"_count": n} for n in counts]


def test_shift_amounts() -> None:
    forward = q("period=week&duration=4&start_at=2012-11-05T00:00:00Z")
    backward = q("period=week&duration=4&end_at=2012-11-05T00:00:00Z")
    assert shift_amount(forward, rows([0, 0, 3, 0])) == 2
    assert shift_amount(backward, rows([0, 1, 0, 0])) == -2
    assert shift_amount(forward, rows([0, 0, 0, 0])) == 0
    nested = q("period=week&duration=4&start_at=2012-11-05T00:00:00Z&group_by=channel")
    groups = [{"values": rows([0, 0, 1, 0])}, {"values": rows([0, 1, 0, 0])}]
    assert shift_amount(nested, groups) == 1
    assert shift_amount(nested, []) == 0
    flat = q("period=week&duration=4&start_at=2012-11-05T00:00:00Z&group_by=channel&flatten=true")
    assert shift_amount(flat, rows([0, 0, 3, 0])) == 0
    assert shift_amount(q("period=week&" + S + "&" + E), rows([0, 3])) == 0


def test_csv() -> None:
    data = [{"b": 1, "a": "x,y"}, {}, {"c": ["p", 2], "a": None, "b": 2.5}]
    assert to_csv(data) == 'a,b,c\r\n"x,y",1,\r\n,2.5,"[""p"",2]"\r\n'
    assert to_csv([]) == ""
