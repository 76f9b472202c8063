"""Alert rules, their evaluation and the state machine (``pipeline.alerts``): literal rules,
windows and evaluations in, literal states, rows and webhook payloads out."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline.alerts import (
    MAX_RULES,
    AlertEvent,
    AlertState,
    Evaluation,
    KpiRule,
    StaleRule,
    evaluate_kpi,
    evaluate_stale,
    event_columns,
    events_of,
    history_sql,
    parse_rule,
    parse_rules,
    rule_window,
    rules_json,
    states_of,
    step,
)
from pipeline.datasets import DataSetConfig, Registry
from pipeline.kpi import Counts, JourneyAgg, ProbeAgg, RatingAgg, TxAgg, WindowAggs
from pipeline.services import ServiceConfig, ServiceRegistry
from pipeline.sql import render


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * 1000


def s(*args: int) -> int:
    return ms(*args) // 1000


HOOK = "https://hooks.example.org/perfplat?team=passports"
NOW = ms(2024, 4, 3, 10, 15, 30) + 250  # a Wednesday
COMPLETION: dict[str, Any] = {
    "id": "low-completion",
    "kpi": "completion_rate",
    "op": "below",
    "threshold": 0.5,
    "period": "hour",
    "min_volume": 10,
    "webhook": HOOK,
}
RULE = KpiRule("low-completion", "completion_rate", "below", 0.5, "hour", HOOK, 10)

# --- rules ---------------------------------------------------------------------------------------


def test_a_kpi_rule_and_a_stale_rule_parse() -> None:
    assert parse_rule(COMPLETION) == RULE
    assert parse_rule({**COMPLETION, "kind": "kpi"}) == RULE
    no_volume = {k: v for k, v in COMPLETION.items() if k != "min_volume"}
    assert parse_rule(no_volume).min_volume == 0  # type: ignore[union-attr]
    up = {
        "id": "up",
        "kpi": "availability",
        "op": "below",
        "threshold": 0.999,
        "period": "day",
        "webhook": HOOK,
    }
    assert parse_rule(up) == KpiRule("up", "availability", "below", 0.999, "day", HOOK)
    stale = {
        "id": "claims-fresh",
        "data_set": "carers-allowance/weekly-claims",
        "webhook": "http://10.0.0.5:8080/",
    }
    assert parse_rule(stale) == StaleRule(
        "claims-fresh", "carers-allowance/weekly-claims", "http://10.0.0.5:8080/"
    )
    assert parse_rule({**stale, "kind": "stale"}) == parse_rule(stale)
    assert parse_rule(stale).as_json() == {
        "id": "claims-fresh",
        "kind": "stale",
        "data_set": "carers-allowance/weekly-claims",
        "webhook": "http://10.0.0.5:8080/",
    }


BAD_RULES: list[tuple[object, str]] = [
    ("low", "an alert rule is a JSON object"),
    ({**COMPLETION, "kind": "page"}, 'kind must be "kpi" or "stale"'),
    (
        {**COMPLETION, "kind": "stale"},
        "unknown settings for a stale rule: kpi, min_volume, op, period, threshold",
    ),
    ({**COMPLETION, "minutes": 5}, "unknown settings for a kpi rule: minutes"),
    ({**COMPLETION, "data_set": "a/b"}, "unknown settings for a kpi rule: data_set"),
    ({k: v for k, v in COMPLETION.items() if k != "id"}, "id must be 1 to 64 characters"),
    ({**COMPLETION, "id": "Low Completion"}, "id must be 1 to 64 characters"),
    ({**COMPLETION, "id": "x" * 65}, "id must be 1 to 64 characters"),
    ({**COMPLETION, "id": 7}, "id must be 1 to 64 characters"),
    ({k: v for k, v in COMPLETION.items() if k != "webhook"}, "a kpi rule needs webhook"),
    ({**COMPLETION, "webhook": ""}, "webhook must be an http:// or https:// URL"),
    ({"id": "s", "data_set": "a/b"}, "a stale rule needs webhook"),
    ({**COMPLETION, "webhook": "ftp://hooks.example.org/x"}, "webhook must be an http:// or https:// URL"),
    ({**COMPLETION, "webhook": "hooks.example.org/x"}, "webhook must be an http:// or https:// URL"),
    ({**COMPLETION, "webhook": "https://u:p@hooks.example.org/"}, "webhook must not carry credentials"),
    ({**COMPLETION, "webhook": "https://hooks.example.org/a b"}, "webhook must not contain spaces"),
    ({**COMPLETION, "webhook": "https://hooks.example.org:99999/"}, "webhook is not a valid URL"),
    ({**COMPLETION, "webhook": "https:///path"}, "webhook has no valid host"),
    ({**COMPLETION, "webhook": "https://h.example/" + "a" * 2048}, "webhook must be at most 2048 characters"),
    ({"id": "x", "kpi": "completion_rate", "webhook": HOOK}, "a kpi rule needs op, threshold, period"),
    ({"id": "x", "kind": "stale"}, "a stale rule needs data_set, webhook"),
    ({"id": "x"}, "a kpi rule needs kpi, op, threshold, period, webhook"),
    ({**COMPLETION, "kpi": "uptime"}, "kpi must be one of transactions_started, transactions_completed"),
    ({**COMPLETION, "kpi": "journey_drop_off"}, "kpi must be one of"),
    ({**COMPLETION, "op": "under"}, 'op must be "below" or "above"'),
    ({**COMPLETION, "op": "<"}, 'op must be "below" or "above"'),
    ({**COMPLETION, "threshold": "0.5"}, "threshold must be a number"),
    ({**COMPLETION, "threshold": True}, "threshold must be a number"),
    ({**COMPLETION, "threshold": None}, "threshold must be a number"),
    ({**COMPLETION, "threshold": float("nan")}, "threshold must be a number"),
    ({**COMPLETION, "threshold": float("inf")}, "threshold must be a number"),
    ({**COMPLETION, "kpi": "availability", "threshold": 99.9}, "availability is a ratio from 0 to 1"),
    ({**COMPLETION, "threshold": -0.1}, "completion_rate is a ratio from 0 to 1"),
    ({**COMPLETION, "kpi": "cost_per_transaction", "threshold": -1}, "threshold must not be negative"),
    ({**COMPLETION, "period": "quarter"}, "period must be one of hour, day, week, month"),
    ({**COMPLETION, "period": "minute"}, "period must be one of hour, day, week, month"),
    ({**COMPLETION, "min_volume": -1}, "min_volume must be a whole number, 0 or more"),
    ({**COMPLETION, "min_volume": 1.5}, "min_volume must be a whole number"),
    ({**COMPLETION, "min_volume": True}, "min_volume must be a whole number"),
    ({"id": "s", "data_set": "claims", "webhook": HOOK}, 'data_set must be "group/type"'),
    ({"id": "s", "data_set": "Carers/claims", "webhook": HOOK}, 'data_set must be "group/type"'),
    ({"id": "s", "data_set": "a/b/c", "webhook": HOOK}, 'data_set must be "group/type"'),
    ({"id": "s", "data_set": ["a", "b"], "webhook": HOOK}, 'data_set must be "group/type"'),
]


@pytest.mark.parametrize(("doc", "message"), BAD_RULES)
def test_a_wrong_rule_is_refused_saying_what_is_wrong(doc: object, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        parse_rule(doc)


def test_thresholds_at_the_ends_of_a_ratio_are_allowed() -> None:
    assert parse_rule({**COMPLETION, "threshold": 0}).threshold == 0  # type: ignore[union-attr]
    assert parse_rule({**COMPLETION, "threshold": 1}).threshold == 1  # type: ignore[union-attr]
    big = {**COMPLETION, "kpi": "time_to_complete_p95", "threshold": 600_000}
    assert parse_rule(big).threshold == 600_000  # type: ignore[union-attr]


def test_rules_of_a_service_name_the_wrong_one_by_position_and_id() -> None:
    stale = {"id": "fresh", "data_set": "a/b", "webhook": HOOK}
    assert parse_rules([COMPLETION, stale]) == (RULE, StaleRule("fresh", "a/b", HOOK))
    assert parse_rules([]) == ()
    with pytest.raises(ValueError, match=r"^alert rule #2 \(fresh\): webhook must be"):
        parse_rules([COMPLETION, {**stale, "webhook": "mailto:x@example.org"}])
    with pytest.raises(ValueError, match=r"^alert rule #1: id must be"):
        parse_rules([{**COMPLETION, "id": "BAD"}])
    with pytest.raises(ValueError, match=r"^alert rule #2 \(low-completion\): another rule of this service"):
        parse_rules([COMPLETION, {**stale, "id": "low-completion"}])
    many = [{**stale, "id": f"r{i}"} for i in range(MAX_RULES + 1)]
    assert len(parse_rules(many[:MAX_RULES])) == MAX_RULES
    with pytest.raises(ValueError, match=f"at most {MAX_RULES} alert rules"):
        parse_rules(many)


def test_a_service_with_a_wrong_rule_is_refused_as_a_whole() -> None:
    good = ServiceConfig.from_doc({"slug": "passport", "name": "Passport", "alerts": [COMPLETION]})
    assert good.alerts == (COMPLETION,)  # kept as given
    with pytest.raises(ValueError, match=r"^alert rule #1 \(low-completion\): op must be"):
        ServiceConfig.from_doc(
            {"slug": "passport", "name": "Passport", "alerts": [{**COMPLETION, "op": "lt"}]}
        )
    file = b'{"services": [{"slug": "p", "name": "P", "alerts": [{"id": "x", "kpi": "nope"}]}]}'
    with pytest.raises(
        ValueError, match=r"^service #1 in the services file: alert rule #1 \(x\): a kpi rule needs"
    ):
        ServiceRegistry.from_bytes(file)


# --- windows and evaluations ---------------------------------------------------------------------


def test_the_window_of_each_period() -> None:
    # the last 60 minutes / the period so far, in whole minutes (the minute holding now read whole)
    assert rule_window("hour", NOW) == (s(2024, 4, 3, 9, 15), s(2024, 4, 3, 10, 16))
    assert rule_window("day", NOW) == (s(2024, 4, 3), s(2024, 4, 3, 10, 16))
    assert rule_window("week", NOW) == (s(2024, 4, 1), s(2024, 4, 3, 10, 16))
    assert rule_window("month", NOW) == (s(2024, 4, 1), s(2024, 4, 3, 10, 16))
    assert rule_window("day", ms(2024, 4, 3)) == (s(2024, 4, 3), s(2024, 4, 3))  # empty at midnight
    assert rule_window("hour", ms(2024, 4, 3)) == (s(2024, 4, 2, 23), s(2024, 4, 3))


def tx(started: int, completed: int, digital_completed: int = 0) -> TxAgg:
    counts = {
        ("digital", "started"): started,
        ("phone", "completed"): completed - digital_completed,
        ("digital", "completed"): digital_completed,
    }
    return TxAgg(Counts(counts))


W = (ms(2024, 4, 3, 9, 15), ms(2024, 4, 3, 10, 16))
WINDOW_S = (W[0] // 1000, W[1] // 1000)


@pytest.mark.parametrize(
    ("rule", "aggs", "expected"),
    [
        # completion 4/10 = 0.4 < 0.5: breached
        (RULE, WindowAggs(*W, tx=tx(10, 4)), Evaluation(True, 0.4, 0.5, WINDOW_S)),
        # exactly at the threshold is not a breach, either way
        (RULE, WindowAggs(*W, tx=tx(10, 5)), Evaluation(False, 0.5, 0.5, WINDOW_S)),
        (
            KpiRule("r", "completion_rate", "above", 0.5, "hour", HOOK),
            WindowAggs(*W, tx=tx(10, 5)),
            Evaluation(False, 0.5, 0.5, WINDOW_S),
        ),
        (
            KpiRule("r", "completion_rate", "above", 0.5, "hour", HOOK),
            WindowAggs(*W, tx=tx(10, 6)),
            Evaluation(True, 0.6, 0.5, WINDOW_S),
        ),
        # nothing started: no value, unknown
        (RULE, WindowAggs(*W), Evaluation(None, None, 0.5, WINDOW_S, "no data in the window")),
        # 9 started, fewer than min_volume 10: unknown, value kept for the record
        (
            RULE,
            WindowAggs(*W, tx=tx(9, 0)),
            Evaluation(None, 0.0, 0.5, WINDOW_S, "9 events in the window, fewer than min_volume"),
        ),
        (RULE, WindowAggs(*W, tx=tx(10, 0)), Evaluation(True, 0.0, 0.5, WINDOW_S)),
        # availability 999/1000 = 0.999 is not below 0.999; 998/1000 is
        (
            KpiRule("up", "availability", "below", 0.999, "day", HOOK),
            WindowAggs(*W, probes=ProbeAgg(1000, 999)),
            Evaluation(False, 0.999, 0.999, WINDOW_S),
        ),
        (
            KpiRule("up", "availability", "below", 0.999, "day", HOOK),
            WindowAggs(*W, probes=ProbeAgg(1000, 998)),
            Evaluation(True, 0.998, 0.999, WINDOW_S),
        ),
        # satisfaction: ratings 1 and 5 → mean 3 → score 0.5
        (
            KpiRule("sat", "user_satisfaction_score", "below", 0.6, "week", HOOK, 2),
            WindowAggs(*W, ratings=RatingAgg((1, 0, 0, 0, 1))),
            Evaluation(True, 0.5, 0.6, WINDOW_S),
        ),
        # a count has a value in an empty window: no transactions at all is a breach of "below 1"
        (
            KpiRule("quiet", "transactions_started", "below", 1, "hour", HOOK),
            WindowAggs(*W),
            Evaluation(True, 0, 1, WINDOW_S),
        ),
        # journeys: 3 done of 8 started = 0.375; 7 starts are fewer than min_volume 8
        (
            KpiRule("journeys", "journey_completion_rate", "below", 0.5, "day", HOOK, 8),
            WindowAggs(*W, journey=JourneyAgg(8, 3)),
            Evaluation(True, 0.375, 0.5, WINDOW_S),
        ),
        (
            KpiRule("journeys", "journey_completion_rate", "below", 0.5, "day", HOOK, 8),
            WindowAggs(*W, journey=JourneyAgg(7, 3)),
            Evaluation(None, 3 / 7, 0.5, WINDOW_S, "7 events in the window, fewer than min_volume"),
        ),
        # take-up 3 digital of 4 completed
        (
            KpiRule("takeup", "digital_takeup", "below", 0.8, "month", HOOK, 4),
            WindowAggs(*W, tx=tx(0, 4, 3)),
            Evaluation(True, 0.75, 0.8, WINDOW_S),
        ),
    ],
)
def test_a_kpi_rule_against_its_window(rule: KpiRule, aggs: WindowAggs, expected: Evaluation) -> None:
    assert evaluate_kpi(rule, aggs) == expected


def test_a_stale_rule_uses_the_data_set_status_check() -> None:
    rule = StaleRule("fresh", "carers-allowance/weekly-claims", HOOK)
    day = DataSetConfig("carers-allowance", "weekly-claims", max_age_expected=86_400)
    registry = Registry({day.name: day})
    now_s = NOW // 1000
    name = "carers_allowance_weekly_claims"
    assert evaluate_stale(rule, registry, {name: now_s - 86_399}, NOW) == Evaluation(False, 86_399, 86_400)
    # exactly max_age_expected old is out of date, as /_status/data-sets says
    assert evaluate_stale(rule, registry, {name: now_s - 86_400}, NOW) == Evaluation(True, 86_400, 86_400)
    # no records at all: out of date, no age
    assert evaluate_stale(rule, registry, {}, NOW) == Evaluation(True, None, 86_400)
    assert evaluate_stale(rule, Registry(), {}, NOW) == Evaluation(
        None, None, None, reason="no data set carers-allowance/weekly-claims"
    )
    unchecked = DataSetConfig("carers-allowance", "weekly-claims", max_age_expected=None)
    assert evaluate_stale(rule, Registry({name: unchecked}), {}, NOW) == Evaluation(
        None, None, None, reason="data set carers-allowance/weekly-claims has no max_age_expected"
    )


# --- the state machine ---------------------------------------------------------------------------

BREACH = Evaluation(True, 0.4, 0.5, WINDOW_S)
CLEAR = Evaluation(False, 0.7, 0.5, WINDOW_S)
UNKNOWN = Evaluation(None, None, 0.5, WINDOW_S, "no data in the window")
WINDOW_JSON = {"start": "2024-04-03T09:15:00+00:00", "end": "2024-04-03T10:16:00+00:00"}


def test_a_breach_fires_once_with_the_webhook_payload() -> None:
    state, event = step("passport", RULE, None, BREACH, NOW)
    assert state == AlertState("firing", 1, NOW, 0.4)
    assert event == AlertEvent(
        "passport",
        "low-completion",
        1,
        "firing",
        NOW,
        {
            "id": "passport:low-completion:1",
            "service": "passport",
            "rule": "low-completion",
            "status": "firing",
            "kpi": "completion_rate",
            "value": 0.4,
            "threshold": 0.5,
            "period": "hour",
            "at": "2024-04-03T10:15:30+00:00",
            "op": "below",
            "window": WINDOW_JSON,
        },
        HOOK,
    )
    assert event.notifies and not event.delivered
    # still breached: nothing new
    assert step("passport", RULE, state, BREACH, NOW + 30_000) == (state, None)


def test_recovery_resolves_once() -> None:
    firing = AlertState("firing", 3, NOW - 60_000, 0.4)
    state, event = step("passport", RULE, firing, CLEAR, NOW)
    assert state == AlertState("ok", 4, NOW, 0.7)
    assert event is not None
    assert (event.seq, event.status, event.notifies) == (4, "resolved", True)
    assert event.payload["id"] == "passport:low-completion:4"
    assert (event.payload["status"], event.payload["value"]) == ("resolved", 0.7)
    assert step("passport", RULE, state, CLEAR, NOW + 30_000) == (state, None)


def test_the_first_clear_evaluation_records_ok_without_notifying() -> None:
    state, event = step("passport", RULE, None, CLEAR, NOW)
    assert state == AlertState("ok", 1, NOW, 0.7)
    assert event is not None
    assert (event.status, event.notifies, event.delivered) == ("ok", False, True)


def test_unknown_never_changes_the_state() -> None:
    assert step("passport", RULE, None, UNKNOWN, NOW) == (None, None)
    firing = AlertState("firing", 1, NOW, 0.4)
    assert step("passport", RULE, firing, UNKNOWN, NOW) == (firing, None)
    ok = AlertState("ok", 2, NOW, 0.7)
    assert step("passport", RULE, ok, UNKNOWN, NOW) == (ok, None)


def test_flapping_notifies_every_change_and_nothing_else() -> None:
    evaluations = [
        UNKNOWN,
        CLEAR,
        BREACH,
        BREACH,
        UNKNOWN,
        BREACH,
        CLEAR,
        BREACH,
        CLEAR,
        CLEAR,
        UNKNOWN,
        BREACH,
    ]
    state: AlertState | None = None
    rows = []
    for i, ev in enumerate(evaluations):
        state, event = step("passport", RULE, state, ev, NOW + i * 30_000)
        if event is not None:
            rows.append((i, event.seq, event.status, event.notifies))
    assert rows == [
        (1, 1, "ok", False),
        (2, 2, "firing", True),
        (6, 3, "resolved", True),
        (7, 4, "firing", True),
        (8, 5, "resolved", True),
        (11, 6, "firing", True),
    ]
    assert state == AlertState("firing", 6, NOW + 11 * 30_000, 0.4)


def test_a_stale_rule_notifies_with_the_data_set_and_its_age() -> None:
    rule = StaleRule("fresh", "carers-allowance/weekly-claims", HOOK)
    _, event = step("carers", rule, None, Evaluation(True, 90_000, 86_400), NOW)
    assert event is not None
    assert event.payload == {
        "id": "carers:fresh:1",
        "service": "carers",
        "rule": "fresh",
        "status": "firing",
        "kpi": None,
        "value": 90_000,
        "threshold": 86_400,
        "period": None,
        "at": "2024-04-03T10:15:30+00:00",
        "data_set": "carers-allowance/weekly-claims",
    }


def test_the_newest_copy_of_a_row_wins() -> None:
    _, event = step("passport", RULE, None, BREACH, NOW)
    assert event is not None
    failed = event.attempted("HTTP 500", 3)
    again = failed.attempted("connection refused", 3)
    done = again.attempted("", 1)
    assert (failed.attempts, failed.error, failed.delivered) == (3, "HTTP 500", False)
    assert (done.attempts, done.error, done.delivered) == (7, "", True)
    assert event.version < failed.version < again.version < done.version
    # delivered beats any number of failed attempts; a later change beats both
    assert event.attempted("x", 10_000).version < done.version
    _, later = step("passport", RULE, AlertState("firing", 1, NOW, 0.4), CLEAR, NOW)
    assert later is not None and done.version < later.version


def test_rows_round_trip_through_their_columns() -> None:
    _, first = step("passport", RULE, None, BREACH, NOW)
    _, second = step("passport", RULE, AlertState("firing", 1, NOW, 0.4), CLEAR, NOW + 60_000)
    assert first is not None and second is not None
    events = [first.attempted("HTTP 500", 2), second]
    cols = event_columns(events)
    rows = list(
        zip(
            *(cols[c] for c in ("service", "rule", "seq", "status", "at_ms", "doc", "webhook")),
            cols["delivered"],
            cols["attempts"],
            cols["error"],
            strict=True,
        )
    )
    assert events_of(rows) == events
    assert states_of(rows) == {("passport", "low-completion"): AlertState("ok", 2, NOW + 60_000, 0.7)}
    assert cols["version"] == [e.version for e in events]


def test_rules_are_listed_with_their_states() -> None:
    stale = StaleRule("fresh", "a/b", HOOK)
    states = {("passport", "low-completion"): AlertState("firing", 2, NOW, 0.4)}
    assert rules_json("passport", [RULE, stale], states) == [
        {
            **RULE.as_json(),
            "state": {"status": "firing", "since": "2024-04-03T10:15:30+00:00", "value": 0.4},
        },
        {**stale.as_json(), "state": {"status": "unknown", "since": None, "value": None}},
    ]
    assert RULE.as_json() == {
        "id": "low-completion",
        "kind": "kpi",
        "kpi": "completion_rate",
        "op": "below",
        "threshold": 0.5,
        "period": "hour",
        "min_volume": 10,
        "webhook": HOOK,
    }


def test_history_sql_renders_its_parameters_as_literals() -> None:
    sql, params = history_sql("perfplat", "it's", 100)
    rendered = render(sql, params)
    assert "WHERE service = 'it\\'s' AND status != 'ok'" in rendered
    assert rendered.endswith("ORDER BY max(at_ms) DESC, seq DESC, rule LIMIT 100")
