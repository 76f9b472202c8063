"""Availability events (``schemas.availability``, schema version 1): the prober's constructor, the
deterministic id, and the Kafka envelope both ways with its row rules."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import SchemaMismatch
from schemas import availability
from schemas.availability import (
    MAX_ERROR_CHARS,
    MAX_RESPONSE_MS,
    AvailabilityEvent,
    decode_envelope,
    encode_envelope,
    probe_result,
)
from schemas.envelope import MAX_TS_MS

TS_MS = 1_795_348_740_000  # 2026-11-22T11:59:00Z


def test_a_healthy_probe() -> None:
    assert probe_result("apply-passport", TS_MS, True, 142, 200) == AvailabilityEvent(
        id=f"apply-passport:{TS_MS}",
        service="apply-passport",
        ts_ms=TS_MS,
        up=True,
        response_ms=142,
        status=200,
        error="",
    )


def test_no_response() -> None:
    event = probe_result("vehicle-tax", TS_MS, False, -1, 0, "timed out after 10000 ms")
    assert event.as_row() == [
        f"vehicle-tax:{TS_MS}",
        "vehicle-tax",
        TS_MS,
        False,
        -1,
        0,
        "timed out after 10000 ms",
    ]


def test_the_same_probe_sent_twice_is_the_same_event() -> None:
    first = probe_result("apply-passport", TS_MS, False, 30, 503, "HTTP 503")
    again = probe_result("apply-passport", TS_MS, False, 30, 503, "HTTP 503")
    assert first == again
    assert first.id == again.id == f"apply-passport:{TS_MS}"
    assert probe_result("apply-passport", TS_MS + 1, False, 30, 503).id != first.id


@pytest.mark.parametrize(
    ("error", "stored"),
    [
        ("", ""),
        ("x" * MAX_ERROR_CHARS, "x" * MAX_ERROR_CHARS),
        ("x" * (MAX_ERROR_CHARS + 1), "x" * MAX_ERROR_CHARS),
        ("y" * 1_000_000, "y" * MAX_ERROR_CHARS),
        ("bad byte \udcff in reason", "bad byte \ufffd in reason"),
        ("<html>Bad Gateway</html>\r\n", "<html>Bad Gateway</html>\r\n"),
    ],
    ids=["none", "at limit", "one over", "a million", "lone surrogate", "kept verbatim"],
)
def test_errors_are_cut_to_200_characters_and_made_writable(error: str, stored: str) -> None:
    event = probe_result("a", TS_MS, False, -1, 0, error)
    assert event.error == stored
    assert decode_envelope(encode_envelope([event])).events == [event]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("Apply", TS_MS, True, 1, 200), "service must be a service slug"),
        (("", TS_MS, True, 1, 200), "service must be a service slug"),
        (("a:b", TS_MS, True, 1, 200), "service must be a service slug"),
        ((1, TS_MS, True, 1, 200), "service must be a service slug"),
        (("a", -1, True, 1, 200), "not a probe result: ts_ms is not epoch milliseconds"),
        (("a", float(TS_MS), True, 1, 200), "not a probe result: ts_ms is not epoch milliseconds"),
        (("a", TS_MS, 1, 1, 200), "not a probe result: up is not true or false"),
        (
            ("a", TS_MS, True, -2, 200),
            "not a probe result: response_ms is not -1 or an integer from 0 to 2147483647",
        ),
        (
            ("a", TS_MS, True, 1.5, 200),
            "not a probe result: response_ms is not -1 or an integer from 0 to 2147483647",
        ),
        (("a", TS_MS, True, 1, 99), "not a probe result: status is not 0 or an HTTP status from 100 to 599"),
        (("a", TS_MS, True, 1, 600), "not a probe result: status is not 0 or an HTTP status from 100 to 599"),
        (
            ("a", TS_MS, False, 1, False),
            "not a probe result: status is not 0 or an HTTP status from 100 to 599",
        ),
        (
            ("a", TS_MS, False, 10, 0),
            "not a probe result: response_ms is -1 without status 0, or the other way round",
        ),
        (
            ("a", TS_MS, False, -1, 200),
            "not a probe result: response_ms is -1 without status 0, or the other way round",
        ),
        (("a", TS_MS, True, -1, 0), "not a probe result: up without a response"),
        (("a", TS_MS, False, -1, 0, None), "error must be a string"),
    ],
)
def test_contradictory_probe_results_are_a_bug_in_the_prober(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        probe_result(*args)
    assert str(caught.value) == message


def test_an_unhealthy_answer_may_be_any_status() -> None:
    for status in (100, 204, 301, 404, 500, 599):
        assert probe_result("a", TS_MS, False, 5, status).status == status
    assert probe_result("a", TS_MS, True, 0, 200).response_ms == 0
    assert probe_result("a", TS_MS, True, MAX_RESPONSE_MS, 200).response_ms == MAX_RESPONSE_MS


# --- the envelope -----------------------------------------------------------------------------------


def test_the_envelope_is_versioned_json_with_positional_rows() -> None:
    event = probe_result("a", TS_MS, True, 142, 200)
    assert orjson.loads(encode_envelope([event])) == {
        "schema": "availability",
        "v": 1,
        "events": [[f"a:{TS_MS}", "a", TS_MS, True, 142, 200, ""]],
    }


@st.composite
def availability_events(draw: st.DrawFn) -> AvailabilityEvent:
    service = draw(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,63}", fullmatch=True))
    ts_ms = draw(st.integers(min_value=0, max_value=MAX_TS_MS))
    answered = draw(st.booleans())
    if answered:
        response_ms = draw(st.integers(min_value=0, max_value=MAX_RESPONSE_MS))
        status = draw(st.integers(min_value=100, max_value=599))
        up = draw(st.booleans())
    else:
        response_ms, status, up = -1, 0, False
    return probe_result(service, ts_ms, up, response_ms, status, draw(st.text(max_size=300)))


@given(events=st.lists(availability_events(), max_size=8))
@settings(max_examples=200)
def test_encode_then_decode_gives_the_events_back(events: list[AvailabilityEvent]) -> None:
    value = encode_envelope(events)
    decoded = decode_envelope(value)
    assert decoded.events == events
    assert decoded.rejects == []
    assert encode_envelope(decoded.events) == value


GOOD_ROW = probe_result("a", TS_MS, True, 142, 200).as_row()


def with_field(index: int, value: Any) -> list[Any]:
    row = list(GOOD_ROW)
    row[index] = value
    return row


BAD_ROWS: list[tuple[str, Any, str]] = [
    ("object", {"up": True}, "event is not an array of 7 fields"),
    ("6 fields", GOOD_ROW[:6], "event is not an array of 7 fields"),
    ("id of another time", with_field(0, f"a:{TS_MS + 1}"), "id is not service:ts_ms"),
    ("id of another service", with_field(0, f"b:{TS_MS}"), "id is not service:ts_ms"),
    ("id a number", with_field(0, TS_MS), "id is not service:ts_ms"),
    ("empty service", [f":{TS_MS}", "", *GOOD_ROW[2:]], "service is not a string of 1 to 64 characters"),
    ("ts text", with_field(2, str(TS_MS)), "ts_ms is not epoch milliseconds"),
    ("ts too big", with_field(2, MAX_TS_MS + 1), "ts_ms is not epoch milliseconds"),
    ("up as 1", with_field(3, 1), "up is not true or false"),
    ("up as text", with_field(3, "true"), "up is not true or false"),
    ("response -2", with_field(4, -2), f"response_ms is not -1 or an integer from 0 to {MAX_RESPONSE_MS}"),
    (
        "response float",
        with_field(4, 1.5),
        f"response_ms is not -1 or an integer from 0 to {MAX_RESPONSE_MS}",
    ),
    ("status 42", with_field(5, 42), "status is not 0 or an HTTP status from 100 to 599"),
    ("status true", with_field(5, True), "status is not 0 or an HTTP status from 100 to 599"),
    ("status text", with_field(5, "200"), "status is not 0 or an HTTP status from 100 to 599"),
    (
        "status 0 with a response",
        with_field(5, 0),
        "response_ms is -1 without status 0, or the other way round",
    ),
    ("up without response", [*GOOD_ROW[:4], -1, 0, ""], "up without a response"),
    ("error null", with_field(6, None), "error is not a string of up to 200 characters"),
    ("error 201", with_field(6, "e" * 201), "error is not a string of up to 200 characters"),
]


@pytest.mark.parametrize(("row", "reason"), [c[1:] for c in BAD_ROWS], ids=[c[0] for c in BAD_ROWS])
def test_bad_rows_are_rejected_by_index_while_good_rows_decode(row: Any, reason: str) -> None:
    first = probe_result("first", TS_MS, True, 1, 200)
    last = probe_result("last", TS_MS, False, -1, 0, "refused")
    value = orjson.dumps({"schema": "availability", "v": 1, "events": [first.as_row(), row, last.as_row()]})
    decoded = decode_envelope(value)
    assert decoded.events == [first, last]
    assert decoded.rejects == [(1, reason)]


def test_another_kind_is_a_schema_mismatch() -> None:
    with pytest.raises(SchemaMismatch):
        decode_envelope(orjson.dumps({"schema": "journey", "v": 1, "events": []}))


def test_module_constants() -> None:
    assert (availability.SCHEMA, availability.VERSION) == ("availability", 1)
    assert availability.ROW_FIELDS == ("id", "service", "ts_ms", "up", "response_ms", "status", "error")
