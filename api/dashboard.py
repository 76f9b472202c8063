"""The dashboards, served by the read side as HTML rendered on the server (GOV.UK look, no
JavaScript needed but for live updates):

- ``GET /performance``: the whole platform's users now (live) and every service, busiest first;
- ``GET /performance/{slug}``: a service's page (live users now, KPI tiles with their change,
  charts with tables, the journey funnel and where users asked for help) or, when no service has
  that slug, a department's (its cross-service figures and its services);
- ``GET /performance/{service}/{chart}.csv``: a chart's figures as CSV;
- ``GET /performance/assets/{file}``: the styles (GOV.UK Frontend compiled at install time, see
  ``api/assets``) and the live-update script.

``?period=`` (day, week, month, quarter, year; week by default) picks the tiles' period and so the
charts' buckets (``pipeline.dashboard_view.CHART_PERIOD``). Figures come from the same readers as
the KPI API, so a page and ``/services/{s}/kpis`` agree; a page's figures are computed at most
once per ``cache_ms`` however many people read it. Every response carries ``Server-Timing``
(the time spent building it) and a Content-Security-Policy that allows no inline script or style.

Templates are Jinja2 with autoescaping on and strict undefined names: every name, label and
comment that reaches a page is escaped, and a template that names a missing value fails its
test rather than printing nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, Request
from markupsafe import Markup
from starlette.responses import HTMLResponse, Response

from api.kpi_read import KpiReader, query_params, shown
from api.read import LiveReader, StaleWhileRevalidate
from api.static_files import StaticFile
from pipeline.beacon import SLUG
from pipeline.clock import Clock
from pipeline.dashboard_view import (
    CHART_PERIOD,
    HEADLINE_TILES,
    MORE_TILES,
    PERIOD_NAMES,
    SERVICE_COLUMNS,
    Chart,
    csv_text,
    funnel_chart,
    help_chart,
    series_buckets,
    series_charts,
    service_rows,
    span_label,
    tiles,
)
from pipeline.errors import BadInput
from pipeline.kpi_sql import DEFAULT_PERIOD, SUMMARY_PERIODS, parse_period
from pipeline.services import ServiceConfig
from pipeline.windows import Period

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
ASSETS = HERE / "assets"
ASSET_TYPES = {".css": "text/css; charset=utf-8", ".js": "application/javascript; charset=utf-8"}
CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
POLL_MS = 2000
"""How often the live script polls users now where Server-Sent Events are not to be had."""
PAGE_PARAMS = ("period",)
TEXT = "text/plain; charset=utf-8"

ServiceList = Callable[[], Sequence[ServiceConfig]]


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["svg"] = Markup  # charts are built (and escaped) by pipeline.charts
    return env


def assets() -> dict[str, StaticFile]:
    """The files under ``/performance/assets``: ``govuk.css`` once built (``make assets``), and
    the committed ``dashboard.css`` and ``live.js``."""
    files = {}
    for path in (ASSETS / "dist" / "govuk.css", ASSETS / "dashboard.css", ASSETS / "live.js"):
        if path.is_file():
            files[path.name] = StaticFile.of(path.read_bytes(), ASSET_TYPES[path.suffix])
    return files


class Dashboard:
    """Builds each page's context from the KPI and live readers; a page is computed at most once
    per ``cache_ms`` per (page, period)."""

    def __init__(self, kpi: KpiReader, live: LiveReader, services: ServiceList, clock: Clock, cache_ms: int):
        self.kpi = kpi
        self.live = live
        self.services = services
        self._cache = StaleWhileRevalidate(clock, cache_ms)

    def _by_slug(self) -> dict[str, ServiceConfig]:
        return {c.slug: c for c in self.services() if SLUG.fullmatch(c.slug)}

    async def home(self, period: Period) -> dict[str, Any]:
        async def compute() -> dict[str, Any]:
            configs = self._by_slug()
            slugs = sorted(configs)
            figures, platform, *each = await asyncio.gather(
                self.kpi.figures_of("platform", slugs, period) if slugs else _no_figures(period),
                self.live.users_now(None),
                *(self.live.users_now(s) for s in slugs),
            )
            users = {s: u["users_now"] for s, u in zip(slugs, each, strict=True)}
            rows = service_rows(
                [(c.slug, c.name, c.group) for c in configs.values()],
                {f["service"]: f["figures"] for f in figures["services"]},
                users,
            )
            groups = sorted({c.group for c in configs.values() if c.group})
            return {"rows": rows, "platform_users": platform["users_now"], "groups": groups}

        result: dict[str, Any] = await self._cache.get(("home", period), compute)
        return result

    async def service(self, config: ServiceConfig, period: Period) -> dict[str, Any]:
        slug = config.slug

        async def compute() -> dict[str, Any]:
            chart_period = CHART_PERIOD[period]
            (summary, journey), (_, aggs), users = await asyncio.gather(
                self.kpi.summary_and_journey(slug, period),
                self.kpi.series_buckets(slug, chart_period, None, None),
                self.live.users_now(slug),
            )

            def shape() -> dict[str, Any]:  # charts are drawn off the event loop
                return {
                    "summary": summary,
                    "window": span_label(summary["window"]),
                    "headline": tiles(HEADLINE_TILES, summary),
                    "more": tiles(MORE_TILES, summary),
                    "charts": series_charts(series_buckets(period=chart_period, aggs=aggs), chart_period),
                    "journey": journey,
                    "funnel": funnel_chart(journey),
                    "help": help_chart(journey),
                    "users_now": users["users_now"],
                }

            return await asyncio.to_thread(shape)

        result: dict[str, Any] = await self._cache.get(("service", slug, period), compute)
        return result

    async def group(self, group: str, members: list[ServiceConfig], period: Period) -> dict[str, Any]:
        async def compute() -> dict[str, Any]:
            slugs = [c.slug for c in members]
            figures, *each = await asyncio.gather(
                self.kpi.figures_of(group, slugs, period), *(self.live.users_now(s) for s in slugs)
            )
            users = {s: u["users_now"] for s, u in zip(slugs, each, strict=True)}
            rows = service_rows(
                [(c.slug, c.name, c.group) for c in members],
                {f["service"]: f["figures"] for f in figures["services"]},
                users,
            )
            return {"figures": figures, "rows": rows, "window": span_label(figures["window"])}

        result: dict[str, Any] = await self._cache.get(("group", group, period), compute)
        return result

    async def chart(self, config: ServiceConfig, period: Period, name: str) -> Chart | None:
        page = await self.service(config, period)
        found: list[Chart] = [c for c in (*page["charts"], page["funnel"], page["help"]) if c.slug == name]
        return found[0] if found else None


async def _no_figures(period: Period) -> dict[str, Any]:
    return {"period": period, "services": []}


def _period(request: Request) -> Period:
    """``?period=`` (week by default); any other parameter, or one given twice, is a 400."""
    args = query_params(request, PAGE_PARAMS, "page")
    return parse_period(args.get("period"), SUMMARY_PERIODS, DEFAULT_PERIOD)


def dashboard_router(dashboard: Dashboard) -> APIRouter:
    env = templates()
    files = assets()
    router = APIRouter()

    rendered: dict[tuple[str, ...], tuple[dict[str, Any], str]] = {}

    def page(name: str, status: int, started: float, **context: Any) -> HTMLResponse:
        body = env.get_template(name).render(**context)
        return HTMLResponse(body, status_code=status, headers=_headers(started))

    async def cached_page(
        key: tuple[str, ...], name: str, figures: dict[str, Any], started: float, **context: Any
    ) -> HTMLResponse:
        """A page of cached ``figures``, rendered once per computation of them (in a worker
        thread, so the event loop goes on answering meanwhile)."""
        hit = rendered.get(key)
        if hit is None or hit[0] is not figures:
            template = env.get_template(name)
            body = await asyncio.to_thread(lambda: template.render(**figures, **context))
            rendered[key] = hit = (figures, body)
        return HTMLResponse(hit[1], headers=_headers(started))

    def error(status: int, message: str, started: float) -> HTMLResponse:
        title = "Page not found" if status == 404 else "There is a problem with this address"
        return page("error.html", status, started, title=title, message=message)

    def common(period: Period) -> dict[str, Any]:
        return {"period": period, "periods": SUMMARY_PERIODS, "period_names": PERIOD_NAMES}

    @router.get("/performance/assets/{name}", include_in_schema=False)
    async def asset(name: str, request: Request) -> Response:
        found = files.get(name)
        if found is None:
            hint = " (run `make assets`)" if name == "govuk.css" else ""
            return Response(f"No asset named {name[:80]}{hint}\n", status_code=404, media_type="text/plain")
        return found.response(request.headers)

    @router.get("/performance", include_in_schema=False)
    async def home(request: Request) -> Response:
        started = time.perf_counter()
        try:
            period = _period(request)
        except BadInput as exc:
            return error(exc.status, exc.message, started)
        figures = await dashboard.home(period)
        context = common(period) | {"columns": SERVICE_COLUMNS, "poll_ms": POLL_MS}
        return await cached_page(("home", period), "home.html", figures, started, **context)

    @router.get("/performance/{slug}", include_in_schema=False)
    async def service_or_group(slug: str, request: Request) -> Response:
        started = time.perf_counter()
        try:
            period = _period(request)
        except BadInput as exc:
            return error(exc.status, exc.message, started)
        by_slug = dashboard._by_slug() if SLUG.fullmatch(slug) else {}
        config = by_slug.get(slug)
        if config is not None:
            figures = await dashboard.service(config, period)
            context = common(period) | {"config": config, "poll_ms": POLL_MS}
            return await cached_page(("service", slug, period), "service.html", figures, started, **context)
        members = sorted((c for c in by_slug.values() if c.group == slug), key=lambda c: c.slug)
        if members:
            figures = await dashboard.group(slug, members, period)
            context = common(period) | {"group": slug, "columns": SERVICE_COLUMNS}
            return await cached_page(("group", slug, period), "group.html", figures, started, **context)
        return error(404, f"No service or department named {shown(slug)}", started)

    @router.get("/performance/{slug}/{name}.csv", include_in_schema=False)
    async def chart_csv(slug: str, name: str, request: Request) -> Response:
        started = time.perf_counter()
        try:
            period = _period(request)
        except BadInput as exc:
            return Response(
                exc.message + "\n", status_code=exc.status, media_type="text/plain; charset=utf-8"
            )
        config = dashboard._by_slug().get(slug) if SLUG.fullmatch(slug) else None
        chart = None if config is None else await dashboard.chart(config, period, name)
        if chart is None:
            what = f"No chart named {shown(name)}" if config else f"No service named {shown(slug)}"
            return Response(what + "\n", status_code=404, media_type=TEXT)
        headers = _headers(started)
        headers["Content-Disposition"] = f'attachment; filename="{slug}-{chart.slug}-{period}.csv"'
        return Response(csv_text(chart), media_type="text/csv; charset=utf-8", headers=headers)

    return router


def _headers(started: float) -> dict[str, str]:
    took_ms = (time.perf_counter() - started) * 1000
    return {
        "Server-Timing": f"render;dur={took_ms:.1f}",
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }
