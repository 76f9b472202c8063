"""The transaction event, schema ``transaction`` version 1. Pure.

A service's back end reports that one of its transactions moved on: it was started, completed,
failed or abandoned, through a channel, perhaps at a cost. Completion rate, digital take-up and
cost per transaction are counted from these. The event arrives as a JSON object (HTTP write API
or the Python SDK)::

    {"id": "tx-1", "service": "apply-passport", "outcome": "completed", "channel": "digital",
     "transaction_id": "PP-123", "cost": 4.25, "timestamp": "2026-11-22T10:00:00+01:00",
     "started_at": "2026-11-22T09:41:00+01:00"}

and travels on Kafka in the shared envelope (``schemas.envelope``) as the row::

    [id, service, transaction_id, outcome, channel, cost_e4, ts_ms, started_ms, received_ms]

``cost_e4`` is the cost in ten-thousandths of a pound, exactly, or -1 when none was given (no cost
is not a cost of 0). ``started_ms`` is -1 unless the client gave ``started_at``, which only a
completed transaction may carry (it is how long completing took). Times are UTC epoch ms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.beacon import Drop, DropReason, new_event_id
from schemas import envelope, fields
from schemas.envelope import MAX_TS_MS, Decoded, is_int, is_text
from schemas.fields import InvalidEvent

SCHEMA = "transaction"
VERSION = 1
OUTCOMES = ("started", "completed", "failed", "abandoned")
CHANNELS = fields.CHANNELS
MAX_TRANSACTION_ID_CHARS = 128
MAX_COST_E4 = fields.MAX_POUNDS * fields.MONEY_SCALE
INPUT_FIELDS = frozenset(
    {"id", "service", "outcome", "channel", "transaction_id", "cost", "timestamp", "started_at"}
)
ROW_FIELDS = (
    "id",
    "service",
    "transaction_id",
    "outcome",
    "channel",
    "cost_e4",
    "ts_ms",
    "started_ms",
    "received_ms",
)


@dataclass(frozen=True, slots=True)
class TransactionEvent:
    id: str
    service: str
    transaction_id: str
    outcome: str
    channel: str
    cost_e4: int
    ts_ms: int
    started_ms: int
    received_ms: int

    def as_row(self) -> list[Any]:
        return [
            self.id,
            self.service,
            self.transaction_id,
            self.outcome,
            self.channel,
            self.cost_e4,
            self.ts_ms,
            self.started_ms,
            self.received_ms,
        ]


def validate(
    obj: object, received_ms: int, now_ms: int, id_factory: Callable[[], str] = new_event_id
) -> TransactionEvent:
    """One incoming JSON object as an event, or ``InvalidEvent`` (a ValueError) naming the first
    field at fault. ``timestamp`` defaults to ``received_ms``; ``id`` to ``id_factory()``."""
    raw = fields.event_object(obj, INPUT_FIELDS)
    given_id = fields.client_id(raw.get("id"))
    service = fields.slug(fields.required(raw, "service"), "service")
    outcome = fields.choice(fields.required(raw, "outcome"), "outcome", OUTCOMES)
    channel = fields.channel(fields.required(raw, "channel"), "channel", CHANNELS)
    transaction_id = fields.reference(raw.get("transaction_id"), "transaction_id", MAX_TRANSACTION_ID_CHARS)
    cost_e4 = fields.money_e4(raw.get("cost"), "cost")
    ts = fields.instant(raw.get("timestamp"), "timestamp", now_ms)
    ts_ms = received_ms if ts is None else ts
    started = fields.instant(raw.get("started_at"), "started_at", now_ms)
    if started is not None:
        if outcome != "completed":
            raise InvalidEvent(
                "started_at", DropReason.BAD_FORMAT, "started_at is only allowed when outcome is completed"
            )
        if started > ts_ms:
            raise InvalidEvent(
                "started_at", DropReason.OUT_OF_RANGE, "started_at must not be after timestamp"
            )
    return TransactionEvent(
        id=id_factory() if given_id is None else given_id,
        service=service,
        transaction_id=transaction_id,
        outcome=outcome,
        channel=channel,
        cost_e4=cost_e4,
        ts_ms=ts_ms,
        started_ms=-1 if started is None else started,
        received_ms=received_ms,
    )


def validate_batch(
    items: list[Any], received_ms: int, now_ms: int, id_factory: Callable[[], str] = new_event_id
) -> tuple[list[TransactionEvent], list[Drop]]:
    """Every item validated on its own: the good events, and a ``Drop`` (index, field, reason,
    message) for each bad one."""
    return fields.validate_all(items, lambda raw: validate(raw, received_ms, now_ms, id_factory))


def encode_envelope(events: Iterable[TransactionEvent]) -> bytes:
    return envelope.encode(SCHEMA, VERSION, events)


def decode_envelope(value: bytes) -> Decoded[TransactionEvent]:
    """Decode one message. Raises SchemaMismatch when the message as a whole is unusable; rows that
    do not fit version 1 come back in ``rejects``."""
    return envelope.decode(value, SCHEMA, VERSION, ROW_FIELDS, _row_problem, TransactionEvent)


def _row_problem(row: list[Any]) -> str | None:
    event_id, service, transaction_id, outcome, channel, cost_e4, ts_ms, started_ms, received_ms = row
    if not is_text(event_id, 64, empty=False):
        return "id is not a string of 1 to 64 characters"
    if not is_text(service, 64, empty=False):
        return "service is not a string of 1 to 64 characters"
    if not is_text(transaction_id, MAX_TRANSACTION_ID_CHARS):
        return f"transaction_id is not a string of up to {MAX_TRANSACTION_ID_CHARS} characters"
    if type(outcome) is not str or outcome not in OUTCOMES:
        return "outcome is not one of " + ", ".join(OUTCOMES)
    if type(channel) is not str or channel not in CHANNELS:
        return "channel is not one of " + ", ".join(CHANNELS)
    if not is_int(cost_e4, -1, MAX_COST_E4):
        return f"cost_e4 is not -1 or an integer from 0 to {MAX_COST_E4}"
    if not is_int(ts_ms, 0, MAX_TS_MS):
        return "ts_ms is not epoch milliseconds"
    if not is_int(started_ms, -1, ts_ms):
        return "started_ms is not -1 or epoch milliseconds up to ts_ms"
    if started_ms != -1 and outcome != "completed":
        return "started_ms is set but outcome is not completed"
    if not is_int(received_ms, 0, MAX_TS_MS):
        return "received_ms is not epoch milliseconds"
    return None
