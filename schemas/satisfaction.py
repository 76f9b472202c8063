"""The satisfaction event, schema ``satisfaction`` version 1. Pure.

One answer to a service's "done page" survey: a rating on the original platform's 5-point scale
(1 very dissatisfied .. 5 very satisfied) and an optional comment. The user satisfaction score is
counted from these. The event arrives as a JSON object (HTTP write API or the Python SDK)::

    {"id": "s-1", "service": "apply-passport", "rating": 5, "comment": "Quick and clear",
     "timestamp": "2026-11-22T10:00:00Z"}

and travels on Kafka in the shared envelope (``schemas.envelope``) as the row::

    [id, service, rating, comment, ts_ms, received_ms]

The comment is what a member of the public typed, so it may hold personal data: it is stored as
given (HTML and all: escaping is the page's job), but it is left out of the event's ``repr`` and
never quoted in an error message or a decode reason, so it cannot reach a log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.beacon import Drop, DropReason, new_event_id
from schemas import envelope, fields
from schemas.envelope import MAX_TS_MS, Decoded, is_int, is_text
from schemas.fields import InvalidEvent

SCHEMA = "satisfaction"
VERSION = 1
MIN_RATING = 1
MAX_RATING = 5
MAX_COMMENT_CHARS = 1200
INPUT_FIELDS = frozenset({"id", "service", "rating", "comment", "timestamp"})
ROW_FIELDS = ("id", "service", "rating", "comment", "ts_ms", "received_ms")
_RATING_MESSAGE = f"rating must be an integer from {MIN_RATING} to {MAX_RATING}"


@dataclass(frozen=True, slots=True)
class SatisfactionEvent:
    id: str
    service: str
    rating: int
    comment: str = field(repr=False)
    ts_ms: int
    received_ms: int

    def as_row(self) -> list[Any]:
        return [self.id, self.service, self.rating, self.comment, self.ts_ms, self.received_ms]


def validate(
    obj: object, received_ms: int, now_ms: int, id_factory: Callable[[], str] = new_event_id
) -> SatisfactionEvent:
    """One incoming JSON object as an event, or ``InvalidEvent`` (a ValueError) naming the first
    field at fault. ``timestamp`` defaults to ``received_ms``; ``id`` to ``id_factory()``."""
    raw = fields.event_object(obj, INPUT_FIELDS)
    given_id = fields.client_id(raw.get("id"))
    service = fields.slug(fields.required(raw, "service"), "service")
    rating = fields.required(raw, "rating")
    if type(rating) is not int:
        raise InvalidEvent("rating", DropReason.WRONG_TYPE, _RATING_MESSAGE)
    if not MIN_RATING <= rating <= MAX_RATING:
        raise InvalidEvent("rating", DropReason.OUT_OF_RANGE, _RATING_MESSAGE)
    comment = fields.text(raw.get("comment"), "comment", MAX_COMMENT_CHARS)
    ts = fields.instant(raw.get("timestamp"), "timestamp", now_ms)
    return SatisfactionEvent(
        id=id_factory() if given_id is None else given_id,
        service=service,
        rating=rating,
        comment=comment,
        ts_ms=received_ms if ts is None else ts,
        received_ms=received_ms,
    )


def validate_batch(
    items: list[Any], received_ms: int, now_ms: int, id_factory: Callable[[], str] = new_event_id
) -> tuple[list[SatisfactionEvent], list[Drop]]:
    """Every item validated on its own: the good events, and a ``Drop`` (index, field, reason,
    message) for each bad one."""
    return fields.validate_all(items, lambda raw: validate(raw, received_ms, now_ms, id_factory))


def encode_envelope(events: Iterable[SatisfactionEvent]) -> bytes:
    return envelope.encode(SCHEMA, VERSION, events)


def decode_envelope(value: bytes) -> Decoded[SatisfactionEvent]:
    """Decode one message. Raises SchemaMismatch when the message as a whole is unusable; rows that
    do not fit version 1 come back in ``rejects``."""
    return envelope.decode(value, SCHEMA, VERSION, ROW_FIELDS, _row_problem, SatisfactionEvent)


def _row_problem(row: list[Any]) -> str | None:
    event_id, service, rating, comment, ts_ms, received_ms = row
    if not is_text(event_id, 64, empty=False):
        return "id is not a string of 1 to 64 characters"
    if not is_text(service, 64, empty=False):
        return "service is not a string of 1 to 64 characters"
    if not is_int(rating, MIN_RATING, MAX_RATING):
        return f"rating is not an integer from {MIN_RATING} to {MAX_RATING}"
    if not is_text(comment, MAX_COMMENT_CHARS):
        return f"comment is not a string of up to {MAX_COMMENT_CHARS} characters"
    if not is_int(ts_ms, 0, MAX_TS_MS):
        return "ts_ms is not epoch milliseconds"
    if not is_int(received_ms, 0, MAX_TS_MS):
        return "received_ms is not epoch milliseconds"
    return None
