"""KPI reads: SQL over the KPI tables (``schemas/ddl/0003_kpi.sql``, ``0005_cost_posts.sql``,
``0006_journey_sums.sql``, ``0007_probe_sums.sql``) and the shapers that turn their rows into
``pipeline.kpi`` aggregates and JSON. Pure.

One dialect for ClickHouse 18.16 and 26.x (reference: infrastructure §E): no CTE, no window
functions, no ``WITH FILL``, no FINAL. Values travel as ``%(name)s`` parameters rendered by
``pipeline.sql``; the only text put into SQL is the checked database name and constants of this
module.

What is read, and how:

- **Transactions, ratings, probes and journeys** from the minute, hour and day sums
  (SummingMergeTree, exact with ``sum() … GROUP BY`` before and after merges). A window is read
  in whole minutes: its start rounded down and its end rounded **up** to a minute
  (:func:`read_window`), so the minute holding "now" is read whole and an event shows the
  moment it is stored. :func:`cover` splits the window into whole days, whole hours and the
  minutes left over, and one ``UNION ALL`` reads each piece from the table of its grain, so a
  year costs a few hundred day rows, not half a million minutes.
- **Costs** from their posts (``cost_posts``: every arrival of every post, kept). A post is its
  id and its time is the first arrival of that id, so a client's retry or a replayed message
  never moves it; per ``(service, period, start)`` of channel ``all`` the post whose first
  arrival is latest counts (:func:`cost_sql`), prorated over the window by
  ``pipeline.kpi.attributed_cost_e4``. Only channel ``all`` counts towards cost per transaction:
  it is the cost of running the whole service, which is what the original platform divided by
  all transactions; a per-channel cost is a part of it (kept for a per-channel cost later), and
  adding it would count money twice. A service that posts only per-channel costs therefore has
  no known cost here.

A window is ``[start_s, end_s)`` in UTC epoch seconds; a series' range is aligned to its period
(weeks from Monday 00:00 UTC, quarters on 1 January, April, July and October).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any, Literal

from pipeline.clock import iso_utc
from pipeline.errors import BadInput
from pipeline.journey_sql import ACTIONS, journey_agg, journey_counts
from pipeline.kpi import (
    CHANNELS,
    KPI_NAMES,
    OUTCOMES,
    Channel,
    Counts,
    Histogram,
    JourneyAgg,
    Outcome,
    PeriodCost,
    ProbeAgg,
    RatingAgg,
    ServiceFigures,
    TxAgg,
    WindowAggs,
    attributed_cost_e4,
    cross_service,
    kpi_summary,
    pounds,
    service_figures,
)
from pipeline.query import parse_datetime
from pipeline.sql import identifier
from pipeline.windows import PERIODS, Period, period_next, period_start

Grain = Literal["minute", "hour", "day"]
Query = tuple[str, dict[str, Any]]
Rows = Sequence[tuple[Any, ...]]

GRAIN_S: dict[Grain, int] = {"minute": 60, "hour": 3600, "day": 86_400}
SUMMARY_PERIODS: tuple[Period, ...] = ("day", "week", "month", "quarter", "year")
SERIES_PERIODS: tuple[Period, ...] = PERIODS
DEFAULT_PERIOD: Period = "week"
MAX_BUCKETS = 1000
DEFAULT_BUCKETS = 30
"""A series without ``start_at`` shows this many buckets, up to the one holding ``end_at``."""
COST_CHANNEL = "all"
MAX_COST_PERIOD_S = 366 * 86_400
"""The longest cost period (a leap year): a cost overlapping a window starts at most this long
before it."""
FIRST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
LAST_INSTANT = datetime(2100, 1, 1, tzinfo=UTC)
"""Series bounds must lie in ``[FIRST_INSTANT, LAST_INSTANT]``: inside what a DateTime holds on
18.16 (to 2106), with room to round up to a whole year."""
SERVICE_KPIS: tuple[str, ...] = KPI_NAMES
"""The KPIs of a summary, a series bucket and an alert rule, in ``pipeline.kpi`` order."""
UNITS: dict[str, str] = {
    k: v["unit"] for k, v in kpi_summary("day", WindowAggs(0, 0), WindowAggs(0, 0))["kpis"].items()
}
"""Each KPI's unit: ``count``, ``ratio`` (0..1), ``GBP``, ``ms``."""

_MINUTE = 60
_WEEK_S = 7 * 86_400
_MONDAY_OFFSET_S = 3 * 86_400  # 1970-01-01 was a Thursday: Monday 1969-12-29 is -3 days
_CHANNELS = frozenset(CHANNELS)
_OUTCOMES = frozenset(OUTCOMES)


# --- windows --------------------------------------------------------------------------------------


def read_window(start_ms: int, end_ms: int) -> tuple[int, int]:
    """The window ``[start_ms, end_ms)`` as it is read, in epoch seconds: whole minutes, the start
    rounded down and the end rounded up (the minute holding "now" is read whole). Empty (start,
    start) when it ends before it starts."""
    start_s = start_ms // 60_000 * _MINUTE
    end_s = -(-end_ms // 60_000) * _MINUTE
    return start_s, max(start_s, end_s)


def cover(start_s: int, end_s: int) -> list[tuple[Grain, int, int]]:
    """``[start_s, end_s)`` — its start rounded down and its end rounded up to whole minutes — as
    disjoint half-open pieces in time order: whole UTC days read from the day table, whole hours
    from the hour table, the minutes left over from the minute table. Every piece is aligned to
    its grain, the pieces' union is exactly the rounded window, and each grain is the coarsest
    that fits (at most one day piece, two hour pieces and two minute pieces). Empty for an
    empty window."""
    a = start_s // _MINUTE * _MINUTE
    b = -(-end_s // _MINUTE) * _MINUTE
    if a >= b:
        return []
    return _split(a, b, "day")


def _split(a: int, b: int, grain: Grain) -> list[tuple[Grain, int, int]]:
    """Pieces of the minute-aligned ``[a, b)`` at ``grain`` and finer."""
    if a >= b:
        return []
    if grain == "minute":
        return [("minute", a, b)]
    size = GRAIN_S[grain]
    finer: Grain = "hour" if grain == "day" else "minute"
    lo, hi = -(-a // size) * size, b // size * size
    if lo >= hi:
        return _split(a, b, finer)
    return [*_split(a, lo, finer), (grain, lo, hi), *_split(hi, b, finer)]


def _instant(s: int) -> datetime:
    """A DateTime parameter; none is before 1970 (a week bucket may start on 29 December 1969)."""
    return datetime.fromtimestamp(max(s, 0), tz=UTC)


def _services(services: str | Sequence[str]) -> list[str]:
    return [services] if isinstance(services, str) else list(services)


def _union(database: str, family: str, columns: str, pieces: Sequence[tuple[Grain, int, int]]) -> Query:
    """``(SELECT columns FROM <family>_<grain> WHERE … UNION ALL …) AS u`` over the pieces; one
    empty minute range when there are none, so that the statement stays valid and reads
    nothing."""
    db = identifier(database)
    params: dict[str, Any] = {}
    parts = []
    for i, (grain, a, b) in enumerate(pieces or [("minute", 0, 0)]):
        params[f"a{i}"], params[f"b{i}"] = _instant(a), _instant(b)
        parts.append(
            f"SELECT {columns} FROM {db}.{family}_{grain} "
            f"WHERE service IN %(services)s AND t >= %(a{i})s AND t < %(b{i})s"
        )
    return "(" + " UNION ALL ".join(parts) + ") AS u", params


# --- SQL: transactions ----------------------------------------------------------------------------

_TX_COLUMNS = "service, t, channel, outcome, ttc_edge_ms, events, cost_sum_e4, costed, ttc_n, ttc_sum_ms"
_TX_SUMS = "sum(events), sum(cost_sum_e4), sum(costed), sum(ttc_n), sum(ttc_sum_ms)"


def tx_window_sql(database: str, services: str | Sequence[str], start_s: int, end_s: int) -> Query:
    """Transaction sums of the services over the window (read as :func:`cover` splits it), one row
    per ``(service, channel, outcome, ttc_edge_ms)``: events, cost sum (e4), events costed,
    completions timed and their time sum (ms). :func:`tx_aggs` reads them."""
    source, params = _union(database, "tx", _TX_COLUMNS, cover(start_s, end_s))
    params["services"] = _services(services)
    sql = (
        f"SELECT service, channel, outcome, ttc_edge_ms, {_TX_SUMS} FROM {source} "
        "GROUP BY service, channel, outcome, ttc_edge_ms"
    )
    return sql, params


def _fold_tx(rows: Rows) -> dict[Any, TxAgg]:
    """Rows ``(key, channel, outcome, ttc_edge_ms, events, cost_e4, costed, ttc_n, ttc_sum_ms)``
    folded per key. A time to complete counts only on a completion, as ``tx_agg_of`` counts it;
    a row of a channel or outcome outside the closed sets (which no processor writes) is left
    out rather than failing the read."""
    acc: dict[Any, tuple[dict[tuple[Channel, Outcome], int], list[int], dict[int, int]]] = {}
    for key, channel, outcome, edge, events, cost, costed, ttc_n, ttc_sum in rows:
        if channel not in _CHANNELS or outcome not in _OUTCOMES:
            continue
        counts, sums, hist = acc.setdefault(key, ({}, [0, 0, 0, 0], {}))
        counts[channel, outcome] = counts.get((channel, outcome), 0) + int(events)
        sums[0] += int(cost)
        sums[1] += int(costed)
        if outcome == "completed" and int(ttc_n):
            sums[2] += int(ttc_n)
            sums[3] += int(ttc_sum)
            if int(edge) >= 0:
                hist[int(edge)] = hist.get(int(edge), 0) + int(ttc_n)
    return {
        key: TxAgg(Counts(counts), sums[0], sums[1], sums[2], sums[3], Histogram(Counts(hist)))
        for key, (counts, sums, hist) in acc.items()
    }


def tx_aggs(rows: Rows) -> dict[str, TxAgg]:
    """The rows of :func:`tx_window_sql` as one ``TxAgg`` per service (services without rows are
    absent). The histogram is keyed by ``ttc_edge_ms``; edge -1 means "no time to complete"."""
    return {str(k): v for k, v in _fold_tx(rows).items()}


# --- SQL: ratings ---------------------------------------------------------------------------------


def rating_window_sql(database: str, services: str | Sequence[str], start_s: int, end_s: int) -> Query:
    """Satisfaction responses per ``(service, rating)`` over the window; :func:`rating_aggs`."""
    source, params = _union(database, "rating", "service, t, rating, responses", cover(start_s, end_s))
    params["services"] = _services(services)
    return f"SELECT service, rating, sum(responses) FROM {source} GROUP BY service, rating", params


def _fold_ratings(rows: Rows) -> dict[Any, RatingAgg]:
    acc: dict[Any, list[int]] = {}
    for key, rating, responses in rows:
        if 1 <= int(rating) <= 5:  # the schema refuses any other rating upstream
            acc.setdefault(key, [0, 0, 0, 0, 0])[int(rating) - 1] += int(responses)
    return {k: RatingAgg((c[0], c[1], c[2], c[3], c[4])) for k, c in acc.items()}


def rating_aggs(rows: Rows) -> dict[str, RatingAgg]:
    return {str(k): v for k, v in _fold_ratings(rows).items()}


# --- SQL: journeys --------------------------------------------------------------------------------


def journey_window_sql(database: str, services: str | Sequence[str], start_s: int, end_s: int) -> Query:
    """Journey events per ``(service, action, label)`` over the window (read as :func:`cover`
    splits it), for the actions a journey figure needs; ``pipeline.journey_sql.journey_counts``
    reads them."""
    source, params = _union(database, "journey", "service, t, action, label, events", cover(start_s, end_s))
    params["services"] = _services(services)
    params["actions"] = list(ACTIONS)
    sql = (
        f"SELECT service, action, label, sum(events) FROM {source} "
        "WHERE action IN %(actions)s GROUP BY service, action, label"
    )
    return sql, params


# --- SQL: probes ----------------------------------------------------------------------------------

_PROBE_COLUMNS = "service, t, edge_ms, probes, ups, rt_n, rt_sum_ms"
_PROBE_SUMS = "sum(probes), sum(ups), sum(rt_n), sum(rt_sum_ms)"


def probe_window_sql(database: str, services: str | Sequence[str], start_s: int, end_s: int) -> Query:
    """Probe sums of the services over the window (read as :func:`cover` splits it), one row per
    ``(service, edge_ms)``: probes, ups, responses timed and their time sum (ms);
    :func:`probe_aggs` reads them."""
    source, params = _union(database, "probe", _PROBE_COLUMNS, cover(start_s, end_s))
    params["services"] = _services(services)
    return f"SELECT service, edge_ms, {_PROBE_SUMS} FROM {source} GROUP BY service, edge_ms", params


def _fold_probes(rows: Rows) -> dict[Any, ProbeAgg]:
    acc: dict[Any, tuple[list[int], dict[int, int]]] = {}
    for key, edge, probes, up, rt_n, rt_sum in rows:
        sums, hist = acc.setdefault(key, ([0, 0, 0, 0], {}))
        sums[0] += int(probes)
        sums[1] += int(up)
        sums[2] += int(rt_n)
        sums[3] += int(rt_sum)
        if int(edge) >= 0 and int(rt_n):
            hist[int(edge)] = hist.get(int(edge), 0) + int(rt_n)
    return {k: ProbeAgg(s[0], s[1], s[2], s[3], Histogram(Counts(h))) for k, (s, h) in acc.items()}


def probe_aggs(rows: Rows) -> dict[str, ProbeAgg]:
    return {str(k): v for k, v in _fold_probes(rows).items()}


# --- SQL: costs -----------------------------------------------------------------------------------


def cost_sql(database: str, services: str | Sequence[str], start_s: int, end_s: int) -> Query:
    """The channel-``all`` costs that may overlap ``[start_s, end_s)``: per ``(service, period,
    start)`` the amount of the latest post. A post is its id; its time is the first arrival of
    that id (least ``received_ms``), so a client's retry of an older post, or a replayed Kafka
    message, never moves it, and duplicates never change the figure. Of posts that first arrived
    at the same millisecond the greater id counts; of arrivals of one id at the same millisecond
    (one request carrying it twice) the smaller amount: neither depends on storage order, and
    neither needs FINAL or a merge. :func:`period_costs` turns the rows into ``PeriodCost``;
    ``attributed_cost_e4`` keeps those that overlap."""
    a, b = _minutes(start_s, end_s)
    sql = (
        "SELECT service, period, toInt64(toUInt32(start)), argMax(amount, (first_ms, id)) FROM ("
        "SELECT service, period, start, id, min(received_ms) AS first_ms, "
        "argMin(amount_e4, (received_ms, amount_e4)) AS amount "
        f"FROM {identifier(database)}.cost_posts "
        "WHERE service IN %(services)s AND channel = %(channel)s AND start >= %(a)s AND start < %(b)s "
        "GROUP BY service, period, start, id"
        ") AS p GROUP BY service, period, start"
    )
    params = {
        "services": _services(services),
        "channel": COST_CHANNEL,
        "a": _instant(max(0, a - MAX_COST_PERIOD_S)),
        "b": _instant(b),
    }
    return sql, params


def period_costs(rows: Rows) -> dict[str, list[PeriodCost]]:
    """Rows of :func:`cost_sql` as each service's ``PeriodCost`` list (its period's span in ms),
    ordered by start. Rows of a period that is not a cost period are left out."""
    out: dict[str, list[PeriodCost]] = {}
    for service, period, start_s, amount_e4 in sorted(rows, key=lambda r: (str(r[0]), int(r[2]))):
        if period not in SUMMARY_PERIODS:
            continue
        start = _instant(int(start_s))
        end_ms = int(period_next(start, period).timestamp()) * 1000
        out.setdefault(str(service), []).append(PeriodCost(int(amount_e4), int(start_s) * 1000, end_ms))
    return out


def _minutes(start_s: int, end_s: int) -> tuple[int, int]:
    return read_window(start_s * 1000, end_s * 1000)


# --- one window of one or more services -----------------------------------------------------------


def window_queries(database: str, services: Sequence[str], start_s: int, end_s: int) -> list[Query]:
    """The reads of a window — transactions, ratings, probes, costs, journeys (last, as
    ``api.kpi_read.KpiReader.summary_and_journey`` relies on) — for :func:`window_aggs`."""
    return [
        tx_window_sql(database, services, start_s, end_s),
        rating_window_sql(database, services, start_s, end_s),
        probe_window_sql(database, services, start_s, end_s),
        cost_sql(database, services, start_s, end_s),
        journey_window_sql(database, services, start_s, end_s),
    ]


def window_aggs(
    services: Sequence[str], start_s: int, end_s: int, results: Sequence[Rows]
) -> dict[str, WindowAggs]:
    """Each service's ``WindowAggs`` for ``[start_s, end_s)`` (as :func:`read_window` gives it)
    from the rows of :func:`window_queries`, in that order. A service without data gets empty
    aggregates."""
    tx_rows, rating_rows, probe_rows, cost_rows, journey_rows = results
    tx, ratings, probes = tx_aggs(tx_rows), rating_aggs(rating_rows), probe_aggs(probe_rows)
    costs, journeys = period_costs(cost_rows), journey_counts(journey_rows)
    start_ms, end_ms = start_s * 1000, end_s * 1000
    return {
        s: WindowAggs(
            start_ms,
            end_ms,
            tx=tx.get(s, TxAgg()),
            ratings=ratings.get(s, RatingAgg()),
            probes=probes.get(s, ProbeAgg()),
            journey=journey_agg(journeys.get(s, {})),
            period_cost_e4=attributed_cost_e4(costs.get(s, ()), start_ms, end_ms),
        )
        for s in services
    }


# --- request parameters ---------------------------------------------------------------------------


def parse_period(value: str | None, allowed: tuple[Period, ...], default: Period) -> Period:
    """A ``period`` parameter: one of ``allowed``; ``default`` when not given."""
    if value is None or value == "":
        return default
    for p in allowed:
        if value == p:
            return p
    raise BadInput(f"period must be one of {', '.join(allowed)}")


def _parse_instant(name: str, value: str) -> datetime:
    try:
        instant = parse_datetime(value).astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadInput(
            f"{name} is not a valid datetime: use YYYY-MM-DDTHH:MM:SS with Z or an offset such as "
            "+01:00 (write + as %2B in a URL)"
        ) from None
    if not FIRST_INSTANT <= instant <= LAST_INSTANT:
        raise BadInput(f"{name} must be between 1970-01-01 and 2100-01-01")
    return instant


_FIXED_S: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86_400}


def _bucket_index(at: datetime, period: Period) -> int:
    """A number that grows by one from each bucket of ``period`` to the next (``at`` UTC)."""
    if period in _FIXED_S:
        return int(at.timestamp()) // _FIXED_S[period]
    if period == "week":
        return (int(at.timestamp()) + _MONDAY_OFFSET_S) // _WEEK_S
    months = at.year * 12 + at.month - 1
    return {"month": months, "quarter": months // 3}.get(period, at.year)


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    """A series: ``period`` buckets of one service from ``starts[0]`` up to ``end_s``."""

    service: str
    period: Period
    starts: tuple[int, ...]
    """Start of every bucket, epoch seconds, ascending."""
    end_s: int
    """End of the last bucket."""

    @property
    def start_s(self) -> int:
        return self.starts[0]

    def bucket_end(self, i: int) -> int:
        return self.starts[i + 1] if i + 1 < len(self.starts) else self.end_s


def series_query(
    service: str, period: Period, start_at: str | None, end_at: str | None, now_ms: int
) -> SeriesQuery:
    """The buckets of a series request, backdrop's way: from the start of the bucket holding
    ``start_at`` up to ``end_at`` rounded up to a bucket boundary. ``end_at`` defaults to now;
    ``start_at`` to :data:`DEFAULT_BUCKETS` buckets before the one holding ``end_at``. At most
    :data:`MAX_BUCKETS` buckets, counted before any is made."""
    end = _parse_instant("end_at", end_at) if end_at else _instant(now_ms // 1000)
    if end <= FIRST_INSTANT:
        raise BadInput("end_at must be after 1970-01-01T00:00:00Z")
    if start_at:
        start = _parse_instant("start_at", start_at)
        if start >= end:
            raise BadInput("start_at must be before end_at")
        first = period_start(start, period)
    else:
        first = period_start(end - timedelta(microseconds=1), period)
        for _ in range(DEFAULT_BUCKETS - 1):
            first = period_start(first - timedelta(microseconds=1), period)
        first = max(first, period_start(FIRST_INSTANT, period))
    last = period_start(end - timedelta(microseconds=1), period)
    count = _bucket_index(last, period) - _bucket_index(first, period) + 1
    if count > MAX_BUCKETS:
        raise BadInput(
            f"a series holds at most {MAX_BUCKETS} buckets: from start_at to end_at there are {count} "
            f"{period}s; ask for a shorter range or a longer period"
        )
    starts = []
    cur = first
    while cur <= last:
        starts.append(int(cur.timestamp()))
        cur = period_next(cur, period)
    return SeriesQuery(service, period, tuple(starts), int(cur.timestamp()))


# --- SQL: series ----------------------------------------------------------------------------------


def bucket_sql(period: Period, column: str) -> str:
    """SQL for the start (epoch seconds, Int64) of the ``period`` bucket holding the DateTime
    ``column`` (a column name of this module): weeks from Monday 00:00 UTC by arithmetic (``toMonday``
    clamps before 1970-01-05 on one engine and not the other), the calendar periods by
    ``toStartOf…`` in the column's time zone, UTC."""
    s = f"toInt64(toUInt32({column}))"
    if period == "minute":
        return f"toInt64(toUInt32(toStartOfMinute({column})))"
    if period == "hour":
        return f"toInt64(toUInt32(toStartOfHour({column})))"
    if period == "week":
        return f"(intDiv({s} + {_MONDAY_OFFSET_S}, {_WEEK_S}) * {_WEEK_S} - {_MONDAY_OFFSET_S})"
    day = {"day": "toDate", "month": "toStartOfMonth", "quarter": "toStartOfQuarter", "year": "toStartOfYear"}
    return f"(toInt64(toUInt32({day[period]}({column}))) * 86400)"


def series_grain(period: Period) -> Grain:
    """The sums table a series of ``period`` reads: minute and hour their own, others the day."""
    return "minute" if period == "minute" else "hour" if period == "hour" else "day"


def tx_series_sql(database: str, service: str, period: Period, start_s: int, end_s: int) -> Query:
    """Transaction sums of one service per ``(bucket, channel, outcome, ttc_edge_ms)`` over the
    period-aligned ``[start_s, end_s)``; :func:`tx_series` reads them."""
    source, params = _union(database, "tx", _TX_COLUMNS, [(series_grain(period), start_s, end_s)])
    params["services"] = [service]
    sql = (
        f"SELECT {bucket_sql(period, 't')} AS bucket, channel, outcome, ttc_edge_ms, {_TX_SUMS} "
        f"FROM {source} GROUP BY bucket, channel, outcome, ttc_edge_ms"
    )
    return sql, params


def rating_series_sql(database: str, service: str, period: Period, start_s: int, end_s: int) -> Query:
    source, params = _union(
        database, "rating", "service, t, rating, responses", [(series_grain(period), start_s, end_s)]
    )
    params["services"] = [service]
    bucket = bucket_sql(period, "t")
    sql = f"SELECT {bucket} AS bucket, rating, sum(responses) FROM {source} GROUP BY bucket, rating"
    return sql, params


def probe_series_sql(database: str, service: str, period: Period, start_s: int, end_s: int) -> Query:
    source, params = _union(database, "probe", _PROBE_COLUMNS, [(series_grain(period), start_s, end_s)])
    params["services"] = [service]
    bucket = bucket_sql(period, "t")
    sql = f"SELECT {bucket} AS bucket, edge_ms, {_PROBE_SUMS} FROM {source} GROUP BY bucket, edge_ms"
    return sql, params


def journey_series_sql(database: str, service: str, period: Period, start_s: int, end_s: int) -> Query:
    """Journey events of one service per ``(bucket, action, label)`` over the period-aligned
    ``[start_s, end_s)``, for the actions a journey figure needs; :func:`journey_series`."""
    source, params = _union(
        database, "journey", "service, t, action, label, events", [(series_grain(period), start_s, end_s)]
    )
    params["services"] = [service]
    params["actions"] = list(ACTIONS)
    sql = (
        f"SELECT {bucket_sql(period, 't')} AS bucket, action, label, sum(events) FROM {source} "
        "WHERE action IN %(actions)s GROUP BY bucket, action, label"
    )
    return sql, params


def tx_series(rows: Rows) -> dict[int, TxAgg]:
    """Rows of :func:`tx_series_sql` as a ``TxAgg`` per bucket start (epoch seconds)."""
    return {int(k): v for k, v in _fold_tx(rows).items()}


def rating_series(rows: Rows) -> dict[int, RatingAgg]:
    return {int(k): v for k, v in _fold_ratings(rows).items()}


def probe_series(rows: Rows) -> dict[int, ProbeAgg]:
    return {int(k): v for k, v in _fold_probes(rows).items()}


def journey_series(rows: Rows) -> dict[int, JourneyAgg]:
    """Rows of :func:`journey_series_sql` as a ``JourneyAgg`` per bucket start (epoch seconds)."""
    return {int(k): journey_agg(v) for k, v in journey_counts(rows).items()}


def series_queries(database: str, q: SeriesQuery) -> list[Query]:
    """The five reads of a series — transactions, ratings, probes, costs, journeys — for
    :func:`series_json`."""
    return [
        tx_series_sql(database, q.service, q.period, q.start_s, q.end_s),
        rating_series_sql(database, q.service, q.period, q.start_s, q.end_s),
        probe_series_sql(database, q.service, q.period, q.start_s, q.end_s),
        cost_sql(database, q.service, q.start_s, q.end_s),
        journey_series_sql(database, q.service, q.period, q.start_s, q.end_s),
    ]


def series_aggs(q: SeriesQuery, results: Sequence[Rows]) -> list[WindowAggs]:
    """One ``WindowAggs`` per bucket of the series, empty ones included, from the rows of
    :func:`series_queries` in that order."""
    tx_rows, rating_rows, probe_rows, cost_rows, journey_rows = results
    tx, ratings, probes = tx_series(tx_rows), rating_series(rating_rows), probe_series(probe_rows)
    journeys = journey_series(journey_rows)
    costs = period_costs(cost_rows).get(q.service, [])
    out = []
    for i, start in enumerate(q.starts):
        start_ms, end_ms = start * 1000, q.bucket_end(i) * 1000
        out.append(
            WindowAggs(
                start_ms,
                end_ms,
                tx=tx.get(start, TxAgg()),
                ratings=ratings.get(start, RatingAgg()),
                probes=probes.get(start, ProbeAgg()),
                journey=journeys.get(start, JourneyAgg()),
                period_cost_e4=attributed_cost_e4(costs, start_ms, end_ms),
            )
        )
    return out


# --- JSON -----------------------------------------------------------------------------------------


def volumes(tx: TxAgg) -> dict[str, dict[str, int]]:
    """Events per channel and outcome, every channel and outcome present (0 when none)."""
    return {c: {o: tx.count(c, o) for o in OUTCOMES} for c in CHANNELS}


def summary_json(service: str, period: Period, current: WindowAggs, previous: WindowAggs) -> dict[str, Any]:
    """``pipeline.kpi.kpi_summary`` of the two windows, with the service and the volumes by
    channel and outcome of both."""
    summary = kpi_summary(period, current, previous)
    return {
        "service": service,
        "period": summary["period"],
        "window": summary["window"],
        "previous_window": summary["previous_window"],
        "kpis": summary["kpis"],
        "volumes": {"window": volumes(current.tx), "previous_window": volumes(previous.tx)},
    }


def kpi_values(period: Period, w: WindowAggs) -> dict[str, int | float | None]:
    """Each KPI's value (JSON numbers) for one window, as ``kpi_summary`` computes it."""
    kpis = kpi_summary(period, w, WindowAggs(w.start_ms, w.start_ms))["kpis"]
    return {k: kpis[k]["value"] for k in SERVICE_KPIS}


def series_json(q: SeriesQuery, buckets: Sequence[WindowAggs]) -> dict[str, Any]:
    """Every bucket with its window and KPI values; an empty bucket has counts of 0 and the rest
    ``null``."""
    return {
        "service": q.service,
        "period": q.period,
        "start_at": iso_utc(q.start_s * 1000),
        "end_at": iso_utc(q.end_s * 1000),
        "units": UNITS,
        "data": [
            {"_start_at": iso_utc(w.start_ms), "_end_at": iso_utc(w.end_ms), "kpis": kpi_values(q.period, w)}
            for w in buckets
        ],
    }


def _gbp(value_e4: Fraction | int | None) -> float | None:
    return None if value_e4 is None else pounds(value_e4)


def _float(value: int | float | Fraction | None) -> float | None:
    return None if value is None else float(value)


def figures_json(f: ServiceFigures) -> dict[str, Any]:
    """A service's figures: completed transactions, costs in pounds, 0..1 ratios (unrounded)."""
    return {
        "number_of_transactions": f.number_of_transactions,
        "total_cost_gbp": _gbp(f.total_cost_e4),
        "cost_per_transaction_gbp": _gbp(f.cost_per_transaction_e4),
        "digital_takeup": _float(f.digital_takeup),
        "completion_rate": _float(f.completion_rate),
        "user_satisfaction_score": _float(f.user_satisfaction_score),
    }


def group_json(
    group: str, period: Period, window: tuple[int, int], aggs: dict[str, WindowAggs]
) -> dict[str, Any]:
    """A group's services over one window: ``pipeline.kpi.cross_service`` of their figures (sums,
    volume-weighted means rounded as the original did) and each service's own figures."""
    figures = {s: service_figures(a.tx, a.ratings, a.period_cost_e4) for s, a in sorted(aggs.items())}
    cross = cross_service(figures.values())
    return {
        "group": group,
        "period": period,
        "window": {"start": iso_utc(window[0] * 1000), "end": iso_utc(window[1] * 1000)},
        "figures": {
            "number_of_transactions": cross.number_of_transactions,
            "total_cost_gbp": cross.total_cost_gbp,
            "cost_per_transaction_gbp": cross.cost_per_transaction_gbp,
            "digital_takeup": cross.digital_takeup,
            "completion_rate": cross.completion_rate,
            "user_satisfaction_score": cross.user_satisfaction_score,
        },
        "services": [{"service": s, "figures": figures_json(f)} for s, f in figures.items()],
    }
