"""The journey agent's batch step (``stream_processors.journey.decode_batch``): good envelopes
become events; anything permanently unusable becomes a dead letter saying where it came from and
why (``stream_processors.dead_letter``)."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.journey import JourneyEvent, encode_envelope
from stream_processors.dead_letter import DeadLetter
from stream_processors.journey import Message, decode_batch, decode_envelopes

TOPIC = "perfplat.journey"


def event(n: int, **overrides: Any) -> JourneyEvent:
    fields: dict[str, Any] = {
        "id": f"e{n}",
        "service": "checkout",
        "action": "submit",
        "label": "form:address",
        "kind": "page",
        "path": "/apply",
        "ts_ms": 1_710_072_000_000 + n,
        "received_ms": 1_710_072_000_500 + n,
        "visitor": 2**40 + n,
    }
    return JourneyEvent(**{**fields, **overrides})


def message(value: bytes | None, offset: int = 0, partition: int = 0) -> Message:
    return Message(TOPIC, partition, offset, value)


def test_good_envelopes_become_their_events_in_order() -> None:
    batch = [
        message(encode_envelope([event(1), event(2)]), offset=10),
        message(encode_envelope([]), offset=11),
        message(encode_envelope([event(3)]), offset=12, partition=3),
    ]
    events, dead = decode_batch(batch)
    assert events == [event(1), event(2), event(3)]
    assert dead == []


def test_an_empty_batch_gives_nothing() -> None:
    assert decode_batch([]) == ([], [])


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"garbage", "not JSON"),
        (b"", "not JSON"),
        (b"[1, 2]", "not a journey envelope"),
        (orjson.dumps({"schema": "journey", "v": 2, "events": []}), "version 2"),
        (orjson.dumps({"schema": "journey", "v": 1, "events": {}}), "events is not an array"),
    ],
    ids=["garbage", "empty", "array", "wrong version", "events not a list"],
)
def test_unusable_messages_become_dead_letters_with_their_origin(value: bytes, reason: str) -> None:
    events, dead = decode_batch([message(value, offset=41, partition=2)])
    assert events == []
    assert len(dead) == 1
    letter = dead[0]
    assert (letter.topic, letter.partition, letter.offset, letter.value) == (TOPIC, 2, 41, value)
    assert reason in letter.reason


def test_a_tombstone_becomes_a_dead_letter_with_an_empty_value() -> None:
    events, dead = decode_batch([message(None, offset=7)])
    assert events == []
    assert [(d.offset, d.value) for d in dead] == [(7, b"")]
    assert "not JSON" in dead[0].reason


def test_bad_rows_become_dead_letters_and_the_good_rows_of_the_envelope_survive() -> None:
    bad_kind = [*event(2).as_row()[:4], "scroll", *event(2).as_row()[5:]]
    value = orjson.dumps({"schema": "journey", "v": 1, "events": [event(1).as_row(), bad_kind, "x"]})
    events, dead = decode_batch([message(value, offset=5, partition=1)])
    assert events == [event(1)]
    assert [(d.topic, d.partition, d.offset) for d in dead] == [(TOPIC, 1, 5), (TOPIC, 1, 5)]
    assert dead[0].reason.startswith("event 1: ")
    assert "kind" in dead[0].reason
    assert dead[1].reason.startswith("event 2: ")
    # The dead letter holds the offending row itself, not the whole envelope.
    assert orjson.loads(dead[0].value) == bad_kind
    assert orjson.loads(dead[1].value) == "x"


def test_a_mixed_batch_keeps_going_past_bad_messages() -> None:
    batch = [
        message(encode_envelope([event(1)]), offset=1),
        message(b"nope", offset=2),
        message(orjson.dumps({"schema": "journey", "v": 9, "events": []}), offset=3),
        message(encode_envelope([event(4), event(5)]), offset=4),
    ]
    events, dead = decode_batch(batch)
    assert events == [event(1), event(4), event(5)]
    assert [d.offset for d in dead] == [2, 3]


# --- the dead letter on the wire ------------------------------------------------------------------


def test_dead_letter_encodes_as_json_with_the_value_in_base64() -> None:
    letter = DeadLetter(TOPIC, 3, 99, "not JSON: oops", b"\x00\xffgarbage")
    assert orjson.loads(letter.encode()) == {
        "topic": TOPIC,
        "partition": 3,
        "offset": 99,
        "reason": "not JSON: oops",
        "value_b64": base64.b64encode(b"\x00\xffgarbage").decode(),
        "value_truncated": False,
    }


@pytest.mark.parametrize(("size", "truncated"), [(0, False), (65536, False), (65537, True), (200_000, True)])
def test_dead_letter_values_are_capped_at_64_kib(size: int, truncated: bool) -> None:
    value = bytes(i % 251 for i in range(size))
    doc = orjson.loads(DeadLetter(TOPIC, 0, 0, "r", value).encode())
    assert base64.b64decode(doc["value_b64"]) == value[:65536]
    assert doc["value_truncated"] is truncated


@given(value=st.binary(max_size=2048), reason=st.text(max_size=100))
def test_dead_letter_value_round_trips_through_base64(value: bytes, reason: str) -> None:
    doc = orjson.loads(DeadLetter(TOPIC, 0, 1, reason, value).encode())
    assert base64.b64decode(doc["value_b64"], validate=True) == value
    assert doc["reason"] == reason
    assert doc["value_truncated"] is False


def test_kpi_kinds_use_the_same_step_with_their_own_decoder() -> None:
    from schemas import satisfaction, transaction

    good = transaction.TransactionEvent(
        "t1", "svc", "", "completed", "phone", 12_500, 1_710_072_000_000, -1, 1
    )
    value = transaction.encode_envelope([good])
    bad_row = orjson.dumps({"schema": "transaction", "v": 1, "events": [good.as_row(), ["t2", "svc"]]})
    rating = satisfaction.encode_envelope(
        [satisfaction.SatisfactionEvent("r1", "svc", 4, "never logged", 1_710_072_000_000, 1)]
    )
    events, dead = decode_envelopes(
        [message(value, 0), message(bad_row, 1), message(rating, 2), message(b"{", 3)],
        transaction.decode_envelope,
    )
    assert events == [good, good]
    assert [(d.offset, d.reason.split(":")[0]) for d in dead] == [
        (1, "event 1"),
        (2, "not a transaction envelope"),
        (3, "not JSON"),
    ]
    assert all(b"never logged" not in d.reason.encode() for d in dead)
