"""Satisfaction events (``schemas.satisfaction``, schema version 1): ratings, comments kept verbatim
but never quoted in a message or a repr, and the Kafka envelope both ways."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.beacon import Drop, DropReason
from pipeline.errors import SchemaMismatch
from schemas import satisfaction
from schemas.envelope import MAX_TS_MS
from schemas.fields import InvalidEvent
from schemas.satisfaction import (
    MAX_COMMENT_CHARS,
    SatisfactionEvent,
    decode_envelope,
    encode_envelope,
    validate,
    validate_batch,
)

NOW_MS = 1_795_348_800_000  # 2026-11-22T12:00:00Z
RECEIVED_MS = NOW_MS
BASE: dict[str, Any] = {"service": "apply-passport", "rating": 4}
RATING_MESSAGE = "rating must be an integer from 1 to 5"
SECRET = "Jane Example, 10 Downing Street, QQ123456C"


def new_id() -> str:
    return "generated"


def event(**overrides: Any) -> SatisfactionEvent:
    fields: dict[str, Any] = {
        "id": "generated",
        "service": "apply-passport",
        "rating": 4,
        "comment": "",
        "ts_ms": RECEIVED_MS,
        "received_ms": RECEIVED_MS,
    }
    return SatisfactionEvent(**{**fields, **overrides})


def check(raw: Any) -> SatisfactionEvent:
    return validate(raw, RECEIVED_MS, NOW_MS, new_id)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, event()),
        *(({"rating": r}, event(rating=r)) for r in range(1, 6)),
        ({"id": "s-1"}, event(id="s-1")),
        ({"comment": "Quick and clear"}, event(comment="Quick and clear")),
        (
            {"comment": "<script>alert(1)</script> & <b>bold</b>"},
            event(comment="<script>alert(1)</script> & <b>bold</b>"),
        ),
        ({"comment": "line 1\nline 2\ttab"}, event(comment="line 1\nline 2\ttab")),
        ({"comment": "Diolch 👍 — ŵ"}, event(comment="Diolch 👍 — ŵ")),
        ({"comment": "x" * MAX_COMMENT_CHARS}, event(comment="x" * MAX_COMMENT_CHARS)),
        ({"comment": ""}, event()),
        ({"comment": None, "timestamp": None, "id": None}, event()),
        ({"timestamp": "2026-11-22T11:00:00Z"}, event(ts_ms=NOW_MS - 3_600_000)),
        ({"timestamp": NOW_MS - 1}, event(ts_ms=NOW_MS - 1)),
    ],
    ids=lambda v: str(v)[:60] if isinstance(v, dict) else "",
)
def test_accepted_events_are_exactly_as_expected(
    overrides: dict[str, Any], expected: SatisfactionEvent
) -> None:
    assert check({**BASE, **overrides}) == expected


REFUSED: list[tuple[str, Any, str | None, DropReason, str]] = [
    ("not an object", [BASE], None, DropReason.NOT_AN_OBJECT, "event must be a JSON object"),
    ("unknown field", {**BASE, "email": "a@b.c"}, None, DropReason.BAD_FORMAT, 'unknown field "email"'),
    ("score not rating", {"service": "a", "score": 4}, None, DropReason.BAD_FORMAT, 'unknown field "score"'),
    ("no service", {"rating": 4}, "service", DropReason.MISSING, "service is required"),
    ("no rating", {"service": "a"}, "rating", DropReason.MISSING, "rating is required"),
    ("rating null", {**BASE, "rating": None}, "rating", DropReason.MISSING, "rating is required"),
    ("rating 0", {**BASE, "rating": 0}, "rating", DropReason.OUT_OF_RANGE, RATING_MESSAGE),
    ("rating 6", {**BASE, "rating": 6}, "rating", DropReason.OUT_OF_RANGE, RATING_MESSAGE),
    ("rating -1", {**BASE, "rating": -1}, "rating", DropReason.OUT_OF_RANGE, RATING_MESSAGE),
    ("rating huge", {**BASE, "rating": 10**100}, "rating", DropReason.OUT_OF_RANGE, RATING_MESSAGE),
    ("rating 2.5", {**BASE, "rating": 2.5}, "rating", DropReason.WRONG_TYPE, RATING_MESSAGE),
    ("rating 3.0", {**BASE, "rating": 3.0}, "rating", DropReason.WRONG_TYPE, RATING_MESSAGE),
    ("rating nan", {**BASE, "rating": math.nan}, "rating", DropReason.WRONG_TYPE, RATING_MESSAGE),
    ("rating infinity", {**BASE, "rating": math.inf}, "rating", DropReason.WRONG_TYPE, RATING_MESSAGE),
    ("rating text", {**BASE, "rating": "3"}, "rating", DropReason.WRONG_TYPE, RATING_MESSAGE),
    ("rating true", {**BASE, "rating": True}, "rating", DropReason.WRONG_TYPE, RATING_MESSAGE),
    ("rating false", {**BASE, "rating": False}, "rating", DropReason.WRONG_TYPE, RATING_MESSAGE),
    ("rating array", {**BASE, "rating": [4]}, "rating", DropReason.WRONG_TYPE, RATING_MESSAGE),
    ("rating object", {**BASE, "rating": {"value": 4}}, "rating", DropReason.WRONG_TYPE, RATING_MESSAGE),
    (
        "comment 1201",
        {**BASE, "comment": "x" * (MAX_COMMENT_CHARS + 1)},
        "comment",
        DropReason.TOO_LONG,
        "comment is longer than 1200 characters",
    ),
    (
        "comment megabytes",
        {**BASE, "comment": "x" * 5_000_000},
        "comment",
        DropReason.TOO_LONG,
        "comment is longer than 1200 characters",
    ),
    ("comment number", {**BASE, "comment": 5}, "comment", DropReason.WRONG_TYPE, "comment must be a string"),
    (
        "comment object",
        {**BASE, "comment": {"text": "hi"}},
        "comment",
        DropReason.WRONG_TYPE,
        "comment must be a string",
    ),
    (
        "comment nul",
        {**BASE, "comment": "a\x00b"},
        "comment",
        DropReason.BAD_FORMAT,
        "comment contains a NUL character",
    ),
    (
        "timestamp future",
        {**BASE, "timestamp": "2026-11-22T12:05:00.001Z"},
        "timestamp",
        DropReason.OUT_OF_RANGE,
        "timestamp is more than 5 minutes in the future",
    ),
    (
        "timestamp 1970",
        {**BASE, "timestamp": 86_400_000},
        "timestamp",
        DropReason.OUT_OF_RANGE,
        "timestamp is before 2000-01-01",
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


@pytest.mark.parametrize(
    "raw",
    [
        {**BASE, "comment": SECRET * 100},
        {**BASE, "comment": SECRET + "\x00"},
        {**BASE, "comment": SECRET, "rating": 9},
        {**BASE, "comment": SECRET, "timestamp": "not a time"},
        {**BASE, "comment": SECRET, "service": "Not A Slug"},
        {**BASE, "comment": SECRET, "extra": SECRET},
        {**BASE, "comment": {"text": SECRET}},
        {**BASE, "comment": [SECRET]},
    ],
    ids=["too long", "nul", "bad rating", "bad timestamp", "bad service", "extra field", "object", "array"],
)
def test_no_message_ever_quotes_the_comment(raw: dict[str, Any]) -> None:
    events, drops = validate_batch([raw], RECEIVED_MS, NOW_MS, new_id)
    assert events == []
    [drop] = drops
    for text in (drop.message, str(drop), repr(drop), orjson.dumps(drop.as_dict()).decode()):
        assert "Jane" not in text
        assert "QQ123456C" not in text


def test_an_accepted_comment_is_kept_but_left_out_of_the_repr() -> None:
    accepted = check({**BASE, "comment": SECRET})
    assert accepted.comment == SECRET
    assert SECRET in accepted.as_row()
    assert "Jane" not in repr(accepted)
    assert "Jane" not in str(accepted)
    assert repr(accepted) == (
        f"SatisfactionEvent(id='generated', service='apply-passport', rating=4, "
        f"ts_ms={RECEIVED_MS}, received_ms={RECEIVED_MS})"
    )


def test_decode_reasons_never_quote_the_comment() -> None:
    row = event(comment=SECRET).as_row()
    row[2] = 7
    decoded = decode_envelope(orjson.dumps({"schema": "satisfaction", "v": 1, "events": [row]}))
    assert decoded.rejects == [(0, "rating is not an integer from 1 to 5")]


def test_a_batch_accepts_the_good_and_reports_the_bad_by_index() -> None:
    items: list[Any] = [{**BASE, "rating": 5}, {**BASE, "rating": "5"}, {**BASE, "rating": 1, "id": "x"}, 7]
    events, drops = validate_batch(items, RECEIVED_MS, NOW_MS, new_id)
    assert events == [event(rating=5), event(rating=1, id="x")]
    assert drops == [
        Drop(1, "rating", DropReason.WRONG_TYPE, f"event 1: {RATING_MESSAGE}"),
        Drop(3, None, DropReason.NOT_AN_OBJECT, "event 3: event must be a JSON object"),
    ]


# --- the envelope -----------------------------------------------------------------------------------


def test_the_envelope_is_versioned_json_with_positional_rows() -> None:
    e = event(id="s-1", rating=2, comment="<i>ok</i>")
    assert orjson.loads(encode_envelope([e])) == {
        "schema": "satisfaction",
        "v": 1,
        "events": [["s-1", "apply-passport", 2, "<i>ok</i>", RECEIVED_MS, RECEIVED_MS]],
    }


satisfaction_events = st.builds(
    SatisfactionEvent,
    id=st.text(min_size=1, max_size=64),
    service=st.text(min_size=1, max_size=64),
    rating=st.integers(min_value=1, max_value=5),
    comment=st.text(max_size=MAX_COMMENT_CHARS),
    ts_ms=st.integers(min_value=0, max_value=MAX_TS_MS),
    received_ms=st.integers(min_value=0, max_value=MAX_TS_MS),
)


@given(events=st.lists(satisfaction_events, max_size=8))
@settings(max_examples=200)
def test_encode_then_decode_gives_the_events_back(events: list[SatisfactionEvent]) -> None:
    value = encode_envelope(events)
    decoded = decode_envelope(value)
    assert decoded.events == events
    assert decoded.rejects == []
    assert encode_envelope(decoded.events) == value


@given(comment=st.text(max_size=MAX_COMMENT_CHARS).filter(lambda c: "\x00" not in c))
@settings(max_examples=200)
def test_any_comment_is_stored_verbatim(comment: str) -> None:
    accepted = check({**BASE, "comment": comment})
    assert accepted.comment == comment
    assert decode_envelope(encode_envelope([accepted])).events == [accepted]


GOOD_ROW = event(id="s", comment="fine").as_row()


def with_field(index: int, value: Any) -> list[Any]:
    row = list(GOOD_ROW)
    row[index] = value
    return row


BAD_ROWS: list[tuple[str, Any, str]] = [
    ("object", {"rating": 4}, "event is not an array of 6 fields"),
    ("5 fields", GOOD_ROW[:5], "event is not an array of 6 fields"),
    ("empty id", with_field(0, ""), "id is not a string of 1 to 64 characters"),
    ("service null", with_field(1, None), "service is not a string of 1 to 64 characters"),
    ("rating 0", with_field(2, 0), "rating is not an integer from 1 to 5"),
    ("rating 6", with_field(2, 6), "rating is not an integer from 1 to 5"),
    ("rating float", with_field(2, 4.0), "rating is not an integer from 1 to 5"),
    ("rating true", with_field(2, True), "rating is not an integer from 1 to 5"),
    ("comment null", with_field(3, None), "comment is not a string of up to 1200 characters"),
    ("comment long", with_field(3, "x" * 1201), "comment is not a string of up to 1200 characters"),
    ("ts negative", with_field(4, -1), "ts_ms is not epoch milliseconds"),
    ("received text", with_field(5, "now"), "received_ms is not epoch milliseconds"),
]


@pytest.mark.parametrize(("row", "reason"), [c[1:] for c in BAD_ROWS], ids=[c[0] for c in BAD_ROWS])
def test_bad_rows_are_rejected_by_index_while_good_rows_decode(row: Any, reason: str) -> None:
    first, last = event(id="first"), event(id="last", rating=1)
    value = orjson.dumps({"schema": "satisfaction", "v": 1, "events": [first.as_row(), row, last.as_row()]})
    decoded = decode_envelope(value)
    assert decoded.events == [first, last]
    assert decoded.rejects == [(1, reason)]


def test_another_kind_or_version_is_a_schema_mismatch() -> None:
    for doc in (
        {"schema": "transaction", "v": 1, "events": []},
        {"schema": "satisfaction", "v": 2, "events": []},
    ):
        with pytest.raises(SchemaMismatch):
            decode_envelope(orjson.dumps(doc))


def test_module_constants() -> None:
    assert (satisfaction.SCHEMA, satisfaction.VERSION) == ("satisfaction", 1)
    assert satisfaction.ROW_FIELDS == ("id", "service", "rating", "comment", "ts_ms", "received_ms")
