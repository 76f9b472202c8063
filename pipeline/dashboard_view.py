"""What a dashboard page shows, from the KPI read API's figures: formatted tiles with their period
and change, charts with their tables and CSV rows, the journey funnel, and the home page's list of
services. Pure: figures (as the read API's JSON shapes them) in, plain values out. The templates
(``api/templates``) only lay these out; they escape every string.

Which completion rate a page shows: the headline tile is the *transactions* completion rate
(completed ÷ started in the window, the original's formula, from the events services send); the
journey funnel beside it shows the rate from page events (``stage:done`` ÷ ``stage:start``),
labelled as such.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.charts import Line, bar_chart, line_chart
from pipeline.clock import iso_utc
from pipeline.kpi import CHANNELS, WindowAggs
from pipeline.kpi_sql import kpi_values, volumes
from pipeline.windows import Period

Format = Callable[[float], str]
NO_FIGURE = "\u2013"
"""An en dash: shown in a table cell that has no figure."""

CHANNEL_NAMES = {
    "digital": "Digital",
    "phone": "Phone",
    "paper": "Paper",
    "face_to_face": "Face to face",
    "assisted_digital": "Assisted digital",
}
PERIOD_NAMES: dict[str, tuple[str, str]] = {
    "day": ("Today so far", "the same part of yesterday"),
    "week": ("This week so far", "the same part of last week"),
    "month": ("This month so far", "the same part of last month"),
    "quarter": ("This quarter so far", "the same part of last quarter"),
    "year": ("This year so far", "the same part of last year"),
}
CHART_PERIOD: dict[str, Period] = {
    "day": "hour",
    "week": "day",
    "month": "day",
    "quarter": "week",
    "year": "month",
}
"""The bucket of a page's charts for the period its tiles show."""


# --- numbers as people read them ------------------------------------------------------------------


def count(v: float) -> str:
    return f"{round(v):,}"


def gbp(v: float) -> str:
    return f"£{v:,.2f}"


def percent(ratio: float) -> str:
    """A 0..1 ratio as a percentage: one decimal place, none for whole numbers."""
    return f"{ratio * 100:.1f}".removesuffix(".0") + "%"


def duration(ms: float) -> str:
    """``850 ms``, ``12.3 s``, ``8 min 12 s``, ``3 h 05 min``."""
    if ms < 1000:
        return f"{round(ms)} ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


FORMATS: dict[str, Format] = {"count": count, "GBP": gbp, "ratio": percent, "ms": duration}


def when(iso: str) -> datetime:
    return datetime.fromisoformat(iso).astimezone(UTC)


def day_label(iso: str) -> str:
    d = when(iso)
    return f"{d.day} {d:%b %Y}"


def span_label(window: Mapping[str, str]) -> str:
    """``30 Nov 2026 to 6 Dec 2026, 00:38 UTC``: a window from its start to its (exclusive) end."""
    start, end = when(window["start"]), when(window["end"])
    return f"{start.day} {start:%b %Y} to {end.day} {end:%b %Y}, {end:%H:%M} UTC"


def bucket_label(iso: str, period: Period) -> str:
    d = when(iso)
    if period in ("minute", "hour"):
        return f"{d:%H:%M}"
    if period == "day":
        return f"{d.day} {d:%b}"
    if period == "week":
        return f"w/c {d.day} {d:%b}"
    if period in ("month", "quarter"):
        return f"{d:%b %Y}"
    return f"{d:%Y}"


# --- KPI tiles ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tile:
    key: str
    title: str
    value: str
    """The figure as shown, or ``No data``."""
    change: str
    """``Up 2.1 percentage points on the same part of last week``, or why there is no change."""
    direction: str
    """``up``, ``down``, ``same`` or ``none`` (no figure to compare)."""
    tone: str
    """``good``, ``bad`` or ``neutral``: whether the change is for the better."""


@dataclass(frozen=True, slots=True)
class TileSpec:
    key: str
    title: str
    higher_is_better: bool | None


HEADLINE_TILES = (
    TileSpec("cost_per_transaction", "Cost per transaction", False),
    TileSpec("user_satisfaction_score", "User satisfaction", True),
    TileSpec("completion_rate", "Completion rate", True),
    TileSpec("digital_takeup", "Digital take-up", True),
)
MORE_TILES = (
    TileSpec("transactions_completed", "Transactions completed", None),
    TileSpec("availability", "Availability", True),
    TileSpec("response_time_mean", "Mean response time", False),
    TileSpec("time_to_complete_median", "Median time to complete", False),
    TileSpec("journey_completion_rate", "Completion rate from page journeys", True),
    TileSpec("satisfaction_responses", "Satisfaction responses", None),
)


def tile(spec: TileSpec, kpi: Mapping[str, Any], period: str) -> Tile:
    """One KPI of a summary (``{"value", "unit", "previous", "change"}``) as a tile."""
    fmt = FORMATS.get(kpi.get("unit", "count"), count)
    value, previous = kpi.get("value"), kpi.get("previous")
    against = PERIOD_NAMES.get(period, PERIOD_NAMES["week"])[1]
    shown = "No data" if value is None else fmt(value)
    if value is None or previous is None:
        return Tile(spec.key, spec.title, shown, f"No figure for {against} to compare", "none", "neutral")
    absolute = value - previous
    if absolute == 0:
        return Tile(spec.key, spec.title, shown, f"Same as {against}", "same", "neutral")
    direction = "up" if absolute > 0 else "down"
    if kpi.get("unit") == "ratio":
        amount = f"{abs(absolute) * 100:.1f}".removesuffix(".0") + " percentage points"
    else:
        relative = kpi.get("change", {}).get("relative")
        amount = fmt(abs(absolute)) if relative is None else percent(abs(relative))
    tone = (
        "neutral"
        if spec.higher_is_better is None
        else ("good" if (absolute > 0) == spec.higher_is_better else "bad")
    )
    return Tile(
        spec.key, spec.title, shown, f"{direction.capitalize()} {amount} on {against}", direction, tone
    )


def tiles(specs: Sequence[TileSpec], summary: Mapping[str, Any]) -> list[Tile]:
    kpis = summary["kpis"]
    return [tile(s, kpis[s.key], summary["period"]) for s in specs if s.key in kpis]


# --- charts, their tables and CSV -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart with the same figures as a table (shown) and as CSV rows (raw)."""

    slug: str
    """Names its CSV: ``/performance/{service}/{slug}.csv``."""
    title: str
    svg: str
    columns: list[str]
    rows: list[list[str]]
    csv_columns: list[str]
    csv_rows: list[list[Any]] = field(default_factory=list)


def _series_chart(
    slug: str,
    title: str,
    buckets: Sequence[Mapping[str, Any]],
    period: Period,
    lines: Sequence[Line],
    fmt: Format,
    y_max: float | None = None,
) -> Chart:
    labels = [bucket_label(b["_start_at"], period) for b in buckets]
    svg = line_chart(f"chart-{slug}", title, labels, lines, fmt, y_max)
    rows = [
        [labels[i], *(NO_FIGURE if ln.values[i] is None else fmt(ln.values[i]) for ln in lines)]  # type: ignore[arg-type]
        for i in range(len(buckets))
    ]
    csv_rows = [
        [b["_start_at"], b["_end_at"], *(ln.values[i] for ln in lines)] for i, b in enumerate(buckets)
    ]
    return Chart(
        slug,
        title,
        svg,
        ["Period", *(ln.name for ln in lines)],
        rows,
        ["_start_at", "_end_at", *(_csv_name(ln.name) for ln in lines)],
        csv_rows,
    )


def _csv_name(name: str) -> str:
    return name.lower().replace(" ", "_")


def volume_chart(buckets: Sequence[Mapping[str, Any]], period: Period) -> Chart:
    """Transactions completed per bucket by channel: the channels with any transactions in the
    range (digital when there are none)."""
    used = [c for c in CHANNELS if any(b["volumes"][c]["completed"] for b in buckets)] or ["digital"]
    lines = [Line(CHANNEL_NAMES[c], [float(b["volumes"][c]["completed"]) for b in buckets]) for c in used]
    return _series_chart("volumes", "Transactions completed, by channel", buckets, period, lines, count)


def ratio_chart(
    slug: str, title: str, key: str, name: str, buckets: Sequence[Mapping[str, Any]], period: Period
) -> Chart:
    lines = [Line(name, [b["kpis"][key] for b in buckets])]
    return _series_chart(slug, title, buckets, period, lines, percent, 1.0)


def completion_chart(buckets: Sequence[Mapping[str, Any]], period: Period) -> Chart:
    """Completion rate per bucket: from transactions (completed ÷ started, every channel), and
    from page journeys (done ÷ start stages) as a second line when the range has journey
    starts; the journeys' line alone when it has journeys but no transactions."""
    journeys = any(b["kpis"]["journey_starts"] for b in buckets)
    transactions = any(b["kpis"]["transactions_started"] for b in buckets) or not journeys
    lines = [
        Line(name, [b["kpis"][key] for b in buckets])
        for name, key, shown in (
            ("Completion rate", "completion_rate", transactions),
            ("Completion rate from page journeys", "journey_completion_rate", journeys),
        )
        if shown
    ]
    return _series_chart("completion-rate", "Completion rate", buckets, period, lines, percent, 1.0)


def series_charts(buckets: Sequence[Mapping[str, Any]], period: Period) -> list[Chart]:
    """The service page's charts: volumes by channel, completion rate, availability."""
    return [
        volume_chart(buckets, period),
        completion_chart(buckets, period),
        ratio_chart("availability", "Availability", "availability", "Availability", buckets, period),
    ]


def funnel_chart(journey: Mapping[str, Any]) -> Chart:
    """The stage funnel: events per stage in journey order, with each stage's share of starts and
    the drop-off from the stage before."""
    stages = journey["stages"]
    bars, rows, csv_rows = [], [], []
    before: int | None = None
    for s in stages:
        events = s["events"]
        drop = None if before is None or before == 0 else (before - events) / before
        note = percent(s["share_of_starts"]) + " of starts" if s["share_of_starts"] is not None else ""
        bars.append((s["label"], float(events), note))
        rows.append(
            [
                s["label"],
                count(events),
                NO_FIGURE if s["share_of_starts"] is None else percent(s["share_of_starts"]),
                NO_FIGURE if drop is None else percent(drop),
            ]
        )
        csv_rows.append([s["label"], events, s["share_of_starts"], drop])
        before = events
    return Chart(
        "funnel",
        "Users at each stage of the journey",
        bar_chart("chart-funnel", "Users at each stage of the journey", bars, count),
        ["Stage", "Events", "Share of starts", "Drop-off from the stage before"],
        rows,
        ["stage", "events", "share_of_starts", "drop_off"],
        csv_rows,
    )


def help_chart(journey: Mapping[str, Any]) -> Chart:
    """Where users asked for help (help clicks by label), most first."""
    items = sorted(journey["help"], key=lambda h: (-h["events"], h["label"]))
    if journey.get("help_other"):
        items.append({"label": "Other labels", "events": journey["help_other"]})
    bars = [(h["label"], float(h["events"]), "") for h in items]
    return Chart(
        "help",
        "Where users asked for help",
        bar_chart("chart-help", "Where users asked for help", bars, count),
        ["Help label", "Events"],
        [[h["label"], count(h["events"])] for h in items],
        ["label", "events"],
        [[h["label"], h["events"]] for h in items],
    )


def csv_text(chart: Chart) -> str:
    """The chart's figures as CSV (RFC 4180, ``\\r\\n`` line ends); a cell a spreadsheet would
    run as a formula is prefixed with ``'``."""
    lines = [",".join(_csv_cell(c) for c in chart.csv_columns)]
    lines += [",".join(_csv_cell(c) for c in row) for row in chart.csv_rows]
    return "\r\n".join(lines) + "\r\n"


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    text = _float_cell(value) if isinstance(value, float) else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text):
        text = "'" + text
    if any(ch in text for ch in ',"\r\n'):
        text = '"' + text.replace('"', '""') + '"'
    return text


def _float_cell(value: float) -> str:
    """A whole number without ``.0`` (a count), others as Python writes them; no inf or NaN."""
    if not math.isfinite(value):
        return ""
    return str(int(value)) if value.is_integer() else repr(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --- the home page --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceRow:
    slug: str
    name: str
    group: str
    transactions: int
    cells: list[str]
    """Users now, transactions, completion rate, digital take-up, satisfaction, cost per transaction."""


SERVICE_COLUMNS = (
    "Users now",
    "Transactions completed",
    "Completion rate",
    "Digital take-up",
    "User satisfaction",
    "Cost per transaction",
)


def _or_dash(value: float | None, fmt: Format) -> str:
    return NO_FIGURE if value is None else fmt(value)


def service_rows(
    services: Sequence[tuple[str, str, str]],
    figures: Mapping[str, Mapping[str, Any]],
    users_now: Mapping[str, int],
) -> list[ServiceRow]:
    """One row per ``(slug, name, group)``, busiest first (transactions completed, then name).
    ``figures`` is each service's ``figures_json``; a service with none shows dashes."""
    rows = []
    for slug, name, group in services:
        f = figures.get(slug, {})
        n = int(f.get("number_of_transactions") or 0)
        cells = [
            count(users_now.get(slug, 0)),
            count(n),
            _or_dash(f.get("completion_rate"), percent),
            _or_dash(f.get("digital_takeup"), percent),
            _or_dash(f.get("user_satisfaction_score"), percent),
            _or_dash(f.get("cost_per_transaction_gbp"), gbp),
        ]
        rows.append(ServiceRow(slug, name or slug, group, n, cells))
    return sorted(rows, key=lambda r: (-r.transactions, r.name.lower(), r.slug))


def series_buckets(period: Period, aggs: Sequence[WindowAggs]) -> list[dict[str, Any]]:
    """A series' buckets as the charts read them: each bucket's window, KPI values (as
    ``series_json`` has them) and volumes by channel and outcome."""
    return [
        {
            "_start_at": iso_utc(w.start_ms),
            "_end_at": iso_utc(w.end_ms),
            "kpis": kpi_values(period, w),
            "volumes": volumes(w.tx),
        }
        for w in aggs
    ]
