"""The journey event (Stageprompt) as it travels on Kafka, schema version 1.

One Kafka message is an *envelope* carrying a batch of events, so the per-message cost of the
stream processor is paid once per batch rather than once per event::

    {"schema": "journey", "v": 1, "events": [[id, service, action, label, kind, path,
                                              ts_ms, received_ms, visitor], ...]}

Events are positional arrays (not objects) to keep messages small and decoding cheap. ``visitor``
is the 64-bit cookie-less visitor key (see ``pipeline.visitor``); the raw IP never travels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.errors import SchemaMismatch

SCHEMA = "journey"
VERSION = 1
KINDS = ("page", "click")
_UINT64_MAX = 2**64 - 1


@dataclass(frozen=True, slots=True)
class JourneyEvent:
    id: str
    service: str
    action: str
    label: str
    kind: str
    path: str
    ts_ms: int
    received_ms: int
    visitor: int

    def as_row(self) -> list[Any]:
        return [
            self.id,
            self.service,
            self.action,
            self.label,
            self.kind,
            self.path,
            self.ts_ms,
            self.received_ms,
            self.visitor,
        ]


def encode_envelope(events: list[JourneyEvent]) -> bytes:
    return orjson.dumps(
        {"schema": SCHEMA, "v": VERSION, "events": [e.as_row() for e in events]},
        option=orjson.OPT_PASSTHROUGH_DATACLASS,
    )


@dataclass(frozen=True, slots=True)
class DecodedEnvelope:
    events: list[JourneyEvent]
    rejects: list[tuple[int, str]]
    """Index within the envelope and the reason, for rows that do not fit schema v1."""


def _row_problem(row: Any) -> str | None:
    if not isinstance(row, list) or len(row) != 9:
        return "event is not an array of 9 fields"
    for i in range(6):
        if not isinstance(row[i], str):
            return f"field {i} is not a string"
    if not row[0] or not row[1]:
        return "empty id or service"
    if row[4] not in KINDS:
        return "kind is neither page nor click"
    for i in (6, 7, 8):
        v = row[i]
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            return f"field {i} is not a non-negative integer"
    if row[6] > 2**32 * 1000 or row[7] > 2**32 * 1000 or row[8] > _UINT64_MAX:
        return "integer out of range"
    return None


def decode_envelope(value: bytes) -> DecodedEnvelope:
    """Decode one message. Raises SchemaMismatch when the message as a whole is unusable."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise SchemaMismatch(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise SchemaMismatch("not a journey envelope")
    version = doc.get("v")
    if type(version) is not int or version != VERSION:
        raise SchemaMismatch(f"unsupported journey schema version {version!r}")
    rows = doc.get("events")
    if not isinstance(rows, list):
        raise SchemaMismatch("events is not an array")
    events: list[JourneyEvent] = []
    rejects: list[tuple[int, str]] = []
    for i, row in enumerate(rows):
        problem = _row_problem(row)
        if problem is None:
            events.append(JourneyEvent(*row))
        else:
            rejects.append((i, problem))
    return DecodedEnvelope(events, rejects)
