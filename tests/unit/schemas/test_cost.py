"""Cost events (``schemas.cost``, schema version 1): period starts aligned the original platform's way,
exact amounts, the replacement key, and the Kafka envelope both ways."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.beacon import Drop, DropReason
from pipeline.errors import SchemaMismatch
from pipeline.windows import period_start
from schemas import cost
from schemas.cost import (
    CHANNELS,
    MAX_AMOUNT_E4,
    PERIODS,
    CostEvent,
    decode_envelope,
    encode_envelope,
    validate,
    validate_batch,
)
from schemas.envelope import MAX_TS_MS
from schemas.fields import InvalidEvent, from_ms, to_ms

NOW_MS = 1_795_348_800_000  # 2026-11-22T12:00:00Z, a Sunday
RECEIVED_MS = NOW_MS
BASE: dict[str, Any] = {"service": "apply-passport", "period": "month", "start": "2026-11-01", "amount": 10}
CHANNEL_MESSAGE = "channel must be one of digital, phone, paper, face_to_face, assisted_digital, all"


def utc_ms(year: int, month: int, day: int) -> int:
    return to_ms(datetime(year, month, day, tzinfo=UTC))


def new_id() -> str:
    return "generated"


def event(**overrides: Any) -> CostEvent:
    fields: dict[str, Any] = {
        "id": "generated",
        "service": "apply-passport",
        "period": "month",
        "start_ms": utc_ms(2026, 11, 1),
        "channel": "all",
        "amount_e4": 100_000,
        "received_ms": RECEIVED_MS,
    }
    return CostEvent(**{**fields, **overrides})


def check(raw: Any) -> CostEvent:
    return validate(raw, RECEIVED_MS, NOW_MS, new_id)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, event()),
        ({"period": "day", "start": "2026-11-22"}, event(period="day", start_ms=utc_ms(2026, 11, 22))),
        ({"period": "week", "start": "2026-11-16"}, event(period="week", start_ms=utc_ms(2026, 11, 16))),
        ({"period": "week", "start": "2025-12-29"}, event(period="week", start_ms=utc_ms(2025, 12, 29))),
        ({"period": "quarter", "start": "2026-10-01"}, event(period="quarter", start_ms=utc_ms(2026, 10, 1))),
        ({"period": "quarter", "start": "2026-01-01"}, event(period="quarter", start_ms=utc_ms(2026, 1, 1))),
        ({"period": "quarter", "start": "2026-04-01"}, event(period="quarter", start_ms=utc_ms(2026, 4, 1))),
        ({"period": "quarter", "start": "2026-07-01"}, event(period="quarter", start_ms=utc_ms(2026, 7, 1))),
        ({"period": "year", "start": "2026-01-01"}, event(period="year", start_ms=utc_ms(2026, 1, 1))),
        ({"period": "year", "start": "2000-01-01"}, event(period="year", start_ms=utc_ms(2000, 1, 1))),
        ({"start": "2026-11-01T00:00:00Z"}, event()),
        ({"start": "2026-11-01T00:00:00.000+00:00"}, event()),
        ({"start": "2026-11-01T01:00:00+01:00"}, event()),
        ({"start": "2026-10-31T19:00:00-05:00"}, event()),
        ({"amount": 0}, event(amount_e4=0)),
        ({"amount": 125_000.5}, event(amount_e4=1_250_005_000)),
        ({"amount": 0.0001}, event(amount_e4=1)),
        ({"amount": 1_000_000_000}, event(amount_e4=MAX_AMOUNT_E4)),
        *(({"channel": c}, event(channel=c)) for c in CHANNELS),
        ({"channel": "Face to Face"}, event(channel="face_to_face")),
        ({"channel": "assisted-digital"}, event(channel="assisted_digital")),
        ({"channel": "ALL"}, event(channel="all")),
        ({"channel": None, "id": None}, event()),
        ({"id": "cost-2026-11"}, event(id="cost-2026-11")),
    ],
    ids=lambda v: str(v)[:60] if isinstance(v, dict) else "",
)
def test_accepted_events_are_exactly_as_expected(overrides: dict[str, Any], expected: CostEvent) -> None:
    assert check({**BASE, **overrides}) == expected


def not_start(period: str, hint: str, holding: str) -> str:
    return f"start must be the start of a {period} in UTC ({hint}): the {period} holding it starts {holding}"


REFUSED: list[tuple[str, Any, str | None, DropReason, str]] = [
    ("not an object", "cost", None, DropReason.NOT_AN_OBJECT, "event must be a JSON object"),
    ("unknown field", {**BASE, "currency": "GBP"}, None, DropReason.BAD_FORMAT, 'unknown field "currency"'),
    ("cost not amount", {**BASE, "cost": 1}, None, DropReason.BAD_FORMAT, 'unknown field "cost"'),
    ("no service", {"period": "day"}, "service", DropReason.MISSING, "service is required"),
    ("no period", {"service": "a"}, "period", DropReason.MISSING, "period is required"),
    ("no start", {"service": "a", "period": "day"}, "start", DropReason.MISSING, "start is required"),
    ("no amount", {**BASE, "amount": None}, "amount", DropReason.MISSING, "amount is required"),
    *(
        (
            f"period {p!r}",
            {**BASE, "period": p},
            "period",
            DropReason.BAD_FORMAT if isinstance(p, str) else DropReason.WRONG_TYPE,
            "period must be one of day, week, month, quarter, year",
        )
        for p in ("hour", "minute", "Month", "monthly", "", 30)
    ),
    (
        "week on a Wednesday",
        {**BASE, "period": "week", "start": "2026-11-18"},
        "start",
        DropReason.BAD_FORMAT,
        not_start("week", "on a Monday at midnight", "2026-11-16"),
    ),
    (
        "week on a Sunday",
        {**BASE, "period": "week", "start": "2026-11-22"},
        "start",
        DropReason.BAD_FORMAT,
        not_start("week", "on a Monday at midnight", "2026-11-16"),
    ),
    (
        "week across a year",
        {**BASE, "period": "week", "start": "2026-01-01"},
        "start",
        DropReason.BAD_FORMAT,
        not_start("week", "on a Monday at midnight", "2025-12-29"),
    ),
    (
        "month mid-month",
        {**BASE, "start": "2026-11-15"},
        "start",
        DropReason.BAD_FORMAT,
        not_start("month", "on the 1st at midnight", "2026-11-01"),
    ),
    (
        "month local midnight",
        {**BASE, "start": "2026-11-01T00:00:00+01:00"},
        "start",
        DropReason.BAD_FORMAT,
        not_start("month", "on the 1st at midnight", "2026-10-01"),
    ),
    (
        "month one millisecond in",
        {**BASE, "start": "2026-11-01T00:00:00.001Z"},
        "start",
        DropReason.BAD_FORMAT,
        not_start("month", "on the 1st at midnight", "2026-11-01"),
    ),
    (
        "quarter in November",
        {**BASE, "period": "quarter", "start": "2026-11-01"},
        "start",
        DropReason.BAD_FORMAT,
        not_start("quarter", "on 1 January, April, July or October at midnight", "2026-10-01"),
    ),
    (
        "quarter in February",
        {**BASE, "period": "quarter", "start": "2026-02-01"},
        "start",
        DropReason.BAD_FORMAT,
        not_start("quarter", "on 1 January, April, July or October at midnight", "2026-01-01"),
    ),
    (
        "year in April (the financial year)",
        {**BASE, "period": "year", "start": "2026-04-01"},
        "start",
        DropReason.BAD_FORMAT,
        not_start("year", "on 1 January at midnight", "2026-01-01"),
    ),
    (
        "day at noon",
        {**BASE, "period": "day", "start": "2026-11-21T12:00:00Z"},
        "start",
        DropReason.BAD_FORMAT,
        not_start("day", "at midnight", "2026-11-21"),
    ),
    (
        "start in the future",
        {**BASE, "period": "month", "start": "2026-12-01"},
        "start",
        DropReason.OUT_OF_RANGE,
        "start is more than 5 minutes in the future",
    ),
    (
        "start before 2000",
        {**BASE, "period": "year", "start": "1999-01-01"},
        "start",
        DropReason.OUT_OF_RANGE,
        "start is before 2000-01-01",
    ),
    (
        "start as epoch ms",
        {**BASE, "start": utc_ms(2026, 11, 1)},
        "start",
        DropReason.WRONG_TYPE,
        "start must be a date (YYYY-MM-DD) or a date-time with an offset",
    ),
    (
        "start not a date",
        {**BASE, "start": "November 2026"},
        "start",
        DropReason.BAD_FORMAT,
        "start must be a date (YYYY-MM-DD) or a date-time with an offset",
    ),
    (
        "start 31 November",
        {**BASE, "start": "2026-11-31"},
        "start",
        DropReason.BAD_FORMAT,
        "start is not a real date",
    ),
    (
        "start naive",
        {**BASE, "start": "2026-11-01T00:00:00"},
        "start",
        DropReason.BAD_FORMAT,
        "start needs a UTC offset (Z or +hh:mm)",
    ),
    (
        "amount negative",
        {**BASE, "amount": -5},
        "amount",
        DropReason.OUT_OF_RANGE,
        "amount must not be negative",
    ),
    (
        "amount nan",
        {**BASE, "amount": math.nan},
        "amount",
        DropReason.OUT_OF_RANGE,
        "amount must be a finite number",
    ),
    (
        "amount infinity",
        {**BASE, "amount": math.inf},
        "amount",
        DropReason.OUT_OF_RANGE,
        "amount must be a finite number",
    ),
    (
        "amount five places",
        {**BASE, "amount": 10.00001},
        "amount",
        DropReason.BAD_FORMAT,
        "amount must have at most 4 decimal places",
    ),
    (
        "amount too large",
        {**BASE, "amount": 2e9},
        "amount",
        DropReason.OUT_OF_RANGE,
        "amount must be at most 1000000000 pounds",
    ),
    (
        "amount true",
        {**BASE, "amount": True},
        "amount",
        DropReason.WRONG_TYPE,
        "amount must be a number of pounds",
    ),
    (
        "amount text",
        {**BASE, "amount": "£10"},
        "amount",
        DropReason.WRONG_TYPE,
        "amount must be a number of pounds",
    ),
    ("channel web", {**BASE, "channel": "web"}, "channel", DropReason.BAD_FORMAT, CHANNEL_MESSAGE),
    ("channel empty", {**BASE, "channel": ""}, "channel", DropReason.BAD_FORMAT, CHANNEL_MESSAGE),
    ("channel number", {**BASE, "channel": 1}, "channel", DropReason.WRONG_TYPE, CHANNEL_MESSAGE),
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


@given(
    moment=st.datetimes(
        # hypothesis takes naive bounds and applies ``timezones`` itself
        min_value=datetime(2000, 1, 3),  # noqa: DTZ001
        max_value=datetime(2026, 11, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    period=st.sampled_from(PERIODS),
)
@settings(max_examples=300)
def test_a_start_is_accepted_exactly_when_it_is_the_period_start(moment: datetime, period: str) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)  # what the text can say
    raw = {**BASE, "period": period, "start": moment.isoformat(timespec="milliseconds")}
    aligned = period_start(moment, period)  # type: ignore[arg-type]
    if aligned == moment:
        assert check(raw).start_ms == to_ms(moment)
    else:
        with pytest.raises(InvalidEvent, match=f"starts {aligned:%Y-%m-%d}$"):
            check(raw)
        assert check({**raw, "start": f"{aligned:%Y-%m-%d}"}).start_ms == to_ms(aligned)


def test_the_key_is_service_period_start_and_channel() -> None:
    first = check({**BASE, "id": "a", "amount": 10})
    again = validate(
        {**BASE, "id": "b", "amount": 12, "start": "2026-11-01T00:00:00Z"}, NOW_MS + 1, NOW_MS + 1
    )
    assert first.key() == again.key() == ("apply-passport", "month", utc_ms(2026, 11, 1), "all")
    assert check({**BASE, "channel": "digital"}).key() != first.key()
    assert check({**BASE, "period": "quarter", "start": "2026-10-01"}).key() != first.key()
    assert check({**BASE, "service": "other"}).key() != first.key()


def test_a_batch_accepts_the_good_and_reports_the_bad_by_index() -> None:
    items: list[Any] = [BASE, {**BASE, "period": "week"}, {**BASE, "channel": "digital"}]
    events, drops = validate_batch(items, RECEIVED_MS, NOW_MS, new_id)
    assert events == [event(), event(channel="digital")]
    assert drops == [
        Drop(
            1,
            "start",
            DropReason.BAD_FORMAT,
            "event 1: " + not_start("week", "on a Monday at midnight", "2026-10-26"),
        )
    ]


# --- the envelope -----------------------------------------------------------------------------------


def test_the_envelope_is_versioned_json_with_positional_rows() -> None:
    e = event(id="c-1", channel="phone", amount_e4=42)
    assert orjson.loads(encode_envelope([e])) == {
        "schema": "cost",
        "v": 1,
        "events": [["c-1", "apply-passport", "month", utc_ms(2026, 11, 1), "phone", 42, RECEIVED_MS]],
    }


@st.composite
def cost_events(draw: st.DrawFn) -> CostEvent:
    period = draw(st.sampled_from(PERIODS))
    moment = from_ms(draw(st.integers(min_value=utc_ms(1970, 1, 5), max_value=MAX_TS_MS - 366 * 86_400_000)))
    return CostEvent(
        id=draw(st.text(min_size=1, max_size=64)),
        service=draw(st.text(min_size=1, max_size=64)),
        period=period,
        start_ms=to_ms(period_start(moment, period)),
        channel=draw(st.sampled_from(CHANNELS)),
        amount_e4=draw(st.integers(min_value=0, max_value=MAX_AMOUNT_E4)),
        received_ms=draw(st.integers(min_value=0, max_value=MAX_TS_MS)),
    )


@given(events=st.lists(cost_events(), max_size=8))
@settings(max_examples=200)
def test_encode_then_decode_gives_the_events_back(events: list[CostEvent]) -> None:
    value = encode_envelope(events)
    decoded = decode_envelope(value)
    assert decoded.events == events
    assert decoded.rejects == []
    assert encode_envelope(decoded.events) == value


GOOD_ROW = event(id="c").as_row()


def with_field(index: int, value: Any) -> list[Any]:
    row = list(GOOD_ROW)
    row[index] = value
    return row


BAD_ROWS: list[tuple[str, Any, str]] = [
    ("string", "c", "event is not an array of 7 fields"),
    ("8 fields", [*GOOD_ROW, 1], "event is not an array of 7 fields"),
    ("empty id", with_field(0, ""), "id is not a string of 1 to 64 characters"),
    ("service number", with_field(1, 5), "service is not a string of 1 to 64 characters"),
    ("period hour", with_field(2, "hour"), "period is not one of day, week, month, quarter, year"),
    ("period null", with_field(2, None), "period is not one of day, week, month, quarter, year"),
    ("start negative", with_field(3, -1), "start_ms is not epoch milliseconds"),
    ("start float", with_field(3, float(GOOD_ROW[3])), "start_ms is not epoch milliseconds"),
    ("start mid-month", with_field(3, utc_ms(2026, 11, 2)), "start_ms is not the start of a month"),
    ("unnormalised channel", with_field(4, "Phone"), f"channel is not one of {', '.join(CHANNELS)}"),
    ("amount -1", with_field(5, -1), f"amount_e4 is not an integer from 0 to {MAX_AMOUNT_E4}"),
    (
        "amount too big",
        with_field(5, MAX_AMOUNT_E4 + 1),
        f"amount_e4 is not an integer from 0 to {MAX_AMOUNT_E4}",
    ),
    ("received bool", with_field(6, False), "received_ms is not epoch milliseconds"),
]


@pytest.mark.parametrize(("row", "reason"), [c[1:] for c in BAD_ROWS], ids=[c[0] for c in BAD_ROWS])
def test_bad_rows_are_rejected_by_index_while_good_rows_decode(row: Any, reason: str) -> None:
    first = event(id="first")
    last = event(id="last", period="week", start_ms=utc_ms(2026, 11, 16))
    value = orjson.dumps({"schema": "cost", "v": 1, "events": [first.as_row(), row, last.as_row()]})
    decoded = decode_envelope(value)
    assert decoded.events == [first, last]
    assert decoded.rejects == [(1, reason)]


def test_rows_at_the_limits_decode() -> None:
    rows = [
        event(start_ms=0, period="day").as_row(),
        event(start_ms=utc_ms(1970, 1, 5), period="week", amount_e4=MAX_AMOUNT_E4).as_row(),
        event(start_ms=utc_ms(2106, 1, 1), period="year", received_ms=MAX_TS_MS).as_row(),
    ]
    decoded = decode_envelope(orjson.dumps({"schema": "cost", "v": 1, "events": rows}))
    assert decoded.rejects == []
    assert [e.as_row() for e in decoded.events] == rows


def test_another_kind_is_a_schema_mismatch() -> None:
    with pytest.raises(SchemaMismatch):
        decode_envelope(orjson.dumps({"schema": "transaction", "v": 1, "events": []}))


def test_module_constants() -> None:
    assert (cost.SCHEMA, cost.VERSION) == ("cost", 1)
    assert cost.ROW_FIELDS == ("id", "service", "period", "start_ms", "channel", "amount_e4", "received_ms")
    assert timedelta(milliseconds=utc_ms(2026, 11, 16)) % timedelta(days=7) == timedelta(days=4)  # a Monday
