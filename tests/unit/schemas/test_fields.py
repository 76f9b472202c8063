"""Field rules shared by the service event kinds (``schemas.fields``): exact values for what is
accepted, exact messages for what is not, and hostile input of every shape."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.beacon import Drop, DropReason
from schemas import fields
from schemas.fields import InvalidEvent

NOW_MS = 1_795_348_800_000  # 2026-11-22T12:00:00Z
CHANNEL_MESSAGE = "channel must be one of digital, phone, paper, face_to_face, assisted_digital"
INSTANT_MESSAGE = (
    "timestamp must be an ISO 8601 date-time with an offset "
    "(like 2026-11-22T10:00:00+01:00 or 2026-11-22T09:00:00Z) or integer epoch milliseconds"
)


def ms(text: str) -> int:
    """Independent of the code under test: the standard library's reading of an aware ISO text."""
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def failure(call: Any, *args: Any) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        call(*args)
    return caught.value


def test_invalid_event_is_a_value_error_with_field_reason_and_message() -> None:
    error = InvalidEvent("rating", DropReason.OUT_OF_RANGE, "rating must be an integer from 1 to 5")
    assert isinstance(error, ValueError)
    assert (error.field, error.reason, error.message) == (
        "rating",
        DropReason.OUT_OF_RANGE,
        "rating must be an integer from 1 to 5",
    )
    assert str(error) == "rating must be an integer from 1 to 5"


# --- the object and its keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [None, [], [{"service": "a"}], "service", 1, 1.5, True, b"{}", ("service",)],
    ids=["null", "empty array", "array of object", "string", "int", "float", "bool", "bytes", "tuple"],
)
def test_anything_but_an_object_is_refused(raw: Any) -> None:
    error = failure(fields.event_object, raw, {"service"})
    assert (error.field, error.reason, error.message) == (
        None,
        DropReason.NOT_AN_OBJECT,
        "event must be a JSON object",
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"service": "a", "foo": 1}, 'unknown field "foo"'),
        ({"foo": 1, "bar": 2}, 'unknown field "foo"'),
        ({"Service": "a"}, 'unknown field "Service"'),
        ({"": 1}, 'unknown field ""'),
        ({'a"b': 1}, 'unknown field "a\\"b"'),
        ({"line\nbreak": 1}, 'unknown field "line\\nbreak"'),
        ({"\x1b[31mred": 1}, 'unknown field "\\u001b[31mred"'),
        ({"k" * 10_000: 1}, 'unknown field "' + "k" * 40 + '"…'),
        ({"\ud800": 1}, 'unknown field "\ufffd"'),
        ({1: "python key"}, 'unknown field "1"'),
        ({None: "python key"}, 'unknown field "None"'),
    ],
    ids=[
        "one unknown",
        "first unknown named",
        "case matters",
        "empty name",
        "quote escaped",
        "newline escaped",
        "escape sequence escaped",
        "huge name cut",
        "lone surrogate replaced",
        "int key",
        "None key",
    ],
)
def test_unknown_fields_are_refused_naming_the_field_safely(raw: dict[Any, Any], message: str) -> None:
    error = failure(fields.event_object, raw, {"service"})
    assert (error.field, error.reason, error.message) == (None, DropReason.BAD_FORMAT, message)


def test_an_object_of_known_fields_comes_back_as_it_is() -> None:
    raw = {"service": "a", "id": None}
    assert fields.event_object(raw, {"service", "id"}) is raw


@pytest.mark.parametrize("obj", [{}, {"service": None}], ids=["absent", "null"])
def test_required_treats_null_as_absent(obj: dict[str, Any]) -> None:
    error = failure(fields.required, obj, "service")
    assert (error.field, error.reason, error.message) == (
        "service",
        DropReason.MISSING,
        "service is required",
    )


@pytest.mark.parametrize("value", [0, False, "", [], {}], ids=["zero", "false", "empty", "array", "object"])
def test_required_gives_back_any_value_but_null(value: Any) -> None:
    assert fields.required({"x": value}, "x") is value


# --- ids and slugs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a", "tx-1", "A.b:c_d-9", "x" * 64])
def test_client_ids_of_the_event_id_alphabet_are_kept(value: str) -> None:
    assert fields.client_id(value) == value


def test_no_client_id_is_none() -> None:
    assert fields.client_id(None) is None


@pytest.mark.parametrize(
    ("value", "reason", "message"),
    [
        ("", DropReason.BAD_FORMAT, "id must be 1 to 64 letters, digits or _ . : -"),
        ("x" * 65, DropReason.BAD_FORMAT, "id must be 1 to 64 letters, digits or _ . : -"),
        ("tx 1", DropReason.BAD_FORMAT, "id must be 1 to 64 letters, digits or _ . : -"),
        ("tx/1", DropReason.BAD_FORMAT, "id must be 1 to 64 letters, digits or _ . : -"),
        ("é", DropReason.BAD_FORMAT, "id must be 1 to 64 letters, digits or _ . : -"),
        ("tx\n", DropReason.BAD_FORMAT, "id must be 1 to 64 letters, digits or _ . : -"),
        (12, DropReason.WRONG_TYPE, "id must be a string"),
        (True, DropReason.WRONG_TYPE, "id must be a string"),
        (["a"], DropReason.WRONG_TYPE, "id must be a string"),
        ({"id": "a"}, DropReason.WRONG_TYPE, "id must be a string"),
    ],
    ids=[
        "empty",
        "65 chars",
        "space",
        "slash",
        "non-ascii",
        "trailing newline",
        "int",
        "bool",
        "array",
        "object",
    ],
)
def test_bad_client_ids_are_refused(value: Any, reason: DropReason, message: str) -> None:
    error = failure(fields.client_id, value)
    assert (error.field, error.reason, error.message) == ("id", reason, message)


@pytest.mark.parametrize("value", ["a", "apply-passport", "vehicle_tax", "0day", "a" * 64])
def test_slugs_are_kept(value: str) -> None:
    assert fields.slug(value, "service") == value


SLUG_MESSAGE = (
    "service must be a service slug: 1 to 64 lower-case letters, digits, - or _, "
    "starting with a letter or digit"
)


@pytest.mark.parametrize(
    ("value", "reason", "message"),
    [
        ("", DropReason.BAD_FORMAT, SLUG_MESSAGE),
        ("Apply", DropReason.BAD_FORMAT, SLUG_MESSAGE),
        ("-apply", DropReason.BAD_FORMAT, SLUG_MESSAGE),
        ("apply passport", DropReason.BAD_FORMAT, SLUG_MESSAGE),
        ("a" * 65, DropReason.BAD_FORMAT, SLUG_MESSAGE),
        ("a" * 1_000_000, DropReason.BAD_FORMAT, SLUG_MESSAGE),
        ("<script>", DropReason.BAD_FORMAT, SLUG_MESSAGE),
        (7, DropReason.WRONG_TYPE, "service must be a string"),
        (["apply"], DropReason.WRONG_TYPE, "service must be a string"),
    ],
    ids=[
        "empty",
        "upper case",
        "leading dash",
        "space",
        "65 chars",
        "a million chars",
        "html",
        "int",
        "array",
    ],
)
def test_bad_slugs_are_refused(value: Any, reason: DropReason, message: str) -> None:
    error = failure(fields.slug, value, "service")
    assert (error.field, error.reason, error.message) == ("service", reason, message)


# --- closed sets -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("digital", "digital"),
        ("phone", "phone"),
        ("paper", "paper"),
        ("face_to_face", "face_to_face"),
        ("assisted_digital", "assisted_digital"),
        ("face to face", "face_to_face"),
        ("face-to-face", "face_to_face"),
        ("Face To Face", "face_to_face"),
        ("FACE-TO-FACE", "face_to_face"),
        ("assisted digital", "assisted_digital"),
        ("assisted-digital", "assisted_digital"),
        ("Assisted Digital", "assisted_digital"),
        ("DIGITAL", "digital"),
        ("Phone", "phone"),
    ],
)
def test_channel_spellings_are_normalised(value: str, expected: str) -> None:
    assert fields.channel(value, "channel", fields.CHANNELS) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("web", DropReason.BAD_FORMAT),
        ("", DropReason.BAD_FORMAT),
        (" digital", DropReason.BAD_FORMAT),
        ("face  to face", DropReason.BAD_FORMAT),
        ("facetoface", DropReason.BAD_FORMAT),
        ("all", DropReason.BAD_FORMAT),
        (1, DropReason.WRONG_TYPE),
        (True, DropReason.WRONG_TYPE),
        (["digital"], DropReason.WRONG_TYPE),
        ({"digital": True}, DropReason.WRONG_TYPE),
    ],
)
def test_other_channels_are_refused_listing_the_channels(value: Any, reason: DropReason) -> None:
    error = failure(fields.channel, value, "channel", fields.CHANNELS)
    assert (error.field, error.reason, error.message) == ("channel", reason, CHANNEL_MESSAGE)


def test_choice_is_exact() -> None:
    assert fields.choice("b", "x", ("a", "b")) == "b"
    error = failure(fields.choice, "B", "x", ("a", "b"))
    assert error.message == "x must be one of a, b"


# --- text ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "",
        "plain",
        "<script>alert('x')</script>",
        "a & b &amp; c",
        "line one\nline two\r\n\ttabbed",
        "Diolch — ŵ 👍",
        "x" * 100,
    ],
    ids=["empty", "plain", "html kept verbatim", "entities kept", "whitespace kept", "unicode", "at limit"],
)
def test_text_is_kept_verbatim(value: str) -> None:
    assert fields.text(value, "comment", 100) == value


def test_absent_text_is_empty() -> None:
    assert fields.text(None, "comment", 10) == ""


@pytest.mark.parametrize(
    ("value", "reason", "message"),
    [
        ("x" * 11, DropReason.TOO_LONG, "comment is longer than 10 characters"),
        ("x" * 5_000_000, DropReason.TOO_LONG, "comment is longer than 10 characters"),
        ("a\x00b", DropReason.BAD_FORMAT, "comment contains a NUL character"),
        ("a\udc80b", DropReason.BAD_FORMAT, "comment is not valid Unicode text"),
        (5, DropReason.WRONG_TYPE, "comment must be a string"),
        (False, DropReason.WRONG_TYPE, "comment must be a string"),
        ({"text": "hi"}, DropReason.WRONG_TYPE, "comment must be a string"),
        (["hi"], DropReason.WRONG_TYPE, "comment must be a string"),
    ],
    ids=["one over", "five million", "nul", "lone surrogate", "int", "bool", "object", "array"],
)
def test_bad_text_is_refused(value: Any, reason: DropReason, message: str) -> None:
    error = failure(fields.text, value, "comment", 10)
    assert (error.field, error.reason, error.message) == ("comment", reason, message)


@pytest.mark.parametrize("value", ["a", "PP-1/2 (x)", "Ünïcödé", "x" * 128])
def test_references_are_kept(value: str) -> None:
    assert fields.reference(value, "transaction_id", 128) == value


@pytest.mark.parametrize(
    ("value", "reason", "message"),
    [
        ("", DropReason.BAD_FORMAT, "transaction_id must be 1 to 128 characters"),
        ("x" * 129, DropReason.TOO_LONG, "transaction_id must be 1 to 128 characters"),
        ("a\nb", DropReason.BAD_FORMAT, "transaction_id must hold only printable characters"),
        ("a\tb", DropReason.BAD_FORMAT, "transaction_id must hold only printable characters"),
        ("a\x00", DropReason.BAD_FORMAT, "transaction_id must hold only printable characters"),
        ("\x1b[2J", DropReason.BAD_FORMAT, "transaction_id must hold only printable characters"),
        ("a\u2028b", DropReason.BAD_FORMAT, "transaction_id must hold only printable characters"),
        ("\ud800", DropReason.BAD_FORMAT, "transaction_id must hold only printable characters"),
        (123, DropReason.WRONG_TYPE, "transaction_id must be a string"),
    ],
    ids=["empty", "129", "newline", "tab", "nul", "escape", "line separator", "surrogate", "int"],
)
def test_bad_references_are_refused(value: Any, reason: DropReason, message: str) -> None:
    error = failure(fields.reference, value, "transaction_id", 128)
    assert (error.field, error.reason, error.message) == ("transaction_id", reason, message)


# --- money ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "e4"),
    [
        (None, -1),
        (0, 0),
        (0.0, 0),
        (-0.0, 0),
        (1, 10_000),
        (4.25, 42_500),
        (0.1, 1_000),
        (0.0001, 1),
        (12.3456, 123_456),
        (99.99, 999_900),
        (1e9, 10_000_000_000_000),
        (1_000_000_000, 10_000_000_000_000),
        (999_999_999.9999, 9_999_999_999_999),
        (1.1, 11_000),
    ],
)
def test_money_is_exact_ten_thousandths(value: Any, e4: int) -> None:
    assert fields.money_e4(value, "cost") == e4


@pytest.mark.parametrize(
    ("value", "reason", "message"),
    [
        (-0.0001, DropReason.OUT_OF_RANGE, "cost must not be negative"),
        (-1, DropReason.OUT_OF_RANGE, "cost must not be negative"),
        (1_000_000_000.0001, DropReason.OUT_OF_RANGE, "cost must be at most 1000000000 pounds"),
        (10**30, DropReason.OUT_OF_RANGE, "cost must be at most 1000000000 pounds"),
        (1e308, DropReason.OUT_OF_RANGE, "cost must be at most 1000000000 pounds"),
        (math.nan, DropReason.OUT_OF_RANGE, "cost must be a finite number"),
        (math.inf, DropReason.OUT_OF_RANGE, "cost must be a finite number"),
        (-math.inf, DropReason.OUT_OF_RANGE, "cost must be a finite number"),
        (0.00005, DropReason.BAD_FORMAT, "cost must have at most 4 decimal places"),
        (0.12345, DropReason.BAD_FORMAT, "cost must have at most 4 decimal places"),
        (0.1 + 0.2, DropReason.BAD_FORMAT, "cost must have at most 4 decimal places"),
        (5e-324, DropReason.BAD_FORMAT, "cost must have at most 4 decimal places"),
        (True, DropReason.WRONG_TYPE, "cost must be a number of pounds"),
        (False, DropReason.WRONG_TYPE, "cost must be a number of pounds"),
        ("4.25", DropReason.WRONG_TYPE, "cost must be a number of pounds"),
        ("NaN", DropReason.WRONG_TYPE, "cost must be a number of pounds"),
        ("", DropReason.WRONG_TYPE, "cost must be a number of pounds"),
        ([4.25], DropReason.WRONG_TYPE, "cost must be a number of pounds"),
        ({"amount": 4.25}, DropReason.WRONG_TYPE, "cost must be a number of pounds"),
    ],
    ids=[
        "tiny negative",
        "negative int",
        "over a billion",
        "huge int",
        "huge float",
        "nan",
        "infinity",
        "minus infinity",
        "fifth place",
        "five places",
        "float arithmetic",
        "denormal",
        "true",
        "false",
        "text",
        "text nan",
        "empty text",
        "array",
        "object",
    ],
)
def test_bad_money_is_refused(value: Any, reason: DropReason, message: str) -> None:
    error = failure(fields.money_e4, value, "cost")
    assert (error.field, error.reason, error.message) == ("cost", reason, message)


@given(e4=st.integers(min_value=0, max_value=fields.MAX_POUNDS * fields.MONEY_SCALE))
@settings(max_examples=500)
def test_any_amount_of_up_to_four_places_written_in_json_is_read_exactly(e4: int) -> None:
    pounds, fraction = divmod(e4, fields.MONEY_SCALE)
    written = f"{pounds}.{fraction:04d}".rstrip("0").rstrip(".")
    assert fields.money_e4(orjson.loads(written), "cost") == e4


# --- instants -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-22T10:00:00+01:00", ms("2026-11-22T09:00:00+00:00")),
        ("2026-11-22T09:00:00Z", ms("2026-11-22T09:00:00+00:00")),
        ("2026-11-22t09:00:00z", ms("2026-11-22T09:00:00+00:00")),
        ("2026-11-22T09:00Z", ms("2026-11-22T09:00:00+00:00")),
        ("2026-11-22T09:00:00.5Z", ms("2026-11-22T09:00:00.500+00:00")),
        ("2026-11-22T09:00:00.123Z", ms("2026-11-22T09:00:00.123+00:00")),
        ("2026-11-22T09:00:00.123999999Z", ms("2026-11-22T09:00:00.123+00:00")),
        ("2026-11-22T06:00:00-05:30", ms("2026-11-22T11:30:00+00:00")),
        ("2026-11-22T09:00:00+0530", ms("2026-11-22T03:30:00+00:00")),
        ("2026-11-22T09:00:00-00:00", ms("2026-11-22T09:00:00+00:00")),
        ("2026-11-22T00:30:00+01:00", ms("2026-11-21T23:30:00+00:00")),
        ("2024-02-29T12:00:00+23:59", ms("2024-02-28T12:01:00+00:00")),
        ("2000-01-01T00:00:00Z", fields.MIN_TS_MS),
    ],
)
def test_iso_instants_become_utc_epoch_milliseconds(value: str, expected: int) -> None:
    assert fields.instant_ms(value, "timestamp") == expected
    assert fields.instant(value, "timestamp", NOW_MS) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-11-22T10:00:00", "timestamp needs a UTC offset (Z or +hh:mm)"),
        ("2026-11-22T10:00", "timestamp needs a UTC offset (Z or +hh:mm)"),
        ("2026-11-22", INSTANT_MESSAGE),
        ("2026-11-22 10:00:00Z", INSTANT_MESSAGE),
        ("22/11/2026 10:00", INSTANT_MESSAGE),
        ("2026-W47-7T10:00:00Z", INSTANT_MESSAGE),
        ("20261122T100000Z", INSTANT_MESSAGE),
        ("2026-11-22T10:00:00 Z", INSTANT_MESSAGE),
        ("2026-11-22T10:00:00+01", INSTANT_MESSAGE),
        ("2026-11-22T10:00:00.Z", INSTANT_MESSAGE),
        ("2026-11-22T10:00:00.1234567891Z", INSTANT_MESSAGE),
        ("\uff12\uff10\uff12\uff16-11-22T10:00:00Z", INSTANT_MESSAGE),  # full-width digits
        ("2026-11-22T10:00:00Z\n", INSTANT_MESSAGE),
        (" 2026-11-22T10:00:00Z", INSTANT_MESSAGE),
        ("1795348800000", INSTANT_MESSAGE),
        ("", INSTANT_MESSAGE),
        ("now", INSTANT_MESSAGE),
        ("2" * 1_000_000, INSTANT_MESSAGE),
        ("2026-02-29T10:00:00Z", "timestamp is not a real date and time"),
        ("2026-13-01T10:00:00Z", "timestamp is not a real date and time"),
        ("2026-11-22T24:00:00Z", "timestamp is not a real date and time"),
        ("2026-11-22T10:60:00Z", "timestamp is not a real date and time"),
        ("2026-11-22T23:59:60Z", "timestamp is not a real date and time"),
        ("2026-11-22T10:00:00+24:00", "timestamp is not a real date and time"),
        ("2026-11-22T10:00:00+01:60", "timestamp is not a real date and time"),
        ("0000-01-01T00:00:00Z", "timestamp is not a real date and time"),
    ],
)
def test_bad_iso_instants_are_refused(value: str, message: str) -> None:
    error = failure(fields.instant, value, "timestamp", NOW_MS)
    assert (error.field, error.reason, error.message) == ("timestamp", DropReason.BAD_FORMAT, message)


@pytest.mark.parametrize(
    "value",
    [1795348800000.0, 1.5, math.nan, math.inf, True, False, [1], {"ms": 1}],
    ids=["integral float", "fraction", "nan", "infinity", "true", "false", "array", "object"],
)
def test_instants_of_other_types_are_refused(value: Any) -> None:
    error = failure(fields.instant, value, "timestamp", NOW_MS)
    assert (error.field, error.reason, error.message) == ("timestamp", DropReason.WRONG_TYPE, INSTANT_MESSAGE)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (NOW_MS, NOW_MS),
        (NOW_MS + fields.MAX_FUTURE_MS, NOW_MS + fields.MAX_FUTURE_MS),
        (fields.MIN_TS_MS, fields.MIN_TS_MS),
        ("2026-11-22T12:05:00Z", NOW_MS + fields.MAX_FUTURE_MS),
        ("2026-11-22T12:05:00.000+00:00", NOW_MS + fields.MAX_FUTURE_MS),
    ],
    ids=["absent", "now", "5 minutes ahead", "2000-01-01", "5 minutes ahead as text", "with millis"],
)
def test_instants_within_bounds_are_accepted(value: Any, expected: int | None) -> None:
    assert fields.instant(value, "timestamp", NOW_MS) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (NOW_MS + fields.MAX_FUTURE_MS + 1, "timestamp is more than 5 minutes in the future"),
        ("2026-11-22T12:05:00.001Z", "timestamp is more than 5 minutes in the future"),
        ("9999-12-31T23:59:59Z", "timestamp is more than 5 minutes in the future"),
        (2**80, "timestamp is more than 5 minutes in the future"),
        (fields.MIN_TS_MS - 1, "timestamp is before 2000-01-01"),
        ("1999-12-31T23:59:59.999Z", "timestamp is before 2000-01-01"),
        ("2000-01-01T00:30:00+01:00", "timestamp is before 2000-01-01"),
        (1_795_348_800, "timestamp is before 2000-01-01"),
        (0, "timestamp is before 2000-01-01"),
        (-1, "timestamp is before 2000-01-01"),
        (-(2**80), "timestamp is before 2000-01-01"),
    ],
    ids=[
        "1 ms too far ahead",
        "1 ms too far ahead as text",
        "year 9999",
        "huge int",
        "1 ms before 2000",
        "1 ms before 2000 as text",
        "before 2000 in UTC",
        "epoch seconds by mistake",
        "zero",
        "negative",
        "huge negative",
    ],
)
def test_instants_out_of_bounds_are_refused(value: Any, message: str) -> None:
    error = failure(fields.instant, value, "timestamp", NOW_MS)
    assert (error.field, error.reason, error.message) == ("timestamp", DropReason.OUT_OF_RANGE, message)


@given(
    moment=st.datetimes(
        # hypothesis takes naive bounds and applies ``timezones`` itself
        min_value=datetime(2000, 1, 2),  # noqa: DTZ001
        max_value=datetime(2100, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    offset_minutes=st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
)
@settings(max_examples=300)
def test_any_iso_instant_reads_as_its_epoch_milliseconds(moment: datetime, offset_minutes: int) -> None:
    local = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    text = local.isoformat(timespec="milliseconds")
    expected = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert fields.instant_ms(text, "timestamp") == expected
    assert fields.instant_ms(text.replace("+00:00", "Z"), "timestamp") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-16", datetime(2026, 11, 16, tzinfo=UTC)),
        ("2024-02-29", datetime(2024, 2, 29, tzinfo=UTC)),
        ("2026-11-16T00:00:00Z", datetime(2026, 11, 16, tzinfo=UTC)),
        ("2026-11-16T01:00:00+01:00", datetime(2026, 11, 16, tzinfo=UTC)),
        ("2026-11-16T10:30:00.250Z", datetime(2026, 11, 16, 10, 30, 0, 250_000, tzinfo=UTC)),
    ],
)
def test_dates_and_instants_become_utc_datetimes(value: str, expected: datetime) -> None:
    got = fields.date_or_instant(value, "start")
    assert got == expected
    assert got.utcoffset() == timedelta(0)


DATE_MESSAGE = "start must be a date (YYYY-MM-DD) or a date-time with an offset"


@pytest.mark.parametrize(
    ("value", "reason", "message"),
    [
        ("16/11/2026", DropReason.BAD_FORMAT, DATE_MESSAGE),
        ("2026-11", DropReason.BAD_FORMAT, DATE_MESSAGE),
        ("20261116", DropReason.BAD_FORMAT, DATE_MESSAGE),
        ("2026-11-16T00:00:00", DropReason.BAD_FORMAT, "start needs a UTC offset (Z or +hh:mm)"),
        ("2026-02-30", DropReason.BAD_FORMAT, "start is not a real date"),
        ("2026-00-10", DropReason.BAD_FORMAT, "start is not a real date"),
        ("2026-02-30T00:00:00Z", DropReason.BAD_FORMAT, "start is not a real date and time"),
        (1795348800000, DropReason.WRONG_TYPE, DATE_MESSAGE),
        (None, DropReason.WRONG_TYPE, DATE_MESSAGE),
        ({"date": "2026-11-16"}, DropReason.WRONG_TYPE, DATE_MESSAGE),
    ],
)
def test_bad_dates_are_refused(value: Any, reason: DropReason, message: str) -> None:
    error = failure(fields.date_or_instant, value, "start")
    assert (error.field, error.reason, error.message) == ("start", reason, message)


@given(ms_value=st.integers(min_value=0, max_value=2**32 * 1000))
def test_milliseconds_convert_both_ways_exactly(ms_value: int) -> None:
    assert fields.to_ms(fields.from_ms(ms_value)) == ms_value


# --- batches -------------------------------------------------------------------------------------------


def _positive(raw: object) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise InvalidEvent(None, DropReason.WRONG_TYPE, "must be a number")
    if raw <= 0:
        raise InvalidEvent("n", DropReason.OUT_OF_RANGE, "n must be positive")
    return raw


def test_a_batch_keeps_the_good_and_names_the_bad_by_index() -> None:
    events, drops = fields.validate_all([1, "x", 2, -3, 4], _positive)
    assert events == [1, 2, 4]
    assert drops == [
        Drop(1, None, DropReason.WRONG_TYPE, "event 1: must be a number"),
        Drop(3, "n", DropReason.OUT_OF_RANGE, "event 3: n must be positive"),
    ]


def test_an_empty_batch_is_empty() -> None:
    assert fields.validate_all([], _positive) == ([], [])


def test_errors_other_than_invalid_events_are_not_swallowed() -> None:
    def broken(raw: object) -> int:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        fields.validate_all([1], broken)
