"""Beacon validation (``pipeline.beacon``): a request unreadable as a whole raises ``BadInput``
with its HTTP status; otherwise every event becomes a ``JourneyEvent`` or a named ``Drop``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.beacon import (
    EVENT_ID,
    MAX_FUTURE_MS,
    MAX_PAST_MS,
    Drop,
    DropReason,
    Limits,
    Visit,
    age_timestamp,
    check_content_type,
    parse_body,
    query_event,
    validate_events,
)
from pipeline.errors import BadInput, PermanentError
from pipeline.visitor import daily_salt, visitor_key
from schemas.journey import KINDS, JourneyEvent

RECEIVED = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
RECEIVED_MS = int(RECEIVED.timestamp() * 1000)
SALT = daily_salt(b"test-secret", RECEIVED_MS)
VISIT = Visit(RECEIVED_MS, SALT, "203.0.113.7", "Mozilla/5.0 (X11; Linux x86_64)")
LIMITS = Limits()


def ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def good(**fields: Any) -> dict[str, Any]:
    return {"category": "checkout", **fields}


def validate(
    raws: list[Any], visit: Visit = VISIT, limits: Limits = LIMITS
) -> tuple[list[JourneyEvent], list[Drop]]:
    return validate_events(raws, visit, limits)


def only_event(raw: Any, limits: Limits = LIMITS) -> JourneyEvent:
    events, drops = validate([raw], limits=limits)
    assert drops == []
    assert len(events) == 1
    return events[0]


# --- content type ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "text/plain;charset=UTF-8",
        "Text/Plain; charset=utf-8",
        " application/json ",
    ],
)
def test_json_text_and_missing_content_types_are_accepted(content_type: str | None) -> None:
    check_content_type(content_type)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "text/html",
        "application/xml",
        "application/jsonp",
        "application/octet-stream",
    ],
)
def test_other_content_types_are_refused_with_415(content_type: str) -> None:
    with pytest.raises(BadInput) as caught:
        check_content_type(content_type)
    assert caught.value.status == 415
    assert isinstance(caught.value, PermanentError)


# --- the body as a whole --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \n\t",
        b"not json",
        b"{",
        b'{"category": "checkout"',
        b"\xff\xfe",
        b"1",
        b'"checkout"',
        b"null",
        b"true",
        b"[]",
    ],
)
def test_unreadable_bodies_are_400(body: bytes) -> None:
    with pytest.raises(BadInput) as caught:
        parse_body(body, LIMITS)
    assert caught.value.status == 400


def test_too_many_events_is_413_and_the_limit_itself_is_fine() -> None:
    limits = Limits(max_batch_events=3)
    assert len(parse_body(orjson.dumps([good()] * 3), limits)) == 3
    with pytest.raises(BadInput) as caught:
        parse_body(orjson.dumps([good()] * 4), limits)
    assert caught.value.status == 413


def test_one_object_is_a_one_element_batch() -> None:
    assert parse_body(b'{"category": "checkout"}', LIMITS) == [{"category": "checkout"}]


def test_an_array_is_returned_item_by_item_even_when_items_are_not_objects() -> None:
    assert parse_body(b'[{"category": "a"}, 1, "x", null]', LIMITS) == [{"category": "a"}, 1, "x", None]


# --- bad events -----------------------------------------------------------------------------------

R = DropReason

BAD_EVENTS: list[tuple[str, Any, str | None, DropReason]] = [
    ("missing category", {}, "category", R.MISSING),
    ("null category", {"category": None}, "category", R.MISSING),
    ("category a number", {"category": 5}, "category", R.WRONG_TYPE),
    ("category a list", {"category": ["checkout"]}, "category", R.WRONG_TYPE),
    ("category not a slug", {"category": "<script>"}, "category", R.BAD_FORMAT),
    ("category with a space", {"category": "check out"}, "category", R.BAD_FORMAT),
    ("category starting with -", {"category": "-checkout"}, "category", R.BAD_FORMAT),
    ("category empty", {"category": ""}, "category", R.BAD_FORMAT),
    ("category too long", {"category": "c" * 65}, "category", R.TOO_LONG),
    ("category with NUL", {"category": "check\x00out"}, "category", R.BAD_FORMAT),
    ("kind unknown", good(kind="scroll"), "kind", R.BAD_FORMAT),
    ("kind upper-case", good(kind="PAGE"), "kind", R.BAD_FORMAT),
    ("kind a number", good(kind=1), "kind", R.BAD_FORMAT),
    ("id with spaces", good(id="an id"), "id", R.BAD_FORMAT),
    ("id with a slash", good(id="a/b"), "id", R.BAD_FORMAT),
    ("id a number", good(id=123), "id", R.WRONG_TYPE),
    ("id too long", good(id="i" * 65), "id", R.TOO_LONG),
    ("ts true", good(ts=True), "ts", R.WRONG_TYPE),
    ("ts false", good(ts=False), "ts", R.WRONG_TYPE),
    ("ts a list", good(ts=[RECEIVED_MS]), "ts", R.WRONG_TYPE),
    ("ts an object", good(ts={"ms": RECEIVED_MS}), "ts", R.WRONG_TYPE),
    ("ts ISO without zone", good(ts="2024-03-10T12:00:00"), "ts", R.BAD_FORMAT),
    ("ts not a date", good(ts="yesterday"), "ts", R.BAD_FORMAT),
    ("ts NaN", good(ts=float("nan")), "ts", R.BAD_FORMAT),
    ("ts infinite", good(ts=float("inf")), "ts", R.BAD_FORMAT),
    ("ts over 7 days ago", good(ts=RECEIVED_MS - MAX_PAST_MS - 1), "ts", R.OUT_OF_RANGE),
    ("ts over 5 min ahead", good(ts=RECEIVED_MS + MAX_FUTURE_MS + 1), "ts", R.OUT_OF_RANGE),
    (
        "ISO ts over 7 days ago",
        good(ts=(RECEIVED - timedelta(days=7, seconds=1)).isoformat()),
        "ts",
        R.OUT_OF_RANGE,
    ),
    ("ts at the epoch", good(ts=0), "ts", R.OUT_OF_RANGE),
    ("age_ms negative", good(age_ms=-1), "age_ms", R.OUT_OF_RANGE),
    ("age_ms over 7 days", good(age_ms=MAX_PAST_MS + 1), "age_ms", R.OUT_OF_RANGE),
    ("age_ms a float", good(age_ms=1500.5), "age_ms", R.WRONG_TYPE),
    ("age_ms a whole float", good(age_ms=1500.0), "age_ms", R.WRONG_TYPE),
    ("age_ms a string", good(age_ms="1500"), "age_ms", R.WRONG_TYPE),
    ("age_ms true", good(age_ms=True), "age_ms", R.WRONG_TYPE),
    ("age_ms a list", good(age_ms=[1]), "age_ms", R.WRONG_TYPE),
    ("age_ms with ts", good(age_ms=1500, ts=RECEIVED_MS), "age_ms", R.CONFLICT),
    ("age_ms 0 with ts", good(age_ms=0, ts=RECEIVED_MS), "age_ms", R.CONFLICT),
    ("label too long", good(label="l" * (LIMITS.max_field_chars + 1)), "label", R.TOO_LONG),
    ("label a number", good(label=7), "label", R.WRONG_TYPE),
    ("label with NUL", good(label="a\x00b"), "label", R.BAD_FORMAT),
    ("action too long", good(action="a" * 129), "action", R.TOO_LONG),
    ("action with NUL", good(action="\x00"), "action", R.BAD_FORMAT),
    ("path too long", good(path="/" * 1025), "path", R.TOO_LONG),
    ("path with NUL", good(path="/a\x00"), "path", R.BAD_FORMAT),
    ("event a string", "checkout", None, R.NOT_AN_OBJECT),
    ("event a number", 42, None, R.NOT_AN_OBJECT),
    ("event null", None, None, R.NOT_AN_OBJECT),
    ("event an array", [good()], None, R.NOT_AN_OBJECT),
]


@pytest.mark.parametrize(
    ("raw", "field", "reason"), [case[1:] for case in BAD_EVENTS], ids=[case[0] for case in BAD_EVENTS]
)
def test_a_bad_event_is_dropped_by_index_field_and_reason_and_spares_its_neighbours(
    raw: Any, field: str | None, reason: DropReason
) -> None:
    before, after = good(id="before", label="b"), good(id="after", label="a")
    events, drops = validate([before, raw, after])
    assert [e.id for e in events] == ["before", "after"]
    assert len(drops) == 1
    drop = drops[0]
    assert (drop.index, drop.field, drop.reason) == (1, field, reason)
    assert drop.message.startswith("event 1: ")
    assert drop.as_dict() == {"index": 1, "field": field, "reason": reason.value, "message": drop.message}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"category": "checkout\n"}, "category"),
        (good(id="abc\n"), "id"),
        ({"category": "\u212aey"}, "category"),  # KELVIN SIGN lower-cases to "k"
    ],
    ids=["category", "id", "kelvin-sign"],
)
def test_a_trailing_newline_is_not_part_of_a_slug_or_an_id(raw: dict[str, Any], field: str) -> None:
    events, drops = validate([raw])
    assert events == []
    assert [(d.field, d.reason) for d in drops] == [(field, DropReason.BAD_FORMAT)]


# --- boundaries that are still fine ---------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        good(ts=RECEIVED_MS - MAX_PAST_MS),
        good(ts=RECEIVED_MS + MAX_FUTURE_MS),
        good(label="l" * LIMITS.max_field_chars),
        good(action="a" * 128),
        good(path="/" * 1024),
        good(id="i" * 64),
        {"category": "c" * 64},
        {"category": "0-a_b"},
        good(kind="click"),
        good(kind="page"),
        good(age_ms=0),
        good(age_ms=MAX_PAST_MS),
        good(age_ms=None, ts=RECEIVED_MS),
    ],
    ids=[
        "ts 7 days ago",
        "ts 5 min ahead",
        "label at limit",
        "action at limit",
        "path at limit",
        "id at limit",
        "category at limit",
        "category digits dash underscore",
        "click",
        "page",
        "age_ms 0",
        "age_ms 7 days",
        "age_ms null beside ts",
    ],
)
def test_values_at_the_limits_are_accepted(raw: dict[str, Any]) -> None:
    only_event(raw)


def test_the_label_limit_comes_from_limits() -> None:
    limits = Limits(max_field_chars=10)
    assert only_event(good(label="x" * 10), limits).label == "x" * 10
    _, drops = validate([good(label="x" * 11)], limits=limits)
    assert [(d.field, d.reason) for d in drops] == [("label", DropReason.TOO_LONG)]


# --- good events ----------------------------------------------------------------------------------


def test_ids_are_generated_when_absent_and_are_unique() -> None:
    events, drops = validate([good() for _ in range(200)] + [good(id="")])
    assert drops == []
    ids = [e.id for e in events]
    assert len(set(ids)) == len(ids)
    assert all(EVENT_ID.fullmatch(i) for i in ids)


def test_supplied_ids_are_kept() -> None:
    assert only_event(good(id="evt_1.a:b-c")).id == "evt_1.a:b-c"


def test_defaults() -> None:
    event = only_event({"category": "checkout"})
    assert event.ts_ms == RECEIVED_MS
    assert event.received_ms == RECEIVED_MS
    assert event.kind == "page"
    assert (event.action, event.label, event.path) == ("", "", "")
    assert event.service == "checkout"


def test_fields_are_carried_over() -> None:
    ts = RECEIVED_MS - 1234
    event = only_event(good(action="submit", label="form:address", kind="click", path="/apply?step=2", ts=ts))
    assert (event.action, event.label, event.kind, event.path, event.ts_ms) == (
        "submit",
        "form:address",
        "click",
        "/apply?step=2",
        ts,
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (RECEIVED.isoformat(), RECEIVED_MS),
        ("2024-03-10T12:00:00Z", RECEIVED_MS),
        (
            (RECEIVED - timedelta(minutes=3)).astimezone(timezone(timedelta(hours=5))).isoformat(),
            RECEIVED_MS - 180_000,
        ),
        ("2024-03-10T07:30:00.250-04:00", ms(datetime(2024, 3, 10, 11, 30, 0, 250_000, tzinfo=UTC))),
        (float(RECEIVED_MS - 1000), RECEIVED_MS - 1000),
    ],
    ids=["iso utc", "iso Z", "iso +05:00", "iso -04:00 with millis", "float ms"],
)
def test_timestamps_are_converted_to_utc_epoch_milliseconds(value: Any, expected: int) -> None:
    assert only_event(good(ts=value)).ts_ms == expected


# --- age_ms: the event's time as arrival minus its age, to the second -------------------------------


def test_the_messages_name_the_field_and_the_rule() -> None:
    _, drops = validate([good(age_ms=-5), good(age_ms=2.5), good(age_ms=1, ts=RECEIVED_MS)])
    assert [d.message for d in drops] == [
        f"event 0: 'age_ms' must be between 0 and {MAX_PAST_MS} (7 days)",
        "event 1: 'age_ms' must be a whole number of milliseconds",
        "event 2: send 'ts' or 'age_ms', not both",
    ]


@pytest.mark.parametrize(
    ("age_ms", "ts_ms"),
    [
        (0, RECEIVED_MS),
        (1, RECEIVED_MS - 1000),
        (1000, RECEIVED_MS - 1000),
        (1001, RECEIVED_MS - 2000),
        (61_500, RECEIVED_MS - 62_000),
        (MAX_PAST_MS, RECEIVED_MS - MAX_PAST_MS),
    ],
)
def test_age_ms_gives_arrival_minus_age_cut_to_the_second(age_ms: int, ts_ms: int) -> None:
    event = only_event(good(age_ms=age_ms))
    assert (event.ts_ms, event.received_ms) == (ts_ms, RECEIVED_MS)


def test_the_derived_time_is_never_after_arrival() -> None:
    visit = Visit(RECEIVED_MS + 999, SALT, VISIT.ip, VISIT.user_agent)
    [event], _ = validate([good(age_ms=0)], visit=visit)
    assert event.ts_ms == RECEIVED_MS <= event.received_ms


def test_a_retry_with_its_age_grown_by_the_time_between_sends_gets_the_same_time() -> None:
    """The first attempt 1.5 s after the event; the retry 7.25 s later, 30 ms slower on the wire."""
    first = Visit(RECEIVED_MS + 400, SALT, VISIT.ip, VISIT.user_agent)
    retry = Visit(RECEIVED_MS + 400 + 7250 + 30, SALT, VISIT.ip, VISIT.user_agent)
    [a], _ = validate([good(id="e1", age_ms=1500)], visit=first)
    [b], _ = validate([good(id="e1", age_ms=1500 + 7250)], visit=retry)
    assert a.ts_ms == b.ts_ms == RECEIVED_MS - 2000
    assert a.received_ms != b.received_ms


@given(
    event_ms=st.integers(min_value=RECEIVED_MS - 86_400_000, max_value=RECEIVED_MS),
    delay_ms=st.integers(min_value=0, max_value=5_000),
    waited_ms=st.lists(st.integers(min_value=0, max_value=120_000), min_size=1, max_size=8),
    jitter_ms=st.lists(st.integers(min_value=-999, max_value=999), min_size=1, max_size=8),
)
def test_retries_land_on_the_same_second_unless_their_jitter_crosses_one(
    event_ms: int, delay_ms: int, waited_ms: list[int], jitter_ms: list[int]
) -> None:
    """Sends at event + delay + waited (the client's own clock), arriving with the same network
    delay give the same time, whatever the wait; a delay differing by under a second moves it by
    at most one second, and only when the two lie either side of a second boundary."""
    for waited, jitter in zip(waited_ms, jitter_ms, strict=False):
        sent = event_ms + delay_ms + waited
        age = delay_ms + waited
        same = age_timestamp(sent, age)
        assert same == age_timestamp(event_ms + delay_ms, delay_ms) == event_ms // 1000 * 1000
        moved = age_timestamp(sent + jitter, age)
        assert abs(moved - same) <= 1000
        assert (moved == same) == ((event_ms + jitter) // 1000 == event_ms // 1000)


@pytest.mark.parametrize(("given_", "stored"), [("Checkout", "checkout"), ("MY-SERVICE_2", "my-service_2")])
def test_category_is_lower_cased(given_: str, stored: str) -> None:
    assert only_event({"category": given_}).service == stored


@pytest.mark.parametrize("label", ["step:1", "a:b:c", ":", "https://example.test/x?y=1"])
def test_labels_with_colons_are_kept_whole(label: str) -> None:
    assert only_event(good(label=label)).label == label


def test_a_batch_keeps_the_good_events_in_order() -> None:
    raws = [good(id="e0"), {"category": "<bad>"}, good(id="e2"), "nope", good(id="e4"), good(kind="x")]
    events, drops = validate(raws)
    assert [e.id for e in events] == ["e0", "e2", "e4"]
    assert [d.index for d in drops] == [1, 3, 5]


def test_the_same_visitor_gets_the_same_key_per_service() -> None:
    raws = [good(), good(), {"category": "Checkout"}, {"category": "renew"}]
    events, _ = validate(raws)
    checkout, renew = (
        visitor_key(SALT, VISIT.ip, VISIT.user_agent, "checkout"),
        visitor_key(SALT, VISIT.ip, VISIT.user_agent, "renew"),
    )
    assert [e.visitor for e in events] == [checkout, checkout, checkout, renew]
    assert checkout != renew


def test_another_visitor_gets_another_key() -> None:
    other = Visit(RECEIVED_MS, SALT, "198.51.100.1", VISIT.user_agent)
    [mine], _ = validate([good()])
    [theirs], _ = validate([good()], visit=other)
    assert mine.visitor != theirs.visitor


# --- any JSON in, never an exception out ----------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Objects that look like events, so the later checks (kind, id, ts, text limits) are reached too.
iso_instants = st.datetimes(
    min_value=datetime(1, 1, 2),  # noqa: DTZ001 - hypothesis takes naive bounds
    max_value=datetime(9999, 12, 30),  # noqa: DTZ001
    timezones=st.one_of(
        st.just(UTC),
        st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)).map(timezone),
    ),
).map(lambda d: d.isoformat())
event_like = st.fixed_dictionaries(
    {},
    optional={
        "category": st.one_of(st.sampled_from(["checkout", "Renew", "<script>", "", "a" * 65]), json_values),
        "kind": st.one_of(st.sampled_from(KINDS), json_values),
        "id": st.one_of(st.from_regex(EVENT_ID, fullmatch=True), json_values),
        "ts": st.one_of(
            st.integers(min_value=RECEIVED_MS - 2 * MAX_PAST_MS, max_value=RECEIVED_MS + 2 * MAX_FUTURE_MS),
            iso_instants,
            json_values,
        ),
        "label": st.one_of(st.text(min_size=500, max_size=520, alphabet="ab:"), json_values),
        "action": json_values,
        "path": json_values,
        "age_ms": st.one_of(st.integers(min_value=-1000, max_value=MAX_PAST_MS + 1000), json_values),
    },
)
items = st.lists(st.one_of(json_values, event_like), min_size=1, max_size=10)


@given(raws=items)
@settings(max_examples=100)
def test_any_json_items_give_one_event_or_one_drop_each(raws: list[Any]) -> None:
    body = orjson.dumps(raws)
    parsed = parse_body(body, LIMITS)
    assert parsed == orjson.loads(body)
    events, drops = validate(parsed)
    assert len(events) + len(drops) == len(raws)
    drop_indexes = [d.index for d in drops]
    assert drop_indexes == sorted(set(drop_indexes))
    assert all(0 <= i < len(raws) for i in drop_indexes)
    assert all(isinstance(d.reason, DropReason) and d.message.startswith(f"event {d.index}: ") for d in drops)
    for event in events:
        assert event.kind in KINDS
        assert RECEIVED_MS - MAX_PAST_MS <= event.ts_ms <= RECEIVED_MS + MAX_FUTURE_MS
        assert event.visitor == visitor_key(SALT, VISIT.ip, VISIT.user_agent, event.service)


# --- the GET pixel --------------------------------------------------------------------------------


def test_query_event_keeps_event_fields_and_ignores_the_rest() -> None:
    params = {
        "category": "checkout",
        "action": "view",
        "label": "a:b",
        "kind": "click",
        "path": "/x",
        "id": "e1",
        "ts": "1710072000000",
        "utm_source": "mail",
        "callback": "alert(1)",
    }
    assert query_event(params) == {
        "category": "checkout",
        "action": "view",
        "label": "a:b",
        "kind": "click",
        "path": "/x",
        "id": "e1",
        "ts": 1710072000000,
    }


def test_a_pixel_query_carries_age_ms_as_a_number() -> None:
    raw = query_event({"category": "checkout", "id": "e1", "age_ms": "2500"})
    assert raw == {"category": "checkout", "id": "e1", "age_ms": 2500}
    assert only_event(raw).ts_ms == RECEIVED_MS - 3000


@pytest.mark.parametrize(
    ("age_ms", "reason"),
    [("-5", DropReason.OUT_OF_RANGE), ("2.5", DropReason.WRONG_TYPE), ("", DropReason.WRONG_TYPE)],
)
def test_a_bad_pixel_age_ms_is_named(age_ms: str, reason: DropReason) -> None:
    _, drops = validate([query_event({"category": "checkout", "age_ms": age_ms})])
    assert [(d.field, d.reason) for d in drops] == [("age_ms", reason)]


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("1710072000000", 1710072000000),
        ("-5", -5),
        ("0", 0),
        ("2024-03-10T12:00:00Z", "2024-03-10T12:00:00Z"),
        ("", ""),
    ],
)
def test_query_event_turns_digit_strings_into_ints(ts: str, expected: Any) -> None:
    assert query_event({"ts": ts}) == {"ts": expected}


def test_query_event_without_ts_has_none() -> None:
    assert "ts" not in query_event({"category": "checkout"})


def test_a_pixel_query_validates_into_an_event() -> None:
    raw = query_event({"category": "Checkout", "ts": str(RECEIVED_MS - 500), "label": "x:y", "ref": "z"})
    event = only_event(raw)
    assert (event.service, event.ts_ms, event.label) == ("checkout", RECEIVED_MS - 500, "x:y")


@pytest.mark.parametrize("ts", ["--5", "²"], ids=["double-minus", "superscript-two"])
def test_query_event_never_raises_on_odd_digit_strings(ts: str) -> None:
    raw = query_event({"category": "checkout", "ts": ts})
    _, drops = validate([raw])
    assert [(d.field, d.reason) for d in drops] == [("ts", DropReason.BAD_FORMAT)]
