"""Backdrop write requests (``pipeline.records``): the body rules of reference §1.4 and the record
pipeline of §1.5-§1.6, asserted with the original's exact error texts."""

from __future__ import annotations

import base64
import gzip
import itertools
import zlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import BadInput
from pipeline.records import (
    CONTENT_TYPE_MESSAGE,
    MAX_DECOMPRESSED_BYTES,
    MAX_KEYS,
    MAX_STRING_CHARS,
    MessagesRejected,
    RecordsRejected,
    decode_body,
    period_keys,
    timestamp_iso,
    validate_records,
)
from schemas.records import Record

TS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"_timestamp": {"type": "string", "format": "date-time"}},
    "required": ["_timestamp"],
}
TS_MS = 1388630045000  # 2014-01-02T02:34:05Z


def ids() -> Any:
    counter = itertools.count()
    return lambda: f"new-{next(counter)}"


def validate(
    items: list[Any], auto_ids: tuple[str, ...] = (), schema: dict[str, Any] | None = None
) -> list[Record]:
    return validate_records(items, auto_ids, schema, ids())


def rejected(
    items: list[Any], auto_ids: tuple[str, ...] = (), schema: dict[str, Any] | None = None
) -> list[str]:
    with pytest.raises(RecordsRejected) as caught:
        validate(items, auto_ids, schema)
    assert caught.value.status == 400
    assert caught.value.body == {"messages": caught.value.messages}
    return caught.value.messages


def one(item: dict[str, Any], auto_ids: tuple[str, ...] = ()) -> Record:
    (record,) = validate([item], auto_ids)
    return record


def decode(
    body: bytes, content_type: str | None = "application/json", encoding: str | None = None
) -> list[Any]:
    return decode_body(content_type, encoding, body)


def decode_error(
    body: bytes, content_type: str | None = "application/json", encoding: str | None = None
) -> BadInput:
    with pytest.raises(BadInput) as caught:
        decode(body, content_type, encoding)
    return caught.value


# --- the body -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", " Application/JSON ;charset=UTF-8"],
)
def test_json_content_types_are_accepted(content_type: str) -> None:
    assert decode(b'{"ab": 1}', content_type) == [{"ab": 1}]


@pytest.mark.parametrize("content_type", ["text/plain", None, "", "application/json-patch+json", "text/json"])
def test_other_content_types_get_the_originals_messages_body(content_type: str | None) -> None:
    error = decode_error(b'{"ab": 1}', content_type)
    assert error.status == 400
    assert error.message == "ValidationError('Expected header: Content-type: application/json',)"
    assert error.message == CONTENT_TYPE_MESSAGE
    assert isinstance(error, MessagesRejected)
    assert error.body == {"messages": [CONTENT_TYPE_MESSAGE]}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"ab": 1}', [{"ab": 1}]),
        (b'[{"ab": 1}, {"cd": 2}]', [{"ab": 1}, {"cd": 2}]),
        (b"[]", []),
        (b"[1, null]", [1, None]),  # validate_records names the items that are not objects
    ],
)
def test_an_object_is_wrapped_and_an_array_kept(body: bytes, expected: list[Any]) -> None:
    assert decode(body) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "Expected JSON request body but received zero bytes."),
        (b"{", 'Error parsing JSON: "unexpected end of data: line 1 column 2 (char 1)"'),
        (b"[1,]", 'Error parsing JSON: "trailing comma is not allowed: line 1 column 3 (char 2)"'),
        (
            b"NaN",
            'Error parsing JSON: "unexpected character, expected a JSON value: line 1 column 1 (char 0)"',
        ),
    ],
)
def test_empty_and_malformed_bodies(body: bytes, message: str) -> None:
    error = decode_error(body)
    assert (error.status, error.message) == (400, message)


@pytest.mark.parametrize("body", [b"42", b'"text"', b"null", b"true"])
def test_a_body_that_is_neither_object_nor_array_is_refused(body: bytes) -> None:
    error = decode_error(body)
    assert (error.status, error.message) == (
        400,
        "Expected a JSON object or a JSON array of objects as the request body",
    )


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        b"[" * 1000 + b"]" * 1000,
        b'{"a":' * 65 + b"1" + b"}" * 65,
    ],
)
def test_deep_nesting_is_a_parse_error_not_a_crash(body: bytes) -> None:
    error = decode_error(body)
    assert error.status == 400
    assert error.message.startswith('Error parsing JSON: "')


def test_nesting_up_to_the_limit_is_parsed() -> None:
    assert decode(b"[" * 64 + b"]" * 64) != []


def test_gzip_bodies_are_inflated() -> None:
    body = gzip.compress(b'[{"ab": 1}, {"ab": 2}]')
    assert decode(body, encoding="gzip") == [{"ab": 1}, {"ab": 2}]
    assert decode(body, encoding="x-gzip, identity") == [{"ab": 1}, {"ab": 2}]
    assert decode(gzip.compress(b'[{"ab":') + gzip.compress(b" 1}]"), encoding="gzip") == [{"ab": 1}]


def test_a_gzip_bomb_is_413_without_inflating_it_all() -> None:
    bomb = gzip.compress(b"\0" * (11 * 1024 * 1024))
    assert len(bomb) < 20_000
    error = decode_error(bomb, encoding="gzip")
    assert error.status == 413
    assert error.message == "The decompressed request body is larger than 10485760 bytes"


def test_exactly_ten_mib_inflated_is_allowed() -> None:
    body = b"[" + b" " * (MAX_DECOMPRESSED_BYTES - 2) + b"]"
    assert decode(gzip.compress(body), encoding="gzip") == []


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"not gzip at all", "Error -3 while decompressing data: incorrect header check"),
        (gzip.compress(b'{"ab": 1}')[:-6], "it is truncated"),
        (zlib.compress(b'{"ab": 1}'), "Error -3 while decompressing data: incorrect header check"),
    ],
)
def test_corrupt_gzip_is_400(body: bytes, detail: str) -> None:
    error = decode_error(body, encoding="gzip")
    assert (error.status, error.message) == (
        400,
        f"Content-Encoding is gzip but the body is not valid gzip: {detail}",
    )


def test_an_empty_gzip_body_is_the_zero_bytes_error() -> None:
    assert decode_error(gzip.compress(b""), encoding="gzip").message == (
        "Expected JSON request body but received zero bytes."
    )


# --- keys and values ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["ab", "foo_bar", "fooBar", "CamelCase", "a1", "_timestamp", "x_1_y"])
def test_valid_keys(key: str) -> None:
    item = {key: "2014-01-02T02:34:05Z"} if key == "_timestamp" else {key: 1}
    validate([item])


@pytest.mark.parametrize(
    "key", ["a", "-", "foo-bar", "foo.bar", "foo:bar", "foo bar", "1ab", "9", "", "ab\n", "a\u212a"]
)
def test_invalid_keys(key: str) -> None:
    assert rejected([{key: 1}]) == [f"{key} is not a valid key"]


@pytest.mark.parametrize("key", ["_foo", "_updated_at", "_week_start_at", "__"])
def test_unknown_internal_fields(key: str) -> None:
    assert rejected([{key: 1}]) == [f"{key} is not a recognised internal field"]


@pytest.mark.parametrize("value", [[], [1], {}, {"ab": 1}, float("nan"), float("inf"), -float("inf")])
def test_invalid_values(value: Any) -> None:
    assert rejected([{"ab": value}]) == ["ab has an invalid value"]


@pytest.mark.parametrize("value", [0, -5, 2**64 - 1, 1.5, "", "text", True, False, None])
def test_scalar_values_are_kept_as_posted(value: Any) -> None:
    assert one({"ab": value}).fields == {"ab": value}


def test_only_the_first_failure_of_a_record_is_reported() -> None:
    assert rejected([{"ok": 1, "_bad": 1, "a-b": 1, "cd": []}]) == ["_bad is not a recognised internal field"]
    assert rejected([{"cd": [], "a-b": 1}]) == ["cd has an invalid value"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a b", '_id "a b" is not a valid id'),
        ("a\tb", '_id "a\tb" is not a valid id'),
        ("", '_id "" is not a valid id'),
        (5, '_id "5" is not a valid id'),
        (None, '_id "None" is not a valid id'),
        (True, '_id "True" is not a valid id'),
        ([], "_id has an invalid value"),
    ],
)
def test_invalid_ids(value: Any, message: str) -> None:
    assert rejected([{"_id": value}]) == [message]


def test_a_client_id_is_kept() -> None:
    assert one({"_id": "abc-123", "ab": 1}) == Record("abc-123", True, None, {"ab": 1})


def test_without_an_id_one_is_generated() -> None:
    assert validate([{"ab": 1}, {"ab": 2}]) == [
        Record("new-0", False, None, {"ab": 1}),
        Record("new-1", False, None, {"ab": 2}),
    ]


def test_our_own_limits_on_string_length_and_key_count() -> None:
    assert one({"ab": "x" * MAX_STRING_CHARS}).fields["ab"] == "x" * MAX_STRING_CHARS
    assert rejected([{"ab": "x" * (MAX_STRING_CHARS + 1)}]) == ["ab has a value longer than 65536 characters"]
    many = {f"k{i}": i for i in range(MAX_KEYS + 1)}
    assert rejected([many]) == ["a record has 1001 fields; the limit is 1000"]
    validate([dict(list(many.items())[:MAX_KEYS])])


# --- timestamps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [
        ("2014-01-02T06:04:05+03:30", TS_MS),
        ("2014-01-02T02:34:05Z", TS_MS),
        ("2014-01-02T02:34:05", TS_MS),  # naive means UTC
        ("2014-01-02T02:34:05+00:00", TS_MS),
        ("2014-01-01T21:34:05-05:00", TS_MS),
        ("2014-01-02 02:34:05", TS_MS),
        ("20140102T023405Z", TS_MS),
        ("2014-01-02T02:34:05.123Z", TS_MS + 123),
        ("2014-01-02T02:34:05.123999Z", TS_MS + 123),
        ("2014-01-02", TS_MS - (2 * 3600 + 34 * 60 + 5) * 1000),
        ("2 January 2014 02:34:05 UTC", TS_MS),
        ("Jan 2 2014 06:04:05 +0330", TS_MS),
        ("1970-01-01T00:00:00Z", 0),
    ],
)
def test_timestamps_are_parsed_leniently_into_utc(text: str, expected_ms: int) -> None:
    assert one({"_timestamp": text}).ts_ms == expected_ms


@pytest.mark.parametrize("name", ["_start_at", "_end_at"])
def test_start_and_end_become_utc_iso_text(name: str) -> None:
    record = one({name: "2014-01-02T06:04:05+03:30", "ab": 1})
    assert record.fields == {name: "2014-01-02T02:34:05+00:00", "ab": 1}
    assert record.ts_ms is None
    assert one({name: "2014-01-02T02:34:05.5Z"}).fields == {name: "2014-01-02T02:34:05.500+00:00"}


@pytest.mark.parametrize("name", ["_timestamp", "_start_at", "_end_at"])
@pytest.mark.parametrize("value", [5, 1.5, None, True, [], {"ab": 1}])
def test_a_timestamp_that_is_not_a_string(name: str, value: Any) -> None:
    assert rejected([{name: value}]) == [f"the {name} must be a date in the format yyyy-MM-ddT00:00:00Z"]


@pytest.mark.parametrize("name", ["_timestamp", "_start_at", "_end_at"])
@pytest.mark.parametrize(
    "value",
    [
        "nope",
        "",
        "2014-13-01T00:00:00Z",
        "2014-01-02T06:04:05 EST",  # a zone name the original silently ignored
        "12:00",  # the original took the date from today
        "March",
        "1969-12-31T23:59:59Z",
        "2106-01-01T00:00:00Z",
        "9999-12-31T23:59:59-05:00",
        "2014-01-02T00:00:00+25:00",
        "2014-01-02T00:00:00Z" + " " * 100,
    ],
)
def test_an_unparsable_timestamp(name: str, value: str) -> None:
    assert rejected([{name: value}]) == [f"{value} in the {name} field is not a valid date"]


def test_a_failed_timestamp_is_not_reported_again_but_other_keys_are_checked() -> None:
    assert rejected([{"_timestamp": [1], "ab": 1}]) == [
        "the _timestamp must be a date in the format yyyy-MM-ddT00:00:00Z"
    ]
    assert rejected([{"_timestamp": "nope", "_end_at": 5, "a-b": 1}]) == [
        "nope in the _timestamp field is not a valid date",
        "the _end_at must be a date in the format yyyy-MM-ddT00:00:00Z",
        "a-b is not a valid key",
    ]


def test_timestamp_iso() -> None:
    assert timestamp_iso(TS_MS) == "2014-01-02T02:34:05+00:00"
    assert timestamp_iso(TS_MS + 7) == "2014-01-02T02:34:05.007+00:00"
    assert timestamp_iso(0) == "1970-01-01T00:00:00+00:00"


def test_period_keys() -> None:
    assert period_keys(TS_MS + 123) == {
        "_hour_start_at": "2014-01-02T02:00:00+00:00",
        "_day_start_at": "2014-01-02T00:00:00+00:00",
        "_week_start_at": "2013-12-30T00:00:00+00:00",  # a Monday
        "_month_start_at": "2014-01-01T00:00:00+00:00",
        "_quarter_start_at": "2014-01-01T00:00:00+00:00",
        "_year_start_at": "2014-01-01T00:00:00+00:00",
    }
    assert period_keys(1_407_000_000_000)["_quarter_start_at"] == "2014-07-01T00:00:00+00:00"


# --- auto ids -----------------------------------------------------------------------------------


def test_the_originals_auto_id_example() -> None:
    record = one({"postcode": "WC2B 6SE", "number": 125, "name": "Aviation House"}, ("postcode", "number"))
    assert record.id == "V0MyQiA2U0UuMTI1"
    assert record.id_given is True
    assert record.fields == {"postcode": "WC2B 6SE", "number": 125, "name": "Aviation House"}
    assert one({"postcode": "WC2B 6SE", "number": "125"}, ("postcode", "number")).id == "V0MyQiA2U0UuMTI1"


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        (True, "True"),
        (False, "False"),
        (None, "None"),
        (1.0, "1.0"),
        (0.1 + 0.2, "0.3"),  # Python 2's str() printed 12 significant digits
        (1e16, "1e+16"),
        (-0.0, "-0.0"),
        (2**64 - 1, "18446744073709551615"),
        ("Portimão", "Portimão"),
    ],
)
def test_auto_ids_print_values_as_python_2(value: Any, printed: str) -> None:
    expected = base64.b64encode(f"k.{printed}".encode()).decode()
    assert one({"ab": "k", "cd": value}, ("ab", "cd")).id == expected


def test_auto_ids_use_the_raw_timestamp_and_replace_a_client_id() -> None:
    record = one(
        {"_timestamp": "2013-08-01T00:00:00+00:00", "foo": "bar", "_id": "mine"}, ("_timestamp", "foo")
    )
    assert record.id == "MjAxMy0wOC0wMVQwMDowMDowMCswMDowMC5iYXI="
    assert record.ts_ms == 1375315200000


def test_missing_auto_id_fields_are_one_error_for_the_batch() -> None:
    items = [{"ab": 1}, {"cd": 1}, {}]
    assert rejected(items, ("zz", "ab", "yy")) == ["The following required id fields are missing: zz, yy"]


# --- schema -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"ab": 1}, "'_timestamp' is a required property"),
        ({"_timestamp": 5}, "5 is not of type 'string'"),
        ({"_timestamp": "2014-06-1xxx0:00:00+0000"}, "'2014-06-1xxx0:00:00+0000' is not a 'date-time'"),
        ({"_timestamp": "2014-01-02"}, "'2014-01-02' is not a 'date-time'"),
    ],
)
def test_schema_messages(item: dict[str, Any], message: str) -> None:
    assert rejected([item], schema=TS_SCHEMA)[0] == message


def test_schema_errors_come_first_then_the_later_steps() -> None:
    assert rejected([{"_timestamp": 5}], schema=TS_SCHEMA) == [
        "5 is not of type 'string'",
        "the _timestamp must be a date in the format yyyy-MM-ddT00:00:00Z",
    ]


def test_a_record_satisfying_the_schema() -> None:
    (record,) = validate([{"_timestamp": "2014-01-02T06:04:05+03:30", "ab": 1}], schema=TS_SCHEMA)
    assert record == Record("new-0", False, TS_MS, {"ab": 1})


# --- batches ------------------------------------------------------------------------------------


def test_every_bad_record_is_reported_and_good_ones_are_not_returned() -> None:
    items = [{"ab": 1}, {"a-b": 1}, 7, {"_x": 1}]
    assert rejected(items) == [
        "record 2 is not a JSON object",
        "a-b is not a valid key",
        "_x is not a recognised internal field",
    ]


def test_an_empty_batch_is_fine() -> None:
    assert validate([]) == []


def test_the_input_is_not_changed() -> None:
    item = {"_id": "mine", "_timestamp": "2014-01-02T02:34:05Z", "ab": 1}
    copy = dict(item)
    validate([item], ("ab",))
    assert item == copy


def test_a_posted_body_end_to_end() -> None:
    body = orjson.dumps([{"_timestamp": "2014-01-02T06:04:05+03:30", "count": 3, "channel": "digital"}])
    (record,) = validate_records(decode(gzip.compress(body), encoding="gzip"), (), TS_SCHEMA, lambda: "id-1")
    assert record == Record("id-1", False, TS_MS, {"count": 3, "channel": "digital"})


# --- properties ---------------------------------------------------------------------------------

_keys = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{1,20}", fullmatch=True)
_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)


@settings(max_examples=200)
@given(st.dictionaries(_keys, _scalars, max_size=20))
def test_any_record_of_valid_keys_and_scalars_round_trips(item: dict[str, Any]) -> None:
    (record,) = validate([item])
    assert record == Record("new-0", False, None, item)


@settings(max_examples=300)
@given(st.text(max_size=40) | st.from_regex(r"[0-9T:+\- .Z]{0,30}", fullmatch=True))
def test_any_timestamp_text_parses_or_is_rejected_with_the_message(text: str) -> None:
    try:
        (record,) = validate([{"_timestamp": text}])
    except RecordsRejected as bad:
        assert bad.messages == [f"{text} in the _timestamp field is not a valid date"]
    else:
        assert record.ts_ms is not None
        assert 0 <= record.ts_ms < 4_291_747_200_000
