"""The cost event, schema ``cost`` version 1. Pure.

What a service spent over one period (a day, week, month, quarter or year), for one channel or
for all of them. Cost per transaction is counted from these and the transaction volumes. The
event arrives as a JSON object (HTTP write API or the Python SDK)::

    {"service": "apply-passport", "period": "quarter", "start": "2026-10-01",
     "amount": 125000.5, "channel": "digital"}

and travels on Kafka in the shared envelope (``schemas.envelope``) as the row::

    [id, service, period, start_ms, channel, amount_e4, received_ms]

``start`` must be the first moment of its period in UTC, the original platform's way (weeks start
Monday 00:00, quarters on 1 January, April, July and October; ``pipeline.windows.period_start``).
``amount_e4`` is ten-thousandths of a pound, exactly. A cost's identity is ``key()`` — service,
period, start, channel — and a later post for the same key replaces the earlier one. A post is
its ``id``, and "later" is the first ``received_ms`` of that id: a client's retry of an older
post (same id, a new ``received_ms``) keeps the older post's place, whatever order the rows
reach the store in (``pipeline.kpi_sql.cost_sql``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.beacon import Drop, DropReason, new_event_id
from pipeline.windows import Period, period_start
from schemas import envelope, fields
from schemas.envelope import MAX_TS_MS, Decoded, is_int, is_text
from schemas.fields import InvalidEvent

SCHEMA = "cost"
VERSION = 1
PERIODS: tuple[Period, ...] = ("day", "week", "month", "quarter", "year")
ALL_CHANNELS = "all"
CHANNELS = (*fields.CHANNELS, ALL_CHANNELS)
MAX_AMOUNT_E4 = fields.MAX_POUNDS * fields.MONEY_SCALE
INPUT_FIELDS = frozenset({"id", "service", "period", "start", "amount", "channel"})
ROW_FIELDS = ("id", "service", "period", "start_ms", "channel", "amount_e4", "received_ms")
_PERIOD_STARTS = {
    "day": "at midnight",
    "week": "on a Monday at midnight",
    "month": "on the 1st at midnight",
    "quarter": "on 1 January, April, July or October at midnight",
    "year": "on 1 January at midnight",
}

CostKey = tuple[str, str, int, str]


@dataclass(frozen=True, slots=True)
class CostEvent:
    id: str
    service: str
    period: str
    start_ms: int
    channel: str
    amount_e4: int
    received_ms: int

    def as_row(self) -> list[Any]:
        return [
            self.id,
            self.service,
            self.period,
            self.start_ms,
            self.channel,
            self.amount_e4,
            self.received_ms,
        ]

    def key(self) -> CostKey:
        """What the cost is of: a later cost with the same key replaces this one."""
        return (self.service, self.period, self.start_ms, self.channel)


def validate(
    obj: object, received_ms: int, now_ms: int, id_factory: Callable[[], str] = new_event_id
) -> CostEvent:
    """One incoming JSON object as an event, or ``InvalidEvent`` (a ValueError) naming the first
    field at fault. ``channel`` defaults to ``all``; ``id`` to ``id_factory()``."""
    raw = fields.event_object(obj, INPUT_FIELDS)
    given_id = fields.client_id(raw.get("id"))
    service = fields.slug(fields.required(raw, "service"), "service")
    period = fields.choice(fields.required(raw, "period"), "period", PERIODS)
    start = fields.date_or_instant(fields.required(raw, "start"), "start")
    start_ms = fields.to_ms(start)
    fields.check_time(start_ms, "start", now_ms)
    aligned = period_start(start, period)
    if aligned != start:
        raise InvalidEvent(
            "start",
            DropReason.BAD_FORMAT,
            f"start must be the start of a {period} in UTC ({_PERIOD_STARTS[period]}): "
            f"the {period} holding it starts {aligned:%Y-%m-%d}",
        )
    amount_e4 = fields.money_e4(fields.required(raw, "amount"), "amount")
    channel_given = raw.get("channel")
    channel = ALL_CHANNELS if channel_given is None else fields.channel(channel_given, "channel", CHANNELS)
    return CostEvent(
        id=id_factory() if given_id is None else given_id,
        service=service,
        period=period,
        start_ms=start_ms,
        channel=channel,
        amount_e4=amount_e4,
        received_ms=received_ms,
    )


def validate_batch(
    items: list[Any], received_ms: int, now_ms: int, id_factory: Callable[[], str] = new_event_id
) -> tuple[list[CostEvent], list[Drop]]:
    """Every item validated on its own: the good events, and a ``Drop`` (index, field, reason,
    message) for each bad one."""
    return fields.validate_all(items, lambda raw: validate(raw, received_ms, now_ms, id_factory))


def encode_envelope(events: Iterable[CostEvent]) -> bytes:
    return envelope.encode(SCHEMA, VERSION, events)


def decode_envelope(value: bytes) -> Decoded[CostEvent]:
    """Decode one message. Raises SchemaMismatch when the message as a whole is unusable; rows that
    do not fit version 1 come back in ``rejects``."""
    return envelope.decode(value, SCHEMA, VERSION, ROW_FIELDS, _row_problem, CostEvent)


def _row_problem(row: list[Any]) -> str | None:
    event_id, service, period, start_ms, channel, amount_e4, received_ms = row
    if not is_text(event_id, 64, empty=False):
        return "id is not a string of 1 to 64 characters"
    if not is_text(service, 64, empty=False):
        return "service is not a string of 1 to 64 characters"
    if type(period) is not str or period not in PERIODS:
        return "period is not one of " + ", ".join(PERIODS)
    if not is_int(start_ms, 0, MAX_TS_MS):
        return "start_ms is not epoch milliseconds"
    start = fields.from_ms(start_ms)
    if period_start(start, period) != start:
        return f"start_ms is not the start of a {period}"
    if type(channel) is not str or channel not in CHANNELS:
        return "channel is not one of " + ", ".join(CHANNELS)
    if not is_int(amount_e4, 0, MAX_AMOUNT_E4):
        return f"amount_e4 is not an integer from 0 to {MAX_AMOUNT_E4}"
    if not is_int(received_ms, 0, MAX_TS_MS):
        return "received_ms is not epoch milliseconds"
    return None
