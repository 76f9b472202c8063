"""Transaction events (``schemas.transaction``, schema version 1): validation of what services send,
exact events out, exact messages for what is refused, and the Kafka envelope both ways."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.beacon import Drop, DropReason
from pipeline.errors import SchemaMismatch
from schemas import transaction
from schemas.envelope import MAX_TS_MS
from schemas.fields import MAX_FUTURE_MS, MIN_TS_MS, InvalidEvent
from schemas.transaction import (
    CHANNELS,
    MAX_COST_E4,
    OUTCOMES,
    TransactionEvent,
    decode_envelope,
    encode_envelope,
    validate,
    validate_batch,
)

NOW_MS = 1_795_348_800_000  # 2026-11-22T12:00:00Z
RECEIVED_MS = NOW_MS - 250
NINE_AM_MS = NOW_MS - 3 * 3_600_000  # 2026-11-22T09:00:00Z
BASE: dict[str, Any] = {"service": "apply-passport", "outcome": "completed", "channel": "digital"}
CHANNEL_MESSAGE = "channel must be one of digital, phone, paper, face_to_face, assisted_digital"


def new_id() -> str:
    return "generated"


def event(**overrides: Any) -> TransactionEvent:
    fields: dict[str, Any] = {
        "id": "generated",
        "service": "apply-passport",
        "transaction_id": "",
        "outcome": "completed",
        "channel": "digital",
        "cost_e4": -1,
        "ts_ms": RECEIVED_MS,
        "started_ms": -1,
        "received_ms": RECEIVED_MS,
    }
    return TransactionEvent(**{**fields, **overrides})


def check(raw: Any) -> TransactionEvent:
    return validate(raw, RECEIVED_MS, NOW_MS, new_id)


def test_every_field_given() -> None:
    raw = {
        "id": "tx-1",
        "service": "apply-passport",
        "outcome": "completed",
        "channel": "assisted digital",
        "transaction_id": "PP-7781-AB",
        "cost": 4.25,
        "timestamp": "2026-11-22T10:00:00+01:00",
        "started_at": "2026-11-22T08:30:00Z",
    }
    assert check(raw) == TransactionEvent(
        id="tx-1",
        service="apply-passport",
        transaction_id="PP-7781-AB",
        outcome="completed",
        channel="assisted_digital",
        cost_e4=42_500,
        ts_ms=NINE_AM_MS,
        started_ms=NINE_AM_MS - 30 * 60_000,
        received_ms=RECEIVED_MS,
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, event()),
        *(({"outcome": o}, event(outcome=o)) for o in OUTCOMES),
        *(({"channel": c}, event(channel=c)) for c in CHANNELS),
        ({"channel": "Face-To-Face"}, event(channel="face_to_face")),
        ({"channel": "face to face"}, event(channel="face_to_face")),
        ({"channel": "Assisted-Digital"}, event(channel="assisted_digital")),
        ({"id": "x:1.a_b-c"}, event(id="x:1.a_b-c")),
        ({"transaction_id": "a b/c <d>"}, event(transaction_id="a b/c <d>")),
        ({"cost": 0}, event(cost_e4=0)),
        ({"cost": 0.0001}, event(cost_e4=1)),
        ({"cost": 1_000_000_000}, event(cost_e4=MAX_COST_E4)),
        ({"timestamp": NINE_AM_MS}, event(ts_ms=NINE_AM_MS)),
        ({"timestamp": NOW_MS + MAX_FUTURE_MS}, event(ts_ms=NOW_MS + MAX_FUTURE_MS)),
        ({"timestamp": MIN_TS_MS}, event(ts_ms=MIN_TS_MS)),
        ({"started_at": RECEIVED_MS}, event(started_ms=RECEIVED_MS)),
        ({"started_at": "2026-11-22T09:00:00Z"}, event(started_ms=NINE_AM_MS)),
        (
            {"timestamp": "2026-11-22T09:00:00Z", "started_at": "2026-11-22T10:00:00+01:00"},
            event(ts_ms=NINE_AM_MS, started_ms=NINE_AM_MS),
        ),
        (
            {"id": None, "transaction_id": None, "cost": None, "timestamp": None, "started_at": None},
            event(),
        ),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else "",
)
def test_accepted_events_are_exactly_as_expected(
    overrides: dict[str, Any], expected: TransactionEvent
) -> None:
    assert check({**BASE, **overrides}) == expected


SLUG_MESSAGE = (
    "service must be a service slug: 1 to 64 lower-case letters, digits, - or _, "
    "starting with a letter or digit"
)
TIMESTAMP_MESSAGE = (
    "timestamp must be an ISO 8601 date-time with an offset "
    "(like 2026-11-22T10:00:00+01:00 or 2026-11-22T09:00:00Z) or integer epoch milliseconds"
)
REFUSED: list[tuple[str, Any, str | None, DropReason, str]] = [
    ("null", None, None, DropReason.NOT_AN_OBJECT, "event must be a JSON object"),
    ("array", [BASE], None, DropReason.NOT_AN_OBJECT, "event must be a JSON object"),
    ("string", "completed", None, DropReason.NOT_AN_OBJECT, "event must be a JSON object"),
    ("number", 1, None, DropReason.NOT_AN_OBJECT, "event must be a JSON object"),
    ("unknown field", {**BASE, "foo": 1}, None, DropReason.BAD_FORMAT, 'unknown field "foo"'),
    ("nested event", {"event": BASE}, None, DropReason.BAD_FORMAT, 'unknown field "event"'),
    ("cost in pence", {**BASE, "cost_pence": 425}, None, DropReason.BAD_FORMAT, 'unknown field "cost_pence"'),
    ("row field name", {**BASE, "cost_e4": 1}, None, DropReason.BAD_FORMAT, 'unknown field "cost_e4"'),
    ("empty object", {}, "service", DropReason.MISSING, "service is required"),
    ("no outcome", {**BASE, "outcome": None}, "outcome", DropReason.MISSING, "outcome is required"),
    (
        "no channel",
        {"service": "a", "outcome": "started"},
        "channel",
        DropReason.MISSING,
        "channel is required",
    ),
    ("service upper case", {**BASE, "service": "Apply"}, "service", DropReason.BAD_FORMAT, SLUG_MESSAGE),
    ("service huge", {**BASE, "service": "a" * 100_000}, "service", DropReason.BAD_FORMAT, SLUG_MESSAGE),
    ("service int", {**BASE, "service": 1}, "service", DropReason.WRONG_TYPE, "service must be a string"),
    (
        "service object",
        {**BASE, "service": {"slug": "a"}},
        "service",
        DropReason.WRONG_TYPE,
        "service must be a string",
    ),
    (
        "id empty",
        {**BASE, "id": ""},
        "id",
        DropReason.BAD_FORMAT,
        "id must be 1 to 64 letters, digits or _ . : -",
    ),
    ("id int", {**BASE, "id": 42}, "id", DropReason.WRONG_TYPE, "id must be a string"),
    (
        "outcome capitalised",
        {**BASE, "outcome": "Completed"},
        "outcome",
        DropReason.BAD_FORMAT,
        "outcome must be one of started, completed, failed, abandoned",
    ),
    (
        "outcome bool",
        {**BASE, "outcome": True},
        "outcome",
        DropReason.WRONG_TYPE,
        "outcome must be one of started, completed, failed, abandoned",
    ),
    ("channel web", {**BASE, "channel": "web"}, "channel", DropReason.BAD_FORMAT, CHANNEL_MESSAGE),
    ("channel array", {**BASE, "channel": ["digital"]}, "channel", DropReason.WRONG_TYPE, CHANNEL_MESSAGE),
    (
        "transaction_id empty",
        {**BASE, "transaction_id": ""},
        "transaction_id",
        DropReason.BAD_FORMAT,
        "transaction_id must be 1 to 128 characters",
    ),
    (
        "transaction_id huge",
        {**BASE, "transaction_id": "x" * 1_000_000},
        "transaction_id",
        DropReason.TOO_LONG,
        "transaction_id must be 1 to 128 characters",
    ),
    (
        "transaction_id control",
        {**BASE, "transaction_id": "a\rb"},
        "transaction_id",
        DropReason.BAD_FORMAT,
        "transaction_id must hold only printable characters",
    ),
    (
        "transaction_id int",
        {**BASE, "transaction_id": 123},
        "transaction_id",
        DropReason.WRONG_TYPE,
        "transaction_id must be a string",
    ),
    ("cost negative", {**BASE, "cost": -0.01}, "cost", DropReason.OUT_OF_RANGE, "cost must not be negative"),
    ("cost nan", {**BASE, "cost": math.nan}, "cost", DropReason.OUT_OF_RANGE, "cost must be a finite number"),
    ("cost inf", {**BASE, "cost": math.inf}, "cost", DropReason.OUT_OF_RANGE, "cost must be a finite number"),
    (
        "cost over a billion",
        {**BASE, "cost": 1_000_000_001},
        "cost",
        DropReason.OUT_OF_RANGE,
        "cost must be at most 1000000000 pounds",
    ),
    (
        "cost five places",
        {**BASE, "cost": 1.00001},
        "cost",
        DropReason.BAD_FORMAT,
        "cost must have at most 4 decimal places",
    ),
    ("cost true", {**BASE, "cost": True}, "cost", DropReason.WRONG_TYPE, "cost must be a number of pounds"),
    ("cost text", {**BASE, "cost": "4.25"}, "cost", DropReason.WRONG_TYPE, "cost must be a number of pounds"),
    (
        "cost object",
        {**BASE, "cost": {"gbp": 4.25}},
        "cost",
        DropReason.WRONG_TYPE,
        "cost must be a number of pounds",
    ),
    (
        "timestamp future",
        {**BASE, "timestamp": NOW_MS + MAX_FUTURE_MS + 1},
        "timestamp",
        DropReason.OUT_OF_RANGE,
        "timestamp is more than 5 minutes in the future",
    ),
    (
        "timestamp 1999",
        {**BASE, "timestamp": "1999-12-31T23:59:59Z"},
        "timestamp",
        DropReason.OUT_OF_RANGE,
        "timestamp is before 2000-01-01",
    ),
    (
        "timestamp float",
        {**BASE, "timestamp": float(NINE_AM_MS)},
        "timestamp",
        DropReason.WRONG_TYPE,
        TIMESTAMP_MESSAGE,
    ),
    ("timestamp bool", {**BASE, "timestamp": True}, "timestamp", DropReason.WRONG_TYPE, TIMESTAMP_MESSAGE),
    (
        "timestamp naive",
        {**BASE, "timestamp": "2026-11-22T09:00:00"},
        "timestamp",
        DropReason.BAD_FORMAT,
        "timestamp needs a UTC offset (Z or +hh:mm)",
    ),
    (
        "started_at after timestamp",
        {**BASE, "timestamp": NINE_AM_MS, "started_at": NINE_AM_MS + 1},
        "started_at",
        DropReason.OUT_OF_RANGE,
        "started_at must not be after timestamp",
    ),
    (
        "started_at after received time",
        {**BASE, "started_at": RECEIVED_MS + 1},
        "started_at",
        DropReason.OUT_OF_RANGE,
        "started_at must not be after timestamp",
    ),
    (
        "started_at before 2000",
        {**BASE, "started_at": 0},
        "started_at",
        DropReason.OUT_OF_RANGE,
        "started_at is before 2000-01-01",
    ),
    (
        "started_at not iso",
        {**BASE, "started_at": "yesterday"},
        "started_at",
        DropReason.BAD_FORMAT,
        TIMESTAMP_MESSAGE.replace("timestamp", "started_at", 1),
    ),
    *(
        (
            f"started_at with {outcome}",
            {**BASE, "outcome": outcome, "started_at": NINE_AM_MS},
            "started_at",
            DropReason.BAD_FORMAT,
            "started_at is only allowed when outcome is completed",
        )
        for outcome in ("started", "failed", "abandoned")
    ),
]


@pytest.mark.parametrize(
    ("raw", "field", "reason", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_refused_events_name_the_field_and_what_is_wrong(
    raw: Any, field: str | None, reason: DropReason, message: str
) -> None:
    with pytest.raises(InvalidEvent) as caught:
        check(raw)
    assert (caught.value.field, caught.value.reason, str(caught.value)) == (field, reason, message)


def test_the_first_field_at_fault_is_named() -> None:
    raw = {"id": 1, "service": 2, "outcome": 3, "channel": 4, "cost": "5"}
    with pytest.raises(InvalidEvent, match=r"^id must be a string$"):
        check(raw)


def counter() -> tuple[list[str], Callable[[], str]]:
    made: list[str] = []

    def make() -> str:
        made.append(f"id-{len(made)}")
        return made[-1]

    return made, make


def test_ids_are_generated_only_for_accepted_events_without_one() -> None:
    made, make = counter()
    items = [BASE, {**BASE, "id": "mine"}, {**BASE, "cost": -1}, {**BASE, "outcome": "started"}]
    events, drops = validate_batch(items, RECEIVED_MS, NOW_MS, make)
    assert [e.id for e in events] == ["id-0", "mine", "id-1"]
    assert made == ["id-0", "id-1"]
    assert [d.index for d in drops] == [2]


def test_without_an_id_factory_ids_are_unique() -> None:
    first = validate(BASE, RECEIVED_MS, NOW_MS)
    second = validate(BASE, RECEIVED_MS, NOW_MS)
    assert first.id != second.id
    assert len(first.id) <= 64


def test_a_batch_accepts_the_good_and_reports_the_bad_by_index() -> None:
    items: list[Any] = [
        {**BASE, "id": "a"},
        {**BASE, "channel": "fax"},
        "not an event",
        {**BASE, "id": "b", "channel": "Face to face"},
        {**BASE, "timestamp": NOW_MS + 3_600_000},
    ]
    events, drops = validate_batch(items, RECEIVED_MS, NOW_MS, new_id)
    assert events == [event(id="a"), event(id="b", channel="face_to_face")]
    assert drops == [
        Drop(1, "channel", DropReason.BAD_FORMAT, f"event 1: {CHANNEL_MESSAGE}"),
        Drop(2, None, DropReason.NOT_AN_OBJECT, "event 2: event must be a JSON object"),
        Drop(
            4,
            "timestamp",
            DropReason.OUT_OF_RANGE,
            "event 4: timestamp is more than 5 minutes in the future",
        ),
    ]
    assert drops[0].as_dict() == {
        "index": 1,
        "field": "channel",
        "reason": "bad_format",
        "message": f"event 1: {CHANNEL_MESSAGE}",
    }


def test_an_empty_batch() -> None:
    assert validate_batch([], RECEIVED_MS, NOW_MS, new_id) == ([], [])


# --- the envelope -----------------------------------------------------------------------------------


def test_the_envelope_is_versioned_json_with_positional_rows() -> None:
    e = event(id="tx-1", transaction_id="T1", cost_e4=42_500, started_ms=RECEIVED_MS - 1)
    assert orjson.loads(encode_envelope([e])) == {
        "schema": "transaction",
        "v": 1,
        "events": [
            [
                "tx-1",
                "apply-passport",
                "T1",
                "completed",
                "digital",
                42_500,
                RECEIVED_MS,
                RECEIVED_MS - 1,
                RECEIVED_MS,
            ]
        ],
    }


@st.composite
def transaction_events(draw: st.DrawFn) -> TransactionEvent:
    outcome = draw(st.sampled_from(OUTCOMES))
    ts_ms = draw(st.integers(min_value=0, max_value=MAX_TS_MS))
    started_ms = -1
    if outcome == "completed":
        started_ms = draw(st.one_of(st.just(-1), st.integers(min_value=0, max_value=ts_ms)))
    return TransactionEvent(
        id=draw(st.text(min_size=1, max_size=64)),
        service=draw(st.text(min_size=1, max_size=64)),
        transaction_id=draw(st.text(max_size=128)),
        outcome=outcome,
        channel=draw(st.sampled_from(CHANNELS)),
        cost_e4=draw(st.integers(min_value=-1, max_value=MAX_COST_E4)),
        ts_ms=ts_ms,
        started_ms=started_ms,
        received_ms=draw(st.integers(min_value=0, max_value=MAX_TS_MS)),
    )


@given(events=st.lists(transaction_events(), max_size=8))
@settings(max_examples=200)
def test_encode_then_decode_gives_the_events_back(events: list[TransactionEvent]) -> None:
    value = encode_envelope(events)
    decoded = decode_envelope(value)
    assert decoded.events == events
    assert decoded.rejects == []
    assert encode_envelope(decoded.events) == value


@st.composite
def transaction_inputs(draw: st.DrawFn) -> tuple[dict[str, Any], int, int]:
    """A valid input object, with the cost and times it must come out as."""
    raw: dict[str, Any] = {
        "service": draw(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,63}", fullmatch=True)),
        "outcome": "completed",
        "channel": draw(st.sampled_from([*CHANNELS, "Face to face", "assisted-digital", "PHONE"])),
    }
    cost_e4 = draw(st.integers(min_value=0, max_value=MAX_COST_E4))
    raw["cost"] = float(Decimal(cost_e4).scaleb(-4))
    ts_ms = draw(st.integers(min_value=MIN_TS_MS, max_value=NOW_MS + MAX_FUTURE_MS))
    raw["timestamp"] = ts_ms
    raw["started_at"] = draw(st.integers(min_value=MIN_TS_MS, max_value=ts_ms))
    return raw, cost_e4, ts_ms


@given(case=transaction_inputs())
@settings(max_examples=200)
def test_valid_input_survives_the_trip_to_kafka_and_back(case: tuple[dict[str, Any], int, int]) -> None:
    raw, cost_e4, ts_ms = case
    accepted = check(raw)
    assert (accepted.cost_e4, accepted.ts_ms, accepted.started_ms) == (cost_e4, ts_ms, raw["started_at"])
    assert accepted.channel in CHANNELS
    decoded = decode_envelope(encode_envelope([accepted]))
    assert (decoded.events, decoded.rejects) == ([accepted], [])


GOOD_ROW = event(id="tx", started_ms=RECEIVED_MS - 5, cost_e4=100).as_row()


def with_field(index: int, value: Any) -> list[Any]:
    row = list(GOOD_ROW)
    row[index] = value
    return row


BAD_ROWS: list[tuple[str, Any, str]] = [
    ("object", {"id": "tx"}, "event is not an array of 9 fields"),
    ("null", None, "event is not an array of 9 fields"),
    ("8 fields", GOOD_ROW[:8], "event is not an array of 9 fields"),
    ("10 fields", [*GOOD_ROW, 0], "event is not an array of 9 fields"),
    ("empty id", with_field(0, ""), "id is not a string of 1 to 64 characters"),
    ("id a number", with_field(0, 1), "id is not a string of 1 to 64 characters"),
    ("id too long", with_field(0, "x" * 65), "id is not a string of 1 to 64 characters"),
    ("empty service", with_field(1, ""), "service is not a string of 1 to 64 characters"),
    ("transaction_id null", with_field(2, None), "transaction_id is not a string of up to 128 characters"),
    (
        "transaction_id long",
        with_field(2, "x" * 129),
        "transaction_id is not a string of up to 128 characters",
    ),
    ("unknown outcome", with_field(3, "won"), "outcome is not one of started, completed, failed, abandoned"),
    (
        "outcome array",
        with_field(3, ["completed"]),
        "outcome is not one of started, completed, failed, abandoned",
    ),
    (
        "unnormalised channel",
        with_field(4, "face to face"),
        "channel is not one of digital, phone, paper, face_to_face, assisted_digital",
    ),
    ("cost below -1", with_field(5, -2), f"cost_e4 is not -1 or an integer from 0 to {MAX_COST_E4}"),
    (
        "cost too big",
        with_field(5, MAX_COST_E4 + 1),
        f"cost_e4 is not -1 or an integer from 0 to {MAX_COST_E4}",
    ),
    ("cost a float", with_field(5, 1.5), f"cost_e4 is not -1 or an integer from 0 to {MAX_COST_E4}"),
    ("cost a bool", with_field(5, True), f"cost_e4 is not -1 or an integer from 0 to {MAX_COST_E4}"),
    ("ts negative", with_field(6, -1), "ts_ms is not epoch milliseconds"),
    ("ts too big", with_field(6, MAX_TS_MS + 1), "ts_ms is not epoch milliseconds"),
    ("ts text", with_field(6, "1"), "ts_ms is not epoch milliseconds"),
    (
        "started after ts",
        with_field(7, RECEIVED_MS + 1),
        "started_ms is not -1 or epoch milliseconds up to ts_ms",
    ),
    ("started -2", with_field(7, -2), "started_ms is not -1 or epoch milliseconds up to ts_ms"),
    (
        "started with failed",
        [*GOOD_ROW[:3], "failed", *GOOD_ROW[4:]],
        "started_ms is set but outcome is not completed",
    ),
    ("received null", with_field(8, None), "received_ms is not epoch milliseconds"),
]


@pytest.mark.parametrize(("row", "reason"), [c[1:] for c in BAD_ROWS], ids=[c[0] for c in BAD_ROWS])
def test_bad_rows_are_rejected_by_index_while_good_rows_decode(row: Any, reason: str) -> None:
    first, last = event(id="first"), event(id="last", outcome="failed", channel="paper")
    value = orjson.dumps({"schema": "transaction", "v": 1, "events": [first.as_row(), row, last.as_row()]})
    decoded = decode_envelope(value)
    assert decoded.events == [first, last]
    assert decoded.rejects == [(1, reason)]


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"{",
        orjson.dumps({"schema": "satisfaction", "v": 1, "events": []}),
        orjson.dumps({"schema": "transaction", "v": 2, "events": []}),
        orjson.dumps({"schema": "transaction", "v": 1}),
    ],
    ids=["empty", "truncated", "other kind", "version 2", "no events"],
)
def test_unusable_messages_raise_schema_mismatch(value: bytes) -> None:
    with pytest.raises(SchemaMismatch):
        decode_envelope(value)


def test_module_constants() -> None:
    assert (transaction.SCHEMA, transaction.VERSION) == ("transaction", 1)
    assert transaction.ROW_FIELDS == (
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
