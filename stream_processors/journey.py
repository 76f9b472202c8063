"""The agents' batch step: decode messages, split good events and operations from dead letters.

Kept apart from the Faust wiring so it can be tested without a broker. Permanent problems
(not JSON, unknown schema version, a malformed event) become dead letters with the reason;
they never raise into the agent.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from pipeline.errors import SchemaMismatch
from schemas.journey import JourneyEvent, decode_envelope
from schemas.records import WriteOp, decode_op
from stream_processors.dead_letter import DeadLetter


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    value: bytes | None


def decode_batch(messages: list[Message]) -> tuple[list[JourneyEvent], list[DeadLetter]]:
    events: list[JourneyEvent] = []
    dead: list[DeadLetter] = []
    for m in messages:
        value = m.value or b""
        try:
            decoded = decode_envelope(value)
        except SchemaMismatch as exc:
            dead.append(DeadLetter(m.topic, m.partition, m.offset, str(exc), value))
            continue
        events.extend(decoded.events)
        if decoded.rejects:
            rows = orjson.loads(value)["events"]
            for index, reason in decoded.rejects:
                dead.append(
                    DeadLetter(
                        m.topic, m.partition, m.offset, f"event {index}: {reason}", orjson.dumps(rows[index])
                    )
                )
    return events, dead


def decode_ops(messages: list[Message]) -> tuple[list[WriteOp], list[DeadLetter]]:
    """Data-set write operations: one per message; an unusable message is a dead letter."""
    ops: list[WriteOp] = []
    dead: list[DeadLetter] = []
    for m in messages:
        value = m.value or b""
        try:
            ops.append(decode_op(value))
        except SchemaMismatch as exc:
            dead.append(DeadLetter(m.topic, m.partition, m.offset, str(exc), value))
    return ops, dead
