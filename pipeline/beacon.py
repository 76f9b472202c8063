"""Beacon validation: a request body in, validated journey events and named drops out. Pure.

A request is unreadable as a whole (raise ``BadInput``) when its content type is not JSON or
text, it is not JSON, it is not an object or an array, or it holds too many events. Otherwise
each event is validated on its own: good ones become ``JourneyEvent``; bad ones become a
``Drop`` naming the event's index, the field and a reason from a closed set, and never take
their valid neighbours down with them.

An event's time is, in order: ``ts`` when the sender's clock is to be trusted (a service's back
end); arrival minus ``age_ms`` when the sender only knows how long ago the event happened (the
browser beacon, whose visitors' clocks are wrong: it measures the age on a monotonic clock and
sends it afresh with every attempt); else the arrival time. ``ts`` and ``age_ms`` together are
refused as a conflict: which one is meant cannot be told. A time derived from ``age_ms`` is cut
to its whole second (what ClickHouse keeps anyway), so that a retry of the same event, sent
seconds later with a larger age, lands on the same stored ``ts`` and the id sets keyed by time
dedupe it; only a difference in network delay between the two sends that straddles a second
boundary still moves it (see :func:`age_timestamp`).
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson

from pipeline.errors import BadInput
from pipeline.visitor import visitor_key
from schemas.journey import KINDS, JourneyEvent

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_SLUG_ANY_CASE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
EVENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_INT_TEXT = re.compile(r"-?[0-9]{1,16}")
MAX_PAST_MS = 7 * 86_400_000
MAX_FUTURE_MS = 5 * 60_000
TEXT_TYPES = ("application/json", "text/plain")


_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


def new_event_id() -> str:
    """A unique id for an event that came without one: random per process, then a counter
    (cheaper than uuid4 on the hot path, and as unique across processes)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):x}"


class DropReason(StrEnum):
    NOT_AN_OBJECT = "not_an_object"
    MISSING = "missing"
    WRONG_TYPE = "wrong_type"
    TOO_LONG = "too_long"
    BAD_FORMAT = "bad_format"
    OUT_OF_RANGE = "out_of_range"
    CONFLICT = "conflict"
    """Two fields that say the same thing, and may disagree (``ts`` and ``age_ms``)."""


@dataclass(frozen=True, slots=True)
class Drop:
    index: int
    field: str | None
    reason: DropReason
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": str(self.reason), "message": self.message}


@dataclass(frozen=True, slots=True)
class Limits:
    max_batch_events: int = 1000
    max_field_chars: int = 512


@dataclass(frozen=True, slots=True)
class Visit:
    """What the edge knows about the sender; hashed into the visitor key, never stored."""

    received_ms: int
    salt: bytes
    ip: str
    user_agent: str


class _Invalid(Exception):
    def __init__(self, field: str | None, reason: DropReason, message: str) -> None:
        self.field, self.reason, self.message = field, reason, message


def check_content_type(content_type: str | None) -> None:
    """JSON or text (sendBeacon's ``text/plain``, which needs no CORS preflight), else 415."""
    if not content_type:
        return
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime not in TEXT_TYPES:
        raise BadInput(f"unsupported content type {mime!r}: send application/json or text/plain", status=415)


def parse_body(body: bytes, limits: Limits) -> list[Any]:
    """The request's events as loose JSON values, or BadInput when the body is unreadable."""
    if not body.strip():
        raise BadInput("empty body: send one event object or an array of them")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadInput(f"body is not valid JSON: {exc}") from None
    if isinstance(doc, dict):
        return [doc]
    if not isinstance(doc, list):
        raise BadInput("body must be one event object or an array of event objects")
    if not doc:
        raise BadInput("empty batch: the array holds no events")
    if len(doc) > limits.max_batch_events:
        raise BadInput(
            f"batch of {len(doc)} events is over the limit of {limits.max_batch_events}", status=413
        )
    return doc


def _text(raw: dict[str, Any], field: str, limit: int, required: bool = False) -> str:
    value = raw.get(field)
    if value is None:
        if required:
            raise _Invalid(field, DropReason.MISSING, f"'{field}' is required")
        return ""
    if not isinstance(value, str):
        raise _Invalid(field, DropReason.WRONG_TYPE, f"'{field}' must be a string")
    if len(value) > limit:
        raise _Invalid(field, DropReason.TOO_LONG, f"'{field}' is longer than {limit} characters")
    if "\x00" in value:
        raise _Invalid(field, DropReason.BAD_FORMAT, f"'{field}' contains a NUL character")
    return value


def _timestamp(raw: dict[str, Any], received_ms: int) -> int:
    value = raw.get("ts")
    if value is None:
        return received_ms
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Invalid("ts", DropReason.WRONG_TYPE, "'ts' must be epoch milliseconds or an ISO-8601 string")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _Invalid(
                "ts", DropReason.BAD_FORMAT, f"'ts' {value[:40]!r} is not an ISO-8601 date"
            ) from None
        if parsed.tzinfo is None:
            raise _Invalid("ts", DropReason.BAD_FORMAT, "'ts' needs a time zone (Z or +hh:mm)")
        ts_ms = int(parsed.timestamp() * 1000)
    else:
        if value != value or value in (float("inf"), float("-inf")):
            raise _Invalid("ts", DropReason.BAD_FORMAT, "'ts' is not a finite number")
        ts_ms = int(value)
    if ts_ms < received_ms - MAX_PAST_MS or ts_ms > received_ms + MAX_FUTURE_MS:
        raise _Invalid(
            "ts", DropReason.OUT_OF_RANGE, "'ts' is more than 7 days in the past or 5 minutes in the future"
        )
    return ts_ms


def age_timestamp(received_ms: int, age_ms: int) -> int:
    """When an event ``age_ms`` old at its arrival ``received_ms`` happened, cut to the whole
    second (never after its arrival).

    A retry of one event arrives later with a larger age, by the time between the two sends as
    the browser measured it; what differs between the two results is only the difference in
    their network delays (milliseconds, usually). Cut to the second, both land on the same
    second unless that difference straddles a second boundary: then the retry is stored one
    second apart, and in another minute only when that boundary is a minute's."""
    return (received_ms - age_ms) // 1000 * 1000


def _age(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid("age_ms", DropReason.WRONG_TYPE, "'age_ms' must be a whole number of milliseconds")
    if value < 0 or value > MAX_PAST_MS:
        raise _Invalid(
            "age_ms", DropReason.OUT_OF_RANGE, f"'age_ms' must be between 0 and {MAX_PAST_MS} (7 days)"
        )
    return value


def _event_time(raw: dict[str, Any], received_ms: int) -> int:
    age = raw.get("age_ms")
    if age is None:
        return _timestamp(raw, received_ms)
    if raw.get("ts") is not None:
        raise _Invalid("age_ms", DropReason.CONFLICT, "send 'ts' or 'age_ms', not both")
    return age_timestamp(received_ms, _age(age))


def _event(raw: Any, visit: Visit, limits: Limits, visitor_of: Any) -> JourneyEvent:
    if not isinstance(raw, dict):
        raise _Invalid(None, DropReason.NOT_AN_OBJECT, "event must be a JSON object")
    service = _text(raw, "category", 64, required=True)
    if not _SLUG_ANY_CASE.fullmatch(service):
        raise _Invalid(
            "category",
            DropReason.BAD_FORMAT,
            "'category' must be a service slug: lower-case letters, digits, '-' or '_'",
        )
    service = service.lower()
    kind = raw.get("kind", "page")
    if kind not in KINDS:
        raise _Invalid("kind", DropReason.BAD_FORMAT, "'kind' must be 'page' or 'click'")
    event_id = _text(raw, "id", 64)
    if event_id and not EVENT_ID.fullmatch(event_id):
        raise _Invalid("id", DropReason.BAD_FORMAT, "'id' may hold only letters, digits and _ . : -")
    return JourneyEvent(
        id=event_id or new_event_id(),
        service=service,
        action=_text(raw, "action", 128),
        label=_text(raw, "label", limits.max_field_chars),
        kind=kind,
        path=_text(raw, "path", 1024),
        ts_ms=_event_time(raw, visit.received_ms),
        received_ms=visit.received_ms,
        visitor=visitor_of(service),
    )


def validate_events(raws: list[Any], visit: Visit, limits: Limits) -> tuple[list[JourneyEvent], list[Drop]]:
    """Every event of a request, validated on its own."""
    keys: dict[str, int] = {}

    def visitor_of(service: str) -> int:
        key = keys.get(service)
        if key is None:
            key = keys[service] = visitor_key(visit.salt, visit.ip, visit.user_agent, service)
        return key

    events: list[JourneyEvent] = []
    drops: list[Drop] = []
    for index, raw in enumerate(raws):
        try:
            events.append(_event(raw, visit, limits, visitor_of))
        except _Invalid as bad:
            drops.append(Drop(index, bad.field, bad.reason, f"event {index}: {bad.message}"))
    return events, drops


def query_event(params: dict[str, str]) -> dict[str, Any]:
    """The GET pixel's query string as one event object (``ts`` and ``age_ms`` may be
    numbers in text)."""
    raw: dict[str, Any] = {k: v for k, v in params.items() if k in _PIXEL_FIELDS}
    for field in _PIXEL_NUMBERS:
        value = raw.get(field)
        if isinstance(value, str) and _INT_TEXT.fullmatch(value):
            raw[field] = int(value)
    return raw


_PIXEL_FIELDS = frozenset({"category", "action", "label", "kind", "path", "ts", "age_ms", "id"})
_PIXEL_NUMBERS = ("ts", "age_ms")
