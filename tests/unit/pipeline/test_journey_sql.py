"""The journey read: its SQL (parameters only) and the funnel, help and error shaping."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.journey_sql import MAX_LABELS, journey_agg, journey_counts, journey_json
from pipeline.kpi import Counts, JourneyAgg
from pipeline.kpi_sql import journey_window_sql
from pipeline.sql import render

DAY_S = 1_711_929_600  # 2024-04-01T00:00:00Z


def test_the_statement_reads_the_journey_actions_from_the_coarsest_sums_by_parameter() -> None:
    start, end = DAY_S - 120, DAY_S + 86_400 + 3600 + 60
    sql, params = journey_window_sql("perf", ["svc-a", "x' OR 1=1 --"], start, end)
    for table in ("perf.journey_day", "perf.journey_hour", "perf.journey_minute"):
        assert table in sql
    assert "sum(events)" in sql and "uniqExact" not in sql
    assert "svc-a" not in sql and "OR 1=1" not in sql
    assert params["services"] == ["svc-a", "x' OR 1=1 --"]
    assert params["actions"] == ["stage", "help", "error"]
    bounds = sorted(v.timestamp() for k, v in params.items() if k[0] in "ab" and k[1:].isdigit())
    assert bounds[0] == start and bounds[-1] == end
    assert "'x\\' OR 1=1 --'" in render(sql, params)


def test_rows_fold_per_service_and_sum_a_repeated_key() -> None:
    rows = [("a", "stage", "start", 3), ("b", "help", "fees", 1), ("a", "stage", "start", 2)]
    assert journey_counts(rows) == {"a": {("stage", "start"): 5}, "b": {("help", "fees"): 1}}
    assert journey_counts([]) == {}


def test_starts_dones_and_clicks_follow_the_stageprompt_convention() -> None:
    counts = {
        ("stage", "start"): 10,
        ("stage", "done"): 4,
        ("stage", "Start"): 7,  # labels are case-sensitive, as Stageprompt sends them
        ("stage", "pay"): 6,
        ("help", "info"): 2,
        ("error", "timeout"): 1,
        ("help", "zero"): 0,
    }
    assert journey_agg(counts) == JourneyAgg(10, 4, Counts({("help", "info"): 2, ("error", "timeout"): 1}))
    assert journey_agg({}) == JourneyAgg()


def _body(counts: dict[tuple[str, str], int]) -> dict[str, Any]:
    return journey_json("svc", "day", (DAY_S, DAY_S + 600), counts)


def test_the_funnel_runs_from_start_to_done_with_the_busiest_stages_between() -> None:
    body = _body(
        {
            ("stage", "done"): 2,
            ("stage", "pay"): 5,
            ("stage", "address"): 5,
            ("stage", "start"): 8,
            ("stage", "check"): 7,
            ("help", "fees"): 3,
            ("help", "<script>x</script>"): 3,
            ("error", "card"): 1,
        }
    )
    assert body["window"] == {"start": "2024-04-01T00:00:00+00:00", "end": "2024-04-01T00:10:00+00:00"}
    assert (body["starts"], body["dones"], body["completion_rate"]) == (8, 2, 0.25)
    assert [(r["label"], r["events"], r["share_of_starts"]) for r in body["stages"]] == [
        ("start", 8, 1.0),
        ("check", 7, 7 / 8),
        ("address", 5, 5 / 8),  # ties by label
        ("pay", 5, 5 / 8),
        ("done", 2, 0.25),
    ]
    assert body["help"] == [{"label": "<script>x</script>", "events": 3}, {"label": "fees", "events": 3}]
    assert body["errors"] == [{"label": "card", "events": 1}]
    assert (body["help_other"], body["errors_other"]) == (0, 0)


def test_no_starts_give_no_rate_and_no_shares() -> None:
    body = _body({("stage", "done"): 3})
    assert (body["starts"], body["dones"], body["completion_rate"]) == (0, 3, None)
    assert [(r["label"], r["events"], r["share_of_starts"]) for r in body["stages"]] == [
        ("start", 0, None),
        ("done", 3, None),
    ]
    assert _body({})["stages"] == [
        {"label": "start", "events": 0, "share_of_starts": None},
        {"label": "done", "events": 0, "share_of_starts": None},
    ]


@pytest.mark.parametrize("extra", [1, 25])
def test_labels_past_the_limit_are_summed_as_other(extra: int) -> None:
    counts = {("help", f"topic-{i:04d}"): 1000 - i for i in range(MAX_LABELS + extra)}
    body = _body(counts)
    assert len(body["help"]) == MAX_LABELS
    assert body["help"][0] == {"label": "topic-0000", "events": 1000}
    assert body["help_other"] == sum(1000 - i for i in range(MAX_LABELS, MAX_LABELS + extra))
