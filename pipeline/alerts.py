"""Alerts: a service's rules on its KPIs and data sets, what one evaluation of a rule says, and
the state machine that turns evaluations into notifications. Pure: time is an argument, SQL is
built here and run by the caller (``api.alerts``).

**Rules** are kept in the services registry (``ServiceConfig.alerts``) as JSON objects, checked
by :func:`parse_rules` when a service is created, changed or loaded. Two kinds:

- a KPI rule ``{"id", "kpi", "op", "threshold", "period", "min_volume"?, "webhook"}``: the KPI
  (one of the names ``pipeline.kpi_sql.kpi_values`` gives, e.g. ``completion_rate``,
  ``availability``, ``user_satisfaction_score``) computed over the rule's window is breached when
  it is strictly ``below`` / ``above`` the threshold (exactly at the threshold is not a breach).
  Ratios are 0..1 (99.9% is 0.999), money is pounds, times are ms. The window (:func:`rule_window`):

  - ``hour``: the last 60 minutes (rolling);
  - ``day``, ``week``, ``month``: the period so far (UTC day from 00:00, week from Monday 00:00,
    month from the 1st) up to now, as ``GET /services/{s}/kpis?period=…`` reports it;

  each read in whole minutes (``pipeline.kpi_sql.read_window``). A window whose KPI has no value
  (nothing started, no probe, no rating…) or fewer than ``min_volume`` of the events the KPI is
  computed from (:data:`VOLUME`) says nothing: the evaluation is *unknown*.
- a stale rule ``{"id", "data_set": "group/type", "webhook"}``: breached when the data set has
  not been updated within its ``max_age_expected`` (the check of ``/_status/data-sets``,
  ``pipeline.staleness.status``); unknown when the data set is not registered or has no
  ``max_age_expected``.

``webhook`` is the http(s) URL each notification of the rule is POSTed to; ``kind`` (``kpi`` or
``stale``) may be given and must then agree with the fields.

**State machine** (:func:`step`): a rule is ``ok`` or ``firing``; with no state yet it is unknown.
An evaluation that breaches makes it ``firing`` and notifies ``"status": "firing"`` once; one that
does not makes a firing rule ``ok`` and notifies ``"status": "resolved"`` once; an unchanged
status and an unknown evaluation change nothing. The first known evaluation of a rule that is not
breached records ``ok`` without notifying. Every change is one row of ``alert_events``
(``schemas/ddl/0004_alerts.sql``), numbered ``seq`` 1, 2, … per rule: the current state is the
rule's newest row, so every process that evaluates agrees on it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson

from pipeline.clock import iso_utc
from pipeline.datasets import SLUG as DATA_SET_SLUG
from pipeline.datasets import DataSetConfig, Registry
from pipeline.kpi import WindowAggs
from pipeline.kpi_sql import SERVICE_KPIS, UNITS, Query, Rows, kpi_values, read_window
from pipeline.sql import identifier
from pipeline.staleness import status as staleness_status
from pipeline.windows import so_far_window

Op = Literal["below", "above"]
AlertPeriod = Literal["hour", "day", "week", "month"]
StateStatus = Literal["ok", "firing"]
EventStatus = Literal["ok", "firing", "resolved"]
Columns = dict[str, list[Any]]

OPS: tuple[Op, ...] = ("below", "above")
ALERT_PERIODS: tuple[AlertPeriod, ...] = ("hour", "day", "week", "month")
RULE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAX_RULES = 50
MAX_URL_CHARS = 2048
HISTORY_LIMIT = 100
TABLE = "alert_events"
_KPI_KEYS = frozenset({"id", "kind", "kpi", "op", "threshold", "period", "min_volume", "webhook"})
_STALE_KEYS = frozenset({"id", "kind", "data_set", "webhook"})
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f]")
_HOUR_MS = 3_600_000

VOLUME: dict[str, Callable[[WindowAggs], int]] = {
    "transactions_started": lambda w: w.tx.started,
    "transactions_completed": lambda w: w.tx.completed,
    "completion_rate": lambda w: w.tx.started,
    "digital_takeup": lambda w: w.tx.completed,
    "total_cost": lambda w: w.tx.completed,
    "cost_per_transaction": lambda w: w.tx.completed,
    "time_to_complete_mean": lambda w: w.tx.ttc_count,
    "time_to_complete_median": lambda w: w.tx.ttc_count,
    "time_to_complete_p95": lambda w: w.tx.ttc_count,
    "satisfaction_responses": lambda w: w.ratings.total,
    "user_satisfaction_score": lambda w: w.ratings.total,
    "availability": lambda w: w.probes.probes,
    "response_time_mean": lambda w: w.probes.rt_count,
    "response_time_p95": lambda w: w.probes.rt_count,
    "journey_starts": lambda w: w.journey.starts,
    "journey_completion_rate": lambda w: w.journey.starts,
}
"""For each KPI, how many events its value is computed from: transactions started for the
completion rate, completions for take-up and costs, ratings, probes, journey starts.
``min_volume`` counts these."""
ALERT_KPIS: tuple[str, ...] = tuple(k for k in SERVICE_KPIS if k in VOLUME)
"""The KPIs a rule may watch: those of ``kpi_values``, in its order."""


# --- rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KpiRule:
    id: str
    kpi: str
    op: Op
    threshold: int | float
    period: AlertPeriod
    webhook: str
    min_volume: int = 0
    kind: Literal["kpi"] = "kpi"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "kpi": self.kpi,
            "op": self.op,
            "threshold": self.threshold,
            "period": self.period,
            "min_volume": self.min_volume,
            "webhook": self.webhook,
        }


@dataclass(frozen=True, slots=True)
class StaleRule:
    id: str
    data_set: str
    """``group/type``."""
    webhook: str
    kind: Literal["stale"] = "stale"

    @property
    def group_type(self) -> tuple[str, str]:
        group, _, data_type = self.data_set.partition("/")
        return group, data_type

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "data_set": self.data_set, "webhook": self.webhook}


Rule = KpiRule | StaleRule


def check_webhook(url: object) -> str:
    """``url`` if it is an absolute http(s) URL with a host, no credentials, no spaces or control
    characters; ValueError otherwise."""
    if type(url) is not str or not url:
        raise ValueError("webhook must be an http:// or https:// URL")
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"webhook must be at most {MAX_URL_CHARS} characters")
    if _CONTROL_OR_SPACE.search(url):
        raise ValueError("webhook must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("webhook is not a valid URL (check its host and port)") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("webhook must be an http:// or https:// URL")
    if not parts.hostname or port == 0:
        raise ValueError("webhook has no valid host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("webhook must not carry credentials (user:password@)")
    return url


def _number(value: object) -> bool:
    return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]


def parse_rule(doc: object) -> Rule:
    """One rule from its JSON object; ValueError says what is wrong and what it should be."""
    if not isinstance(doc, dict):
        raise ValueError("an alert rule is a JSON object")
    kind = doc.get("kind")
    if kind is None:
        kind = "stale" if "data_set" in doc and "kpi" not in doc else "kpi"
    if kind not in ("kpi", "stale"):
        raise ValueError('kind must be "kpi" or "stale"')
    allowed = _KPI_KEYS if kind == "kpi" else _STALE_KEYS
    unknown = sorted(str(k) for k in doc if k not in allowed)
    if unknown:
        raise ValueError(f"unknown settings for a {kind} rule: {', '.join(unknown)}")
    rule_id = doc.get("id")
    if type(rule_id) is not str or not RULE_ID.fullmatch(rule_id):
        raise ValueError(
            "id must be 1 to 64 characters of a-z, 0-9, - and _, starting with a letter or digit"
        )
    required = ("kpi", "op", "threshold", "period", "webhook") if kind == "kpi" else ("data_set", "webhook")
    missing = [k for k in required if k not in doc]
    if missing:
        raise ValueError(f"a {kind} rule needs {', '.join(missing)}")
    webhook = check_webhook(doc["webhook"])
    if kind == "stale":
        data_set = doc.get("data_set")
        group, _, data_type = data_set.partition("/") if type(data_set) is str else ("", "", "")
        if not DATA_SET_SLUG.fullmatch(group) or not DATA_SET_SLUG.fullmatch(data_type):
            raise ValueError('data_set must be "group/type" (each a-z, 0-9 and -)')
        return StaleRule(rule_id, f"{group}/{data_type}", webhook)
    kpi = doc["kpi"]
    if kpi not in ALERT_KPIS:
        raise ValueError(f"kpi must be one of {', '.join(ALERT_KPIS)}")
    op = next((o for o in OPS if o == doc["op"]), None)
    if op is None:
        raise ValueError('op must be "below" or "above"')
    threshold = doc["threshold"]
    if not _number(threshold):
        raise ValueError("threshold must be a number")
    unit = UNITS[kpi]
    if unit == "ratio" and not 0 <= threshold <= 1:
        raise ValueError(f"{kpi} is a ratio from 0 to 1: its threshold must be too (99.9% is 0.999)")
    if threshold < 0:
        raise ValueError(f"threshold must not be negative ({kpi} is in {unit})")
    period = next((p for p in ALERT_PERIODS if p == doc["period"]), None)
    if period is None:
        raise ValueError(f"period must be one of {', '.join(ALERT_PERIODS)}")
    min_volume = doc.get("min_volume", 0)
    if type(min_volume) is not int or min_volume < 0:
        raise ValueError("min_volume must be a whole number, 0 or more")
    return KpiRule(rule_id, kpi, op, threshold, period, webhook, min_volume)


def parse_rules(docs: Iterable[object]) -> tuple[Rule, ...]:
    """A service's rules; ValueError names the first wrong rule by position and id. Ids are unique
    within the service; at most :data:`MAX_RULES`."""
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, doc in enumerate(docs):
        name = doc.get("id") if isinstance(doc, dict) else None
        label = f"alert rule #{i + 1}" + (
            f" ({name})" if type(name) is str and RULE_ID.fullmatch(name) else ""
        )
        try:
            rule = parse_rule(doc)
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
        if rule.id in seen:
            raise ValueError(f"{label}: another rule of this service has the id {rule.id}")
        seen.add(rule.id)
        rules.append(rule)
    if len(rules) > MAX_RULES:
        raise ValueError(f"a service has at most {MAX_RULES} alert rules")
    return tuple(rules)


# --- evaluation ----------------------------------------------------------------------------------


def rule_window(period: AlertPeriod, now_ms: int) -> tuple[int, int]:
    """The window a KPI rule of ``period`` reads at ``now_ms``, ``[start_s, end_s)`` in whole
    minutes: the last 60 minutes for ``hour``, the period so far otherwise."""
    if period == "hour":
        return read_window(now_ms - _HOUR_MS, now_ms)
    return read_window(*so_far_window(now_ms, period))


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one evaluation of a rule found. ``breached`` None: unknown (``reason`` says why)."""

    breached: bool | None
    value: int | float | None
    threshold: int | float | None
    window: tuple[int, int] | None = None
    """``[start_s, end_s)`` a KPI rule read."""
    reason: str = ""


def unknown(reason: str, threshold: int | float | None = None) -> Evaluation:
    return Evaluation(None, None, threshold, reason=reason)


def evaluate_kpi(rule: KpiRule, w: WindowAggs) -> Evaluation:
    """The rule against the aggregates of its window (:func:`rule_window`)."""
    window = (w.start_ms // 1000, w.end_ms // 1000)
    value = kpi_values(rule.period, w)[rule.kpi]
    volume = VOLUME[rule.kpi](w)
    if value is None:
        return Evaluation(None, None, rule.threshold, window, "no data in the window")
    if volume < rule.min_volume:
        return Evaluation(
            None, value, rule.threshold, window, f"{volume} events in the window, fewer than min_volume"
        )
    breached = value < rule.threshold if rule.op == "below" else value > rule.threshold
    return Evaluation(breached, value, rule.threshold, window)


def evaluate_stale(
    rule: StaleRule, data_sets: Registry, newest_s: Mapping[str, int], now_ms: int
) -> Evaluation:
    """The rule against the data-set registry and each set's newest record (epoch seconds, as
    ``pipeline.staleness.newest_by_set`` gives them). The value is the age of the newest record
    in seconds, None when the set holds none (which is stale, as ``/_status/data-sets`` says)."""
    config: DataSetConfig | None = data_sets.get(*rule.group_type)
    if config is None:
        return unknown(f"no data set {rule.data_set}")
    if config.max_age_expected is None:
        return unknown(f"data set {rule.data_set} has no max_age_expected")
    report = staleness_status([config], newest_s, now_ms)
    newest = newest_s.get(config.name)
    age = None if newest is None else now_ms // 1000 - newest
    return Evaluation(report["data_sets"] is not None, age, config.max_age_expected)


# --- state machine -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One change of a rule's state: a row of ``alert_events``. ``payload`` is the webhook's JSON
    (an ``ok`` row, the first state of a rule, has the same shape and is never sent)."""

    service: str
    rule: str
    seq: int
    status: EventStatus
    at_ms: int
    payload: dict[str, Any]
    webhook: str
    delivered: bool = False
    attempts: int = 0
    error: str = ""

    @property
    def notifies(self) -> bool:
        return self.status != "ok"

    @property
    def version(self) -> int:
        """Orders the rows: a later ``seq`` over an earlier one, then delivered over not, then
        more attempts over fewer (``ReplacingMergeTree(version)`` keeps the greatest)."""
        return (self.seq << 32) | (int(self.delivered) << 31) | min(self.attempts, (1 << 31) - 1)

    @property
    def state(self) -> AlertState:
        status: StateStatus = "firing" if self.status == "firing" else "ok"
        return AlertState(status, self.seq, self.at_ms, self.payload.get("value"))

    def attempted(self, error: str, attempts: int) -> AlertEvent:
        """The event after ``attempts`` more deliveries, the last failing with ``error`` ("" : delivered)."""
        return replace(self, delivered=not error, attempts=self.attempts + attempts, error=error[:500])

    def as_json(self) -> dict[str, Any]:
        return {**self.payload, "delivered": self.delivered, "attempts": self.attempts, "error": self.error}


@dataclass(frozen=True, slots=True)
class AlertState:
    status: StateStatus
    seq: int
    """How many changes the rule has had; its newest row's ``seq``."""
    since_ms: int
    value: int | float | None
    """The value that made the last change."""

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "since": iso_utc(self.since_ms), "value": self.value}


def notification_id(service: str, rule: str, seq: int) -> str:
    return f"{service}:{rule}:{seq}"


def payload(
    service: str, rule: Rule, seq: int, status: EventStatus, ev: Evaluation, now_ms: int
) -> dict[str, Any]:
    """The webhook's JSON: ``service``, ``rule``, ``status``, ``kpi``, ``value``, ``threshold``,
    ``period``, ``at``, and ``id`` (the same for every copy of one notification: receivers may
    deduplicate by it). A KPI rule adds ``op`` and ``window``; a stale rule has ``kpi`` and
    ``period`` null and adds ``data_set`` (``value`` is the age in seconds)."""
    doc: dict[str, Any] = {
        "id": notification_id(service, rule.id, seq),
        "service": service,
        "rule": rule.id,
        "status": status,
        "kpi": rule.kpi if isinstance(rule, KpiRule) else None,
        "value": ev.value,
        "threshold": ev.threshold,
        "period": rule.period if isinstance(rule, KpiRule) else None,
        "at": iso_utc(now_ms),
    }
    if isinstance(rule, KpiRule):
        doc["op"] = rule.op
        if ev.window is not None:
            doc["window"] = {"start": iso_utc(ev.window[0] * 1000), "end": iso_utc(ev.window[1] * 1000)}
    else:
        doc["data_set"] = rule.data_set
    return doc


def step(
    service: str, rule: Rule, last: AlertState | None, ev: Evaluation, now_ms: int
) -> tuple[AlertState | None, AlertEvent | None]:
    """(last state, evaluation) → (new state, the change to record or None). The change notifies
    (``event.notifies``) when a breach starts (``firing``) or ends (``resolved``)."""
    if ev.breached is None:
        return last, None
    now: StateStatus = "firing" if ev.breached else "ok"
    if last is not None and last.status == now:
        return last, None
    seq = (last.seq if last is not None else 0) + 1
    status: EventStatus = "firing" if ev.breached else "resolved" if last is not None else "ok"
    event = AlertEvent(
        service,
        rule.id,
        seq,
        status,
        now_ms,
        payload(service, rule, seq, status, ev, now_ms),
        rule.webhook,
        delivered=status == "ok",
    )
    return event.state, event


# --- SQL -------------------------------------------------------------------------------------------

_LATEST = (
    "argMax(status, version), argMax(at_ms, version), argMax(doc, version), argMax(webhook, version), "
    "argMax(delivered, version), argMax(attempts, version), argMax(error, version)"
)


def states_sql(database: str, services: Sequence[str]) -> Query:
    """The newest row of every rule of the services: their current states (:func:`states_of`)."""
    sql = (
        f"SELECT service, rule, max(seq), {_LATEST} FROM {identifier(database)}.{TABLE} "
        "WHERE service IN %(services)s GROUP BY service, rule"
    )
    return sql, {"services": list(services)}


def pending_sql(database: str, services: Sequence[str], since_ms: int) -> Query:
    """Notifications of the services made at or after ``since_ms`` and not delivered yet, in
    order of ``seq`` per rule (:func:`events_of`)."""
    sql = (
        f"SELECT service, rule, seq, {_LATEST} FROM {identifier(database)}.{TABLE} "
        "WHERE service IN %(services)s AND status != 'ok' AND at_ms >= %(since)s "
        "GROUP BY service, rule, seq HAVING argMax(delivered, version) = 0 ORDER BY service, rule, seq"
    )
    return sql, {"services": list(services), "since": since_ms}


def history_sql(database: str, service: str, limit: int = HISTORY_LIMIT) -> Query:
    """The service's notifications, newest first, at most ``limit``."""
    sql = (
        f"SELECT service, rule, seq, {_LATEST} FROM {identifier(database)}.{TABLE} "
        "WHERE service = %(service)s AND status != 'ok' "
        "GROUP BY service, rule, seq ORDER BY max(at_ms) DESC, seq DESC, rule LIMIT %(limit)s"
    )
    return sql, {"service": service, "limit": limit}


def events_of(rows: Rows) -> list[AlertEvent]:
    """Rows ``(service, rule, seq, status, at_ms, doc, webhook, delivered, attempts, error)``."""
    out = []
    for service, rule, seq, status, at_ms, doc, webhook, delivered, attempts, error in rows:
        status_text = str(status)
        event_status: EventStatus = (
            "firing" if status_text == "firing" else "resolved" if status_text == "resolved" else "ok"
        )
        out.append(
            AlertEvent(
                str(service),
                str(rule),
                int(seq),
                event_status,
                int(at_ms),
                orjson.loads(doc) if doc else {},
                str(webhook),
                bool(int(delivered)),
                int(attempts),
                str(error),
            )
        )
    return out


def states_of(rows: Rows) -> dict[tuple[str, str], AlertState]:
    """Rows of :func:`states_sql` as each ``(service, rule)``'s state."""
    return {(e.service, e.rule): e.state for e in events_of(rows)}


def event_columns(events: Sequence[AlertEvent]) -> Columns:
    return {
        "service": [e.service for e in events],
        "rule": [e.rule for e in events],
        "seq": [e.seq for e in events],
        "status": [e.status for e in events],
        "at_ms": [e.at_ms for e in events],
        "doc": [orjson.dumps(e.payload).decode() for e in events],
        "webhook": [e.webhook for e in events],
        "delivered": [int(e.delivered) for e in events],
        "attempts": [e.attempts for e in events],
        "error": [e.error for e in events],
        "version": [e.version for e in events],
    }


def rules_json(
    service: str, rules: Sequence[Rule], states: Mapping[tuple[str, str], AlertState]
) -> list[dict[str, Any]]:
    """Each rule with its current state (``unknown``: never evaluated with data)."""
    out = []
    for rule in rules:
        state = states.get((service, rule.id))
        shown = state.as_json() if state else {"status": "unknown", "since": None, "value": None}
        out.append({**rule.as_json(), "state": shown})
    return out
