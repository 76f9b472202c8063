"""``perfplat bench dashboard``'s pure parts: the year's plan, simulated events as the worker
would store them, Server-Timing, the summary and its target, the page's queries, the options."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime

import pytest

from pipeline import bench_dashboard as bd
from pipeline.beacon import Limits, Visit, validate_events
from producers.simulate import JourneySim, default_services, simulate
from schemas import availability, satisfaction
from schemas import cost as cost_schema
from schemas import transaction as tx_schema

NOW_MS = int(datetime(2026, 12, 6, 1, 30, tzinfo=UTC).timestamp()) * 1000  # a Sunday
DAY = date(2026, 11, 30)


# --- the year's plan ----------------------------------------------------------------------------


def test_day_plan_ends_today_oldest_first_and_averages_the_volume_over_whole_weeks() -> None:
    plan = bd.day_plan(NOW_MS, 364, 10_000)
    assert len(plan) == 364
    assert plan[-1][0] == date(2026, 12, 6)
    assert plan[0][0] == date(2025, 12, 8)
    assert [d for d, _ in plan] == sorted(d for d, _ in plan)
    assert sum(n for _, n in plan) == pytest.approx(364 * 10_000, rel=1e-4)  # 52 whole weeks


def test_day_plan_makes_weekdays_busier_than_weekends() -> None:
    by_weekday = {d.weekday(): n for d, n in bd.day_plan(NOW_MS, 7, 10_000)}
    assert min(by_weekday[i] for i in range(5)) > max(by_weekday[5], by_weekday[6])


def test_day_plan_refuses_no_days() -> None:
    with pytest.raises(ValueError):
        bd.day_plan(NOW_MS, 0, 10)


def test_day_jobs_give_the_other_services_a_share_of_the_main_ones_volume() -> None:
    profiles = default_services(3)
    (job,) = bd.day_jobs([(DAY, 1000)], profiles, seed=7, now_ms=NOW_MS)
    assert [(p.slug, n) for p, n in job.services] == [
        (profiles[0].slug, 1000),
        (profiles[1].slug, round(1000 * bd.OTHER_SHARE)),
        (profiles[2].slug, round(1000 * bd.OTHER_SHARE)),
    ]


# --- simulated events, as the worker would have stored them -------------------------------------


def _sims(kind: str, events: int = 3000) -> list:
    return [e for e in simulate(3, DAY, default_services(1), events) if e.kind == kind]


def test_transactions_are_what_the_sdks_validation_makes_of_them() -> None:
    sims = _sims("transaction")
    assert any("cost" in s.payload for s in sims) and any("started_at" in s.payload for s in sims)
    for sim in sims:
        assert bd.stored_event(sim, b"salt") == tx_schema.validate(sim.payload, sim.ts_ms, NOW_MS)


def test_ratings_costs_and_probes_are_what_validation_makes_of_them() -> None:
    for sim in _sims("satisfaction"):
        assert bd.stored_event(sim, b"salt") == satisfaction.validate(sim.payload, sim.ts_ms, NOW_MS)
    costs = _sims("cost")
    assert costs
    for sim in costs:
        assert bd.stored_event(sim, b"salt") == cost_schema.validate(sim.payload, sim.ts_ms, NOW_MS)
    for sim in _sims("availability"):
        event = bd.stored_event(sim, b"salt")
        assert isinstance(event, availability.AvailabilityEvent)
        assert event == sim.payload


def test_journey_events_are_what_the_beacon_makes_of_them_sent_live() -> None:
    salt = b"0123456789abcdef"
    sims = [s for s in _sims("journey") if isinstance(s, JourneySim)]
    assert sims
    visitors: dict[str, int] = {}  # one day's keys, kept as day_rows keeps them
    for sim in sims[:300]:
        visit = Visit(sim.ts_ms, salt, bd.BENCH_IP, bd.user_agent(sim.visitor))
        events, drops = validate_events([sim.payload], visit, Limits())
        assert not drops
        assert bd.stored_event(sim, salt, visitors) == events[0]
        assert bd.stored_event(sim, salt) == events[0]
    assert 0 < len(visitors) < 300  # a user's events share one key


def test_day_rows_fill_the_sinks_tables_and_stop_at_now() -> None:
    profiles = default_services(2)
    (job,) = bd.day_jobs([(DAY, 800)], profiles, seed=1, now_ms=NOW_MS)
    rows = bd.day_rows(job)
    assert set(rows.columns) == {"tx_in", "rating_in", "probe_in", "cost_posts", "journey_in"}
    for kind, (table, _) in bd.SINKS.items():
        total = sum(c[kind] for c in rows.counts.values())
        assert bd.row_count(rows.columns[table]) == total
    noon = int(datetime(2026, 11, 30, 12, tzinfo=UTC).timestamp()) * 1000
    half = bd.day_rows(bd.DayJob(DAY, job.services, 1, noon))
    assert max(half.columns["tx_in"]["ts"]) <= noon // 1000
    assert bd.row_count(half.columns["tx_in"]) < bd.row_count(rows.columns["tx_in"])


def test_extend_columns_appends_table_by_table() -> None:
    into: dict[str, bd.Columns] = {}
    bd.extend_columns(into, {"t": {"a": [1], "b": [2]}})
    bd.extend_columns(into, {"t": {"a": [3], "b": [4]}, "u": {"x": [5]}})
    assert into == {"t": {"a": [1, 3], "b": [2, 4]}, "u": {"x": [5]}}
    assert bd.row_count(into["t"]) == 2
    assert bd.row_count({}) == 0


# --- renders and their summary ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("render;dur=12.3", 12.3),
        ('db;dur=4, render;desc="page";dur=150', 150.0),
        ("render;dur=7", 7.0),
        ("render", None),
        ("other;dur=5", None),
        ("render;dur=abc", None),
        ("", None),
        (None, None),
    ],
)
def test_server_timing_reads_the_render_duration(header: str | None, expected: float | None) -> None:
    assert bd.server_timing_ms(header) == expected


def test_rotated_leads_each_run_with_the_next_period() -> None:
    periods = ("day", "week", "month")
    assert bd.rotated(periods, 0) == ["day", "week", "month"]
    assert bd.rotated(periods, 1) == ["week", "month", "day"]
    assert bd.rotated(periods, 4) == ["week", "month", "day"]
    assert bd.rotated((), 3) == []


def _render(page: str, period: str, kind: str, server: float | None, wall: float, run: int = 0) -> bd.Render:
    return bd.Render(page, period, kind, run, server, wall, 200, 100)


def test_summary_gives_median_min_max_per_page_period_and_kind() -> None:
    renders = [
        _render("service", "day", "first", 100.0, 110.0, 0),
        _render("service", "day", "first", 300.0, 310.0, 1),
        _render("service", "day", "first", 150.0, 160.0, 2),
        _render("service", "day", "warm", 2.0, 3.0),
        _render("service", "day", "warm", None, 4.0),
        _render("home", "day", "first", 50.0, 55.0),
    ]
    s = bd.summarise(renders, 200.0)
    first = s["pages"]["service"]["day"]["first"]
    assert first["server_ms"] == {"n": 3, "median": 150.0, "min": 100.0, "max": 300.0}
    assert first["wall_ms"]["median"] == 160.0
    assert first["target_met"] is True
    warm = s["pages"]["service"]["day"]["warm"]
    assert warm["server_ms"] == {"n": 2, "median": 2.0, "min": 2.0, "max": 2.0}  # no header: no figure
    assert "target_met" not in s["pages"]["home"]["day"]["first"]  # the target is the service page's
    assert s["target_met"] is True
    assert s["periods_over_target"] == []


def test_summary_misses_the_target_when_one_periods_median_is_over_it() -> None:
    renders = [
        _render("service", "day", "first", 150.0, 1.0),
        _render("service", "year", "first", 190.0, 1.0),
        _render("service", "year", "first", 260.0, 1.0),
        _render("service", "year", "first", 250.0, 1.0),
    ]
    s = bd.summarise(renders, 200.0)
    assert s["pages"]["service"]["day"]["first"]["target_met"] is True
    assert s["pages"]["service"]["year"]["first"]["target_met"] is False
    assert s["target_met"] is False
    assert s["periods_over_target"] == ["year"]


def test_summary_of_nothing_meets_no_target() -> None:
    assert bd.summarise([], 200.0)["target_met"] is False


def test_slowest_orders_by_median() -> None:
    timings = [
        bd.QueryTiming("service", "day", name, 1.0, m, m, 0)
        for name, m in (("a", 5.0), ("b", 50.0), ("c", 9.0))
    ]
    assert [t.query for t in bd.slowest(timings, 2)] == ["b", "c"]


# --- the page's queries -------------------------------------------------------------------------


@pytest.mark.parametrize("period", bd.PERIODS)
def test_page_queries_name_the_summary_series_and_users_now(period: str) -> None:
    named = bd.page_queries("perfplat", "apply-for-a-passport", period, NOW_MS)  # type: ignore[arg-type]
    names = [n for n, _ in named]
    assert len(names) == len(set(names)) == 16
    assert names[:5] == [f"summary.current.{p}" for p in ("tx", "ratings", "probes", "costs", "journey")]
    assert names[10:] == [
        "series.tx",
        "series.ratings",
        "series.probes",
        "series.costs",
        "series.journey",
        "users_now",
    ]
    for _, (sql, params) in named:
        assert sql.startswith("SELECT")
        assert "apply-for-a-passport" in repr(params)


def test_home_queries_read_every_service_in_one_window() -> None:
    named = bd.home_queries("perfplat", ["a", "b"], "week", NOW_MS)
    assert [n for n, _ in named] == [
        "home.tx",
        "home.ratings",
        "home.probes",
        "home.costs",
        "home.journey",
        "home.users_now",
    ]
    assert named[0][1][1]["services"] == ["a", "b"]


# --- options ------------------------------------------------------------------------------------


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bd.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_are_a_year_of_a_mid_size_service_on_the_embedded_stack() -> None:
    cfg = bd.config_from_args(_args())
    assert cfg.backend == "embedded"
    assert cfg.days == 365
    assert cfg.events_per_day == bd.DEFAULT_EVENTS_PER_DAY
    assert cfg.periods == bd.PERIODS
    assert cfg.optimize is True
    assert cfg.target_ms == 200.0


def test_options_parse() -> None:
    cfg = bd.config_from_args(
        _args(
            "--backend",
            "server",
            "--events-per-day",
            "60000",
            "--periods",
            "year, day",
            "--runs",
            "3",
            "--no-optimize",
            "--settle",
            "0",
        )
    )
    assert (cfg.backend, cfg.events_per_day, cfg.periods, cfg.runs) == ("server", 60_000, ("year", "day"), 3)
    assert cfg.optimize is False
    assert cfg.settle_s == 0.0
    assert cfg.load_key()["events_per_day"] == 60_000


@pytest.mark.parametrize(
    "argv",
    [
        ("--periods", "fortnight"),
        ("--periods", "day,day"),
        ("--periods", ","),
        ("--runs", "0"),
        ("--events-per-day", "-1"),
        ("--backend", "sqlite"),
        ("--target-ms", "0"),
        ("--settle", "-1"),
    ],
)
def test_bad_options_are_refused(argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _args(*argv)
    capsys.readouterr()


def test_too_many_services_is_refused() -> None:
    with pytest.raises(ValueError):
        bd.config_from_args(_args("--other-services", "64"))
