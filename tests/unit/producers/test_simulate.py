"""The traffic simulator (``producers.simulate``): a seeded, pure day of events whose payloads the
real validators accept, shaped like a service's day (daily curve, drop-off, channel mix, ratings,
an outage); and the beacon side of ``perfplat simulate`` against a real HTTP server on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import cli
from pipeline.beacon import Limits, Visit, parse_body, validate_events
from pipeline.kpi import (
    TxFact,
    completion_rate,
    digital_takeup,
    rating_agg_of,
    satisfaction_score,
    tx_agg_of,
)
from producers import simulate as sim
from producers.simulate import (
    DAILY_CURVE,
    CostSim,
    JourneySim,
    ProbeSim,
    RatingSim,
    ServiceProfile,
    SimEvent,
    TransactionSim,
    default_services,
    simulate,
)
from schemas import availability, cost, satisfaction, transaction

DAY = date(2026, 3, 10)
DAY_MS = int(datetime(2026, 3, 10, tzinfo=UTC).timestamp()) * 1000
END_MS = DAY_MS + 86_400_000
HOUR_MS = 3_600_000


def day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000


def events(seed: int = 1, n_services: int = 5, volume: int = 60_000, day: date = DAY) -> list[SimEvent]:
    return list(simulate(seed, day, default_services(n_services), volume))


@pytest.fixture(scope="module")
def big_day() -> list[SimEvent]:
    return events(seed=11, n_services=5, volume=300_000)


def validate_all(evs: list[SimEvent], day: date) -> None:
    """Every payload through the validator the platform runs on it; the validated event says what
    the payload said. Validated as if received at the end of the day."""
    received = day_ms(day) + 86_400_000
    beacon = [e.payload for e in evs if isinstance(e, JourneySim)]
    visit = Visit(received, b"salt", "127.0.0.1", "test")
    for start in range(0, len(beacon), 1000):
        good, drops = validate_events(list(beacon[start : start + 1000]), visit, Limits())
        assert drops == []
        assert [(g.id, g.ts_ms, g.service) for g in good] == [
            (b["id"], b["ts"], b["category"]) for b in beacon[start : start + 1000]
        ]
    for e in evs:
        if isinstance(e, TransactionSim):
            tx = transaction.validate(dict(e.payload), received, received)
            assert (tx.id, tx.service, tx.outcome, tx.channel, tx.ts_ms) == (
                e.payload["id"],
                e.service,
                e.payload["outcome"],
                e.payload["channel"],
                e.ts_ms,
            )
            assert tx.started_ms == e.payload.get("started_at", -1)
        elif isinstance(e, RatingSim):
            rated = satisfaction.validate(dict(e.payload), received, received)
            assert (rated.id, rated.service, rated.rating, rated.ts_ms) == (
                e.payload["id"],
                e.service,
                e.payload["rating"],
                e.ts_ms,
            )
        elif isinstance(e, CostSim):
            spent = cost.validate(dict(e.payload), received, received)
            assert (spent.period, spent.start_ms, spent.channel) == ("day", day_ms(day), e.payload["channel"])
        elif isinstance(e, ProbeSim):
            p = e.payload
            assert availability.probe_result(p.service, p.ts_ms, p.up, p.response_ms, p.status, p.error) == p
            assert p.ts_ms == e.ts_ms


# --- determinism, order, validity -------------------------------------------------------------------


def test_the_same_seed_gives_the_same_day() -> None:
    assert events(seed=3, volume=20_000) == events(seed=3, volume=20_000)


def test_another_seed_or_day_gives_another_day() -> None:
    first = events(seed=3, volume=20_000)
    assert first != events(seed=4, volume=20_000)
    other_day = events(seed=3, volume=20_000, day=date(2026, 3, 11))
    assert {e.payload["id"] for e in first if isinstance(e, TransactionSim)}.isdisjoint(
        e.payload["id"] for e in other_day if isinstance(e, TransactionSim)
    )


def test_events_are_inside_the_day_in_timestamp_order(big_day: list[SimEvent]) -> None:
    stamps = [e.ts_ms for e in big_day]
    assert stamps == sorted(stamps)
    assert stamps[0] >= DAY_MS and stamps[-1] < END_MS


def test_every_payload_is_what_the_platform_accepts(big_day: list[SimEvent]) -> None:
    validate_all(big_day, DAY)
    assert set(Counter(e.kind for e in big_day)) == set(sim.SIM_KINDS)


def test_every_event_id_is_unique(big_day: list[SimEvent]) -> None:
    ids = [e.payload.id if isinstance(e, ProbeSim) else e.payload["id"] for e in big_day]
    assert len(ids) == len(set(ids))


def test_the_volume_is_about_what_was_asked() -> None:
    for volume in (20_000, 300_000):
        assert abs(len(events(seed=5, volume=volume)) - volume) < volume * 0.05


def test_no_volume_no_events() -> None:
    assert events(volume=0) == []


# --- the shape of a day -------------------------------------------------------------------------------------


def test_traffic_follows_the_daily_curve(big_day: list[SimEvent]) -> None:
    users = [e for e in big_day if isinstance(e, JourneySim | TransactionSim | RatingSim)]
    hours = Counter((e.ts_ms - DAY_MS) // HOUR_MS for e in users)
    night = sum(hours[h] for h in range(6))
    working = sum(hours[h] for h in range(10, 16))
    assert working > 8 * night
    peak = max(hours, key=lambda h: hours[h])
    assert 9 <= peak <= 16
    # each hour's share is near the curve's (journeys and outcomes lag their starts a little)
    total = sum(DAILY_CURVE)
    for h in range(24):
        assert hours[h] / len(users) == pytest.approx(DAILY_CURVE[h] / total, abs=0.01)


def test_journeys_drop_off_between_start_and_done(big_day: list[SimEvent]) -> None:
    for profile in default_services(5):
        pages = Counter(
            e.payload["label"]
            for e in big_day
            if isinstance(e, JourneySim) and e.service == profile.slug and e.payload["action"] == "stage"
        )
        reached = [pages[name] for name in (*profile.pages, "done")]
        assert reached == sorted(reached, reverse=True)
        assert 0 < pages["done"] < pages["start"]
        expected = 1.0
        for drop in profile.stage_drop:
            expected *= 1 - drop
        expected *= 1 - profile.payment_failure
        assert pages["done"] / pages["start"] == pytest.approx(expected, abs=0.04)


def test_help_clicks_gather_where_users_get_stuck(big_day: list[SimEvent]) -> None:
    for profile in default_services(5):
        helped = Counter(
            e.payload["path"]
            for e in big_day
            if isinstance(e, JourneySim) and e.service == profile.slug and e.payload["action"] == "help"
        )
        stuck = f"/{profile.slug}/{profile.stages[profile.stuck_stage]}"
        assert helped.most_common(1)[0][0] == stuck
        assert all(
            e.payload["kind"] == "click"
            for e in big_day
            if isinstance(e, JourneySim) and e.payload["action"] == "help"
        )


def test_digital_share_of_started_transactions_is_the_profiles(big_day: list[SimEvent]) -> None:
    for profile in default_services(5):
        started = [
            e.payload["channel"]
            for e in big_day
            if isinstance(e, TransactionSim)
            and e.service == profile.slug
            and e.payload["outcome"] == "started"
        ]
        assert len(started) > 2000
        assert started.count("digital") / len(started) == pytest.approx(profile.digital_share, abs=0.03)
        offline = {c for c in started if c != "digital"}
        assert offline == {c for c, w in profile.offline_channels if w > 0}


def test_a_digital_transaction_completes_exactly_when_its_journey_is_done(big_day: list[SimEvent]) -> None:
    for profile in default_services(5):
        done = sum(
            1
            for e in big_day
            if isinstance(e, JourneySim) and e.service == profile.slug and e.payload["label"] == "done"
        )
        completed = [
            e.payload
            for e in big_day
            if isinstance(e, TransactionSim)
            and e.service == profile.slug
            and e.payload["outcome"] == "completed"
            and e.payload["channel"] == "digital"
        ]
        assert len(completed) == done
        assert all(p["started_at"] < p["timestamp"] and p.get("cost", 0) > 0 for p in completed)


def test_each_transaction_has_one_start_and_at_most_one_outcome(big_day: list[SimEvent]) -> None:
    by_ref: dict[str, list[str]] = {}
    for e in big_day:
        if isinstance(e, TransactionSim):
            by_ref.setdefault(e.payload["transaction_id"], []).append(e.payload["outcome"])
    for outcomes in by_ref.values():
        assert outcomes[0] == "started"
        assert len(outcomes) <= 2
    # what is left open at midnight is the evening's, not the morning's
    assert sum(len(o) == 1 for o in by_ref.values()) < 0.05 * len(by_ref)


def test_the_figures_come_out_plausible(big_day: list[SimEvent]) -> None:
    for profile in default_services(5):
        facts = [
            TxFact(e.payload["channel"], e.payload["outcome"])  # type: ignore[arg-type]
            for e in big_day
            if isinstance(e, TransactionSim) and e.service == profile.slug
        ]
        tx = tx_agg_of(facts)
        rate = completion_rate(tx)
        takeup = digital_takeup(tx)
        assert rate is not None and 0.4 < rate < 1
        assert takeup is not None and abs(takeup - profile.digital_share) < 0.15
        ratings = rating_agg_of(
            e.payload["rating"] for e in big_day if isinstance(e, RatingSim) and e.service == profile.slug
        )
        weights = profile.rating_weights
        expected = (sum(i * w for i, w in enumerate(weights, start=1)) / sum(weights) - 1) / 4
        assert satisfaction_score(ratings) == pytest.approx(expected, abs=0.05)


def test_each_service_has_one_short_outage(big_day: list[SimEvent]) -> None:
    for profile in default_services(5):
        probes = [e.payload for e in big_day if isinstance(e, ProbeSim) and e.service == profile.slug]
        assert len(probes) == min(sim.MAX_PROBES_PER_SERVICE, 300_000 * sim.PROBE_SHARE // 5)
        down = [i for i, p in enumerate(probes) if not p.up]
        assert down == list(range(down[0], down[0] + len(down)))  # one run
        interval_ms = probes[1].ts_ms - probes[0].ts_ms
        assert len(down) * interval_ms == pytest.approx(profile.outage_minutes * 60_000, rel=0.5)
        assert all(p.status == 200 and p.response_ms > 0 for p in probes if p.up)
        assert all(p.error for p in probes if not p.up)


def test_costs_are_the_days_per_channel(big_day: list[SimEvent]) -> None:
    for profile in default_services(5):
        costs = [e.payload for e in big_day if isinstance(e, CostSim) and e.service == profile.slug]
        assert [c["channel"] for c in costs] == list(profile.channels)
        assert sum(c["amount"] for c in costs) == pytest.approx(profile.daily_cost, abs=0.05)


# --- profiles -----------------------------------------------------------------------------------------------


def test_default_services_are_distinct_valid_profiles() -> None:
    services = default_services(20)
    assert len({s.slug for s in services}) == 20
    assert default_services(3) == services[:3]
    assert all(0 < s.digital_share < 1 for s in services)


@pytest.mark.parametrize(
    "changes",
    [
        {"slug": "Not A Slug"},
        {"stage_drop": (0.1,)},
        {"stuck_stage": 9},
        {"stages": ("a", "done", "b", "c")},
        {"stages": ("start", "a", "b", "c")},
        {"stages": ("a", "a", "b", "c")},
        {"digital_share": 1.5},
        {"offline_channels": (("digital", 1.0),)},
        {"offline_channels": (("phone", 0.0),)},
        {"rating_weights": (0, 0, 0, 0, 0)},
        {"offline_completion": 0.9, "offline_failure": 0.2},
    ],
)
def test_a_profile_that_makes_no_sense_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ServiceProfile(**{"slug": "svc", **changes})


def test_simulate_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError):
        list(simulate(1, DAY, [], 10))
    with pytest.raises(ValueError):
        list(simulate(1, DAY, [ServiceProfile("a"), ServiceProfile("a")], 10))
    with pytest.raises(ValueError):
        list(simulate(1, DAY, default_services(1), -1))


def test_a_fully_digital_service_has_no_offline_channel() -> None:
    online = ServiceProfile("online-only", digital_share=1.0, offline_channels=())
    evs = list(simulate(2, DAY, [online], 20_000))
    assert {e.payload["channel"] for e in evs if isinstance(e, TransactionSim)} == {"digital"}
    validate_all(evs, DAY)


# --- properties ---------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(min_value=-(2**70), max_value=2**70),
    n_services=st.integers(min_value=1, max_value=4),
    volume=st.integers(min_value=0, max_value=4000),
    day=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)),
)
def test_for_any_seed_and_size_the_invariants_hold(
    seed: int, n_services: int, volume: int, day: date
) -> None:
    evs = list(simulate(seed, day, default_services(n_services), volume))
    start = day_ms(day)
    stamps = [e.ts_ms for e in evs]
    assert stamps == sorted(stamps)
    assert all(start <= t < start + 86_400_000 for t in stamps)
    validate_all(evs, day)
    ids = [e.payload.id if isinstance(e, ProbeSim) else e.payload["id"] for e in evs]
    assert len(ids) == len(set(ids))
    assert evs == list(simulate(seed, day, default_services(n_services), volume))
    if volume >= 2000:
        assert sum(1 for e in evs if isinstance(e, ProbeSim) and not e.payload.up) >= n_services


# --- purity -----------------------------------------------------------------------------------------------


def test_the_generator_imports_no_client_of_anything() -> None:
    probe = (
        "import sys, producers.simulate; "
        "print(sorted({n.split('.')[0] for n in sys.modules} & "
        "{'httpx', 'confluent_kafka', 'faust', 'fastapi', 'chdb', 'clickhouse_driver', 'producers'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "['producers']"
    assert "producers.sdk" not in done.stdout


# --- the command: checks before sending ------------------------------------------------------------------


def test_a_future_day_is_refused_before_anything_is_sent(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["simulate", "--bootstrap", "127.0.0.1:1", "--day", "2999-01-01"])
    assert code == 2
    assert "future" in capsys.readouterr().err


def test_journeys_older_than_the_beacon_takes_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "simulate",
        "--bootstrap",
        "127.0.0.1:1",
        "--day",
        "2020-01-01",
        "--beacon-url",
        "http://x/beacon",
    ]
    assert cli.main(argv) == 2
    assert "7 days" in capsys.readouterr().err


def test_rate_and_as_fast_as_possible_exclude_each_other() -> None:
    with pytest.raises(SystemExit):
        cli.main(["simulate", "--bootstrap", "h:1", "--rate", "10", "--as-fast-as-possible"])


# --- the beacon sender against a real HTTP server ------------------------------------------------------


@dataclass
class BeaconServer:
    """A loopback ``POST /beacon`` that validates with the platform's own beacon code and answers
    as the ingest route does; the first ``unavailable`` requests get 503."""

    unavailable: int = 0
    seen: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    url: str = ""

    def answer(self, user_agent: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if self.unavailable > 0:
            self.unavailable -= 1
            return 503, {"status": "error", "message": "temporarily unavailable"}
        raws = parse_body(body, Limits())
        self.seen.append((user_agent, raws))
        good, drops = validate_events(raws, Visit(END_MS, b"s", "127.0.0.1", user_agent), Limits())
        if drops:
            return 400, {"status": "error", "accepted": len(good), "errors": [d.as_dict() for d in drops]}
        return 202, {"status": "ok", "accepted": len(good)}


@pytest.fixture
def beacon_server() -> Iterator[BeaconServer]:
    state = BeaconServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            status, doc = state.answer(self.headers.get("user-agent", ""), body)
            state.statuses.append(status)
            out = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            if status == 503:
                self.send_header("retry-after", "0")
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/beacon"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def journey_events(volume: int = 8000) -> list[JourneySim]:
    return [e for e in events(seed=9, n_services=2, volume=volume) if isinstance(e, JourneySim)]


def test_journeys_go_one_post_per_visitor_with_the_visitor_as_user_agent(beacon_server: BeaconServer) -> None:
    journeys = journey_events()
    with httpx.Client() as http:
        sender = sim._BeaconSender(http, beacon_server.url, batch_events=100)
        for e in journeys:
            sender.add(e)
        sender.flush()
    assert sender.counts() == {
        "accepted": len(journeys),
        "dropped": 0,
        "failed": 0,
        "requests": len(beacon_server.seen),
    }
    by_agent: dict[str, list[dict[str, Any]]] = {}
    for agent, raws in beacon_server.seen:
        by_agent.setdefault(agent, []).extend(raws)
    expected: dict[str, list[dict[str, Any]]] = {}
    for e in journeys:
        expected.setdefault(f"perfplat-simulate/1 (user {e.visitor})", []).append(dict(e.payload))
    assert by_agent == expected  # every event once, each visitor's in order, under its own agent
    assert len(beacon_server.seen) < len(journeys)  # batched


def test_a_busy_beacon_is_retried_and_drops_are_counted(beacon_server: BeaconServer) -> None:
    journeys = journey_events(2000)[:3]
    beacon_server.unavailable = 2
    bad = JourneySim(journeys[0].ts_ms, "x", "someone", {**journeys[0].payload, "kind": "hover"})
    with httpx.Client() as http:
        sender = sim._BeaconSender(http, beacon_server.url, batch_events=1000)
        for e in [*journeys, bad]:
            sender.add(e)
        sender.flush()
    assert beacon_server.statuses.count(503) == 2
    counts = sender.counts()
    assert (counts["accepted"], counts["dropped"], counts["failed"]) == (3, 1, 0)


def test_a_beacon_that_stays_away_counts_as_failed() -> None:
    journeys = journey_events(2000)[:4]
    with httpx.Client(timeout=1) as http:
        sender = sim._BeaconSender(http, "http://127.0.0.1:9/beacon", batch_events=1000)
        sender.ATTEMPTS = 2
        for e in journeys:
            sender.add(e)
        sender.flush()
    assert sender.counts()["failed"] == 4
    assert sender.counts()["accepted"] == 0
