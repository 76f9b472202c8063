"""The journey envelope on Kafka (``schemas.journey``, schema version 1): round trip, messages that
are unusable as a whole, and rows that are rejected one by one while their neighbours decode."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import PermanentError, SchemaMismatch
from schemas.journey import KINDS, SCHEMA, VERSION, JourneyEvent, decode_envelope, encode_envelope

MAX_TS_MS = 2**32 * 1000
MAX_VISITOR = 2**64 - 1

journey_events = st.builds(
    JourneyEvent,
    id=st.text(min_size=1, max_size=64),
    service=st.text(min_size=1, max_size=64),
    action=st.text(max_size=40),
    label=st.text(max_size=80),
    kind=st.sampled_from(KINDS),
    path=st.text(max_size=80),
    ts_ms=st.integers(min_value=0, max_value=MAX_TS_MS),
    received_ms=st.integers(min_value=0, max_value=MAX_TS_MS),
    visitor=st.integers(min_value=0, max_value=MAX_VISITOR),
)


def sample(**overrides: Any) -> JourneyEvent:
    fields: dict[str, Any] = {
        "id": "e1",
        "service": "checkout",
        "action": "submit",
        "label": "form:address",
        "kind": "click",
        "path": "/apply",
        "ts_ms": 1_710_072_000_000,
        "received_ms": 1_710_072_000_500,
        "visitor": 2**63 + 5,
    }
    return JourneyEvent(**{**fields, **overrides})


def envelope(rows: list[Any], **top: Any) -> bytes:
    return orjson.dumps({"schema": SCHEMA, "v": VERSION, "events": rows, **top})


@given(events=st.lists(journey_events, max_size=8))
@settings(max_examples=200)
def test_encode_then_decode_gives_the_events_back(events: list[JourneyEvent]) -> None:
    decoded = decode_envelope(encode_envelope(events))
    assert decoded.events == events
    assert decoded.rejects == []


def test_the_envelope_is_versioned_json_with_positional_rows() -> None:
    event = sample()
    doc = orjson.loads(encode_envelope([event]))
    assert doc == {
        "schema": "journey",
        "v": 1,
        "events": [
            [
                event.id,
                event.service,
                event.action,
                event.label,
                event.kind,
                event.path,
                event.ts_ms,
                event.received_ms,
                event.visitor,
            ]
        ],
    }


def test_an_empty_batch_round_trips() -> None:
    decoded = decode_envelope(encode_envelope([]))
    assert (decoded.events, decoded.rejects) == ([], [])


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"not json",
        b"\xff",
        b'{"schema": "journey"',
        b"[]",
        b'"journey"',
        b"null",
        orjson.dumps({"v": 1, "events": []}),
        orjson.dumps({"schema": "other", "v": 1, "events": []}),
        orjson.dumps({"schema": "journey", "events": []}),
        orjson.dumps({"schema": "journey", "v": 2, "events": []}),
        orjson.dumps({"schema": "journey", "v": 0, "events": []}),
        orjson.dumps({"schema": "journey", "v": "1", "events": []}),
        orjson.dumps({"schema": "journey", "v": None, "events": []}),
        orjson.dumps({"schema": "journey", "v": 1}),
        orjson.dumps({"schema": "journey", "v": 1, "events": {}}),
        orjson.dumps({"schema": "journey", "v": 1, "events": "[]"}),
        orjson.dumps({"schema": "journey", "v": 1, "events": None}),
    ],
    ids=[
        "empty",
        "not json",
        "not utf-8",
        "truncated",
        "array",
        "string",
        "null",
        "no schema",
        "other schema",
        "no version",
        "version 2",
        "version 0",
        "version as text",
        "version null",
        "no events",
        "events an object",
        "events a string",
        "events null",
    ],
)
def test_unusable_messages_raise_schema_mismatch(value: bytes) -> None:
    with pytest.raises(SchemaMismatch):
        decode_envelope(value)
    assert issubclass(SchemaMismatch, PermanentError)


def test_a_boolean_version_is_not_version_1() -> None:
    with pytest.raises(SchemaMismatch):
        decode_envelope(orjson.dumps({"schema": "journey", "v": True, "events": []}))


GOOD_ROW = sample().as_row()


def with_field(index: int, value: Any) -> list[Any]:
    row = list(GOOD_ROW)
    row[index] = value
    return row


BAD_ROWS: list[tuple[str, Any, str]] = [
    ("object", {"id": "e1"}, "array of 9"),
    ("string", "e1", "array of 9"),
    ("null", None, "array of 9"),
    ("8 fields", GOOD_ROW[:8], "array of 9"),
    ("10 fields", [*GOOD_ROW, 0], "array of 9"),
    *((f"field {i} a number", with_field(i, 1), f"field {i} ") for i in range(6)),
    ("field 0 null", with_field(0, None), "field 0 "),
    ("empty id", with_field(0, ""), "empty id"),
    ("empty service", with_field(1, ""), "service"),
    ("unknown kind", with_field(4, "scroll"), "kind"),
    *((f"field {i} negative", with_field(i, -1), f"field {i} ") for i in (6, 7, 8)),
    *((f"field {i} a bool", with_field(i, True), f"field {i} ") for i in (6, 7, 8)),
    *((f"field {i} a float", with_field(i, 1.5), f"field {i} ") for i in (6, 7, 8)),
    *((f"field {i} a string", with_field(i, "1"), f"field {i} ") for i in (6, 7, 8)),
    ("ts_ms too large", with_field(6, MAX_TS_MS + 1), "out of range"),
    ("received_ms too large", with_field(7, MAX_TS_MS + 1), "out of range"),
]


@pytest.mark.parametrize(
    ("row", "reason"), [case[1:] for case in BAD_ROWS], ids=[case[0] for case in BAD_ROWS]
)
def test_bad_rows_are_rejected_by_index_while_good_rows_decode(row: Any, reason: str) -> None:
    first, last = sample(id="first"), sample(id="last", kind="page", visitor=0)
    decoded = decode_envelope(envelope([first.as_row(), row, last.as_row()]))
    assert decoded.events == [first, last]
    assert len(decoded.rejects) == 1
    index, why = decoded.rejects[0]
    assert index == 1
    assert reason in why


def test_a_visitor_beyond_64_bits_is_rejected() -> None:
    # orjson cannot write 2**64, so the row is spelled out; orjson reads it back as a float.
    row = orjson.dumps(GOOD_ROW[:8])[:-1] + b"," + str(MAX_VISITOR + 1).encode() + b"]"
    value = b'{"schema":"journey","v":1,"events":[' + orjson.dumps(GOOD_ROW) + b"," + row + b"]}"
    decoded = decode_envelope(value)
    assert decoded.events == [sample()]
    assert [index for index, _ in decoded.rejects] == [1]


@pytest.mark.parametrize(
    "row",
    [
        with_field(6, MAX_TS_MS),
        with_field(7, MAX_TS_MS),
        with_field(8, MAX_VISITOR),
        with_field(6, 0),
        with_field(8, 0),
        with_field(2, ""),
        with_field(3, ""),
        with_field(5, ""),
    ],
    ids=[
        "ts at max",
        "received at max",
        "visitor at max",
        "ts zero",
        "visitor zero",
        "no action",
        "no label",
        "no path",
    ],
)
def test_rows_at_the_limits_decode(row: list[Any]) -> None:
    decoded = decode_envelope(envelope([row]))
    assert decoded.rejects == []
    assert decoded.events == [JourneyEvent(*row)]


def test_every_bad_row_is_reported_with_its_own_index() -> None:
    rows = [None, GOOD_ROW, with_field(4, "x"), with_field(8, -1), GOOD_ROW]
    decoded = decode_envelope(envelope(rows))
    assert decoded.events == [sample(), sample()]
    assert [index for index, _ in decoded.rejects] == [0, 2, 3]
