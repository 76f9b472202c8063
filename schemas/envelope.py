"""The Kafka envelope that the service event kinds (transaction, satisfaction, availability, cost)
share. Pure.

One Kafka message carries a batch of events of one kind, as positional rows, like the journey
envelope (``schemas.journey``)::

    {"schema": "transaction", "v": 1, "events": [[...], [...]]}

A message that is unusable as a whole (not JSON, another schema, another version, no events
array) raises ``SchemaMismatch`` and goes to the dead-letter topic. A row that does not fit the
kind's version is rejected on its own, by index and reason, and never takes its neighbours down.
Reasons name the field but never quote its value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import orjson

from pipeline.errors import SchemaMismatch

MAX_TS_MS = 2**32 * 1000
"""The last epoch millisecond the store's 32-bit DateTime seconds can hold (as in journey)."""

E = TypeVar("E")


class Rowed(Protocol):
    def as_row(self) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class Decoded(Generic[E]):
    events: list[E]
    rejects: list[tuple[int, str]]
    """Index within the envelope and the reason, for rows that do not fit the schema version."""


def encode(schema: str, version: int, events: Iterable[Rowed]) -> bytes:
    return orjson.dumps({"schema": schema, "v": version, "events": [e.as_row() for e in events]})


def decode(
    value: bytes,
    schema: str,
    version: int,
    fields: tuple[str, ...],
    row_problem: Callable[[list[Any]], str | None],
    build: Callable[..., E],
) -> Decoded[E]:
    """Decode one message of ``schema``/``version`` whose rows hold ``fields``. ``row_problem`` sees
    rows of the right length only; rows it passes become ``build(*row)``."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise SchemaMismatch(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != schema:
        raise SchemaMismatch(f"not a {schema} envelope")
    got = doc.get("v")
    if type(got) is not int or got != version:
        raise SchemaMismatch(f"unsupported {schema} schema version {got!r}"[:200])
    rows = doc.get("events")
    if not isinstance(rows, list):
        raise SchemaMismatch("events is not an array")
    events: list[E] = []
    rejects: list[tuple[int, str]] = []
    shape = f"event is not an array of {len(fields)} fields"
    for i, row in enumerate(rows):
        problem = shape if not isinstance(row, list) or len(row) != len(fields) else row_problem(row)
        if problem is None:
            events.append(build(*row))
        else:
            rejects.append((i, problem))
    return Decoded(events, rejects)


def is_int(value: Any, low: int, high: int) -> bool:
    """An integer (not a bool, not a float) from ``low`` to ``high``."""
    return type(value) is int and low <= value <= high


def is_text(value: Any, max_chars: int, empty: bool = True) -> bool:
    return type(value) is str and len(value) <= max_chars and (empty or value != "")
