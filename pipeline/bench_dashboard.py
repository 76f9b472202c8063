"""``perfplat bench dashboard``: a service page's first render with a year of data, on a stack of its own.

The target (the issue): the dashboard page (``GET /performance/{service}?period=…``) renders
its first time in at most 200 ms of server time with a year of data for the service.

1. **Data.** ``--days`` (365) days up to now of one mid-size service (``apply-for-a-passport``
   of the simulator's catalogue) and ``--other-services`` smaller ones (a tenth of its volume
   each, so the home page has rows): transactions by channel and outcome, satisfaction
   ratings, daily costs, one availability probe a minute and the journey events of the digital
   users. Every day is made by the traffic simulator (``producers.simulate``, seeded per day and
   service), ``--events-per-day`` events on an average day for the main service, weekdays
   busier than weekends (``WEEKDAY_WEIGHTS``); today only up to now.

   **How it gets in: not through Kafka and the Faust worker.** The worker takes 4-5k events/s
   on this machine (reference, section B), and a year at this volume is ~15 M events: about an
   hour. Each simulated event is made into the schema event the worker decodes (``stored_event``:
   what the SDK's and the beacon's validation make of it; the unit tests check that) and goes
   through the sinks' row functions (``pipeline.kpi_rows.*_columns``,
   ``pipeline.kpi_rows.journey_columns``) into the tables the sinks write (``tx_in``,
   ``rating_in``, ``probes``, ``cost_posts``, ``journey_in``), so the materialized views build
   every sum as in production. Left out: the counted sinks' lookup of ids already stored (the
   simulator's ids are unique) and the worker's batch sizes (rows go in blocks of up to
   ``INSERT_ROWS``). Events arrive live (``received`` is the event's own time). Then every
   table is merged (``OPTIMIZE … FINAL``, as a year of background merges leaves old
   partitions; ``--no-optimize`` skips it), so no merge runs while renders are timed.
2. **Stack.** ``--backend embedded`` (the default, what ``make run`` gives): ``perfplat up`` on the
   bench's directory and free ports (never the dev stack's 8000/8001/19092), chdb its store.
   ``--backend server``: the other benches' distributed stack (``pipeline.bench_datasets.BenchStack``:
   Tansu, Debian's ClickHouse 18.16 server, ``perfplat worker`` and ``perfplat api``).
3. **Services** are registered through the admin API (``POST /_admin/services``).
4. **Renders.** Once a page has been computed, no reader waits for it again
   (``api.read.StaleWhileRevalidate``): past ``api.kpi_cache_ms`` the old page is served at once
   while a refresh runs behind it. Waiting out the cache therefore never gives a computed render;
   a fresh process does. So each run starts the read side afresh (embedded: the whole
   ``perfplat up``; server: the ``perfplat api`` process), waits ``SETTLE_S`` for it to finish
   starting, renders one page of another service (the process's own first-request costs:
   templates, connections; reported as ``process_first``), then asks for the main service's
   page once per period (the order rotates from run to run): the **first renders**. Then the
   home page once per period, then every page ``--warm`` more times (warm: from the cache).
   Each answer's ``Server-Timing: render;dur=`` is the server time; the client's wall time is
   kept too (embedded: through the ingest process, which proxies reads, as a browser goes).
5. **Queries.** A service page computes, concurrently, the KPI summary (two windows x five
   queries; the current window's journey rows are also the funnel), the 30-bucket series (five)
   and users now. After the runs each of those queries is run alone against the store (first
   run, then the median of ``--query-repeats``) to say which one is slow.

Progress and a readable report go to stderr; the JSON summary to stdout (and ``--json PATH``).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from pipeline import kpi_rows
from pipeline.bench import (
    median,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    spread,
)
from pipeline.bench_datasets import BenchStack
from pipeline.broker import die_with_parent
from pipeline.dashboard_view import CHART_PERIOD
from pipeline.kpi_rows import journey_columns
from pipeline.kpi_sql import (
    SUMMARY_PERIODS,
    Query,
    read_window,
    series_queries,
    series_query,
    window_queries,
)
from pipeline.live import UsersNowQuery, users_now_sql
from pipeline.visitor import daily_salt, visitor_key
from pipeline.windows import Period, previous_so_far_window, so_far_window
from producers.simulate import (
    CostSim,
    ProbeSim,
    RatingSim,
    ServiceProfile,
    SimEvent,
    TransactionSim,
    default_services,
    simulate,
)
from schemas.availability import AvailabilityEvent
from schemas.cost import CostEvent
from schemas.fields import money_e4
from schemas.journey import JourneyEvent
from schemas.satisfaction import SatisfactionEvent
from schemas.transaction import TransactionEvent

if TYPE_CHECKING:
    from pipeline.settings import Settings
    from pipeline.store import Store

T = TypeVar("T")

TARGET_MS = 200.0
PERIODS: tuple[Period, ...] = SUMMARY_PERIODS
DEFAULT_EVENTS_PER_DAY = 40_000
"""Main service, average day, all kinds: about 10,800 transaction events (5,400 transactions
started, and their outcomes), 27,000 journey events, 1,440 probes and 850 ratings."""
WEEKDAY_WEIGHTS = (1.12, 1.10, 1.08, 1.05, 1.0, 0.68, 0.62)
"""Relative traffic Monday to Sunday; normalised so an average day has ``--events-per-day``."""
OTHER_SHARE = 0.1
"""Each other service's volume against the main service's."""
INSERT_ROWS = 250_000
"""Rows gathered per table before one insert."""
BENCH_IP = "192.0.2.1"
"""The simulated users' address (TEST-NET-1), hashed into their visitor keys like a real one."""
VISITOR_SECRET = b"perfplat-bench-dashboard"
SETTLE_S = 10.0
"""After the stack answers, its processes are still starting (the Faust worker joins its group,
in the read side's own process in the embedded mode): renders wait this long (``--settle``)."""
REQUEST_TIMEOUT_S = 120.0
LOAD_MARKER = "bench-dashboard-load.json"
DEV_PORTS = (8000, 8001, 19092)
"""The default stack's ports (a developer's ``make run``): never ours."""
SINKS: dict[str, tuple[str, Callable[[Any], dict[str, list[Any]]]]] = {
    "transaction": ("tx_in", kpi_rows.tx_columns),
    "satisfaction": ("rating_in", kpi_rows.rating_columns),
    "availability": ("probe_in", kpi_rows.probe_columns),
    "cost": ("cost_posts", kpi_rows.cost_columns),
    "journey": ("journey_in", journey_columns),
}
"""Each event kind's table and row function, as ``stream_processors.app`` wires its sinks."""
MERGE_ENGINES = ("MergeTree", "ReplacingMergeTree", "SummingMergeTree", "AggregatingMergeTree")
_SERVER_TIMING = re.compile(r"^\s*([^;,\s]+)((?:\s*;[^;,]*)*)$")

StoredEvent = TransactionEvent | SatisfactionEvent | CostEvent | AvailabilityEvent | JourneyEvent


# ---------------------------------------------------------------------------------------------
# Pure: the year of data
# ---------------------------------------------------------------------------------------------


def day_plan(now_ms: int, days: int, events_per_day: int) -> list[tuple[date, int]]:
    """The days to load, oldest first and ending today (UTC), each with the main service's
    events: ``events_per_day`` weighted by weekday (``WEEKDAY_WEIGHTS``, whose mean is 1)."""
    if days < 1 or events_per_day < 0:
        raise ValueError("at least one day, and no negative volume")
    today = datetime.fromtimestamp(now_ms / 1000, tz=UTC).date()
    mean = sum(WEEKDAY_WEIGHTS) / len(WEEKDAY_WEIGHTS)
    out = []
    for back in range(days - 1, -1, -1):
        day = today - timedelta(days=back)
        out.append((day, round(events_per_day * WEEKDAY_WEIGHTS[day.weekday()] / mean)))
    return out


def user_agent(visitor: str) -> str:
    """The User-Agent ``perfplat simulate`` sends for one simulated user."""
    return f"perfplat-simulate/1 (user {visitor})"


def stored_event(sim: SimEvent, salt: bytes, visitors: dict[str, int] | None = None) -> StoredEvent:
    """The event the worker would decode for ``sim``, had it been sent live: what the SDK's
    validation (transactions, ratings, costs), ``probe_result`` (probes) or the beacon's
    validation (journeys, with ``salt`` as the day's visitor salt) makes of it, received at the
    event's own time. ``visitors`` keeps the visitor keys of one day's user ids (and service)."""
    if isinstance(sim, TransactionSim):
        tx = sim.payload
        return TransactionEvent(
            id=tx["id"],
            service=tx["service"],
            transaction_id=tx["transaction_id"],
            outcome=tx["outcome"],
            channel=tx["channel"],
            cost_e4=money_e4(tx.get("cost"), "cost"),
            ts_ms=tx["timestamp"],
            started_ms=tx.get("started_at", -1),
            received_ms=sim.ts_ms,
        )
    if isinstance(sim, RatingSim):
        r = sim.payload
        return SatisfactionEvent(
            id=r["id"],
            service=r["service"],
            rating=r["rating"],
            comment=r.get("comment", ""),
            ts_ms=r["timestamp"],
            received_ms=sim.ts_ms,
        )
    if isinstance(sim, CostSim):
        c = sim.payload
        start = date.fromisoformat(c["start"])
        return CostEvent(
            id=c["id"],
            service=c["service"],
            period=c["period"],
            start_ms=int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()) * 1000,
            channel=c["channel"],
            amount_e4=money_e4(c["amount"], "amount"),
            received_ms=sim.ts_ms,
        )
    if isinstance(sim, ProbeSim):
        return sim.payload
    j = sim.payload
    cache = {} if visitors is None else visitors
    who = f"{j['category']} {sim.visitor}"
    visitor = cache.get(who)
    if visitor is None:
        visitor = cache[who] = visitor_key(salt, BENCH_IP, user_agent(sim.visitor), j["category"])
    return JourneyEvent(
        id=j["id"],
        service=j["category"],
        action=j["action"],
        label=j["label"],
        kind=j["kind"],
        path=j["path"],
        ts_ms=j["ts"],
        received_ms=sim.ts_ms,
        visitor=visitor,
    )


Columns = dict[str, list[Any]]


@dataclass(frozen=True, slots=True)
class DayJob:
    """One day of the load: each service with its events that day."""

    day: date
    services: tuple[tuple[ServiceProfile, int], ...]
    seed: int
    now_ms: int


@dataclass(slots=True)
class DayRows:
    day: date
    columns: dict[str, Columns]
    """Table → the columns of its rows (as the sinks insert them)."""
    counts: dict[str, dict[str, int]]
    """Service → kind → events."""


def day_rows(job: DayJob) -> DayRows:
    """A day of every service as the sinks' rows; events after ``now_ms`` are left out."""
    day_ms = int(datetime(job.day.year, job.day.month, job.day.day, tzinfo=UTC).timestamp()) * 1000
    salt = daily_salt(VISITOR_SECRET, day_ms)
    by_kind: dict[str, list[Any]] = {kind: [] for kind in SINKS}
    counts: dict[str, dict[str, int]] = {}
    visitors: dict[str, int] = {}
    for profile, events in job.services:
        seen = counts.setdefault(profile.slug, dict.fromkeys(SINKS, 0))
        for sim in simulate(job.seed, job.day, [profile], events):
            if sim.ts_ms > job.now_ms:  # today: only what has happened so far
                break
            by_kind[sim.kind].append(stored_event(sim, salt, visitors))
            seen[sim.kind] += 1
    columns = {SINKS[kind][0]: SINKS[kind][1](evs) for kind, evs in by_kind.items() if evs}
    return DayRows(job.day, columns, counts)


def day_jobs(
    plan: Sequence[tuple[date, int]], profiles: Sequence[ServiceProfile], seed: int, now_ms: int
) -> list[DayJob]:
    """The first profile is the main service; each other gets ``OTHER_SHARE`` of its volume."""
    return [
        DayJob(
            day,
            tuple((p, n if i == 0 else round(n * OTHER_SHARE)) for i, p in enumerate(profiles)),
            seed,
            now_ms,
        )
        for day, n in plan
    ]


def extend_columns(into: dict[str, Columns], more: Mapping[str, Columns]) -> None:
    """Append ``more``'s rows to ``into``, table by table."""
    for table, columns in more.items():
        held = into.setdefault(table, {name: [] for name in columns})
        for name, values in columns.items():
            held[name].extend(values)


def row_count(columns: Columns) -> int:
    return len(next(iter(columns.values()))) if columns else 0


# ---------------------------------------------------------------------------------------------
# Pure: renders and their summary
# ---------------------------------------------------------------------------------------------


def server_timing_ms(header: str | None, metric: str = "render") -> float | None:
    """The ``dur`` of ``metric`` in a ``Server-Timing`` header (``render;dur=12.3``), or None."""
    if not header:
        return None
    for entry in header.split(","):
        m = _SERVER_TIMING.match(entry)
        if m is None or m.group(1) != metric:
            continue
        for param in m.group(2).split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur":
                try:
                    return float(value.strip('"'))
                except ValueError:
                    return None
    return None


def rotated(periods: Sequence[T], run: int) -> list[T]:
    """``periods`` started at index ``run`` (mod their count): each run leads with another one."""
    if not periods:
        return []
    k = run % len(periods)
    return [*periods[k:], *periods[:k]]


@dataclass(frozen=True, slots=True)
class Render:
    """One request for a page."""

    page: str
    """``service`` (the main service's page), ``home``, or ``process_first`` (another service's
    page: a fresh process's first request)."""
    period: str
    kind: str
    """``first`` (its figures computed for this request) or ``warm`` (served from the cache)."""
    run: int
    server_ms: float | None
    """From ``Server-Timing``; None when the answer had none."""
    wall_ms: float
    status: int
    size: int


def _figures(values: Sequence[float | None]) -> dict[str, float | int | None]:
    s = spread(math.nan if v is None else v for v in values)
    return {
        "n": len(values),
        "median": None if math.isnan(s.median) else round(s.median, 1),
        "min": None if math.isnan(s.min) else round(s.min, 1),
        "max": None if math.isnan(s.max) else round(s.max, 1),
    }


def summarise(renders: Sequence[Render], target_ms: float) -> dict[str, Any]:
    """Per page, period and kind: server and wall time (median, min, max over the renders).
    A service page's period meets the target when the median of its first renders' server
    times is at most ``target_ms``; ``target_met`` when every period measured does."""
    keys: dict[tuple[str, str, str], list[Render]] = {}
    for r in renders:
        keys.setdefault((r.page, r.period, r.kind), []).append(r)
    pages: dict[str, dict[str, dict[str, Any]]] = {}
    for (page, period, kind), group in keys.items():
        pages.setdefault(page, {}).setdefault(period, {})[kind] = {
            "server_ms": _figures([r.server_ms for r in group]),
            "wall_ms": _figures([r.wall_ms for r in group]),
        }
    verdicts: dict[str, bool] = {}
    for period, kinds in pages.get("service", {}).items():
        first = kinds.get("first")
        if first is not None:
            m = first["server_ms"]["median"]
            verdicts[period] = m is not None and m <= target_ms
            first["target_met"] = verdicts[period]
    return {
        "pages": pages,
        "target_ms": target_ms,
        "target_met": bool(verdicts) and all(verdicts.values()),
        "periods_over_target": sorted(p for p, ok in verdicts.items() if not ok),
    }


# ---------------------------------------------------------------------------------------------
# Pure: the page's queries, for timing them one by one
# ---------------------------------------------------------------------------------------------

_WINDOW_PARTS = ("tx", "ratings", "probes", "costs", "journey")
_SERIES_PARTS = ("tx", "ratings", "probes", "costs", "journey")


def page_queries(database: str, service: str, period: Period, now_ms: int) -> list[tuple[str, Query]]:
    """The queries a service page runs for ``period`` at ``now_ms``, named: the summary's two
    windows (``pipeline.kpi_sql.window_queries``, whose journey rows are also the page's funnel),
    the series of ``CHART_PERIOD[period]`` and users now, as ``api.kpi_read.KpiReader`` and
    ``api.read.LiveReader`` build them."""
    current = read_window(*so_far_window(now_ms, period))
    previous = read_window(*previous_so_far_window(now_ms, period))
    out: list[tuple[str, Query]] = []
    for name, window in (("current", current), ("previous", previous)):
        queries = window_queries(database, [service], *window)
        out += [(f"summary.{name}.{part}", q) for part, q in zip(_WINDOW_PARTS, queries, strict=True)]
    series = series_query(service, CHART_PERIOD[period], None, None, now_ms)
    queries = series_queries(database, series)
    out += [(f"series.{part}", q) for part, q in zip(_SERIES_PARTS, queries, strict=True)]
    out.append(("users_now", users_now_sql(UsersNowQuery(service, now_ms), database)))
    return out


def home_queries(
    database: str, services: Sequence[str], period: Period, now_ms: int
) -> list[tuple[str, Query]]:
    """The home page's queries: every service's figures over one window, and users now (the
    platform's; each service's is one more query like it)."""
    window = read_window(*so_far_window(now_ms, period))
    queries = window_queries(database, list(services), *window)
    out = [(f"home.{part}", q) for part, q in zip(_WINDOW_PARTS, queries, strict=True)]
    out.append(("home.users_now", users_now_sql(UsersNowQuery(None, now_ms), database)))
    return out


@dataclass(frozen=True, slots=True)
class QueryTiming:
    page: str
    period: str
    query: str
    first_ms: float
    median_ms: float
    max_ms: float
    rows: int


def slowest(timings: Sequence[QueryTiming], n: int) -> list[QueryTiming]:
    return sorted(timings, key=lambda t: -t.median_ms)[:n]


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def format_report(doc: Mapping[str, Any]) -> str:
    cfg, data, summary = doc["config"], doc["data"], doc["summary"]
    main = data["main_service"]
    per_day = data["main_per_day"]
    lines = [
        f"perfplat bench dashboard  backend {cfg['backend']} ({doc['store']})  {cfg['runs']} run(s)  "
        f"target {summary['target_ms']:g} ms",
        f"data: {main}, {cfg['days']} days, {per_day['all']:,.0f} events/day on average "
        f"({per_day['transaction']:,.0f} transaction events, {per_day['journey']:,.0f} journey events), "
        f"+ {len(data['services']) - 1} services at {OTHER_SHARE:.0%} each; "
        f"{data['events']:,} events {data['how']}",
        "first render (server ms from Server-Timing: median / max over runs; client wall ms median)",
    ]
    pages = summary["pages"]
    for page in ("service", "home", "process_first"):
        for period in PERIODS:
            kinds = pages.get(page, {}).get(period, {})
            first = kinds.get("first")
            if first is None:
                continue
            verdict = ""
            if "target_met" in first:
                verdict = "  meets target" if first["target_met"] else "  OVER TARGET"
            warm = kinds.get("warm")
            warm_text = f"   warm {_ms(warm['server_ms']['median'])}" if warm else ""
            lines.append(
                f"  {page:<13} {period:<8} {_ms(first['server_ms']['median']):>9} / "
                f"{_ms(first['server_ms']['max']):>9}   wall {_ms(first['wall_ms']['median']):>9}"
                f"{warm_text}{verdict}"
            )
    lines.append(
        "target met (every period's median first render <= target): "
        + ("yes" if summary["target_met"] else f"NO ({', '.join(summary['periods_over_target'])})")
    )
    queries = doc.get("queries")
    if queries:
        lines.append("queries run alone on the store, slowest first (ms: first run, median of the repeats)")
        for period in PERIODS:
            mine = [QueryTiming(**q) for q in queries if q["page"] == "service" and q["period"] == period]
            if not mine:
                continue
            total = sum(q.median_ms for q in mine)
            top = ", ".join(
                f"{q.query} {q.median_ms:,.1f} (first {q.first_ms:,.1f})" for q in slowest(mine, 3)
            )
            lines.append(f"  {period:<8} all {len(mine)} in sequence {total:,.1f}: {top}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# I/O: the store (load, timings), always in a child process
# ---------------------------------------------------------------------------------------------


def in_child(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a forked child and its result back. chdb allows one process per data
    directory and keeps it until the process exits: the stack's own process opens it later."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def target() -> None:
        try:
            send.send(("ok", fn(*args)))
        except BaseException as exc:
            send.send(("error", f"{type(exc).__name__}: {exc}"))
            raise

    proc = ctx.Process(target=target, name="perfplat-bench-dashboard-store")
    proc.start()
    send.close()
    try:
        status, value = receive.recv()
    except EOFError:
        proc.join()
        raise RuntimeError(f"the store process died (exit code {proc.exitcode})") from None
    finally:
        receive.close()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"in the store process: {value}")
    result: T = value
    return result


def _progress(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def load_year(settings: Settings, jobs: Sequence[DayJob], workers: int, optimize: bool) -> dict[str, Any]:
    """Simulate the days in ``workers`` processes and insert their rows; merge; count rows."""
    from pipeline.init import ensure_tables
    from pipeline.store import open_store

    ctx = multiprocessing.get_context("fork")
    started = time.monotonic()
    counts: dict[str, dict[str, int]] = {}
    # The pool forks before the store opens, so no child inherits chdb's threads.
    with ctx.Pool(workers) as pool:
        store = open_store(settings)
        try:
            ensure_tables(store)
            pending: dict[str, Columns] = {}
            for i, rows in enumerate(pool.imap(day_rows, jobs), 1):
                for service, kinds in rows.counts.items():
                    into = counts.setdefault(service, dict.fromkeys(SINKS, 0))
                    for kind, n in kinds.items():
                        into[kind] += n
                extend_columns(pending, rows.columns)
                for table in [t for t, c in pending.items() if row_count(c) >= INSERT_ROWS or i == len(jobs)]:
                    store.insert(table, pending.pop(table))
                if i % 30 == 0 or i == len(jobs):
                    events = sum(sum(k.values()) for k in counts.values())
                    _progress(
                        f"loaded {i}/{len(jobs)} days, {events:,} events, {time.monotonic() - started:.0f} s"
                    )
            loaded_s = time.monotonic() - started
            optimize_s = _optimize(store) if optimize else 0.0
            rows_by_table = _row_counts(store)
            version = ".".join(str(p) for p in store.server_version())
        finally:
            store.close()
    return {
        "counts": counts,
        "load_s": round(loaded_s, 1),
        "optimize_s": round(optimize_s, 1),
        "rows": rows_by_table,
        "version": version,
    }


def _merge_tables(store: Store) -> list[str]:
    rows = store.query(
        "SELECT name FROM system.tables WHERE database = %(db)s AND engine IN %(engines)s ORDER BY name",
        {"db": store.database, "engines": list(MERGE_ENGINES)},
    )
    return [str(r[0]) for r in rows]


def _optimize(store: Store) -> float:
    started = time.monotonic()
    for table in _merge_tables(store):
        store.execute(f"OPTIMIZE TABLE {store.database}.{table} FINAL")
    took = time.monotonic() - started
    _progress(f"merged every table (OPTIMIZE FINAL) in {took:.0f} s")
    return took


def _row_counts(store: Store) -> dict[str, int]:
    return {
        table: int(store.query(f"SELECT count() FROM {store.database}.{table}")[0][0])
        for table in _merge_tables(store)
    }


def time_queries(
    settings: Settings,
    main: str,
    services: Sequence[str],
    periods: Sequence[Period],
    repeats: int,
) -> dict[str, Any]:
    """Each of a page's queries run alone: its first run, then ``repeats`` more."""
    from pipeline.store import open_store

    store = open_store(settings)
    try:
        now_ms = time.time_ns() // 1_000_000
        out = []
        for period in periods:
            plan = [("service", q) for q in page_queries(store.database, main, period, now_ms)]
            plan += [("home", q) for q in home_queries(store.database, services, period, now_ms)]
            for page, (name, (sql, params)) in plan:
                t0 = time.perf_counter()
                rows = store.query(sql, params)
                first = (time.perf_counter() - t0) * 1000
                again = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    store.query(sql, params)
                    again.append((time.perf_counter() - t0) * 1000)
                out.append(
                    QueryTiming(
                        page,
                        period,
                        name,
                        round(first, 2),
                        round(median(again), 2) if again else round(first, 2),
                        round(max(again), 2) if again else round(first, 2),
                        len(rows),
                    )
                )
        return {"at": now_ms, "timings": [asdict(t) for t in out]}
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# I/O: the stacks
# ---------------------------------------------------------------------------------------------


def _free_ports(n: int) -> list[int]:
    """``n`` distinct ports free now, none of the dev stack's defaults."""
    import socket

    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in ports and port not in DEV_PORTS:
            ports.append(port)
    return ports


def _wait_healthy(urls: Sequence[str], alive: Callable[[], bool], log: Path, timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    for url in urls:
        while True:
            if not alive():
                raise RuntimeError(f"the stack exited while starting; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer in {timeout_s:.0f} s; see {log}")
            time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()  # our own child, by its handle
        proc.wait(10)


class EmbeddedStack:
    """``perfplat up`` (broker, ingest, core with the worker, chdb and the read side, prober) on
    ``data_dir`` and free ports, as a child; SIGTERM makes the launcher stop its processes in order."""

    def __init__(self, data_dir: Path, admin_token: str) -> None:
        self.data_dir = data_dir
        self.admin_token = admin_token
        self.port = self.read_port = self.broker_port = 0
        self.base_url = ""
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def settings(self) -> Settings:
        from pipeline.settings import ClickHouseSettings, KafkaSettings, Settings

        return Settings(kafka=KafkaSettings(), clickhouse=ClickHouseSettings(), data_dir=self.data_dir)

    def start(self) -> float:
        started = time.monotonic()
        self.port, self.read_port, self.broker_port = _free_ports(3)
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PERFPLAT_")} | {
            "PERFPLAT_DATA_DIR": str(self.data_dir),
            "PERFPLAT_API__HOST": "127.0.0.1",
            "PERFPLAT_API__PORT": str(self.port),
            "PERFPLAT_API__READ_PORT": str(self.read_port),
            "PERFPLAT_KAFKA__BROKER_PORT": str(self.broker_port),
            "PERFPLAT_ADMIN_TOKEN": self.admin_token,
            "PERFPLAT_LOG_LEVEL": "WARNING",
        }
        log_path = self.data_dir / "stack.log"
        with open(log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline.cli", "up"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=die_with_parent,
                start_new_session=True,  # Ctrl-C reaches the bench, which stops the stack in order
            )
        proc = self._proc
        urls = [f"http://127.0.0.1:{self.read_port}/healthz", f"{self.base_url}/healthz"]
        _wait_healthy(urls, lambda: proc.poll() is None, log_path, 120)
        return time.monotonic() - started

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop(proc, 60)


class ServerStack(BenchStack):
    """The other benches' distributed stack, whose ``perfplat api`` restarts between runs."""

    def restart_api(self) -> float:
        started = time.monotonic()
        _stop(self.procs.pop(), 15)  # start() spawns the worker, then the api
        proc = self.spawn("api")
        log_path = self.workdir / "api.log"
        _wait_healthy([self.base_url + "/healthz"], lambda: proc.poll() is None, log_path, 90)
        return time.monotonic() - started


def register_services(base_url: str, admin_token: str, profiles: Sequence[ServiceProfile]) -> None:
    """Through the admin API; a service already there (a reused directory) is fine."""
    import httpx

    for p in profiles:
        r = httpx.post(
            base_url + "/_admin/services",
            json={"slug": p.slug, "name": p.slug.replace("-", " ").capitalize()},
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=10,
        )
        if r.status_code not in (201, 409):
            raise RuntimeError(f"registering {p.slug}: {r.status_code} {r.text[:200]}")
    time.sleep(1.2)  # the read side re-reads the registry at most once a second


# ---------------------------------------------------------------------------------------------
# I/O: renders
# ---------------------------------------------------------------------------------------------


def fetch(client: Any, path: str, period: str, page: str, kind: str, run: int) -> Render:
    t0 = time.perf_counter()
    r = client.get(path, params={"period": period})
    wall = (time.perf_counter() - t0) * 1000
    if r.status_code != 200:
        raise RuntimeError(f"GET {path}?period={period} answered {r.status_code}: {r.text[:300]}")
    return Render(
        page, period, kind, run, server_timing_ms(r.headers.get("server-timing")), wall, 200, len(r.content)
    )


def measure_run(
    base_url: str, run: int, main: str, other: str, periods: Sequence[Period], warm: int
) -> list[Render]:
    """One fresh read process's renders (see the module's docstring, step 4)."""
    import httpx

    out = []
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S) as client:
        out.append(fetch(client, f"/performance/{other}", "day", "process_first", "first", run))
        order = rotated(periods, run)
        for period in order:
            out.append(fetch(client, f"/performance/{main}", period, "service", "first", run))
        for period in order:
            out.append(fetch(client, "/performance", period, "home", "first", run))
        for period in order:
            for _ in range(warm):
                out.append(fetch(client, f"/performance/{main}", period, "service", "warm", run))
            for _ in range(warm):
                out.append(fetch(client, "/performance", period, "home", "warm", run))
    firsts = ", ".join(
        f"{r.period} {_ms(r.server_ms)}" for r in out if r.page == "service" and r.kind == "first"
    )
    _progress(f"run {run + 1}: first renders (server ms) {firsts}")
    return out


def kpi_check(base_url: str, main: str) -> dict[str, Any]:
    """The main service's year so far from the KPI API: the figures the page shows are there."""
    import httpx

    r = httpx.get(f"{base_url}/services/{main}/kpis", params={"period": "year"}, timeout=REQUEST_TIMEOUT_S)
    r.raise_for_status()
    kpis = r.json()["kpis"]
    keys = ("transactions_completed", "completion_rate", "digital_takeup", "cost_per_transaction")
    return {k: kpis[k]["value"] for k in keys if k in kpis}


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DashboardBenchConfig:
    backend: str
    events_per_day: int
    days: int
    other_services: int
    runs: int
    warm: int
    periods: tuple[Period, ...]
    seed: int
    workers: int
    optimize: bool
    query_repeats: int
    target_ms: float
    settle_s: float
    data_dir: str | None
    json_path: str | None

    def load_key(self) -> dict[str, Any]:
        """What a loaded directory must match to be reused."""
        return {
            "backend": self.backend,
            "events_per_day": self.events_per_day,
            "days": self.days,
            "other_services": self.other_services,
            "seed": self.seed,
            "optimize": self.optimize,
        }


def parse_periods(text: str) -> tuple[Period, ...]:
    """``day,week`` → ``("day", "week")``; each one of the page's periods, none twice."""
    wanted = [p.strip() for p in text.split(",") if p.strip()]
    out: list[Period] = []
    for name in wanted:
        match = [p for p in PERIODS if p == name]
        if not match:
            raise argparse.ArgumentTypeError(f"{name!r} is not a period: {', '.join(PERIODS)}")
        if match[0] in out:
            raise argparse.ArgumentTypeError(f"{name} is given twice")
        out.append(match[0])
    if not out:
        raise argparse.ArgumentTypeError("name at least one period")
    return tuple(out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=("embedded", "server"), default="embedded")
    parser.add_argument(
        "--events-per-day",
        type=non_negative_int,
        default=DEFAULT_EVENTS_PER_DAY,
        help="the main service's events on an average day, all kinds (as perfplat simulate --events)",
    )
    parser.add_argument("--days", type=positive_int, default=365, help="days of data up to now")
    parser.add_argument(
        "--other-services", type=non_negative_int, default=4, help="smaller services beside it"
    )
    parser.add_argument("--runs", type=positive_int, default=5, help="fresh read processes (first renders)")
    parser.add_argument(
        "--warm", type=non_negative_int, default=5, help="warm requests per page and period per run"
    )
    parser.add_argument("--periods", type=parse_periods, default=PERIODS, help="comma-separated")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=positive_int, default=2, help="processes simulating days")
    parser.add_argument("--no-optimize", action="store_true", help="leave the tables unmerged after the load")
    parser.add_argument(
        "--query-repeats", type=non_negative_int, default=5, help="0: do not time queries alone"
    )
    parser.add_argument("--target-ms", type=positive_float, default=TARGET_MS)
    parser.add_argument(
        "--settle",
        type=non_negative_float,
        default=SETTLE_S,
        help="seconds from a started stack to its first request",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        metavar="PATH",
        help="run in this directory and keep it; a load made there with the same options is reused",
    )
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the JSON summary here")


def config_from_args(args: argparse.Namespace) -> DashboardBenchConfig:
    if args.other_services + 1 > 64:
        raise ValueError("at most 63 other services")
    return DashboardBenchConfig(
        backend=args.backend,
        events_per_day=args.events_per_day,
        days=args.days,
        other_services=args.other_services,
        runs=args.runs,
        warm=args.warm,
        periods=tuple(args.periods),
        seed=args.seed,
        workers=args.workers,
        optimize=not args.no_optimize,
        query_repeats=args.query_repeats,
        target_ms=args.target_ms,
        settle_s=args.settle,
        data_dir=args.data_dir,
        json_path=args.json,
    )


def _load(
    cfg: DashboardBenchConfig, workdir: Path, settings: Settings, profiles: list[ServiceProfile]
) -> dict[str, Any]:
    """The load, or the one a reused directory already holds."""
    marker = workdir / LOAD_MARKER
    if marker.exists():
        done = orjson.loads(marker.read_bytes())
        if done.get("key") == cfg.load_key():
            _progress(f"reusing the data loaded at {done['loaded_at']} in {workdir}")
            result: dict[str, Any] = done["result"]
            return result
        raise RuntimeError(f"{workdir} holds a load made with other options; use another --data-dir")
    now_ms = time.time_ns() // 1_000_000
    jobs = day_jobs(day_plan(now_ms, cfg.days, cfg.events_per_day), profiles, cfg.seed, now_ms)
    _progress(
        f"loading {cfg.days} days of {len(profiles)} services through the sinks' row functions "
        f"({cfg.workers} simulating processes)"
    )
    result = in_child(load_year, settings, jobs, cfg.workers, cfg.optimize)
    result["loaded_at"] = datetime.fromtimestamp(now_ms / 1000, tz=UTC).isoformat()
    marker.write_bytes(
        orjson.dumps({"key": cfg.load_key(), "loaded_at": result["loaded_at"], "result": result})
    )
    return result


def _data_doc(cfg: DashboardBenchConfig, load: Mapping[str, Any], main: str) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = load["counts"]
    mine = counts.get(main, {})
    return {
        "how": (
            "simulated by producers.simulate and inserted through the sinks' row functions "
            "(pipeline.kpi_rows) into the sinks' tables; not through Kafka "
            "and the Faust worker"
        ),
        "main_service": main,
        "services": counts,
        "events": sum(sum(k.values()) for k in counts.values()),
        "main_per_day": {
            "all": sum(mine.values()) / cfg.days,
            **{kind: n / cfg.days for kind, n in mine.items()},
        },
        "rows": load["rows"],
        "load_s": load["load_s"],
        "optimize_s": load["optimize_s"],
        "loaded_at": load.get("loaded_at"),
    }


def run_bench(cfg: DashboardBenchConfig, workdir: Path) -> dict[str, Any]:
    import secrets

    profiles = default_services(cfg.other_services + 1)
    main, other = profiles[0].slug, profiles[-1].slug
    token = secrets.token_urlsafe(16)
    renders: list[Render] = []
    starts: list[float] = []
    check: dict[str, Any] = {}
    with contextlib.ExitStack() as exits:
        if cfg.backend == "embedded":
            stack = EmbeddedStack(workdir, token)
            settings = stack.settings
            load = _load(cfg, workdir, settings, profiles)
            for run in range(cfg.runs):
                try:
                    starts.append(stack.start())
                    if run == 0:
                        register_services(stack.base_url, token, profiles)
                    time.sleep(cfg.settle_s)
                    renders += measure_run(stack.base_url, run, main, other, cfg.periods, cfg.warm)
                    if run == 0:
                        check = kpi_check(stack.base_url, main)
                finally:
                    stack.stop()
        else:
            server = ServerStack(workdir)
            exits.callback(server.stop)
            server.start()
            register_services(server.base_url, server.admin_token, profiles)
            settings = server.settings
            load = _load(cfg, workdir, settings, profiles)
            for run in range(cfg.runs):
                starts.append(server.restart_api())
                time.sleep(cfg.settle_s)
                renders += measure_run(server.base_url, run, main, other, cfg.periods, cfg.warm)
                if run == 0:
                    check = kpi_check(server.base_url, main)
        queries: dict[str, Any] = {}
        if cfg.query_repeats:
            _progress("timing each of the page's queries alone")
            slugs = sorted(p.slug for p in profiles)
            queries = in_child(time_queries, settings, main, slugs, cfg.periods, cfg.query_repeats)
    return {
        "bench": "dashboard",
        "store": f"{'chdb' if cfg.backend == 'embedded' else 'ClickHouse server'} {load['version']}",
        "config": {k: v for k, v in asdict(cfg).items() if k != "json_path"},
        "method": {
            "first": (
                "the first request for a (page, period) in a fresh read process (embedded: a new "
                "perfplat up; server: a new perfplat api), after settle_s and one request for "
                "another service's page (process_first); its figures are computed for it"
            ),
            "warm": "later requests for the same page and period: served from the page cache",
            "server_ms": "Server-Timing render;dur of the answer",
            "wall_ms": "the client's time from sending the request to reading the whole answer",
            "target_met": "every measured period's median first render of the service page <= target_ms",
        },
        "data": _data_doc(cfg, load, main),
        "kpi_check_year": check,
        "read_process_start_s": [round(s, 1) for s in starts],
        "summary": summarise(renders, cfg.target_ms),
        "renders": [asdict(r) for r in renders],
        "queries": queries.get("timings", []),
    }


def main(args: argparse.Namespace) -> int:
    """0: measured (whether or not the target is met; see ``summary.target_met``); 1: the bench
    failed; 2: it cannot run here."""
    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        sys.stderr.write(f"perfplat bench dashboard: {exc}\n")
        return 2
    if cfg.backend == "server":
        from pipeline.clickhouse_server import find_server_binary

        if find_server_binary() is None:
            sys.stderr.write("perfplat bench dashboard: --backend server needs Debian's clickhouse-server\n")
            return 2
    import httpx

    with contextlib.ExitStack() as exits:
        if cfg.data_dir:
            workdir = Path(cfg.data_dir).resolve()
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            tmp = exits.enter_context(tempfile.TemporaryDirectory(prefix="perfplat-bench-dashboard-"))
            workdir = Path(tmp).resolve()
        try:
            doc = run_bench(cfg, workdir)
        except (RuntimeError, OSError, httpx.HTTPError) as exc:
            sys.stderr.write(f"perfplat bench dashboard: {exc}\n")
            return 1
    sys.stderr.write(format_report(doc))
    body = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    sys.stdout.write(body.decode() + "\n")
    if cfg.json_path:
        Path(cfg.json_path).write_bytes(body)
    return 0
