"""KPI reads (``pipeline.kpi_sql``): window cover, SQL snapshots (values only ever travel as
parameters), shapers against ``pipeline.kpi``'s own aggregates of the same facts, series
buckets and request parameters. The SQL itself runs on both backends in
``tests/integration/test_kpi_read.py``."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import BadInput
from pipeline.kpi import (
    ABSENT,
    CHANNELS,
    KPI_NAMES,
    OUTCOMES,
    Counts,
    JourneyAgg,
    PeriodCost,
    ProbeAgg,
    ProbeFact,
    RatingAgg,
    TxAgg,
    TxFact,
    WindowAggs,
    bucket_edge_ms,
    cross_service,
    kpi_summary,
    probe_agg_of,
    rating_agg_of,
    service_figures,
    tx_agg_of,
)
from pipeline.kpi_sql import (
    GRAIN_S,
    MAX_BUCKETS,
    SERVICE_KPIS,
    SUMMARY_PERIODS,
    SeriesQuery,
    bucket_sql,
    cost_sql,
    cover,
    group_json,
    kpi_values,
    parse_period,
    period_costs,
    probe_aggs,
    probe_series_sql,
    probe_window_sql,
    rating_aggs,
    rating_series_sql,
    rating_window_sql,
    read_window,
    series_aggs,
    series_grain,
    series_json,
    series_queries,
    series_query,
    summary_json,
    tx_aggs,
    tx_series_sql,
    tx_window_sql,
    volumes,
    window_aggs,
    window_queries,
)
from pipeline.sql import quote_string, render
from pipeline.windows import PERIODS, Period, period_next, period_start


def s(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Epoch seconds of a UTC wall-clock time."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return s(year, month, day, hour, minute, second) * 1000


def dt(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=UTC)


# --- cover ---------------------------------------------------------------------------------------


def test_cover_of_an_empty_or_reversed_window_is_empty() -> None:
    assert cover(600, 600) == []
    assert cover(660, 600) == []
    assert cover(0, 0) == []


def test_cover_rounds_the_start_down_and_the_end_up_to_whole_minutes() -> None:
    assert cover(10, 20) == [("minute", 0, 60)]
    assert cover(0, 61) == [("minute", 0, 120)]
    assert cover(59, 60) == [("minute", 0, 60)]
    assert cover(60, 61) == [("minute", 60, 120)]


def test_cover_of_whole_days_is_one_day_piece() -> None:
    assert cover(0, 3 * 86_400) == [("day", 0, 3 * 86_400)]
    assert cover(s(2024, 1, 1), s(2025, 1, 1)) == [("day", s(2024, 1, 1), s(2025, 1, 1))]


def test_cover_of_whole_hours_inside_a_day() -> None:
    assert cover(s(2024, 4, 3, 9), s(2024, 4, 3, 11)) == [("hour", s(2024, 4, 3, 9), s(2024, 4, 3, 11))]


def test_cover_splits_into_minutes_hours_days_hours_minutes() -> None:
    start, end = s(2024, 3, 31, 22, 58, 30), s(2024, 4, 2, 1, 2, 10)
    assert cover(start, end) == [
        ("minute", s(2024, 3, 31, 22, 58), s(2024, 3, 31, 23)),
        ("hour", s(2024, 3, 31, 23), s(2024, 4, 1)),
        ("day", s(2024, 4, 1), s(2024, 4, 2)),
        ("hour", s(2024, 4, 2), s(2024, 4, 2, 1)),
        ("minute", s(2024, 4, 2, 1), s(2024, 4, 2, 1, 3)),
    ]


def test_cover_of_a_week_so_far() -> None:
    """This week so far on Wednesday 10:15:30: two days, ten hours, sixteen minutes (the minute
    holding now read whole)."""
    assert cover(s(2024, 4, 1), s(2024, 4, 3, 10, 15, 30)) == [
        ("day", s(2024, 4, 1), s(2024, 4, 3)),
        ("hour", s(2024, 4, 3), s(2024, 4, 3, 10)),
        ("minute", s(2024, 4, 3, 10), s(2024, 4, 3, 10, 16)),
    ]


def test_cover_across_midnight_without_a_whole_day_uses_hours_each_side() -> None:
    assert cover(s(2024, 4, 1, 22), s(2024, 4, 2, 2, 0, 1)) == [
        ("hour", s(2024, 4, 1, 22), s(2024, 4, 2, 2)),
        ("minute", s(2024, 4, 2, 2), s(2024, 4, 2, 2, 1)),
    ]


def test_cover_across_an_hour_without_a_whole_hour_uses_minutes() -> None:
    assert cover(s(2024, 4, 1, 9, 59), s(2024, 4, 1, 10, 1)) == [
        ("minute", s(2024, 4, 1, 9, 59), s(2024, 4, 1, 10, 1))
    ]


_SECONDS = st.integers(min_value=0, max_value=2**32 - 1)


@settings(max_examples=500)
@given(_SECONDS, _SECONDS)
def test_cover_pieces_are_disjoint_aligned_coarsest_and_exactly_the_rounded_window(a: int, b: int) -> None:
    pieces = cover(a, b)
    lo, hi = a // 60 * 60, -(-b // 60) * 60
    if lo >= hi:
        assert pieces == []
        return
    # contiguous, in order, and their union is exactly [lo, hi)
    assert pieces[0][1] == lo
    assert pieces[-1][2] == hi
    for (_, _, end), (_, start, _) in itertools.pairwise(pieces):
        assert end == start
    for grain, x, y in pieces:
        size = GRAIN_S[grain]
        assert x < y
        assert x % size == 0 and y % size == 0
        coarser = {"minute": 3600, "hour": 86_400, "day": None}[grain]
        if coarser is not None:  # no whole coarser unit inside: the coarsest grain that fits is used
            assert -(-x // coarser) * coarser + coarser > y
    grains = Counter(g for g, _, _ in pieces)
    assert grains["day"] <= 1 and grains["hour"] <= 2 and grains["minute"] <= 2
    assert sum(y - x for _, x, y in pieces) == hi - lo


@given(_SECONDS, _SECONDS)
def test_read_window_is_the_cover_of_the_same_window(a: int, b: int) -> None:
    start, end = read_window(a * 1000, b * 1000)
    pieces = cover(a, b)
    assert start % 60 == 0 and end % 60 == 0 and start <= end
    assert (pieces[0][1], pieces[-1][2]) == (start, end) if pieces else start == end


def test_read_window_rounds_milliseconds_out_to_minutes() -> None:
    assert read_window(ms(2024, 4, 3), ms(2024, 4, 3, 10, 15, 30) + 250) == (
        s(2024, 4, 3),
        s(2024, 4, 3, 10, 16),
    )
    assert read_window(ms(2024, 4, 3), ms(2024, 4, 3, 10, 15)) == (s(2024, 4, 3), s(2024, 4, 3, 10, 15))
    assert read_window(ms(2024, 4, 3), ms(2024, 4, 3, 10, 15) + 1) == (s(2024, 4, 3), s(2024, 4, 3, 10, 16))
    assert read_window(ms(2024, 4, 3), ms(2024, 4, 3)) == (s(2024, 4, 3), s(2024, 4, 3))
    assert read_window(ms(2024, 4, 3), ms(2024, 4, 2)) == (s(2024, 4, 3), s(2024, 4, 3))


# --- SQL snapshots -------------------------------------------------------------------------------------

DB = "perfplat"


def test_tx_window_sql_snapshot() -> None:
    sql, params = tx_window_sql(DB, "apply-passport", s(2024, 4, 1), s(2024, 4, 3, 10, 15, 30))
    cols = "service, t, channel, outcome, ttc_edge_ms, events, cost_sum_e4, costed, ttc_n, ttc_sum_ms"
    assert sql == (
        "SELECT service, channel, outcome, ttc_edge_ms, sum(events), sum(cost_sum_e4), sum(costed), "
        "sum(ttc_n), sum(ttc_sum_ms) FROM ("
        f"SELECT {cols} FROM perfplat.tx_day WHERE service IN %(services)s AND t >= %(a0)s AND t < %(b0)s "
        f"UNION ALL SELECT {cols} FROM perfplat.tx_hour "
        "WHERE service IN %(services)s AND t >= %(a1)s AND t < %(b1)s "
        f"UNION ALL SELECT {cols} FROM perfplat.tx_minute "
        "WHERE service IN %(services)s AND t >= %(a2)s AND t < %(b2)s"
        ") AS u GROUP BY service, channel, outcome, ttc_edge_ms"
    )
    assert params == {
        "services": ["apply-passport"],
        "a0": dt(s(2024, 4, 1)),
        "b0": dt(s(2024, 4, 3)),
        "a1": dt(s(2024, 4, 3)),
        "b1": dt(s(2024, 4, 3, 10)),
        "a2": dt(s(2024, 4, 3, 10)),
        "b2": dt(s(2024, 4, 3, 10, 16)),
    }


def test_an_empty_window_reads_an_empty_minute_range() -> None:
    sql, params = tx_window_sql(DB, ["a", "b"], 600, 600)
    assert "FROM perfplat.tx_minute WHERE service IN %(services)s AND t >= %(a0)s AND t < %(b0)s" in sql
    assert "UNION ALL" not in sql
    assert params == {"services": ["a", "b"], "a0": dt(0), "b0": dt(0)}


def test_rating_window_sql_snapshot() -> None:
    sql, params = rating_window_sql(DB, ["a", "b"], s(2024, 4, 3, 9, 30), s(2024, 4, 3, 10))
    assert sql == (
        "SELECT service, rating, sum(responses) FROM ("
        "SELECT service, t, rating, responses FROM perfplat.rating_minute "
        "WHERE service IN %(services)s AND t >= %(a0)s AND t < %(b0)s"
        ") AS u GROUP BY service, rating"
    )
    assert params == {"services": ["a", "b"], "a0": dt(s(2024, 4, 3, 9, 30)), "b0": dt(s(2024, 4, 3, 10))}


def test_probe_window_sql_snapshot() -> None:
    sql, params = probe_window_sql(DB, "a", s(2024, 4, 1), s(2024, 4, 3, 10, 15, 30))
    assert sql == (
        "SELECT service, edge_ms, sum(probes), sum(ups), sum(rt_n), sum(rt_sum_ms) FROM ("
        "SELECT service, t, edge_ms, probes, ups, rt_n, rt_sum_ms FROM perfplat.probe_day "
        "WHERE service IN %(services)s AND t >= %(a0)s AND t < %(b0)s UNION ALL "
        "SELECT service, t, edge_ms, probes, ups, rt_n, rt_sum_ms FROM perfplat.probe_hour "
        "WHERE service IN %(services)s AND t >= %(a1)s AND t < %(b1)s UNION ALL "
        "SELECT service, t, edge_ms, probes, ups, rt_n, rt_sum_ms FROM perfplat.probe_minute "
        "WHERE service IN %(services)s AND t >= %(a2)s AND t < %(b2)s"
        ") AS u GROUP BY service, edge_ms"
    )
    assert params == {
        "services": ["a"],
        "a0": dt(s(2024, 4, 1)),
        "b0": dt(s(2024, 4, 3)),
        "a1": dt(s(2024, 4, 3)),
        "b1": dt(s(2024, 4, 3, 10)),
        "a2": dt(s(2024, 4, 3, 10)),
        "b2": dt(s(2024, 4, 3, 10, 16)),
    }


def test_cost_sql_snapshot() -> None:
    sql, params = cost_sql(DB, ["a"], s(2024, 4, 1), s(2024, 4, 3, 10, 15, 30))
    assert sql == (
        "SELECT service, period, toInt64(toUInt32(start)), argMax(amount, (first_ms, id)) FROM ("
        "SELECT service, period, start, id, min(received_ms) AS first_ms, "
        "argMin(amount_e4, (received_ms, amount_e4)) AS amount FROM perfplat.cost_posts "
        "WHERE service IN %(services)s AND channel = %(channel)s "
        "AND start >= %(a)s AND start < %(b)s GROUP BY service, period, start, id"
        ") AS p GROUP BY service, period, start"
    )
    assert params == {
        "services": ["a"],
        "channel": "all",
        "a": dt(s(2024, 4, 1) - 366 * 86_400),
        "b": dt(s(2024, 4, 3, 10, 16)),
    }


def test_cost_sql_never_asks_for_an_instant_before_1970() -> None:
    _, params = cost_sql(DB, ["a"], 0, 3600)
    assert params["a"] == dt(0)


BUCKETS = {
    "minute": "toInt64(toUInt32(toStartOfMinute(t)))",
    "hour": "toInt64(toUInt32(toStartOfHour(t)))",
    "day": "(toInt64(toUInt32(toDate(t))) * 86400)",
    "week": "(intDiv(toInt64(toUInt32(t)) + 259200, 604800) * 604800 - 259200)",
    "month": "(toInt64(toUInt32(toStartOfMonth(t))) * 86400)",
    "quarter": "(toInt64(toUInt32(toStartOfQuarter(t))) * 86400)",
    "year": "(toInt64(toUInt32(toStartOfYear(t))) * 86400)",
}


@pytest.mark.parametrize("period", PERIODS)
def test_bucket_sql_snapshot(period: Period) -> None:
    assert bucket_sql(period, "t") == BUCKETS[period]


@pytest.mark.parametrize(
    ("period", "grain"),
    [
        ("minute", "minute"),
        ("hour", "hour"),
        ("day", "day"),
        ("week", "day"),
        ("month", "day"),
        ("quarter", "day"),
        ("year", "day"),
    ],
)
def test_series_reads_the_table_of_its_grain(period: Period, grain: str) -> None:
    assert series_grain(period) == grain
    sql, _ = tx_series_sql(DB, "a", period, 0, 86_400 * 7)
    assert f"FROM perfplat.tx_{grain} WHERE" in sql
    sql, _ = rating_series_sql(DB, "a", period, 0, 86_400 * 7)
    assert f"FROM perfplat.rating_{grain} WHERE" in sql


def test_tx_series_sql_snapshot() -> None:
    sql, params = tx_series_sql(DB, "a", "week", s(2024, 3, 25), s(2024, 4, 8))
    cols = "service, t, channel, outcome, ttc_edge_ms, events, cost_sum_e4, costed, ttc_n, ttc_sum_ms"
    assert sql == (
        f"SELECT {BUCKETS['week']} AS bucket, channel, outcome, ttc_edge_ms, sum(events), "
        "sum(cost_sum_e4), sum(costed), sum(ttc_n), sum(ttc_sum_ms) FROM ("
        f"SELECT {cols} FROM perfplat.tx_day WHERE service IN %(services)s AND t >= %(a0)s AND t < %(b0)s"
        ") AS u GROUP BY bucket, channel, outcome, ttc_edge_ms"
    )
    assert params == {"services": ["a"], "a0": dt(s(2024, 3, 25)), "b0": dt(s(2024, 4, 8))}


def test_rating_and_probe_series_sql_snapshots() -> None:
    sql, params = rating_series_sql(DB, "a", "quarter", s(2024, 1, 1), s(2024, 7, 1))
    assert sql == (
        f"SELECT {BUCKETS['quarter']} AS bucket, rating, sum(responses) FROM ("
        "SELECT service, t, rating, responses FROM perfplat.rating_day "
        "WHERE service IN %(services)s AND t >= %(a0)s AND t < %(b0)s) AS u GROUP BY bucket, rating"
    )
    assert params == {"services": ["a"], "a0": dt(s(2024, 1, 1)), "b0": dt(s(2024, 7, 1))}
    sql, params = probe_series_sql(DB, "a", "month", s(2024, 1, 1), s(2024, 3, 1))
    assert sql == (
        f"SELECT {BUCKETS['month']} AS bucket, edge_ms, sum(probes), sum(ups), sum(rt_n), sum(rt_sum_ms) "
        "FROM (SELECT service, t, edge_ms, probes, ups, rt_n, rt_sum_ms FROM perfplat.probe_day "
        "WHERE service IN %(services)s AND t >= %(a0)s AND t < %(b0)s) AS u GROUP BY bucket, edge_ms"
    )
    assert params == {"services": ["a"], "a0": dt(s(2024, 1, 1)), "b0": dt(s(2024, 3, 1))}


def test_database_names_are_checked_not_quoted() -> None:
    with pytest.raises(ValueError, match="not a safe identifier"):
        tx_window_sql("x; DROP TABLE y", "a", 0, 60)
    with pytest.raises(ValueError, match="not a safe identifier"):
        cost_sql("a.b", "a", 0, 60)


HOSTILE = [
    "'; DROP TABLE tx_minute; --",
    "%(services)s",
    "%(a0)s",
    "back\\slash' OR 1=1 --",
    "new\nline\0nul",
    "ünïcødé ✓ 𝄞",
    "x" * 10_000,
]


def _builders(service: str) -> list[tuple[str, dict[str, Any]]]:
    q = SeriesQuery(service, "day", (s(2024, 4, 1), s(2024, 4, 2)), s(2024, 4, 3))
    return [
        *window_queries(DB, [service, "other"], s(2024, 3, 31, 22, 58), s(2024, 4, 2, 1, 2)),
        *series_queries(DB, q),
    ]


@pytest.mark.parametrize("service", HOSTILE)
def test_a_service_travels_only_as_a_parameter(service: str) -> None:
    reference = _builders("plain")
    for (sql, params), (ref_sql, _) in zip(_builders(service), reference, strict=True):
        assert sql == ref_sql  # the text of the statement does not depend on the service at all
        assert service in params["services"]
        rendered = render(sql, params)
        assert quote_string(service) in rendered


@settings(max_examples=200)
@given(st.text(max_size=300))
def test_the_sql_text_never_depends_on_the_service(service: str) -> None:
    assert [sql for sql, _ in _builders(service)] == [sql for sql, _ in _builders("plain")]


# --- shapers ---------------------------------------------------------------------------------------------

_TTCS = st.one_of(
    st.just(ABSENT), st.sampled_from([0, 1, 16, 17, 18, 2**40, 2**40 + 1]), st.integers(0, 10**9)
)
_TX_FACTS = st.lists(
    st.builds(
        TxFact,
        st.sampled_from(CHANNELS),
        st.sampled_from(OUTCOMES),
        st.one_of(st.just(ABSENT), st.integers(0, 10**9)),
        _TTCS,
    ),
    max_size=60,
)


def _tx_rows(key: Any, facts: list[TxFact], rnd: random.Random) -> list[tuple[Any, ...]]:
    """What the minute/hour/day sums hold for these facts (``schemas/ddl/0003_kpi.sql``), split at
    random into several rows per group as the covering tables give them back."""
    groups: dict[tuple[str, str, int], list[int]] = {}
    for f in facts:
        ttc = (
            f.ttc_ms if f.outcome == "completed" and f.ttc_ms >= 0 else ABSENT
        )  # kpi_rows.time_to_complete_ms
        edge = bucket_edge_ms(ttc) if ttc >= 0 else ABSENT
        g = groups.setdefault((f.channel, f.outcome, edge), [0, 0, 0, 0, 0])
        g[0] += 1
        if f.cost_e4 >= 0:
            g[1] += f.cost_e4
            g[2] += 1
        if ttc >= 0:
            g[3] += 1
            g[4] += ttc
    rows: list[tuple[Any, ...]] = []
    for (channel, outcome, edge), sums in groups.items():
        cut = rnd.randint(0, sums[0])  # two pieces: the first holds `cut` events' worth
        first = [sums[0] - cut, 0, 0, 0, 0] if cut else sums
        rows.append((key, channel, outcome, edge, *first))
        if cut:
            rows.append((key, channel, outcome, edge, cut, *sums[1:]))
    rnd.shuffle(rows)
    return rows


@settings(max_examples=300)
@given(_TX_FACTS, _TX_FACTS, st.integers(0, 2**32))
def test_tx_aggs_equal_tx_agg_of_the_same_facts(a: list[TxFact], b: list[TxFact], seed: int) -> None:
    rnd = random.Random(seed)
    rows = _tx_rows("svc-a", a, rnd) + _tx_rows("svc-b", b, rnd)
    got = tx_aggs(rows)
    assert got.get("svc-a", TxAgg()) == tx_agg_of(a)
    assert got.get("svc-b", TxAgg()) == tx_agg_of(b)
    assert set(got) <= {"svc-a", "svc-b"}


def test_tx_aggs_of_literal_rows() -> None:
    rows = [
        ("s", "digital", "started", -1, 3, 0, 0, 0, 0),
        ("s", "digital", "completed", 20, 2, 500, 1, 2, 37),
        ("s", "digital", "completed", 20, 1, 0, 0, 1, 19),
        ("s", "phone", "completed", -1, 4, 1000, 4, 0, 0),
    ]
    agg = tx_aggs(rows)["s"]
    assert agg.started == 3 and agg.completed == 7
    assert agg.count("digital", "completed") == 3
    assert (agg.cost_e4, agg.costed, agg.ttc_count, agg.ttc_sum_ms) == (1500, 5, 3, 56)
    assert dict(agg.ttc_hist.counts) == {20: 3}


def test_tx_aggs_count_a_time_only_on_a_completion_and_skip_unknown_channels() -> None:
    rows = [
        ("s", "digital", "started", 20, 1, 0, 0, 1, 19),  # no processor writes this; tx_agg_of ignores it
        ("s", "carrier-pigeon", "completed", -1, 5, 0, 0, 0, 0),
        ("s", "digital", "teleported", -1, 5, 0, 0, 0, 0),
    ]
    assert tx_aggs(rows)["s"] == tx_agg_of([TxFact("digital", "started", ABSENT, 19)])


@given(st.lists(st.integers(1, 5), max_size=50), st.lists(st.integers(1, 5), max_size=50))
def test_rating_aggs_equal_rating_agg_of(a: list[int], b: list[int]) -> None:
    rows = [("a", r, n) for r, n in Counter(a).items()] + [("b", r, n) for r, n in Counter(b).items()]
    rows += [("a", r, 0) for r in (1, 5)] + [("a", 0, 7), ("a", 6, 7)]  # zero sums; ratings no schema allows
    got = rating_aggs(rows)
    assert got.get("a", RatingAgg()) == rating_agg_of(a)
    assert got.get("b", RatingAgg()) == rating_agg_of(b)


_PROBES = st.lists(
    st.builds(
        ProbeFact,
        st.booleans(),
        st.one_of(st.just(ABSENT), st.sampled_from([0, 16, 17, 2**31 - 1]), st.integers(0, 60_000)),
    ),
    max_size=60,
)


def _probe_rows(key: str, facts: list[ProbeFact]) -> list[tuple[Any, ...]]:
    groups: dict[int, list[int]] = {}
    for up, rt in facts:
        g = groups.setdefault(bucket_edge_ms(rt) if rt >= 0 else -1, [0, 0, 0, 0])
        g[0] += 1
        g[1] += int(up)
        if rt >= 0:
            g[2] += 1
            g[3] += rt
    return [(key, edge, *sums) for edge, sums in groups.items()]


@settings(max_examples=200)
@given(_PROBES, _PROBES)
def test_probe_aggs_equal_probe_agg_of(a: list[ProbeFact], b: list[ProbeFact]) -> None:
    got = probe_aggs(_probe_rows("a", a) + _probe_rows("b", b))
    assert got.get("a", ProbeAgg()) == probe_agg_of(a)
    assert got.get("b", ProbeAgg()) == probe_agg_of(b)


def test_period_costs_span_their_period_and_drop_unknown_periods() -> None:
    rows = [
        ("a", "quarter", s(2024, 1, 1), 90_000),
        ("a", "week", s(2024, 4, 1), 7_000),
        ("a", "year", s(2023, 1, 1), 365_000),
        ("a", "fortnight", s(2024, 4, 1), 1),
        ("b", "month", s(2024, 2, 1), 29),
        ("b", "day", s(2024, 2, 29), 1),
    ]
    assert period_costs(rows) == {
        "a": [
            PeriodCost(365_000, ms(2023, 1, 1), ms(2024, 1, 1)),
            PeriodCost(90_000, ms(2024, 1, 1), ms(2024, 4, 1)),
            PeriodCost(7_000, ms(2024, 4, 1), ms(2024, 4, 8)),
        ],
        "b": [PeriodCost(29, ms(2024, 2, 1), ms(2024, 3, 1)), PeriodCost(1, ms(2024, 2, 29), ms(2024, 3, 1))],
    }


def test_window_aggs_give_every_service_its_aggregates_and_prorated_cost() -> None:
    start, end = s(2024, 2, 1), s(2024, 2, 15)
    results: list[list[tuple[Any, ...]]] = [
        [("a", "digital", "completed", -1, 4, 0, 0, 0, 0)],
        [("a", 5, 2)],
        [("b", 18, 3, 2, 3, 51)],
        [("a", "month", s(2024, 2, 1), 29_000), ("b", "year", s(2023, 1, 1), 1)],
        [
            ("b", "stage", "start", 4),
            ("b", "stage", "done", 3),
            ("b", "help", "fees", 2),
            ("b", "stage", "x", 9),
        ],
    ]
    aggs = window_aggs(["a", "b", "c"], start, end, results)
    assert aggs["b"].journey == JourneyAgg(4, 3, Counts({("help", "fees"): 2}))
    assert aggs["a"].journey == JourneyAgg()
    assert set(aggs) == {"a", "b", "c"}
    assert aggs["a"].tx.completed == 4
    assert aggs["a"].ratings == RatingAgg((0, 0, 0, 0, 2))
    assert aggs["a"].period_cost_e4 == Fraction(14_000)  # 14 of February's 29 days
    assert aggs["b"].probes == ProbeAgg(3, 2, 3, 51, aggs["b"].probes.rt_hist)
    assert dict(aggs["b"].probes.rt_hist.counts) == {18: 3}
    assert aggs["b"].period_cost_e4 is None  # a 2023 cost does not reach into 2024
    assert aggs["c"] == WindowAggs(start * 1000, end * 1000)


# --- parameters and series buckets ------------------------------------------------------------------------


def test_parse_period() -> None:
    assert parse_period(None, SUMMARY_PERIODS, "week") == "week"
    assert parse_period("", SUMMARY_PERIODS, "week") == "week"
    assert parse_period("quarter", SUMMARY_PERIODS, "week") == "quarter"
    for bad in ("minute", "Week", "' OR 1=1", "x" * 10_000):
        with pytest.raises(BadInput, match=r"^period must be one of day, week, month, quarter, year$"):
            parse_period(bad, SUMMARY_PERIODS, "week")


NOW = ms(2024, 4, 3, 10, 15, 30) + 250


def test_series_buckets_run_from_the_bucket_of_start_at_to_end_at_rounded_up() -> None:
    q = series_query("a", "week", "2024-03-20T12:00:00Z", "2024-04-03T10:15:30Z", NOW)
    assert q.starts == (s(2024, 3, 18), s(2024, 3, 25), s(2024, 4, 1))
    assert q.end_s == s(2024, 4, 8)
    assert [q.bucket_end(i) for i in range(3)] == [s(2024, 3, 25), s(2024, 4, 1), s(2024, 4, 8)]
    q = series_query("a", "quarter", "2023-11-30T00:00:00+01:00", "2024-04-01T00:00:00Z", NOW)
    assert q.starts == (s(2023, 10, 1), s(2024, 1, 1))
    assert q.end_s == s(2024, 4, 1)


def test_a_week_bucket_holds_sunday_235959_and_the_next_starts_monday() -> None:
    q = series_query("a", "week", "2024-03-31T23:59:59Z", "2024-04-01T00:00:01Z", NOW)
    assert q.starts == (s(2024, 3, 25), s(2024, 4, 1))
    # an offset is honoured: Monday 00:30 in +01:00 is still Sunday in UTC
    q = series_query("a", "week", "2024-04-01T00:30:00+01:00", "2024-04-01T00:45:00+01:00", NOW)
    assert q.starts == (s(2024, 3, 25),)


def test_series_defaults_end_at_now_and_start_at_thirty_buckets_before() -> None:
    q = series_query("a", "day", None, None, NOW)
    assert len(q.starts) == 30
    assert q.starts[-1] == s(2024, 4, 3) and q.end_s == s(2024, 4, 4)
    q = series_query("a", "month", None, "2024-03-01T00:00:00Z", NOW)
    assert q.starts[0] == s(2021, 9, 1) and q.starts[-1] == s(2024, 2, 1)
    q = series_query("a", "year", None, "1975-06-01T00:00:00Z", NOW)
    assert q.starts[0] == s(1970, 1, 1) and len(q.starts) == 6
    q = series_query("a", "week", "1970-01-01T00:00:00Z", "1970-01-02T00:00:00Z", NOW)
    assert q.starts == (-3 * 86_400,)  # the week of Monday 29 December 1969


@pytest.mark.parametrize("period", PERIODS)
def test_series_bucket_starts_are_the_period_starts(period: Period) -> None:
    if period in ("minute", "hour"):
        q = series_query("a", period, "2024-03-31T23:00:00Z", "2024-04-01T01:00:01Z", NOW)
    else:
        q = series_query("a", period, "2023-12-31T23:59:59Z", "2024-04-03T10:15:30Z", NOW)
    starts = [dt(x) for x in q.starts]
    assert len(starts) > 1
    assert all(period_start(x, period) == x for x in starts)
    assert all(period_next(x, period) == y for x, y in itertools.pairwise(starts))
    assert period_next(starts[-1], period) == dt(q.end_s)


def test_at_most_1000_buckets() -> None:
    q = series_query("a", "minute", "2024-04-01T00:00:00Z", "2024-04-01T16:40:00Z", NOW)
    assert len(q.starts) == MAX_BUCKETS
    with pytest.raises(
        BadInput, match="at most 1000 buckets: from start_at to end_at there are 1001 minutes"
    ):
        series_query("a", "minute", "2024-04-01T00:00:00Z", "2024-04-01T16:40:01Z", NOW)
    with pytest.raises(BadInput, match="there are 47482 days"):
        series_query("a", "day", "1970-01-01T00:00:00Z", "2099-12-31T00:00:01Z", NOW)


def test_a_huge_minute_range_is_refused_without_counting_its_minutes() -> None:
    with pytest.raises(BadInput, match="there are 68374080 minutes"):
        series_query("a", "minute", "1970-01-01T00:00:00Z", "2100-01-01T00:00:00Z", NOW)


@pytest.mark.parametrize(
    ("start_at", "end_at", "message"),
    [
        ("2024-04-02T00:00:00Z", "2024-04-01T00:00:00Z", "start_at must be before end_at"),
        ("2024-04-01T00:00:00Z", "2024-04-01T00:00:00Z", "start_at must be before end_at"),
        ("2024-04-01T12:00:00Z", "2024-04-01T12:00:00Z", "start_at must be before end_at"),
        ("yesterday", "2024-04-01T00:00:00Z", "start_at is not a valid datetime"),
        ("2024-04-01", "2024-04-02T00:00:00Z", "start_at is not a valid datetime"),
        ("2024-04-01T00:00:00", "2024-04-02T00:00:00Z", "start_at is not a valid datetime"),
        ("2024-02-30T00:00:00Z", "2024-04-02T00:00:00Z", "start_at is not a valid datetime"),
        ("2024-04-01T00:00:00 01:00", "2024-04-02T00:00:00Z", r"write \+ as %2B"),
        ("2024-04-01T00:00:00Z", "' OR 1=1 --", "end_at is not a valid datetime"),
        ("2024-04-01T00:00:00Z", "x" * 10_000, "end_at is not a valid datetime"),
        ("0001-01-01T00:00:00+01:00", "2024-04-02T00:00:00Z", "start_at is not a valid datetime"),
        ("1969-12-31T23:59:59Z", "2024-04-02T00:00:00Z", "start_at must be between 1970-01-01 and 2100"),
        ("2024-04-01T00:00:00Z", "2100-01-01T00:00:01Z", "end_at must be between 1970-01-01 and 2100"),
        (None, "1970-01-01T00:00:00Z", "end_at must be after 1970-01-01"),
    ],
)
def test_bad_series_bounds_are_explained(start_at: str | None, end_at: str, message: str) -> None:
    with pytest.raises(BadInput, match=message) as info:
        series_query("a", "day", start_at, end_at, NOW)
    assert info.value.status == 400


# --- JSON ------------------------------------------------------------------------------------------


def _aggs(start_s: int, end_s: int, seed: int) -> WindowAggs:
    rnd = random.Random(seed)
    tx = tx_agg_of(
        TxFact(rnd.choice(CHANNELS), rnd.choice(OUTCOMES), rnd.choice([ABSENT, 500]), rnd.randrange(0, 10**6))
        for _ in range(40)
    )
    return WindowAggs(
        start_s * 1000,
        end_s * 1000,
        tx=tx,
        ratings=rating_agg_of(rnd.randint(1, 5) for _ in range(9)),
        probes=probe_agg_of(ProbeFact(rnd.random() < 0.9, rnd.randrange(-1, 900)) for _ in range(30)),
        period_cost_e4=Fraction(rnd.randrange(10**6), 7),
    )


def test_summary_json_is_kpi_summary_with_volumes() -> None:
    cur, prev = (
        _aggs(s(2024, 4, 1), s(2024, 4, 3, 10, 16), 1),
        _aggs(s(2024, 3, 25), s(2024, 3, 27, 10, 16), 2),
    )
    body = summary_json("apply-passport", "week", cur, prev)
    full = kpi_summary("week", cur, prev)
    assert body["service"] == "apply-passport"
    assert body["period"] == "week"
    assert body["window"] == {"start": "2024-04-01T00:00:00+00:00", "end": "2024-04-03T10:16:00+00:00"}
    assert body["previous_window"] == full["previous_window"]
    assert list(body["kpis"]) == list(KPI_NAMES)
    assert body["kpis"] == full["kpis"]
    assert body["volumes"]["window"] == volumes(cur.tx)
    assert sum(n for c in body["volumes"]["window"].values() for n in c.values()) == 40
    assert body["volumes"]["previous_window"]["digital"]["completed"] == prev.tx.count("digital", "completed")


def test_volumes_list_every_channel_and_outcome() -> None:
    v = volumes(TxAgg())
    assert list(v) == list(CHANNELS)
    assert all(list(row) == list(OUTCOMES) and set(row.values()) == {0} for row in v.values())


def test_series_json_fills_gaps_with_empty_aggregates() -> None:
    q = series_query("a", "day", "2024-04-01T00:00:00Z", "2024-04-04T00:00:00Z", NOW)
    results: list[list[tuple[Any, ...]]] = [
        [(s(2024, 4, 2), "digital", "completed", -1, 3, 0, 0, 0, 0)],
        [],
        [],
        [("a", "week", s(2024, 4, 1), 70_000)],
        [
            (s(2024, 4, 3), "stage", "start", 4),
            (s(2024, 4, 3), "stage", "done", 3),
            (s(2024, 4, 3), "help", "fees", 2),
            (s(2024, 4, 3), "stage", "start", 1),
        ],
    ]
    buckets = series_aggs(q, results)
    assert [(b.start_ms, b.end_ms) for b in buckets] == [
        (ms(2024, 4, d), ms(2024, 4, d + 1)) for d in (1, 2, 3)
    ]
    body = series_json(q, buckets)
    assert [e["_start_at"] for e in body["data"]] == [f"2024-04-0{d}T00:00:00+00:00" for d in (1, 2, 3)]
    assert body["start_at"] == "2024-04-01T00:00:00+00:00" and body["end_at"] == "2024-04-04T00:00:00+00:00"
    empty, full, last = (e["kpis"] for e in body["data"])
    assert empty["transactions_completed"] == 0 and empty["digital_takeup"] is None
    assert empty["availability"] is None and empty["user_satisfaction_score"] is None
    assert empty["total_cost"] == 1.0  # a tenth of the week's £7 whatever the volume
    assert empty["cost_per_transaction"] is None
    assert full["transactions_completed"] == 3 and full["digital_takeup"] == 1.0
    assert full["cost_per_transaction"] == pytest.approx(1 / 3)
    assert empty["journey_starts"] == 0 and empty["journey_completion_rate"] is None
    assert (last["journey_starts"], last["journey_completion_rate"]) == (5, pytest.approx(3 / 5))
    assert buckets[2].journey.clicks == Counts({("help", "fees"): 2})
    assert list(empty) == list(SERVICE_KPIS) and list(body["units"]) == list(SERVICE_KPIS)
    assert body["units"]["cost_per_transaction"] == "GBP"


def test_kpi_values_are_the_values_of_kpi_summary() -> None:
    w = _aggs(0, 3600, 3)
    full = kpi_summary("hour", w, w)["kpis"]
    assert kpi_values("hour", w) == {k: full[k]["value"] for k in SERVICE_KPIS}


def test_group_json_is_cross_service_of_the_service_figures() -> None:
    aggs = {name: _aggs(s(2024, 4, 1), s(2024, 4, 3, 10, 16), i) for i, name in enumerate(["b", "a", "c"])}
    aggs["c"] = WindowAggs(aggs["c"].start_ms, aggs["c"].end_ms)
    body = group_json("dept", "week", (s(2024, 4, 1), s(2024, 4, 3, 10, 16)), aggs)
    cross = cross_service(service_figures(a.tx, a.ratings, a.period_cost_e4) for a in aggs.values())
    assert body["group"] == "dept" and body["period"] == "week"
    assert body["window"] == {"start": "2024-04-01T00:00:00+00:00", "end": "2024-04-03T10:16:00+00:00"}
    assert body["figures"] == {
        "number_of_transactions": cross.number_of_transactions,
        "total_cost_gbp": cross.total_cost_gbp,
        "cost_per_transaction_gbp": cross.cost_per_transaction_gbp,
        "digital_takeup": cross.digital_takeup,
        "completion_rate": cross.completion_rate,
        "user_satisfaction_score": cross.user_satisfaction_score,
    }
    assert [e["service"] for e in body["services"]] == ["a", "b", "c"]
    a = service_figures(aggs["a"].tx, aggs["a"].ratings, aggs["a"].period_cost_e4)
    assert body["services"][0]["figures"]["number_of_transactions"] == a.number_of_transactions
    assert a.total_cost_e4 is not None
    assert body["services"][0]["figures"]["total_cost_gbp"] == float(Fraction(a.total_cost_e4) / 10_000)
    assert body["services"][2]["figures"] == {
        "number_of_transactions": 0,
        "total_cost_gbp": None,
        "cost_per_transaction_gbp": None,
        "digital_takeup": None,
        "completion_rate": None,
        "user_satisfaction_score": None,
    }
