"""How KPI events become ClickHouse rows, and which events of a batch are new. Pure.

Transactions, ratings, journey events and probes are counted (``schemas/ddl/0003_kpi.sql``,
``0006_journey_sums.sql``, ``0007_probe_sums.sql``), so the processor inserts
an event only if it is not stored yet. An event is identified by its service, its id and the
minute of its own timestamp: a client's retry carries the same id and timestamp, and a
replayed Kafka message carries the very same event, so both are found. The sink keeps the ids
of the minutes it is writing in memory, loaded from the events table once per minute
(``minute_ids_query``, which the table's key ``(service, ts, id)`` narrows to that minute).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from pipeline.kpi import ABSENT, bucket_edge_ms
from pipeline.sql import identifier
from schemas.availability import AvailabilityEvent
from schemas.cost import CostEvent
from schemas.fields import from_ms
from schemas.journey import JourneyEvent
from schemas.satisfaction import SatisfactionEvent
from schemas.transaction import TransactionEvent

Key = tuple[str, str, int]
"""(service, event id, epoch second of the minute that holds the event's timestamp)."""
Columns = dict[str, list[Any]]


class Counted(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def service(self) -> str: ...
    @property
    def ts_ms(self) -> int: ...


C = TypeVar("C", bound=Counted)


def event_key(event: Counted) -> Key:
    return (event.service, event.id, event.ts_ms // 60_000 * 60)


def by_key(events: Iterable[C]) -> dict[Key, C]:
    """Each key of the batch with its first event, in batch order: the batch without its
    repeats, with every key computed once (the sink needs both)."""
    out: dict[Key, C] = {}
    for e in events:
        out.setdefault(event_key(e), e)
    return out


def minute_ids_query(
    database: str, table: str, minutes: Sequence[tuple[str, int]]
) -> tuple[str, dict[str, Any]]:
    """SQL (with its parameters) for the ids stored in ``table`` in the given (service, minute
    second) pairs; it answers rows of (service, minute second, id).

    The pairs travel as one list of ``service:minute`` keys (a key splits at its last colon, so
    no service makes two pairs look alike), inside the services' and the minutes' bounds, which
    the table's key ``(service, ts, id)`` narrows to. One ``OR`` branch per pair, as before,
    made chdb take about a second to plan 200 of them."""
    pairs = sorted(set(minutes))
    params: dict[str, Any] = {
        "services": sorted({service for service, _ in pairs}),
        "a": from_ms(min((m for _, m in pairs), default=0) * 1000),
        "b": from_ms((max((m for _, m in pairs), default=0) + 60) * 1000),
        "keys": [f"{service}:{minute}" for service, minute in pairs],
    }
    sql = (
        "SELECT service, toUInt32(toStartOfMinute(ts)) AS minute, id "
        f"FROM {identifier(database)}.{identifier(table)} "
        "WHERE service IN %(services)s AND ts >= %(a)s AND ts < %(b)s "
        "AND concat(service, ':', toString(minute)) IN %(keys)s"
    )
    return sql, params


def _ts(ms: int) -> int:
    """A DateTime column's value: epoch seconds (both backends take them as they are)."""
    return ms // 1000


def time_to_complete_ms(e: TransactionEvent) -> int:
    """Started → completed, for a completion that says when it started; ABSENT otherwise."""
    if e.outcome != "completed" or e.started_ms < 0 or e.started_ms > e.ts_ms:
        return ABSENT
    return e.ts_ms - e.started_ms


def tx_columns(events: Sequence[TransactionEvent]) -> Columns:
    ttc = [time_to_complete_ms(e) for e in events]
    return {
        "service": [e.service for e in events],
        "id": [e.id for e in events],
        "txn": [e.transaction_id for e in events],
        "outcome": [e.outcome for e in events],
        "channel": [e.channel for e in events],
        "cost_e4": [e.cost_e4 for e in events],
        "ts": [_ts(e.ts_ms) for e in events],
        "ttc_ms": ttc,
        "ttc_edge_ms": [bucket_edge_ms(t) if t >= 0 else ABSENT for t in ttc],
        "received": [_ts(e.received_ms) for e in events],
    }


def rating_columns(events: Sequence[SatisfactionEvent]) -> Columns:
    return {
        "service": [e.service for e in events],
        "id": [e.id for e in events],
        "rating": [e.rating for e in events],
        "comment": [e.comment for e in events],
        "ts": [_ts(e.ts_ms) for e in events],
        "received": [_ts(e.received_ms) for e in events],
    }


def journey_columns(events: Sequence[JourneyEvent]) -> Columns:
    """Rows of ``journey_in`` (``schemas/ddl/0001_journey.sql``, ``0006_journey_sums.sql``)."""
    return {
        "id": [e.id for e in events],
        "service": [e.service for e in events],
        "action": [e.action for e in events],
        "label": [e.label for e in events],
        "kind": [e.kind for e in events],
        "path": [e.path for e in events],
        "ts": [_ts(e.ts_ms) for e in events],
        "received": [_ts(e.received_ms) for e in events],
        "visitor": [e.visitor for e in events],
    }


def probe_columns(events: Sequence[AvailabilityEvent]) -> Columns:
    """Rows of ``probe_in`` (``schemas/ddl/0007_probe_sums.sql``): ``edge_ms`` is the response
    time's histogram edge, ABSENT for a probe without one."""
    return {
        "service": [e.service for e in events],
        "id": [e.id for e in events],
        "ts": [_ts(e.ts_ms) for e in events],
        "up": [int(e.up) for e in events],
        "response_ms": [e.response_ms for e in events],
        "status": [e.status for e in events],
        "error": [e.error for e in events],
        "edge_ms": [bucket_edge_ms(e.response_ms) if e.response_ms >= 0 else ABSENT for e in events],
    }


def cost_columns(events: Sequence[CostEvent]) -> Columns:
    """Rows of ``cost_posts``: every arrival of a post is a row, repeats included (the read
    takes each id at its first ``received_ms``, ``pipeline.kpi_sql.cost_sql``)."""
    return {
        "service": [e.service for e in events],
        "period": [e.period for e in events],
        "start": [_ts(e.start_ms) for e in events],
        "channel": [e.channel for e in events],
        "id": [e.id for e in events],
        "amount_e4": [e.amount_e4 for e in events],
        "received_ms": [e.received_ms for e in events],
    }


COLUMNS: dict[str, Callable[[Any], Columns]] = {
    "transaction": tx_columns,
    "satisfaction": rating_columns,
    "availability": probe_columns,
    "cost": cost_columns,
}
