"""The availability event, schema ``availability`` version 1. Pure.

One result of the platform's prober (what Pingdom did for the original platform): at ``ts_ms`` the
service's health-check URL answered or did not. Uptime, downtime and mean response time are
counted from these. The prober builds them with ``probe_result``; nothing arrives from outside,
so only decoded rows are validated. On Kafka, in the shared envelope (``schemas.envelope``)::

    [id, service, ts_ms, up, response_ms, status, error]

``id`` is ``"{service}:{ts_ms}"``, so a probe result sent twice is the same event. With no
response at all (refused, timed out) ``response_ms`` is -1 and ``status`` 0, and the service is
not up; ``error`` says what went wrong in at most 200 characters ("" when nothing did).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.beacon import SLUG
from schemas import envelope
from schemas.envelope import MAX_TS_MS, Decoded, is_int, is_text
from schemas.fields import without_surrogates

SCHEMA = "availability"
VERSION = 1
MAX_ERROR_CHARS = 200
MAX_RESPONSE_MS = 2**31 - 1
NO_RESPONSE = -1
ROW_FIELDS = ("id", "service", "ts_ms", "up", "response_ms", "status", "error")


@dataclass(frozen=True, slots=True)
class AvailabilityEvent:
    id: str
    service: str
    ts_ms: int
    up: bool
    response_ms: int
    status: int
    error: str

    def as_row(self) -> list[Any]:
        return [self.id, self.service, self.ts_ms, self.up, self.response_ms, self.status, self.error]


def event_id(service: str, ts_ms: int) -> str:
    return f"{service}:{ts_ms}"


def probe_result(
    service: str, ts_ms: int, up: bool, response_ms: int, status: int, error: str = ""
) -> AvailabilityEvent:
    """The event for one probe. ``error`` is cut to 200 characters (a lone surrogate, which no JSON
    writer takes, becomes U+FFFD). Raises ValueError when the arguments contradict each other or
    the row rules below: that is a bug in the prober, not bad input."""
    if type(service) is not str or not SLUG.fullmatch(service):
        raise ValueError("service must be a service slug")
    if type(error) is not str:
        raise ValueError("error must be a string")
    event = AvailabilityEvent(
        id=event_id(service, ts_ms),
        service=service,
        ts_ms=ts_ms,
        up=up,
        response_ms=response_ms,
        status=status,
        error=without_surrogates(error[:MAX_ERROR_CHARS]),
    )
    problem = _row_problem(event.as_row())
    if problem is not None:
        raise ValueError(f"not a probe result: {problem}")
    return event


def encode_envelope(events: Iterable[AvailabilityEvent]) -> bytes:
    return envelope.encode(SCHEMA, VERSION, events)


def decode_envelope(value: bytes) -> Decoded[AvailabilityEvent]:
    """Decode one message. Raises SchemaMismatch when the message as a whole is unusable; rows that
    do not fit version 1 come back in ``rejects``."""
    return envelope.decode(value, SCHEMA, VERSION, ROW_FIELDS, _row_problem, AvailabilityEvent)


def _row_problem(row: list[Any]) -> str | None:
    row_id, service, ts_ms, up, response_ms, status, error = row
    if not is_text(service, 64, empty=False):
        return "service is not a string of 1 to 64 characters"
    if not is_int(ts_ms, 0, MAX_TS_MS):
        return "ts_ms is not epoch milliseconds"
    if type(row_id) is not str or row_id != event_id(service, ts_ms):
        return "id is not service:ts_ms"
    if type(up) is not bool:
        return "up is not true or false"
    if not is_int(response_ms, NO_RESPONSE, MAX_RESPONSE_MS):
        return f"response_ms is not -1 or an integer from 0 to {MAX_RESPONSE_MS}"
    if type(status) is not int or not (status == 0 or 100 <= status <= 599):
        return "status is not 0 or an HTTP status from 100 to 599"
    if (response_ms == NO_RESPONSE) != (status == 0):
        return "response_ms is -1 without status 0, or the other way round"
    if up and status == 0:
        return "up without a response"
    if not is_text(error, MAX_ERROR_CHARS):
        return f"error is not a string of up to {MAX_ERROR_CHARS} characters"
    return None
