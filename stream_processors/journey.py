"""The agents' batch step: decode messages, split good events and operations from dead letters.

Kept apart from the Faust wiring so it can be tested without a broker. Permanent problems
(not JSON, unknown schema version, a malformed event) become dead letters with the reason;
they never raise into the agent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import orjson

from pipeline.errors import SchemaMismatch
from schemas.journey import JourneyEvent, decode_envelope
from schemas.records import WriteOp, decode_op
from stream_processors.dead_letter import DeadLetter

E = TypeVar("E")
E_co = TypeVar("E_co", covariant=True)


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    value: bytes | None


class _Decoded(Protocol[E_co]):
    @property
    def events(self) -> Sequence[E_co]: ...
    @property
    def rejects(self) -> Sequence[tuple[int, str]]: ...


def decode_batch(messages: list[Message]) -> tuple[list[JourneyEvent], list[DeadLetter]]:
    return decode_envelopes(messages, decode_envelope)


def decode_envelopes(
    messages: list[Message], decode: Callable[[bytes], _Decoded[E]]
) -> tuple[list[E], list[DeadLetter]]:
    """Envelopes of events (any ``schemas`` kind's ``decode_envelope``): the good events, and a
    dead letter per unusable message or malformed event."""
    events: list[E] = []
    dead: list[DeadLetter] = []
    for m in messages:
        value = m.value or b""
        try:
            decoded = decode(value)
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
