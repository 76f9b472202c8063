"""Read routes for KPIs: a service's summary and series, a group's cross-service figures.

Each route parses, asks the core (``pipeline.kpi_sql``) for SQL, runs it on the store (the reads
of one request in parallel threads), and has the core shape the rows. Which services exist and
which belong to a group is asked of two plain callables, so these routes do not depend on how
the registry is kept.

A summary (and a group's figures) is computed at most once per ``cache_ms`` however many
dashboards ask (``api.read.StaleWhileRevalidate``): after the first, no reader waits for a
computation; an answer older than ``cache_ms`` is served while one refresh runs. Only known
services and groups reach the cache, so its keys are bounded by the registry. A series names
its own range, so it is not cached.

Errors: an unknown service or group, or a name that cannot be one (checked against
``pipeline.beacon.SLUG`` before anything reaches SQL), is 404 ``No service named X``; a bad
or unknown parameter is 400 with a message saying what is wrong (``pipeline.errors.BadInput``,
mapped in ``api.errors``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import APIRouter, Request

from api.read import StaleWhileRevalidate
from api.responses import JSONBody
from pipeline.beacon import SLUG
from pipeline.clock import Clock
from pipeline.errors import BadInput
from pipeline.journey_sql import journey_counts, journey_json
from pipeline.kpi import WindowAggs
from pipeline.kpi_sql import (
    DEFAULT_PERIOD,
    SERIES_PERIODS,
    SUMMARY_PERIODS,
    Query,
    SeriesQuery,
    group_json,
    journey_window_sql,
    parse_period,
    read_window,
    series_aggs,
    series_json,
    series_queries,
    series_query,
    summary_json,
    window_aggs,
    window_queries,
)
from pipeline.store import Store
from pipeline.windows import Period, previous_so_far_window, so_far_window

ServiceExists = Callable[[str], bool]
T = TypeVar("T")
GroupServices = Callable[[str], Sequence[str]]
MAX_NAME_SHOWN = 80
_NO_STORE = {"Cache-Control": "no-cache"}


def shown(name: str) -> str:
    return name if len(name) <= MAX_NAME_SHOWN else name[:MAX_NAME_SHOWN] + "…"


class KpiReader:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        service_exists: ServiceExists,
        group_services: GroupServices,
        cache_ms: int,
    ) -> None:
        self.store = store
        self.clock = clock
        self._exists = service_exists
        self._members = group_services
        self._cache = StaleWhileRevalidate(clock, cache_ms)

    async def _run(self, queries: Sequence[Query]) -> list[list[tuple[Any, ...]]]:
        return list(
            await asyncio.gather(*(asyncio.to_thread(self.store.query_values, sql, p) for sql, p in queries))
        )

    def service(self, name: str) -> str:
        """``name`` if it is a known service's slug; 404 otherwise."""
        if not SLUG.fullmatch(name) or not self._exists(name):
            raise BadInput(f"No service named {shown(name)}", 404)
        return name

    def group(self, name: str) -> list[str]:
        """The slugs of a known group's services; 404 for a group with none."""
        members = (
            sorted({s for s in self._members(name) if SLUG.fullmatch(s)}) if SLUG.fullmatch(name) else []
        )
        if not members:
            raise BadInput(f"No group named {shown(name)}", 404)
        return members

    async def _windows(self, services: list[str], windows: list[tuple[int, int]]) -> list[dict[str, Any]]:
        db = self.store.database
        per_window = [window_queries(db, services, *w) for w in windows]
        rows = await self._run([q for qs in per_window for q in qs])
        n = len(per_window[0]) if per_window else 0
        return await _shaped(
            lambda: [window_aggs(services, *w, rows[n * i : n * i + n]) for i, w in enumerate(windows)]
        )

    async def summary(self, service: str, period: Period) -> dict[str, Any]:
        return (await self.summary_and_journey(service, period))[0]

    async def summary_and_journey(
        self, service: str, period: Period
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """:meth:`summary` and :meth:`journey` from one read of the windows: the journey funnel is
        the summary's own journey rows, which saves a dashboard the costliest query of the two
        (journey counts merge a set of event ids per minute)."""
        slug = self.service(service)

        async def compute() -> tuple[dict[str, Any], dict[str, Any]]:
            now_ms = self.clock.now_ms()
            current = read_window(*so_far_window(now_ms, period))
            previous = read_window(*previous_so_far_window(now_ms, period))
            db = self.store.database
            current_queries = window_queries(db, [slug], *current)
            n = len(current_queries)
            rows = await self._run([*current_queries, *window_queries(db, [slug], *previous)])

            def shape() -> tuple[dict[str, Any], dict[str, Any]]:
                cur = window_aggs([slug], *current, rows[:n])[slug]
                prev = window_aggs([slug], *previous, rows[n:])[slug]
                journey_rows = rows[n - 1]  # window_queries reads the journeys last
                counts = journey_counts(journey_rows).get(slug, {})
                return summary_json(slug, period, cur, prev), journey_json(slug, period, current, counts)

            return await _shaped(shape)

        result: tuple[dict[str, Any], dict[str, Any]] = await self._cache.get(
            ("summary+journey", slug, period), compute
        )
        return result

    async def series_buckets(
        self, service: str, period: Period, start_at: str | None, end_at: str | None
    ) -> tuple[SeriesQuery, list[WindowAggs]]:
        """A series' buckets, each with its sums (``series_json`` shapes them)."""
        q = series_query(self.service(service), period, start_at, end_at, self.clock.now_ms())
        rows = await self._run(series_queries(self.store.database, q))
        return q, await _shaped(lambda: series_aggs(q, rows))

    async def series(
        self, service: str, period: Period, start_at: str | None, end_at: str | None
    ) -> dict[str, Any]:
        q, buckets = await self.series_buckets(service, period, start_at, end_at)
        return await _shaped(lambda: series_json(q, buckets))

    async def journey(self, service: str, period: Period) -> dict[str, Any]:
        slug = self.service(service)

        async def compute() -> dict[str, Any]:
            window = read_window(*so_far_window(self.clock.now_ms(), period))
            (rows,) = await self._run([journey_window_sql(self.store.database, [slug], *window)])
            return await _shaped(
                lambda: journey_json(slug, period, window, journey_counts(rows).get(slug, {}))
            )

        result: dict[str, Any] = await self._cache.get(("journey", slug, period), compute)
        return result

    async def group_figures(self, group: str, period: Period) -> dict[str, Any]:
        return await self.figures_of(group, self.group(group), period)

    async def figures_of(self, name: str, services: list[str], period: Period) -> dict[str, Any]:
        """``group_json`` of ``services`` (known slugs) under ``name``, for the period so far."""

        async def compute() -> dict[str, Any]:
            window = read_window(*so_far_window(self.clock.now_ms(), period))
            (aggs,) = await self._windows(services, [window])
            return await _shaped(lambda: group_json(name, period, window, aggs))

        result: dict[str, Any] = await self._cache.get(("group", name, period, tuple(services)), compute)
        return result


async def _shaped(shape: Callable[[], T]) -> T:
    """Rows shaped into figures in a worker thread: folding thousands of rows is pure Python that
    would otherwise hold the event loop, and every request answered from the cache meanwhile."""
    return await asyncio.to_thread(shape)


def query_params(request: Request, allowed: tuple[str, ...], what: str = "route") -> dict[str, str]:
    """The query parameters, each given at most once and each one of ``allowed``; the message of
    an unknown one says what ``what`` (this route, this page) takes."""
    out: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name not in allowed:
            raise BadInput(f"unknown parameter {shown(name)!r}: this {what} takes {', '.join(allowed)}")
        if name in out:
            raise BadInput(f"{name} is given more than once")
        out[name] = value
    return out


def kpi_router(
    store: Store,
    clock: Clock,
    service_exists: ServiceExists,
    group_services: GroupServices,
    cache_ms: int,
) -> APIRouter:
    """``GET /services/{service}/kpis``, ``GET /services/{service}/kpis/series``,
    ``GET /services/{service}/journey`` and ``GET /groups/{group}/kpis``. Needs the app's error
    handlers (``api.errors``)."""
    reader = KpiReader(store, clock, service_exists, group_services, cache_ms)
    router = APIRouter()

    @router.get("/services/{service}/kpis")
    async def service_kpis(service: str, request: Request) -> JSONBody:
        """Every KPI for the period so far, against the same span of the previous period."""
        reader.service(service)
        args = query_params(request, ("period",))
        period = parse_period(args.get("period"), SUMMARY_PERIODS, DEFAULT_PERIOD)
        return JSONBody(await reader.summary(service, period), headers=_NO_STORE)

    @router.get("/services/{service}/kpis/series")
    async def service_kpi_series(service: str, request: Request) -> JSONBody:
        """Every KPI per bucket of ``period`` from ``start_at`` to ``end_at``."""
        reader.service(service)
        args = query_params(request, ("period", "start_at", "end_at"))
        period = parse_period(args.get("period"), SERIES_PERIODS, "day")
        body = await reader.series(service, period, args.get("start_at"), args.get("end_at"))
        return JSONBody(body, headers=_NO_STORE)

    @router.get("/services/{service}/journey")
    async def service_journey(service: str, request: Request) -> JSONBody:
        """The journey funnel for the period so far: events per stage, starts, dones, completion
        rate, and help and error events by label."""
        reader.service(service)
        args = query_params(request, ("period",))
        period = parse_period(args.get("period"), SUMMARY_PERIODS, DEFAULT_PERIOD)
        return JSONBody(await reader.journey(service, period), headers=_NO_STORE)

    @router.get("/groups/{group}/kpis")
    async def group_kpis(group: str, request: Request) -> JSONBody:
        """The group's services' figures for the period so far, and across them."""
        reader.group(group)
        args = query_params(request, ("period",))
        period = parse_period(args.get("period"), SUMMARY_PERIODS, DEFAULT_PERIOD)
        return JSONBody(await reader.group_figures(group, period), headers=_NO_STORE)

    return router
