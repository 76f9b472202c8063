"""KPI reads on both backends (ClickHouse 18.16 and chdb): the builders and shapers of
``pipeline.kpi_sql`` and the routes of ``api.kpi_read``, against an independent count.

Literal events go where the processors put them — transactions and ratings into the Null tables
``tx_in`` and ``rating_in`` (whose views fill the minute, hour and day sums), probes and costs
into their tables, probes sent twice in separate inserts, costs re-posted out of order and older
cost posts retried (same id) after the posts that replaced them. They lie
in several minutes, hours, days, weeks, months, quarters and years, on a Sunday 23:59:59 /
Monday 00:00:00 edge that is also a quarter's, in the minute holding "now" (before and after
it) and on each previous window's last-minute edge. Every figure read back is compared with
``pipeline.kpi``'s aggregates of the same events, filtered by window in plain Python.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from api.errors import install_error_handlers
from api.kpi_read import kpi_router
from api.responses import JSONBody
from pipeline.clock import FrozenClock, iso_utc
from pipeline.kpi import (
    CHANNELS,
    OUTCOMES,
    JourneyAgg,
    JourneyFact,
    PeriodCost,
    ProbeFact,
    TxFact,
    WindowAggs,
    attributed_cost_e4,
    cross_service,
    journey_agg_of,
    kpi_summary,
    pounds,
    probe_agg_of,
    rating_agg_of,
    service_figures,
    tx_agg_of,
)
from pipeline.kpi_rows import (
    cost_columns,
    rating_columns,
    time_to_complete_ms,
    tx_columns,
)
from pipeline.kpi_sql import (
    SUMMARY_PERIODS,
    series_aggs,
    series_queries,
    series_query,
    window_aggs,
    window_queries,
)
from pipeline.store import Store
from pipeline.windows import PERIODS, Period, period_next, previous_so_far_window, so_far_window, window_of
from schemas.availability import AvailabilityEvent, probe_result
from schemas.cost import CostEvent
from schemas.journey import JourneyEvent
from schemas.migrations import migrate
from schemas.satisfaction import SatisfactionEvent
from schemas.transaction import TransactionEvent
from stream_processors.kpi_sink import journey_sink, probe_sink

pytestmark = pytest.mark.integration


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Epoch milliseconds of a UTC wall-clock time."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * 1000


NOW = ms(2024, 4, 3, 10, 15, 30) + 250  # a Wednesday, in the first week of Q2 2024
NOWS = {
    "wednesday": NOW,
    "monday-quarter-start": ms(2024, 4, 1),  # the first millisecond: every current window is empty
    "sunday-23:59:59.5": ms(2024, 3, 31, 23, 59, 59) + 500,
}
SERVICES = ["svc-a", "svc-b", "svc_c-9"]
GROUPS = {"dept": ["svc-b", "svc-a"], "solo": ["svc_c-9"], "ghosts": ["not-in-the-store"]}
EDGES = [
    ms(2023, 12, 31, 23, 59, 59),
    ms(2024, 1, 1),
    ms(2024, 3, 24, 23, 59, 59),  # Sunday / Monday
    ms(2024, 3, 25),
    ms(2024, 3, 31, 23, 59, 59),  # Sunday / Monday, Q1 / Q2
    ms(2024, 4, 1),
    ms(2024, 4, 1) + 1,
    ms(2024, 4, 3),
    ms(2024, 4, 2, 23, 59, 59),
    ms(2024, 4, 3, 9, 59, 59),
    ms(2024, 4, 3, 10),
    ms(2024, 4, 3, 10, 14, 59),
    ms(2024, 4, 3, 10, 15),
    NOW - 1,
    NOW,
    ms(2024, 4, 3, 10, 15, 59) + 999,  # after now, in the minute holding now: read
    ms(2024, 4, 3, 10, 16),  # the next minute: not read yet
    # the last minute of each previous "so far" window at NOW, and the minute after it
    *(
        t + d
        for t in (ms(2024, 4, 2), ms(2024, 3, 27), ms(2024, 3, 3), ms(2024, 1, 3), ms(2023, 4, 4))
        for d in (
            (10 * 3600 + 15 * 60 + 59) * 1000,
            (10 * 3600 + 16 * 60) * 1000,
        )
    ),
]


@dataclass
class Data:
    tx: list[TransactionEvent]
    ratings: list[SatisfactionEvent]
    probes: list[AvailabilityEvent]
    costs: list[CostEvent]
    journeys: list[JourneyEvent]


def _instant(rnd: random.Random) -> int:
    """A timestamp: mostly recent (so the minute and hour pieces hold data), some over 16 months."""
    r = rnd.random()
    if r < 0.35:
        return NOW - rnd.randrange(0, 3 * 3_600_000)
    if r < 0.65:
        return NOW - rnd.randrange(0, 12 * 86_400_000)
    return rnd.randrange(ms(2023, 1, 1), NOW)


def make_data(seed: int = 3) -> Data:
    rnd = random.Random(seed)
    tx: list[TransactionEvent] = []
    ratings: list[SatisfactionEvent] = []
    probes: dict[tuple[str, int], AvailabilityEvent] = {}
    for service, n in zip(SERVICES, (1200, 700, 250), strict=True):
        stamps = [_instant(rnd) for _ in range(n)] + (EDGES if service != "svc_c-9" else [])
        for i, ts in enumerate(stamps):
            outcome = rnd.choice(OUTCOMES)
            started = -1
            if outcome == "completed":
                started = rnd.choice([-1, ts, ts - 16, ts - 17, ts - rnd.randrange(0, 3_600_000), 0])
            cost = rnd.choice([-1, -1, 0, 12_345, 250_000])
            tx.append(
                TransactionEvent(
                    f"{service}-t{i}",
                    service,
                    f"x{i}",
                    outcome,
                    rnd.choice(CHANNELS),
                    cost,
                    ts,
                    started,
                    ts + 9,
                )
            )
        for i, ts in enumerate([_instant(rnd) for _ in range(n // 3)] + EDGES):
            ratings.append(SatisfactionEvent(f"{service}-r{i}", service, rnd.randint(1, 5), "", ts, ts))
        probe_times = list(range(ms(2023, 1, 1), NOW, 3_600_000)) + [
            ms(2024, 4, 3, 7, 15, 30) + 60_000 * k for k in range(200)
        ]
        for ts in probe_times + EDGES + [_instant(rnd) for _ in range(300)]:
            ts_s = ts // 1000 * 1000  # one result per second: the table's identity is (service, ts)
            rt = rnd.choice([-1, 0, 16, 17, 2**31 - 1, rnd.randrange(1, 5000), rnd.randrange(1, 5000)])
            up = rt >= 0 and rnd.random() < 0.9
            probes[service, ts_s] = probe_result(service, ts_s, up, rt, 0 if rt < 0 else 200 if up else 503)
    costs = [
        CostEvent("c1", "svc-a", "year", ms(2024, 1, 1), "all", 1_000_000_000, 2),
        CostEvent("c2", "svc-a", "quarter", ms(2024, 1, 1), "all", 30_000_000, 1),
        CostEvent("c3", "svc-a", "quarter", ms(2024, 4, 1), "digital", 99_999_999, 1),  # not "all"
        CostEvent("c4", "svc-a", "week", ms(2024, 4, 1), "all", 7_000_000, 1),
        CostEvent("c5", "svc-a", "day", ms(2024, 4, 3), "all", 86_400, 1),
        CostEvent("c6", "svc-b", "month", ms(2024, 3, 1), "all", 3_100_000, 1),
        CostEvent("c7", "svc-b", "month", ms(2024, 4, 1), "all", 3_000_000, 5),
        CostEvent("c8", "svc-b", "year", ms(2023, 1, 1), "all", 365, 1),
        CostEvent("c9", "svc-b", "quarter", ms(2023, 10, 1), "phone", 5, 1),
    ]
    journeys = []
    steps = [
        ("stage", "start"),
        ("stage", "details"),
        ("stage", "pay"),
        ("stage", "done"),
        ("stage", "Start"),
    ]
    steps += [("help", "info"), ("help", "<b>fees</b>"), ("error", "card-declined"), ("other", "start")]
    for service, n in zip(SERVICES, (900, 400, 0), strict=True):
        for i, ts in enumerate([_instant(rnd) for _ in range(n)] + (EDGES if n else [])):
            action, label = rnd.choice(steps)
            kind = "page" if action == "stage" else "click"
            journeys.append(
                JourneyEvent(f"{service}-j{i}", service, action, label, kind, "/p", ts, ts, i % 50)
            )
    return Data(tx, ratings, list(probes.values()), costs, journeys)


STALE_COSTS = [  # older posts of two keys above, arriving after them: they must not win
    CostEvent("s1", "svc-a", "year", ms(2024, 1, 1), "all", 5, 1),
    CostEvent("s2", "svc-b", "month", ms(2024, 4, 1), "all", 1, 4),
]
RETRIED_COSTS = [  # clients' retries (same id) arriving last: a post keeps its first arrival
    CostEvent("s1", "svc-a", "year", ms(2024, 1, 1), "all", 5, 9),
    CostEvent("s2", "svc-b", "month", ms(2024, 4, 1), "all", 1, 9),
    CostEvent("c5", "svc-a", "day", ms(2024, 4, 3), "all", 86_400, 9),
]


def load(store: Store, data: Data) -> None:
    migrate(store, store.database)
    store.insert("tx_in", tx_columns(data.tx))
    store.insert("rating_in", rating_columns(data.ratings))
    # probes through the worker's sink: all, then re-sent ones through fresh sinks (restarts)
    asyncio.run(probe_sink(store, 100).write(data.probes))
    rnd = random.Random(5)
    asyncio.run(probe_sink(store, 100).write(rnd.sample(data.probes, 500)))
    asyncio.run(probe_sink(store, 100).write(rnd.sample(data.probes, 100)))
    store.insert("cost_posts", cost_columns(data.costs))
    store.insert("cost_posts", cost_columns(STALE_COSTS))
    store.insert("cost_posts", cost_columns(RETRIED_COSTS))
    # journeys through the worker's sink, which stores each event once: the events, then some
    # of them again through a fresh sink (a restarted worker). Journey tables are partitioned by
    # day, and an insert may touch at most 100 partitions: one batch per quarter.
    resent = random.Random(6).sample(data.journeys, 300)
    for events in (data.journeys, resent):
        sink = journey_sink(store, 100)
        by_quarter: dict[int, list[JourneyEvent]] = {}
        for e in events:
            by_quarter.setdefault(e.ts_ms // (90 * 86_400_000), []).append(e)
        for chunk in by_quarter.values():
            asyncio.run(sink.write(chunk))


@pytest.fixture
def data() -> Data:
    return make_data()


@pytest.fixture
def loaded(store: Store, data: Data) -> Store:
    load(store, data)
    return store


# --- the independent count ------------------------------------------------------------------------------


def ceil_minute(t_ms: int) -> int:
    return -(-t_ms // 60_000) * 60_000


def read_window_ms(window: tuple[int, int]) -> tuple[int, int]:
    """The window as the read side reads it: whole minutes, the minute holding its end read whole."""
    start, end = window[0] // 60_000 * 60_000, ceil_minute(window[1])
    return start, max(start, end)


def expected_costs(data: Data, service: str) -> list[PeriodCost]:
    """Per (period, start) of channel ``all``: the post (id) whose first arrival is latest."""
    first: dict[tuple[str, int, str], CostEvent] = {}
    for c in [*data.costs, *STALE_COSTS, *RETRIED_COSTS]:
        if c.service == service and c.channel == "all":
            post = (c.period, c.start_ms, c.id)
            if post not in first or c.received_ms < first[post].received_ms:
                first[post] = c
    latest: dict[tuple[str, int], CostEvent] = {}
    for c in first.values():
        key = (c.period, c.start_ms)
        if key not in latest or (c.received_ms, c.id) > (latest[key].received_ms, latest[key].id):
            latest[key] = c
    out = []
    for c in latest.values():
        start = datetime.fromtimestamp(c.start_ms / 1000, tz=UTC)
        out.append(PeriodCost(c.amount_e4, c.start_ms, int(period_next(start, c.period).timestamp()) * 1000))  # type: ignore[arg-type]
    return out


def expected_journey(data: Data, service: str, start_ms: int, end_ms: int) -> JourneyAgg:
    """Starts are ``stage:start`` events, dones ``stage:done``, clicks the help and error events
    by label; every event id once (the test loads some twice)."""
    facts = []
    for e in {
        e.id: e for e in data.journeys if e.service == service and start_ms <= e.ts_ms < end_ms
    }.values():
        if e.action == "stage" and e.label in ("start", "done"):
            facts.append(JourneyFact(e.label))  # type: ignore[arg-type]
        elif e.action in ("help", "error"):
            facts.append(JourneyFact(e.action, e.label))  # type: ignore[arg-type]
    return journey_agg_of(facts)


def expected_aggs(data: Data, service: str, start_ms: int, end_ms: int) -> WindowAggs:
    """What the read side must find."""

    def inside(ts_ms: int) -> bool:
        return start_ms <= ts_ms < end_ms

    return WindowAggs(
        start_ms,
        end_ms,
        tx=tx_agg_of(
            TxFact(e.channel, e.outcome, e.cost_e4, time_to_complete_ms(e))  # type: ignore[arg-type]
            for e in data.tx
            if e.service == service and inside(e.ts_ms)
        ),
        ratings=rating_agg_of(r.rating for r in data.ratings if r.service == service and inside(r.ts_ms)),
        probes=probe_agg_of(
            ProbeFact(p.up, p.response_ms) for p in data.probes if p.service == service and inside(p.ts_ms)
        ),
        journey=expected_journey(data, service, start_ms, end_ms),
        period_cost_e4=attributed_cost_e4(expected_costs(data, service), start_ms, end_ms),
    )


def expected_summary(data: Data, service: str, period: Period, now_ms: int) -> dict[str, Any]:
    cur = expected_aggs(data, service, *read_window_ms(so_far_window(now_ms, period)))
    prev = expected_aggs(data, service, *read_window_ms(previous_so_far_window(now_ms, period)))
    full = kpi_summary(period, cur, prev)

    def vol(w: WindowAggs) -> dict[str, dict[str, int]]:
        return {c: {o: w.tx.count(c, o) for o in OUTCOMES} for c in CHANNELS}

    body = {
        "service": service,
        "period": period,
        "window": full["window"],
        "previous_window": full["previous_window"],
        "kpis": full["kpis"],
        "volumes": {"window": vol(cur), "previous_window": vol(prev)},
    }
    parsed: dict[str, Any] = orjson.loads(orjson.dumps(body))
    return parsed


SERIES_RANGES: dict[Period, tuple[int, int]] = {
    "minute": (NOW - 95 * 60_000, NOW),
    "hour": (NOW - 50 * 3_600_000, NOW),
    "day": (ms(2024, 3, 1, 12), NOW),
    "week": (ms(2023, 12, 20), NOW),
    "month": (ms(2023, 3, 15), NOW),
    "quarter": (ms(2023, 2, 1), ms(2024, 4, 1)),
    "year": (ms(2022, 6, 1), NOW),
}


def expected_buckets(
    data: Data, service: str, period: Period, start_ms: int, end_ms: int
) -> list[WindowAggs]:
    first, _ = window_of(start_ms, period)
    out = []
    while first < end_ms:
        _, nxt = window_of(first, period)
        out.append(expected_aggs(data, service, first, nxt))
        first = nxt
    return out


# --- the read path, builders to shapers --------------------------------------------------------------------


def read_windows(store: Store, services: list[str], start_ms: int, end_ms: int) -> dict[str, WindowAggs]:
    start_s, end_s = read_window_ms((start_ms, end_ms))
    rows = [
        store.query(sql, p)
        for sql, p in window_queries(store.database, services, start_s // 1000, end_s // 1000)
    ]
    return window_aggs(services, start_s // 1000, end_s // 1000, rows)


def test_summary_windows_equal_an_independent_count(loaded: Store, data: Data) -> None:
    for label, now_ms in NOWS.items():
        for period in SUMMARY_PERIODS:
            for window in (so_far_window(now_ms, period), previous_so_far_window(now_ms, period)):
                got = read_windows(loaded, SERVICES, *window)
                start, end = read_window_ms(window)
                for service in SERVICES:
                    assert got[service] == expected_aggs(data, service, start, end), (
                        label,
                        period,
                        window,
                        service,
                    )


def test_arbitrary_windows_equal_an_independent_count(loaded: Store, data: Data) -> None:
    windows = [
        (ms(2023, 12, 31, 22, 58, 30), ms(2024, 4, 2, 1, 2, 10)),  # minutes, hours, days, hours, minutes
        (ms(2024, 3, 31, 23, 59, 59), ms(2024, 4, 1) + 1),  # Sunday's last minute and Monday's first
        (ms(2024, 4, 3, 9, 59), ms(2024, 4, 3, 10, 1)),
        (ms(2023, 1, 1), NOW),
        (NOW, NOW),
        (ms(2000, 1, 1), ms(2001, 1, 1)),
    ]
    for window in windows:
        got = read_windows(loaded, SERVICES, *window)
        for service in SERVICES:
            assert got[service] == expected_aggs(data, service, *read_window_ms(window)), (window, service)
    assert read_windows(loaded, ["nobody"], ms(2023, 1, 1), NOW)["nobody"].tx.started == 0


def test_series_equal_an_independent_count(loaded: Store, data: Data) -> None:
    for period in PERIODS:
        start_ms, end_ms = SERIES_RANGES[period]
        for service in ("svc-a", "svc_c-9"):
            q = series_query(service, period, iso_utc(start_ms), iso_utc(end_ms), NOW)
            got = series_aggs(q, [loaded.query(sql, p) for sql, p in series_queries(loaded.database, q)])
            want = expected_buckets(data, service, period, start_ms, end_ms)
            assert [(w.start_ms, w.end_ms) for w in got] == [(w.start_ms, w.end_ms) for w in want], period
            assert got == want, (period, service)
            assert sum(w.tx.started for w in got) > 0, (period, service)


def test_a_probe_sent_again_counts_once_and_the_latest_cost_wins(store: Store) -> None:
    migrate(store, store.database)
    probe = probe_result("svc", ms(2024, 4, 3, 10), True, 17, 200)
    sink = probe_sink(store, 100)
    for write in (sink, sink, probe_sink(store, 100)):  # sent again, and again after a restart
        asyncio.run(write.write([probe]))
    for id_, amount, received in (("c1", 10_000, 3), ("c2", 20_000, 1), ("c3", 30_000, 2)):
        store.insert(
            "cost_posts",
            cost_columns([CostEvent(id_, "svc", "day", ms(2024, 4, 3), "all", amount, received)]),
        )
    store.insert("cost_posts", cost_columns([CostEvent("d", "svc", "day", ms(2024, 4, 3), "digital", 9, 9)]))
    aggs = read_windows(store, ["svc"], ms(2024, 4, 3), ms(2024, 4, 4))["svc"]
    assert (aggs.probes.probes, aggs.probes.up, aggs.probes.rt_sum_ms) == (1, 1, 17)
    assert dict(aggs.probes.rt_hist.counts) == {18: 1}
    assert aggs.period_cost_e4 == 10_000
    assert read_windows(store, ["svc"], ms(2024, 4, 3), ms(2024, 4, 3, 12))["svc"].period_cost_e4 == 5_000


# --- the routes ------------------------------------------------------------------------------------

CACHE_MS = 5_000


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


def app_for(store: Store, clock: FrozenClock) -> FastAPI:
    """The routes as ``api.app`` serves them: JSON bodies and the one error handler."""
    app = FastAPI(default_response_class=JSONBody)
    install_error_handlers(app, retry_after_s=1)
    app.include_router(
        kpi_router(store, clock, lambda s: s in SERVICES, lambda g: GROUPS.get(g, []), CACHE_MS)
    )
    return app


class Client:
    """HTTP requests into the app (httpx's ASGI transport), all on one event loop, as a server
    runs them. An exception inside the app is raised here, so no test passes over a 500."""

    def __init__(self, app: FastAPI) -> None:
        self._loop = asyncio.new_event_loop()
        self._http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://perfplat")

    def get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        return self._loop.run_until_complete(self._http.get(path, params=params))

    def settle(self) -> None:
        """Let whatever the app started in the background (a cache refresh) finish."""
        pending = asyncio.all_tasks(self._loop)
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending))

    def close(self) -> None:
        self._loop.run_until_complete(self._http.aclose())
        self._loop.run_until_complete(self._loop.shutdown_default_executor())
        self._loop.close()


@pytest.fixture
def client(loaded: Store, clock: FrozenClock) -> Iterator[Client]:
    c = Client(app_for(loaded, clock))
    yield c
    c.close()


def test_summary_route_equals_kpi_summary_of_the_independent_count(loaded: Store, data: Data) -> None:
    for label, now_ms in [*NOWS.items(), ("later", NOW + 10 * CACHE_MS)]:
        client = Client(app_for(loaded, FrozenClock(now_ms)))
        for period in SUMMARY_PERIODS:
            for service in SERVICES:
                r = client.get(f"/services/{service}/kpis", params={"period": period})
                assert r.status_code == 200, r.text
                assert r.headers["content-type"] == "application/json"
                want = expected_summary(data, service, period, now_ms)
                assert r.json() == want, (label, period, service)
        body = client.get("/services/svc-a/kpis").json()
        client.close()
    assert body == expected_summary(data, "svc-a", "week", NOW + 10 * CACHE_MS)
    assert body["kpis"]["journey_starts"]["value"] > 0
    assert body["kpis"]["journey_completion_rate"]["value"] is not None
    assert body["window"] == {"start": "2024-04-01T00:00:00+00:00", "end": "2024-04-03T10:17:00+00:00"}
    assert body["kpis"]["transactions_started"]["value"] > 0
    assert body["kpis"]["availability"]["value"] is not None
    assert body["kpis"]["cost_per_transaction"]["value"] is not None


def test_a_summary_is_served_from_cache_and_refreshed_after_the_ttl(
    client: Client, loaded: Store, clock: FrozenClock
) -> None:
    """Stale while revalidate: within ``cache_ms`` the cached answer; past it, the cached answer
    once more while one refresh runs, then the refreshed one."""
    path = "/services/svc-a/kpis?period=day"
    before = client.get(path).json()
    extra = TransactionEvent("late", "svc-a", "late", "started", "phone", -1, NOW - 1000, -1, NOW)
    loaded.insert("tx_in", tx_columns([extra]))
    clock.advance(CACHE_MS - 1)
    assert client.get(path).json() == before
    client.settle()
    assert client.get(path).json() == before
    clock.advance(1)
    assert client.get(path).json() == before
    client.settle()
    after = client.get(path).json()
    assert (
        after["kpis"]["transactions_started"]["value"] == before["kpis"]["transactions_started"]["value"] + 1
    )
    assert (
        after["volumes"]["window"]["phone"]["started"] == before["volumes"]["window"]["phone"]["started"] + 1
    )


def test_journey_route_gives_the_funnel_help_and_errors_of_an_independent_count(
    client: Client, data: Data
) -> None:
    for period in SUMMARY_PERIODS:
        r = client.get("/services/svc-a/journey", params={"period": period})
        assert r.status_code == 200, r.text
        body = r.json()
        start, end = read_window_ms(so_far_window(NOW, period))
        seen = {e.id: e for e in data.journeys if e.service == "svc-a" and start <= e.ts_ms < end}
        counts = Counter((e.action, e.label) for e in seen.values())
        assert body["window"] == {"start": iso_utc(start), "end": iso_utc(end)}
        assert (body["starts"], body["dones"]) == (counts["stage", "start"], counts["stage", "done"])
        assert body["completion_rate"] == pytest.approx(counts["stage", "done"] / counts["stage", "start"])
        stages = [(row["label"], row["events"]) for row in body["stages"]]
        assert stages[0] == ("start", counts["stage", "start"]) and stages[-1] == (
            "done",
            counts["stage", "done"],
        )
        middle = sorted(
            ((lb, n) for (a, lb), n in counts.items() if a == "stage" and lb not in ("start", "done")),
            key=lambda x: (-x[1], x[0]),
        )
        assert stages[1:-1] == middle, period
        assert all(
            row["share_of_starts"] == pytest.approx(row["events"] / counts["stage", "start"])
            for row in body["stages"]
        )
        for key, action in (("help", "help"), ("errors", "error")):
            want = sorted(
                ((lb, n) for (a, lb), n in counts.items() if a == action), key=lambda x: (-x[1], x[0])
            )
            assert [(row["label"], row["events"]) for row in body[key]] == want
            assert body[f"{key}_other"] == 0
    quiet = client.get("/services/svc_c-9/journey", params={"period": "day"}).json()
    assert (quiet["starts"], quiet["completion_rate"], quiet["help"]) == (0, None, [])
    assert [row["label"] for row in quiet["stages"]] == ["start", "done"]
    assert client.get("/services/nobody/journey").status_code == 404
    assert client.get("/services/svc-a/journey", params={"period": "hour"}).status_code == 400


def test_series_route_equals_the_independent_count(client: Client, data: Data) -> None:
    for period in PERIODS:
        start_ms, end_ms = SERIES_RANGES[period]
        params = {"period": period, "start_at": iso_utc(start_ms), "end_at": iso_utc(end_ms)}
        r = client.get("/services/svc-b/kpis/series", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        want = expected_buckets(data, "svc-b", period, start_ms, end_ms)
        assert body["service"] == "svc-b" and body["period"] == period
        assert body["start_at"] == iso_utc(want[0].start_ms) and body["end_at"] == iso_utc(want[-1].end_ms)
        assert len(body["data"]) == len(want), period
        for entry, w in zip(body["data"], want, strict=True):
            kpis = kpi_summary(period, w, WindowAggs(0, 0))["kpis"]
            values = {k: v["value"] for k, v in kpis.items()}
            window = {"_start_at": iso_utc(w.start_ms), "_end_at": iso_utc(w.end_ms)}
            assert entry == orjson.loads(orjson.dumps({**window, "kpis": values})), (period, window)


def test_series_route_defaults_and_offsets(client: Client) -> None:
    body = client.get("/services/svc-a/kpis/series").json()
    assert body["period"] == "day" and len(body["data"]) == 30
    assert body["data"][-1]["_start_at"] == "2024-04-03T00:00:00+00:00"
    body = client.get(
        "/services/svc-a/kpis/series",
        params={"period": "week", "start_at": "2024-04-01T00:30:00+01:00", "end_at": "2024-04-01T00:00:01Z"},
    ).json()
    assert [e["_start_at"] for e in body["data"]] == [
        "2024-03-25T00:00:00+00:00",
        "2024-04-01T00:00:00+00:00",
    ]


def test_group_route_is_cross_service_of_its_services(client: Client, data: Data) -> None:
    r = client.get("/groups/dept/kpis", params={"period": "quarter"})
    assert r.status_code == 200, r.text
    body = r.json()
    window = read_window_ms(so_far_window(NOW, "quarter"))
    aggs = {s: expected_aggs(data, s, *window) for s in ("svc-a", "svc-b")}
    figures = {s: service_figures(a.tx, a.ratings, a.period_cost_e4) for s, a in aggs.items()}
    cross = cross_service(figures.values())
    assert body["group"] == "dept" and body["period"] == "quarter"
    assert body["window"] == {"start": iso_utc(window[0]), "end": iso_utc(window[1])}
    assert body["figures"] == {
        "number_of_transactions": cross.number_of_transactions,
        "total_cost_gbp": cross.total_cost_gbp,
        "cost_per_transaction_gbp": cross.cost_per_transaction_gbp,
        "digital_takeup": cross.digital_takeup,
        "completion_rate": cross.completion_rate,
        "user_satisfaction_score": cross.user_satisfaction_score,
    }
    assert [e["service"] for e in body["services"]] == ["svc-a", "svc-b"]
    for entry in body["services"]:
        f = figures[entry["service"]]
        assert entry["figures"]["number_of_transactions"] == f.number_of_transactions > 0
        assert f.total_cost_e4 is not None
        assert entry["figures"]["total_cost_gbp"] == pounds(f.total_cost_e4)
        assert entry["figures"]["completion_rate"] == f.completion_rate
    ghosts = client.get("/groups/ghosts/kpis").json()
    assert ghosts["figures"]["number_of_transactions"] == 0
    assert ghosts["figures"]["total_cost_gbp"] is None


LONG = "a" * 10_000


BAD_REQUESTS: list[tuple[str, int, str | None]] = [
    ("/services/nobody/kpis", 404, "No service named nobody"),
    ("/services/nobody/kpis/series", 404, "No service named nobody"),
    ("/services/Svc-A/kpis", 404, "No service named Svc-A"),
    ("/services/..%2Fx/kpis", 404, None),
    ("/services/%27%20OR%201%3D1%20--/kpis", 404, "No service named ' OR 1=1 --"),
    ("/services/%25(services)s/kpis", 404, "No service named %(services)s"),
    (f"/services/{LONG}/kpis", 404, f"No service named {'a' * 80}…"),
    (f"/services/{LONG}/kpis/series", 404, f"No service named {'a' * 80}…"),
    ("/groups/nobody/kpis", 404, "No group named nobody"),
    ("/groups/%27%20OR%201%3D1/kpis", 404, "No group named ' OR 1=1"),
    (f"/groups/{LONG}/kpis", 404, f"No group named {'a' * 80}…"),
    ("/services/svc-a/kpis?period=minute", 400, "period must be one of day, week, month, quarter, year"),
    (
        "/services/svc-a/kpis?period=%27%20OR%201%3D1",
        400,
        "period must be one of day, week, month, quarter, year",
    ),
    (f"/services/svc-a/kpis?period={LONG}", 400, "period must be one of day, week, month, quarter, year"),
    ("/groups/dept/kpis?period=fortnight", 400, "period must be one of day, week, month, quarter, year"),
    ("/services/svc-a/kpis?perod=month", 400, "unknown parameter 'perod': this route takes period"),
    ("/services/svc-a/kpis?period=day&period=week", 400, "period is given more than once"),
    (
        "/services/svc-a/kpis/series?period=decade",
        400,
        "period must be one of minute, hour, day, week, month, quarter, year",
    ),
    (
        "/services/svc-a/kpis/series?start_at=yesterday",
        400,
        "start_at is not a valid datetime: use YYYY-MM-DDTHH:MM:SS with Z or an offset such as +01:00 "
        "(write + as %2B in a URL)",
    ),
    (f"/services/svc-a/kpis/series?end_at={LONG}", 400, None),
    ("/services/svc-a/kpis/series?start_at=2024-04-01T00:00:00+01:00", 400, None),  # + read as a space
    (
        "/services/svc-a/kpis/series?start_at=2024-04-02T00:00:00Z&end_at=2024-04-01T00:00:00Z",
        400,
        "start_at must be before end_at",
    ),
    (
        "/services/svc-a/kpis/series?period=minute&start_at=2024-04-01T00:00:00Z&end_at=2024-04-02T00:00:00Z",
        400,
        "a series holds at most 1000 buckets: from start_at to end_at there are 1440 minutes; "
        "ask for a shorter range or a longer period",
    ),
    ("/services/svc-a/kpis/series?start_at=1969-12-31T00:00:00Z", 400, None),
    (
        "/services/svc-a/kpis/series?step=1",
        400,
        "unknown parameter 'step': this route takes period, start_at, end_at",
    ),
]


@pytest.fixture
def bare_client(store: Store, clock: FrozenClock) -> Iterator[Client]:
    """The routes over the KPI tables with nothing in them: enough for requests that fail."""
    migrate(store, store.database)
    c = Client(app_for(store, clock))
    yield c
    c.close()


def test_bad_requests_get_a_clear_4xx(bare_client: Client) -> None:
    for path, status, message in BAD_REQUESTS:
        r = bare_client.get(path)
        assert r.status_code == status, (path[:100], r.text[:300])
        body = r.json()
        assert body["status"] == "error", path[:100]
        if message is not None:
            assert body["message"] == message, path[:100]
        else:
            assert body["message"] and len(body["message"]) < 300, path[:100]


def test_the_series_limit_is_1000_buckets(bare_client: Client) -> None:
    r = bare_client.get(
        "/services/svc-a/kpis/series",
        params={"period": "minute", "start_at": "2024-04-02T17:35:00Z", "end_at": "2024-04-03T10:15:00Z"},
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 1000
