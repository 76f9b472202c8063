"""Alerts at run time: the evaluator that runs in the process reading the store, and
``GET /services/{service}/alerts``.

The evaluator (:class:`AlertRunner`) is an asyncio task of the read app's lifespan (the embedded
core process, which owns chdb, and every distributed ``perfplat api`` process), switched by
``alerts.enabled`` and run every ``alerts.interval_s``. Each evaluation:

1. reads the services registry and parses each service's rules (``pipeline.alerts``);
2. reads the KPI windows the rules need, one read per period for all services together
   (``pipeline.kpi_sql.window_queries``), and the newest record of every data set when a stale
   rule needs it (``pipeline.staleness``);
3. reads each rule's stored state, steps the state machine, and inserts the changes into
   ``alert_events`` — before anything is sent, so a notification is decided once whatever
   happens next;
4. POSTs every notification not delivered yet (this evaluation's and earlier failures', up to
   ``alerts.max_delivery_age_s`` old) to its rule's webhook, in order per rule, with
   ``alerts.webhook_attempts`` tries and a doubling backoff, and records the outcome.

A failing store read, registry file or webhook is logged and skips what depends on it; the next
evaluation tries again. Nothing it meets stops the loop.

Several processes evaluating (distributed mode with several ``perfplat api`` processes, or
``api.ingest_processes`` > 1): they agree on every rule's state, because it is read from the
store, and a change they both find is the same row (same ``seq``): a breach is recorded once and,
once a delivery is recorded, never sent again. Two processes evaluating in the same instant can
both POST one notification before either records it; it carries the same ``id`` both times so a
receiver can drop the copy. To rule that out, set ``PERFPLAT_ALERTS__ENABLED=false`` on all but
one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from fastapi import APIRouter

from api.responses import JSONBody
from pipeline.alerts import (
    TABLE,
    AlertEvent,
    AlertState,
    Evaluation,
    KpiRule,
    Rule,
    StaleRule,
    evaluate_kpi,
    evaluate_stale,
    event_columns,
    events_of,
    history_sql,
    parse_rules,
    pending_sql,
    rule_window,
    rules_json,
    states_of,
    states_sql,
    step,
    unknown,
)
from pipeline.beacon import SLUG
from pipeline.clock import Clock
from pipeline.datasets import RegistryFile
from pipeline.errors import BadInput
from pipeline.kpi_sql import Query, window_aggs, window_queries
from pipeline.probes import describe_error
from pipeline.services import ServiceRegistryFile
from pipeline.settings import AlertSettings
from pipeline.staleness import epochs_sql, newest_by_set, newest_sql
from pipeline.store import Store

log = logging.getLogger(__name__)


def brief(exc: BaseException) -> str:
    """An error on one line, without the server's stack trace."""
    return " ".join(str(exc).split("Stack trace:")[0].split())[:300] or type(exc).__name__


USER_AGENT = "perfplat-alerts/1"
MAX_NAME_SHOWN = 80
_NO_STORE = {"Cache-Control": "no-cache"}


@dataclass
class Report:
    """What one evaluation did (for tests and the log)."""

    rules: int = 0
    unknown: int = 0
    changes: list[AlertEvent] = field(default_factory=list)
    delivered: list[AlertEvent] = field(default_factory=list)
    failed: list[AlertEvent] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class AlertRunner:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        services: ServiceRegistryFile,
        data_sets: RegistryFile,
        settings: AlertSettings,
    ) -> None:
        self.store = store
        self.clock = clock
        self.services = services
        self.data_sets = data_sets
        self.settings = settings

    @staticmethod
    def _failed(report: Report, what: str, exc: BaseException) -> None:
        """A step that failed: logged, reported, and skipped until the next evaluation."""
        text = brief(exc)
        report.errors.append(f"{what}: {text}")
        log.warning("alerts: %s failed: %s", what, text)

    async def _query(self, query: Query) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self.store.query, *query)

    def _rules(self, report: Report) -> dict[str, tuple[Rule, ...]]:
        out: dict[str, tuple[Rule, ...]] = {}
        for slug, config in sorted(self.services.current().services.items()):
            try:
                rules = parse_rules(config.alerts)
            except ValueError as exc:  # checked on load; kept for a registry built in code
                report.errors.append(f"{slug}: {exc}")
                continue
            if rules:
                out[slug] = rules
        return out

    async def _kpi_evaluations(
        self, rules: dict[str, tuple[Rule, ...]], now_ms: int, report: Report
    ) -> dict[tuple[str, str], Evaluation]:
        """Every KPI rule's evaluation: one read of each period's window for all services."""
        by_period: dict[str, list[tuple[str, KpiRule]]] = {}
        for service, service_rules in rules.items():
            for rule in service_rules:
                if isinstance(rule, KpiRule):
                    by_period.setdefault(rule.period, []).append((service, rule))
        out: dict[tuple[str, str], Evaluation] = {}
        for entries in by_period.values():
            period = entries[0][1].period
            services = sorted({s for s, _ in entries})
            window = rule_window(period, now_ms)
            queries = window_queries(self.store.database, services, *window)
            try:
                rows = await asyncio.gather(*(self._query(q) for q in queries))
            except Exception as exc:  # the store: every rule of this period is unknown this time
                self._failed(report, f"reading the {period} window", exc)
                for service, rule in entries:
                    out[service, rule.id] = unknown("the store could not be read", rule.threshold)
                continue
            aggs = window_aggs(services, *window, rows)
            for service, rule in entries:
                out[service, rule.id] = evaluate_kpi(rule, aggs[service])
        return out

    async def _stale_evaluations(
        self, rules: dict[str, tuple[Rule, ...]], now_ms: int, report: Report
    ) -> dict[tuple[str, str], Evaluation]:
        entries = [(s, r) for s, rs in rules.items() for r in rs if isinstance(r, StaleRule)]
        if not entries:
            return {}
        db = self.store.database
        try:
            registry = self.data_sets.current()
            newest_rows, epoch_rows = await asyncio.gather(
                self._query((newest_sql(db), {})), self._query((epochs_sql(db), {}))
            )
        except Exception as exc:
            self._failed(report, "reading data-set freshness", exc)
            return {(s, r.id): unknown("the store could not be read") for s, r in entries}
        newest = newest_by_set(newest_rows, epoch_rows)
        return {(s, r.id): evaluate_stale(r, registry, newest, now_ms) for s, r in entries}

    async def evaluate_once(self) -> Report:
        """One evaluation of every rule, and the deliveries due. Never raises (but cancellation)."""
        report = Report()
        try:
            await self._evaluate(report)
        except Exception as exc:
            report.errors.append(f"evaluation failed: {brief(exc)}")
            log.exception("alerts: evaluation failed")
        return report

    async def _evaluate(self, report: Report) -> None:
        now_ms = self.clock.now_ms()
        try:
            rules = self._rules(report)
        except ValueError as exc:  # the services file does not parse: nothing to evaluate
            report.errors.append(f"services registry: {exc}")
            log.warning("alerts: the services registry cannot be read: %s", exc)
            return
        if not rules:
            return
        services = sorted(rules)
        evaluations = await self._kpi_evaluations(rules, now_ms, report)
        evaluations |= await self._stale_evaluations(rules, now_ms, report)
        report.rules = len(evaluations)
        report.unknown = sum(ev.breached is None for ev in evaluations.values())
        try:
            states = states_of(await self._query(states_sql(self.store.database, services)))
        except Exception as exc:  # without the states no change can be decided
            self._failed(report, "reading alert states", exc)
            return
        for service, service_rules in rules.items():
            for rule in service_rules:
                ev = evaluations[service, rule.id]
                _, change = step(service, rule, states.get((service, rule.id)), ev, now_ms)
                if change is not None:
                    report.changes.append(change)
        if report.changes:
            try:
                await asyncio.to_thread(self.store.insert, TABLE, event_columns(report.changes))
            except Exception as exc:  # nothing recorded, nothing sent: the next evaluation decides again
                self._failed(report, "recording alert changes", exc)
                return
            for change in report.changes:
                log.info(
                    "alert %s %s: %s (value %s)",
                    change.service,
                    change.rule,
                    change.status,
                    change.payload.get("value"),
                )
        await self._deliver(rules, services, now_ms, report)

    async def _deliver(
        self, rules: dict[str, tuple[Rule, ...]], services: Sequence[str], now_ms: int, report: Report
    ) -> None:
        since_ms = now_ms - self.settings.max_delivery_age_s * 1000
        try:
            pending = events_of(await self._query(pending_sql(self.store.database, services, since_ms)))
        except Exception as exc:
            self._failed(report, "reading undelivered notifications", exc)
            return
        if not pending:
            return
        webhooks = {(s, r.id): r.webhook for s, rs in rules.items() for r in rs}
        by_rule: dict[tuple[str, str], list[AlertEvent]] = {}
        for event in pending:
            by_rule.setdefault((event.service, event.rule), []).append(event)
        headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
        async with httpx.AsyncClient(
            timeout=self.settings.webhook_timeout_s, headers=headers, follow_redirects=False
        ) as client:
            outcomes = await asyncio.gather(
                *(self._deliver_rule(client, events, webhooks.get(key)) for key, events in by_rule.items())
            )
        updated = [e for events in outcomes for e in events]
        report.delivered += [e for e in updated if e.delivered]
        report.failed += [e for e in updated if not e.delivered]
        try:
            await asyncio.to_thread(self.store.insert, TABLE, event_columns(updated))
        except Exception as exc:  # the delivered ones may be sent again next time (same id)
            self._failed(report, "recording deliveries", exc)

    async def _deliver_rule(
        self, client: httpx.AsyncClient, events: list[AlertEvent], webhook: str | None
    ) -> list[AlertEvent]:
        """A rule's notifications in order (the rule's current webhook, or the one it had when the
        rule is gone); the first that fails holds back the later ones."""
        out = []
        for event in events:
            url = webhook or event.webhook
            attempts, error = await self._post(client, url, event.payload)
            out.append(event.attempted(error, attempts))
            if error:
                log.warning(
                    "alerts: webhook for %s %s (%s) failed after %d attempts: %s",
                    event.service,
                    event.rule,
                    event.status,
                    attempts,
                    error,
                )
                break
        return out

    async def _post(self, client: httpx.AsyncClient, url: str, payload: dict[str, Any]) -> tuple[int, str]:
        """(attempts made, "" on a 2xx answer or the last failure)."""
        body = orjson.dumps(payload)
        error = ""
        for attempt in range(self.settings.webhook_attempts):
            if attempt:
                await asyncio.sleep(self.settings.webhook_backoff_ms / 1000 * 2 ** (attempt - 1))
            try:
                response = await client.post(url, content=body)
            except httpx.HTTPError as exc:
                error = describe_error(exc, self.settings.webhook_timeout_s)
                continue
            if 200 <= response.status_code < 300:
                return attempt + 1, ""
            error = f"HTTP {response.status_code}"
        return self.settings.webhook_attempts, error

    async def run(self) -> None:
        """Evaluate every ``interval_s`` until cancelled."""
        log.info("alerts: evaluating every %g s", self.settings.interval_s)
        while True:
            report = await self.evaluate_once()
            if report.changes or report.failed:
                log.info(
                    "alerts: %d rules, %d changes, %d delivered, %d not delivered",
                    report.rules,
                    len(report.changes),
                    len(report.delivered),
                    len(report.failed),
                )
            await asyncio.sleep(self.settings.interval_s)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """For a lifespan: the evaluation loop as a background task when ``enabled``."""
        if not self.settings.enabled:
            yield
            return
        task = asyncio.create_task(self.run(), name="perfplat-alerts")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# --- read ----------------------------------------------------------------------------------------


class AlertReader:
    def __init__(self, store: Store, services: ServiceRegistryFile) -> None:
        self.store = store
        self.services = services

    async def service_alerts(self, name: str) -> dict[str, Any]:
        """The service's rules with their current state, and its notifications newest first."""
        config = self.services.current().get(name) if SLUG.fullmatch(name) else None
        if config is None:
            shown = name if len(name) <= MAX_NAME_SHOWN else name[:MAX_NAME_SHOWN] + "…"
            raise BadInput(f"No service named {shown}", 404)
        rules = parse_rules(config.alerts)
        db = self.store.database
        state_rows, history_rows = await asyncio.gather(
            asyncio.to_thread(self.store.query, *states_sql(db, [name])),
            asyncio.to_thread(self.store.query, *history_sql(db, name)),
        )
        states: dict[tuple[str, str], AlertState] = states_of(state_rows)
        return {
            "service": name,
            "rules": rules_json(name, rules, states),
            "notifications": [e.as_json() for e in events_of(history_rows)],
        }


def alerts_router(reader: AlertReader) -> APIRouter:
    """``GET /services/{service}/alerts``. Needs the app's error handlers (``api.errors``)."""
    router = APIRouter()

    @router.get("/services/{service}/alerts")
    async def service_alerts(service: str) -> JSONBody:
        """The service's alert rules, each with its state, and its last 100 notifications."""
        return JSONBody(await reader.service_alerts(service), headers=_NO_STORE)

    return router
