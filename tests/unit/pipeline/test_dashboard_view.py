"""The dashboard's pure core: numbers as people read them, tiles with their change, charts with
their tables and CSV, the funnel and the home page's order, from literal figures."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from pipeline.charts import Line, bar_chart, describe, line_chart, nice_max
from pipeline.dashboard_view import (
    HEADLINE_TILES,
    NO_FIGURE,
    TileSpec,
    bucket_label,
    completion_chart,
    count,
    csv_text,
    duration,
    funnel_chart,
    gbp,
    help_chart,
    percent,
    service_rows,
    span_label,
    tile,
    tiles,
    volume_chart,
)

HOSTILE = '<script>alert("x")</script>&<img src=x onerror=alert(1)>'


def kpi(value: Any, unit: str, previous: Any, relative: Any = None) -> dict[str, Any]:
    absolute = None if value is None or previous is None else value - previous
    return {
        "value": value,
        "unit": unit,
        "previous": previous,
        "change": {"absolute": absolute, "relative": relative},
    }


@pytest.mark.parametrize(
    ("fmt", "value", "shown"),
    [
        (count, 0, "0"),
        (count, 1234567, "1,234,567"),
        (count, 2.6, "3"),
        (gbp, 2.645, "£2.65"),
        (gbp, 12345.5, "£12,345.50"),
        (percent, 0.0, "0%"),
        (percent, 1.0, "100%"),
        (percent, 0.84657, "84.7%"),
        (percent, 0.5, "50%"),
        (duration, 850, "850 ms"),
        (duration, 12_300, "12.3 s"),
        (duration, 491_520, "8 min 11 s"),
        (duration, 3 * 3600_000 + 5 * 60_000, "3 h 05 min"),
    ],
)
def test_numbers_read_as_people_read_them(fmt: Any, value: float, shown: str) -> None:
    assert fmt(value) == shown


def test_labels_of_windows_and_buckets() -> None:
    window = {"start": "2026-11-30T00:00:00+00:00", "end": "2026-12-06T00:38:00+00:00"}
    assert span_label(window) == "30 Nov 2026 to 6 Dec 2026, 00:38 UTC"
    at = "2026-11-30T14:00:00+00:00"
    assert [bucket_label(at, p) for p in ("hour", "day", "week", "month", "quarter", "year")] == [
        "14:00",
        "30 Nov",
        "w/c 30 Nov",
        "Nov 2026",
        "Nov 2026",
        "2026",
    ]


def test_a_ratio_tile_changes_in_percentage_points_and_says_whether_that_is_good() -> None:
    spec = TileSpec("completion_rate", "Completion rate", True)
    t = tile(spec, kpi(0.75, "ratio", 0.70, 0.0714), "week")
    assert (t.value, t.direction, t.tone) == ("75%", "up", "good")
    assert t.change == "Up 5 percentage points on the same part of last week"
    down = tile(spec, kpi(0.6, "ratio", 0.75), "day")
    assert (down.direction, down.tone) == ("down", "bad")
    assert down.change == "Down 15 percentage points on the same part of yesterday"


def test_a_cost_tile_going_down_is_good_and_changes_by_its_relative_change() -> None:
    t = tile(
        TileSpec("cost_per_transaction", "Cost per transaction", False), kpi(2.0, "GBP", 2.5, -0.2), "month"
    )
    assert (t.value, t.direction, t.tone) == ("£2.00", "down", "good")
    assert t.change == "Down 20% on the same part of last month"


def test_a_count_from_nothing_changes_by_its_amount_and_has_no_tone() -> None:
    t = tile(
        TileSpec("transactions_completed", "Transactions completed", None), kpi(6370, "count", 0), "week"
    )
    assert (t.value, t.change, t.direction, t.tone) == (
        "6,370",
        "Up 6,370 on the same part of last week",
        "up",
        "neutral",
    )


def test_tiles_without_a_figure_say_so() -> None:
    spec = TileSpec("user_satisfaction_score", "User satisfaction", True)
    empty = tile(spec, kpi(None, "ratio", 0.8), "week")
    assert (empty.value, empty.direction) == ("No data", "none")
    assert empty.change == "No figure for the same part of last week to compare"
    first = tile(spec, kpi(0.8, "ratio", None), "year")
    assert (first.value, first.direction, first.change) == (
        "80%",
        "none",
        "No figure for the same part of last year to compare",
    )
    same = tile(spec, kpi(0.8, "ratio", 0.8), "quarter")
    assert (same.direction, same.change) == ("same", "Same as the same part of last quarter")


def test_headline_tiles_are_the_four_kpis_in_order() -> None:
    summary = {
        "period": "week",
        "kpis": {
            "cost_per_transaction": kpi(1.5, "GBP", None),
            "user_satisfaction_score": kpi(0.9, "ratio", None),
            "completion_rate": kpi(None, "ratio", None),
            "digital_takeup": kpi(0.25, "ratio", None),
            "transactions_completed": kpi(3, "count", None),
        },
    }
    got = tiles(HEADLINE_TILES, summary)
    assert [(t.title, t.value) for t in got] == [
        ("Cost per transaction", "£1.50"),
        ("User satisfaction", "90%"),
        ("Completion rate", "No data"),
        ("Digital take-up", "25%"),
    ]


def bucket(start: str, end: str, digital: int, phone: int) -> dict[str, Any]:
    volumes = {
        c: {"started": 0, "completed": 0, "failed": 0, "abandoned": 0}
        for c in ("digital", "phone", "paper", "face_to_face", "assisted_digital")
    }
    volumes["digital"]["completed"] = digital
    volumes["phone"]["completed"] = phone
    return {"_start_at": start, "_end_at": end, "volumes": volumes, "kpis": {}}


def test_the_volume_chart_has_a_line_per_used_channel_and_the_same_figures_in_table_and_csv() -> None:
    buckets = [
        bucket("2026-12-01T00:00:00+00:00", "2026-12-02T00:00:00+00:00", 10, 0),
        bucket("2026-12-02T00:00:00+00:00", "2026-12-03T00:00:00+00:00", 1200, 3),
    ]
    chart = volume_chart(buckets, "day")
    assert chart.columns == ["Period", "Digital", "Phone"]
    assert chart.rows == [["1 Dec", "10", "0"], ["2 Dec", "1,200", "3"]]
    assert list(csv.reader(io.StringIO(csv_text(chart)))) == [
        ["_start_at", "_end_at", "digital", "phone"],
        ["2026-12-01T00:00:00+00:00", "2026-12-02T00:00:00+00:00", "10", "0"],
        ["2026-12-02T00:00:00+00:00", "2026-12-03T00:00:00+00:00", "1200", "3"],
    ]
    assert chart.svg.count("<polyline") == 2
    assert "Digital: 1,200 at 2 Dec; from 10 to 1,200." in chart.svg


def test_a_range_without_transactions_still_draws_the_digital_line() -> None:
    chart = volume_chart([bucket("2026-12-01T00:00:00+00:00", "2026-12-02T00:00:00+00:00", 0, 0)], "day")
    assert chart.columns == ["Period", "Digital"]


def rates(tx_started: int, tx_rate: float | None, starts: int, journey_rate: float | None) -> dict[str, Any]:
    b = bucket("2026-12-01T00:00:00+00:00", "2026-12-02T00:00:00+00:00", 0, 0)
    b["kpis"] = {
        "transactions_started": tx_started,
        "completion_rate": tx_rate,
        "journey_starts": starts,
        "journey_completion_rate": journey_rate,
    }
    return b


@pytest.mark.parametrize(
    ("buckets", "columns"),
    [
        # transactions only, or nothing at all: the transactions' rate
        ([rates(10, 0.5, 0, None)], ["Completion rate"]),
        ([rates(0, None, 0, None)], ["Completion rate"]),
        # journeys only: the journeys' rate alone
        ([rates(0, None, 8, 0.25)], ["Completion rate from page journeys"]),
        # both, in any bucket of the range: both lines
        (
            [rates(10, 0.5, 0, None), rates(0, None, 4, 0.75)],
            ["Completion rate", "Completion rate from page journeys"],
        ),
    ],
)
def test_the_completion_chart_says_which_completion_rate_it_draws(
    buckets: list[dict[str, Any]], columns: list[str]
) -> None:
    chart = completion_chart(buckets, "day")
    assert chart.columns == ["Period", *columns]
    values = {
        "Completion rate": "completion_rate",
        "Completion rate from page journeys": "journey_completion_rate",
    }
    want = [[b["kpis"][values[c]] for c in columns] for b in buckets]
    assert [row[2:] for row in chart.csv_rows] == want


JOURNEY = {
    "stages": [
        {"label": "start", "events": 200, "share_of_starts": 1.0},
        {"label": "details", "events": 150, "share_of_starts": 0.75},
        {"label": "done", "events": 120, "share_of_starts": 0.6},
    ],
    "help": [{"label": "fees", "events": 4}, {"label": HOSTILE, "events": 9}],
    "help_other": 2,
}


def test_the_funnel_shows_each_stages_share_of_starts_and_drop_off() -> None:
    chart = funnel_chart(JOURNEY)
    assert chart.rows == [
        ["start", "200", "100%", NO_FIGURE],
        ["details", "150", "75%", "25%"],
        ["done", "120", "60%", "20%"],
    ]
    assert chart.csv_rows == [
        ["start", 200, 1.0, None],
        ["details", 150, 0.75, 0.25],
        ["done", 120, 0.6, 0.2],
    ]


def test_a_funnel_after_an_empty_stage_has_no_drop_off_rather_than_dividing_by_zero() -> None:
    chart = funnel_chart(
        {
            "stages": [
                {"label": "start", "events": 0, "share_of_starts": None},
                {"label": "done", "events": 3, "share_of_starts": None},
            ]
        }
    )
    assert chart.rows == [["start", "0", NO_FIGURE, NO_FIGURE], ["done", "3", NO_FIGURE, NO_FIGURE]]


def test_help_is_most_asked_first_and_hostile_labels_are_escaped_in_the_chart() -> None:
    chart = help_chart(JOURNEY)
    assert [r[0] for r in chart.rows] == [HOSTILE, "fees", "Other labels"]
    assert "<script>" not in chart.svg and "<img" not in chart.svg
    assert "&lt;script&gt;" in chart.svg


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted_as_text() -> None:
    chart = help_chart(
        {
            "help": [
                {"label": '=HYPERLINK("x")', "events": 1},
                {"label": "-2", "events": 1},
                {"label": "a,b", "events": 1},
            ]
        }
    )
    rows = list(csv.reader(io.StringIO(csv_text(chart))))
    assert rows[1:] == [["-2", "1"], ['\'=HYPERLINK("x")', "1"], ["a,b", "1"]]


def test_services_are_listed_busiest_first_with_dashes_for_missing_figures() -> None:
    rows = service_rows(
        [("quiet", "Quiet", ""), ("busy", "Busy", "dept"), ("none", "", "")],
        {
            "busy": {
                "number_of_transactions": 50,
                "completion_rate": 0.5,
                "digital_takeup": None,
                "user_satisfaction_score": 0.8,
                "cost_per_transaction_gbp": 1.25,
            },
            "quiet": {"number_of_transactions": 5},
        },
        {"busy": 7},
    )
    assert [(r.slug, r.name) for r in rows] == [("busy", "Busy"), ("quiet", "Quiet"), ("none", "none")]
    assert rows[0].cells == ["7", "50", "50%", NO_FIGURE, "80%", "£1.25"]
    assert rows[2].cells == ["0", "0", NO_FIGURE, NO_FIGURE, NO_FIGURE, NO_FIGURE]


@pytest.mark.parametrize(
    ("value", "top"),
    [(0, 1.0), (-3, 1.0), (0.9, 1.0), (1, 1.0), (1.01, 2.0), (7, 10.0), (6099, 10_000.0), (2500, 5000.0)],
)
def test_the_y_axis_tops_at_a_round_number(value: float, top: float) -> None:
    assert nice_max(value) == top


def test_a_line_chart_breaks_at_missing_figures_and_escapes_everything() -> None:
    svg = line_chart(
        "c<1>", HOSTILE, ["a", "b", "c", "d", "e"], [Line(HOSTILE, [1, 2, None, 4, None])], count
    )
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 1
    assert "<script>" not in svg and "onerror=alert" not in svg.replace("onerror=alert(1)&gt;", "")
    assert 'id="c&lt;1&gt;"' in svg
    assert 'role="img"' in svg and "<title" in svg and "<desc" in svg


def test_a_chart_describes_each_line() -> None:
    assert describe([], [], count) == "No figures for this range."
    text = describe(["1 Dec", "2 Dec"], [Line("Phone", [None, None]), Line("Paper", [3, 1])], count)
    assert text == "From 1 Dec to 2 Dec. Phone: no figures. Paper: 1 at 2 Dec; from 1 to 3."


def test_a_bar_chart_scales_to_its_largest_bar() -> None:
    svg = bar_chart("b", "Bars", [("x", 50, ""), ("y", 100, "note")], count)
    widths = [float(part.split('"')[0]) for part in svg.split('width="')[1:]]
    assert widths[1] == 2 * widths[0]
    assert "100 (note)" in svg
