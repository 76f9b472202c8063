"""The envelope every service event kind shares (``schemas.envelope``): what makes a message unusable
as a whole, for each kind, and what only costs a row."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import orjson
import pytest

from pipeline.errors import PermanentError, SchemaMismatch
from schemas import availability, cost, envelope, journey, satisfaction, transaction
from schemas.envelope import Decoded, is_int, is_text

KINDS = [transaction, satisfaction, availability, cost]
KIND_IDS = [k.SCHEMA for k in KINDS]


def sample_row(kind: ModuleType) -> list[Any]:
    rows: dict[str, list[Any]] = {
        "transaction": ["t", "a", "", "started", "phone", -1, 5, -1, 6],
        "satisfaction": ["s", "a", 3, "", 5, 6],
        "availability": ["a:5", "a", 5, False, -1, 0, ""],
        "cost": ["c", "a", "day", 86_400_000, "all", 0, 6],
    }
    return rows[kind.SCHEMA]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_each_kind_names_its_schema_and_version_1(kind: ModuleType) -> None:
    doc = orjson.loads(kind.encode_envelope([]))
    assert doc == {"schema": kind.SCHEMA, "v": 1, "events": []}
    decoded = kind.decode_envelope(kind.encode_envelope([]))
    assert (decoded.events, decoded.rejects) == ([], [])


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_the_sample_rows_are_good(kind: ModuleType) -> None:
    row = sample_row(kind)
    decoded = kind.decode_envelope(orjson.dumps({"schema": kind.SCHEMA, "v": 1, "events": [row]}))
    assert decoded.rejects == []
    assert [e.as_row() for e in decoded.events] == [row]


def unusable(schema: str) -> list[tuple[str, bytes]]:
    return [
        ("empty", b""),
        ("not json", b"not json"),
        ("not utf-8", b"\xff\xfe"),
        ("truncated", b'{"schema": "' + schema.encode()),
        ("nan literal", b'{"schema": "' + schema.encode() + b'", "v": 1, "events": [NaN]}'),
        ("array", b"[]"),
        ("string", orjson.dumps(schema)),
        ("null", b"null"),
        ("no schema", orjson.dumps({"v": 1, "events": []})),
        ("other schema", orjson.dumps({"schema": "other", "v": 1, "events": []})),
        ("schema upper case", orjson.dumps({"schema": schema.upper(), "v": 1, "events": []})),
        ("no version", orjson.dumps({"schema": schema, "events": []})),
        ("version 2", orjson.dumps({"schema": schema, "v": 2, "events": []})),
        ("version 0", orjson.dumps({"schema": schema, "v": 0, "events": []})),
        ("version text", orjson.dumps({"schema": schema, "v": "1", "events": []})),
        ("version float", orjson.dumps({"schema": schema, "v": 1.0, "events": []})),
        ("version true", orjson.dumps({"schema": schema, "v": True, "events": []})),
        ("version huge text", orjson.dumps({"schema": schema, "v": "9" * 100_000, "events": []})),
        ("no events", orjson.dumps({"schema": schema, "v": 1})),
        ("events object", orjson.dumps({"schema": schema, "v": 1, "events": {}})),
        ("events null", orjson.dumps({"schema": schema, "v": 1, "events": None})),
    ]


CASES = [(kind, value) for kind in KINDS for _, value in unusable(kind.SCHEMA)]
CASE_IDS = [f"{kind.SCHEMA}-{name}" for kind in KINDS for name, _ in unusable(kind.SCHEMA)]


@pytest.mark.parametrize(("kind", "value"), CASES, ids=CASE_IDS)
def test_unusable_messages_raise_schema_mismatch(kind: ModuleType, value: bytes) -> None:
    with pytest.raises(SchemaMismatch) as caught:
        kind.decode_envelope(value)
    assert isinstance(caught.value, PermanentError)
    assert len(str(caught.value)) <= 200


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_no_kind_decodes_another_kinds_message(kind: ModuleType) -> None:
    for other in [*KINDS, journey]:
        if other is kind:
            continue
        with pytest.raises(SchemaMismatch, match=f"^not a {kind.SCHEMA} envelope$"):
            kind.decode_envelope(other.encode_envelope([]))


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_an_unsupported_version_is_named(kind: ModuleType) -> None:
    with pytest.raises(SchemaMismatch, match=f"^unsupported {kind.SCHEMA} schema version 2$"):
        kind.decode_envelope(orjson.dumps({"schema": kind.SCHEMA, "v": 2, "events": []}))


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_every_bad_row_is_reported_with_its_own_index(kind: ModuleType) -> None:
    good = sample_row(kind)
    width = len(good)
    rows: list[Any] = [None, good, [], good[:-1], [*good, None], "row", 7, {"0": good[0]}, good]
    decoded = kind.decode_envelope(orjson.dumps({"schema": kind.SCHEMA, "v": 1, "events": rows}))
    assert [e.as_row() for e in decoded.events] == [good, good]
    reason = f"event is not an array of {width} fields"
    assert decoded.rejects == [(i, reason) for i in (0, 2, 3, 4, 5, 6, 7)]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_extra_envelope_keys_are_ignored(kind: ModuleType) -> None:
    value = orjson.dumps({"schema": kind.SCHEMA, "v": 1, "events": [sample_row(kind)], "producer": "sdk 1.2"})
    assert len(kind.decode_envelope(value).events) == 1


def test_a_big_batch_decodes_in_order() -> None:
    rows = [["t" + str(i), "a", "", "started", "phone", -1, i, -1, i] for i in range(5000)]
    decoded = transaction.decode_envelope(orjson.dumps({"schema": "transaction", "v": 1, "events": rows}))
    assert [e.ts_ms for e in decoded.events] == list(range(5000))


def test_decoded_is_a_plain_pair() -> None:
    assert Decoded([1], [(0, "x")]) == Decoded([1], [(0, "x")])


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, True), (5, True), (-1, False), (6, False), (True, False), (1.0, False), ("1", False), (None, False)],
)
def test_is_int_takes_only_true_integers(value: Any, expected: bool) -> None:
    assert is_int(value, 0, 5) is expected


@pytest.mark.parametrize(
    ("value", "empty", "expected"),
    [("", True, True), ("", False, False), ("abc", True, True), ("abcd", True, False), (1, True, False)],
)
def test_is_text(value: Any, empty: bool, expected: bool) -> None:
    assert is_text(value, 3, empty=empty) is expected


def test_the_shared_encoder_writes_rows_in_order() -> None:
    class Row:
        def __init__(self, n: int) -> None:
            self.n = n

        def as_row(self) -> list[Any]:
            return [self.n]

    assert envelope.encode("x", 3, [Row(1), Row(2)]) == b'{"schema":"x","v":3,"events":[[1],[2]]}'
