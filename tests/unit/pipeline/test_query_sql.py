"""Snapshots of the SQL ``pipeline.query_sql`` compiles backdrop queries to (one dialect, run on
ClickHouse 18.16 and chdb 26.9 by ``tests/integration/test_backdrop_query.py``), and the promise
that user input only ever travels as a bound parameter."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest

from pipeline.query import Query, Window, parse_query
from pipeline.query_shape import newest_per_id
from pipeline.query_sql import (
    Compiled,
    Snapshot,
    build,
    collect_parts,
    numeric_check,
    rollup_slots,
    snapshot_sql,
)
from pipeline.record_rows import SlotMap
from pipeline.sql import render

NOW = datetime(2013, 3, 13, tzinfo=UTC)
SLOTS = SlotMap({"channel": 0, "amount": 1})
EPOCH = "epoch = (SELECT max(epoch) FROM perf.data_set_epochs WHERE data_set = %(ds)s)"
BASE = f"data_set = %(ds)s AND {EPOCH}"


def compile_(text: str, window: Window | None = None) -> Compiled:
    query = parse_query(parse_qsl(text, keep_blank_values=True), True, NOW)
    return build(query, "ds", SLOTS, "perf", window)


def raw_sql(w: str, order: list[tuple[str, str]], limit: str = "") -> str:
    cols = "id, toUInt32(ts) AS t, has_ts, toUInt32(updated) AS u, doc, version, " + ", ".join(
        f"{expr} AS o{i}" for i, (expr, _) in enumerate(order)
    )
    cancelled = f"SELECT id FROM perf.records WHERE {w} AND sign = -1"
    return (
        "SELECT id, t, has_ts, u, doc, version\n"
        "FROM (\n"
        f"SELECT {cols}\n"
        "FROM perf.records\n"
        f"WHERE {w} AND sign = 1 AND id NOT IN ({cancelled})\n"
        "UNION ALL\n"
        f"SELECT {cols}\n"
        "FROM perf.records\n"
        f"PREWHERE id IN ({cancelled})\n"
        f"WHERE {w} AND sign = 1 AND (id, version) IN (SELECT id, max(version) FROM perf.records WHERE {w} "
        f"AND id IN ({cancelled}) GROUP BY id)\n"
        ") AS r\n"
        f"ORDER BY {', '.join(f'o{i}{d}' for i, (_, d) in enumerate(order))}" + limit
    )


def test_raw_default() -> None:
    c = compile_("")
    assert c.sql == raw_sql(BASE, [("toUInt32(ts)", ""), ("id", "")])
    assert c.sql.endswith(") AS r\nORDER BY o0, o1")
    assert c.params == {"ds": "ds"}
    assert c.columns == ("id", "ts", "has_ts", "updated", "doc", "version")


def test_a_raw_query_on_a_snapshot_binds_its_epoch_and_bounds_every_read_by_its_version() -> None:
    query = parse_query([], True, NOW)
    c = build(query, "ds", SLOTS, "perf", snapshot=Snapshot(epoch=7, version=1234))
    w = "data_set = %(ds)s AND epoch = %(p1)s AND version <= %(p2)s"
    assert c.sql == raw_sql(w, [("toUInt32(ts)", ""), ("id", "")])
    # both branches, the newest versions and the three reads of the cancelled ids
    assert c.sql.count("version <= %(p2)s") == 6
    assert "data_set_epochs" not in c.sql
    assert (c.params["p1"], c.params["p2"]) == (7, 1234)


def test_a_grouped_query_ignores_a_snapshot() -> None:
    query = parse_query([("group_by", "channel")], True, NOW)
    assert build(query, "ds", SLOTS, "perf", snapshot=Snapshot(7, 1234)) == build(query, "ds", SLOTS, "perf")


def test_the_snapshot_statement_reads_the_latest_epoch_and_highest_version_of_one_set() -> None:
    sql, params = snapshot_sql("ds", "perf")
    assert params == {"ds": "ds"}
    assert "max(epoch)" in sql and "perf.data_set_epochs WHERE data_set = %(ds)s" in sql
    assert "max(version)" in sql and "perf.records WHERE data_set = %(ds)s" in sql


def test_raw_filtered_sorted_limited() -> None:
    c = compile_(
        "filter_by=channel:web&filter_by=_id:r1&filter_by=flag:true&sort_by=amount:descending&limit=5"
    )
    w = f"{BASE} AND s0 = %(p1)s AND id = %(p2)s AND visitParamExtractRaw(doc, 'flag') = %(p3)s"
    order = [
        (
            "multiIf(s1 IN ('', 'null'), 0, isNotNull(toFloat64OrNull(s1)), 1, startsWith(s1, '\"'), 2, 3)",
            " DESC",
        ),
        ("toFloat64OrNull(s1)", " DESC"),
        ("if(s1 = 'null', '', s1)", " DESC"),
        ("toUInt32(ts)", ""),
        ("id", ""),
    ]
    assert c.sql == raw_sql(w, order, "\nLIMIT %(p4)s")
    assert c.sql.endswith("ORDER BY o0 DESC, o1 DESC, o2 DESC, o3, o4\nLIMIT %(p4)s")
    assert c.params == {"ds": "ds", "p1": '"web"', "p2": "r1", "p3": "true", "p4": 5}


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("_id:ascending", [("id", ""), ("toUInt32(ts)", "")]),
        ("_timestamp:descending", [("has_ts", " DESC"), ("toUInt32(ts)", " DESC"), ("id", "")]),
        ("_updated_at:ascending", [("toUInt32(updated)", ""), ("toUInt32(ts)", ""), ("id", "")]),
    ],
)
def test_raw_sort_on_internal_fields(sort: str, order: list[tuple[str, str]]) -> None:
    assert compile_("sort_by=" + sort).sql == raw_sql(BASE, order)


def test_group_by_one_field() -> None:
    c = compile_("group_by=channel")
    assert c.sql == (
        "SELECT s0 AS k0, sum(sign) AS c_count\n"
        "FROM perf.records\n"
        f"WHERE {BASE}\n"
        "GROUP BY k0\n"
        "HAVING c_count > 0 AND k0 NOT IN ('', 'null')"
    )
    assert c.columns == ("key:channel", "_count")


def test_group_by_two_fields_with_sum_in_an_inclusive_window() -> None:
    c = compile_(
        "group_by=channel&group_by=region&collect=amount:sum&collect=amount:count"
        "&start_at=2013-01-07T00:00:00Z&end_at=2013-02-04T00:00:00Z&inclusive=true"
    )
    region = "visitParamExtractRaw(doc, 'region')"
    assert c.sql == (
        f"SELECT any(s0) AS k0, any({region}) AS k1, sum(sign) AS c_count, "
        "sumIf(sign, s1 != '') AS c0_n, "
        "sumIf(sign, s1 != '' AND isNull(toFloat64OrNull(s1))) AS c0_bad, "
        "sumIf(sign, s1 != '' AND (s1 < '-' OR s1 >= ':' OR position(s1, '.') > 0 "
        "OR position(s1, 'e') > 0 OR position(s1, 'E') > 0)) AS c0_fl, "
        "sum(sign * toInt64OrZero(s1)) AS c0_isum, "
        "sum(sign * toFloat64OrZero(s1)) AS c0_fsum\n"
        "FROM perf.records\n"
        f"WHERE {BASE} AND has_ts = 1 AND ts >= %(p1)s AND ts <= %(p2)s\n"
        f"GROUP BY cityHash64(s0, {region})\n"
        "HAVING c_count > 0 AND k0 NOT IN ('', 'null') AND k1 NOT IN ('', 'null')"
    )
    assert c.params == {
        "ds": "ds",
        "p1": datetime(2013, 1, 7, tzinfo=UTC),
        "p2": datetime(2013, 2, 4, tzinfo=UTC),
    }
    assert c.columns == (
        "key:channel",
        "key:region",
        "_count",
        "amount.n",
        "amount.bad",
        "amount.fl",
        "amount.isum",
        "amount.fsum",
    )


def test_period_only() -> None:
    c = compile_("period=month&start_at=2013-01-01T00:00:00Z&end_at=2013-04-02T00:00:00Z")
    assert c.sql == (
        "SELECT toUInt32(toStartOfMonth(ts)) AS k0, sum(sign) AS c_count\n"
        "FROM perf.records\n"
        f"WHERE {BASE} AND has_ts = 1 AND ts >= %(p1)s AND ts < %(p2)s\n"
        "GROUP BY k0\n"
        "HAVING c_count > 0"
    )
    assert c.columns == ("bucket", "_count")


def test_week_by_group_with_a_set_collect() -> None:
    c = compile_("period=week&group_by=channel&collect=amount&duration=4")
    bucket = "intDiv(toUInt32(ts) + 259200, 604800)"
    assert c.sql == (
        "SELECT k0, k1, c_count, c0_set\n"
        "FROM (\n"
        f"SELECT any({bucket}) AS k0, any(s0) AS k1, sum(sign) AS c_count, "
        "arrayStringConcat(arrayFilter(v -> v != '' AND has(arrayFilter((h, n) -> n > 0, "
        "tupleElement(c0_m, 1), tupleElement(c0_m, 2)), cityHash64(v)), c0_u), '\\n') AS c0_set, "
        "groupUniqArray(s1) AS c0_u, sumMap([cityHash64(s1)], [toInt64(sign)]) AS c0_m\n"
        "FROM perf.records\n"
        f"WHERE {BASE} AND has_ts = 1 AND ts >= %(p1)s AND ts < %(p2)s\n"
        f"GROUP BY cityHash64(s0) + {bucket}\n"
        "HAVING c_count > 0 AND k1 NOT IN ('', 'null')\n"
        ") AS g"
    )
    assert c.params["p1"] == datetime(2013, 2, 11, tzinfo=UTC)  # four weeks back from this Monday
    assert c.columns == ("bucket", "key:channel", "_count", "amount.set")


@pytest.mark.parametrize(
    ("period", "bucket"),
    [
        ("hour", "toUInt32(toStartOfHour(ts))"),
        ("day", "toUInt32(toDate(ts))"),
        ("quarter", "toUInt32(toStartOfQuarter(ts))"),
        ("year", "toUInt32(toStartOfYear(ts))"),
    ],
)
def test_period_buckets(period: str, bucket: str) -> None:
    assert compile_(f"period={period}&duration=2").sql.startswith(
        f"SELECT {bucket} AS k0, sum(sign) AS c_count\n"
    )


def test_prefix_filters() -> None:
    c = compile_('filter_by_prefix=note:it\'s "q"\\&filter_by_prefix=_id:ab&group_by=channel')
    assert "AND startsWith(visitParamExtractRaw(doc, 'note'), %(p1)s) AND startsWith(id, %(p2)s)" in c.sql
    assert c.params["p1"] == '"it\'s \\"q\\"\\\\'  # JSON text without its closing quote
    assert c.params["p2"] == "ab"


def test_window_edges_are_clamped_to_what_datetime_holds() -> None:
    c = compile_("group_by=channel&start_at=1900-01-01T00:00:00Z&end_at=2200-01-01T00:00:00Z")
    assert "ts >= %(p1)s AND ts <= %(p2)s" in c.sql
    assert c.params["p1"] == datetime(1970, 1, 1, tzinfo=UTC)
    assert c.params["p2"] == datetime(2105, 12, 31, 23, 59, 59, tzinfo=UTC)
    before = compile_("group_by=channel&start_at=1900-01-01T00:00:00Z&end_at=1950-01-01T00:00:00Z")
    assert "ts >= %(p1)s AND 0\nGROUP BY" in before.sql


def test_an_id_filter_on_a_boolean_matches_nothing() -> None:
    assert f"WHERE {BASE} AND 0 AND sign = 1" in compile_("filter_by=_id:true").sql


def test_an_explicit_window_overrides_the_query_s_own() -> None:
    w = Window(datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 2, 1, tzinfo=UTC))
    assert compile_("period=day&duration=3", w).params["p2"] == datetime(2013, 2, 1, tzinfo=UTC)


def test_collect_parts() -> None:
    query = parse_query(parse_qsl("group_by=gg&collect=aa:mean&collect=aa:set&collect=bb:count"), True, NOW)
    assert collect_parts(query) == {"aa": ("n", "bad", "fl", "isum", "fsum", "set"), "bb": ("n",)}
    assert collect_parts(Query()) == {}


HOSTILE = ["'; DROP TABLE records; --", "back\\slash'", "ünïcødé ✓", "%(p1)s) OR (1", "\n\t\0"]


@pytest.mark.parametrize("value", HOSTILE)
def test_user_values_never_reach_the_sql_text(value: str) -> None:
    params = [
        ("filter_by", f"channel:{value}"),
        ("filter_by", f"_id:{value}"),
        ("filter_by", f"region:{value}"),
        ("group_by", "channel"),
    ]
    c = build(parse_query(params, True, NOW), value, SLOTS, "perf")
    assert value not in c.sql
    rendered = render(c.sql, c.params)  # every placeholder is bound
    assert rendered.count("%(") == 5 * value.count("%(")  # only inside the literals: ds twice, 3 filters


def rollup_of(text: str) -> tuple[int, ...] | None:
    query = parse_query(parse_qsl(text, keep_blank_values=True), True, NOW)
    return rollup_slots(query, query.window, SlotMap({"channel": 0, "amount": 1, "region": 5}))


@pytest.mark.parametrize(
    ("text", "dims"),
    [
        ("group_by=channel", (0,)),
        ("group_by=region&group_by=channel&collect=amount:sum&collect=amount:mean", (0, 5)),
        ("period=week&start_at=2013-03-04T00:00:00Z&end_at=2013-03-11T00:00:00Z", ()),
        ("period=month&duration=3&filter_by=region:north", (5,)),
        ("group_by=channel&filter_by_prefix=region:n&collect=amount:count", (0, 5)),
    ],
)
def test_whole_day_grouped_queries_on_slots_may_use_the_rollup(text: str, dims: tuple[int, ...]) -> None:
    assert rollup_of(text) == dims


@pytest.mark.parametrize(
    "text",
    [
        "",  # raw
        "period=hour&duration=3",
        "period=day&start_at=2013-03-04T06:00:00Z&end_at=2013-03-11T00:00:00Z",
        "period=day&start_at=2013-03-04T00:00:00Z&end_at=2013-03-11T00:00:00Z&inclusive=true",
        "group_by=colour",  # no slot: read from doc
        "group_by=channel&collect=colour:sum",
        "group_by=channel&collect=amount:set",
        "group_by=channel&filter_by=_id:x",
    ],
)
def test_other_queries_may_not(text: str) -> None:
    assert rollup_of(text) is None


def test_the_rollup_statement_reads_record_days_by_day() -> None:
    query = parse_query(
        parse_qsl(
            "period=week&start_at=2013-03-04T00:00:00Z&end_at=2013-03-18T00:00:00Z&group_by=channel"
            "&filter_by=channel:web&collect=amount:sum"
        ),
        True,
        NOW,
    )
    c = build(query, "ds", SLOTS, "perf", rollup=True)
    assert c.sql == (
        "SELECT any(intDiv(toUInt32(day) + 259200, 604800)) AS k0, any(d0) AS k1, sum(rows) AS c_count, "
        "sum(n1) AS c0_n, sum(bad1) AS c0_bad, sum(fl1) AS c0_fl, sum(isum1) AS c0_isum, "
        "sum(fsum1) AS c0_fsum\n"
        "FROM perf.record_days\n"
        f"WHERE {BASE} AND has_ts = 1 AND day >= %(p1)s AND day < %(p2)s AND d0 = %(p3)s\n"
        "GROUP BY cityHash64(d0) + intDiv(toUInt32(day) + 259200, 604800)\n"
        "HAVING c_count > 0 AND k1 NOT IN ('', 'null')"
    )
    assert c.params["p3"] == '"web"'
    assert (
        c.columns
        == compile_(
            "period=week&start_at=2013-03-04T00:00:00Z&end_at=2013-03-18T00:00:00Z&group_by=channel"
            "&filter_by=channel:web&collect=amount:sum"
        ).columns
    )


def test_the_numeric_check_counts_numbers_in_the_dimensions() -> None:
    sql, params = numeric_check("ds", (0, 5), "perf")
    assert sql == (
        f"SELECT countIf(d0 = '#' OR d5 = '#') FROM perf.record_days WHERE data_set = %(ds)s AND {EPOCH}"
    )
    assert params == {"ds": "ds"}


def test_raw_rows_keep_each_id_once_at_its_highest_version() -> None:
    rows = [
        ("a", 10, 1, 10, '{"n":1}', 3),
        ("b", 11, 1, 11, '{"n":2}', 9),
        ("a", 12, 1, 12, '{"n":3}', 7),
        ("c", 13, 1, 13, '{"n":4}', 5),
    ]
    assert newest_per_id(rows) == [rows[1], rows[2], rows[3]]
    assert newest_per_id(rows[1:]) == rows[1:]
