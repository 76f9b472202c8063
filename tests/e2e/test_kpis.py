"""KPIs end to end (issue 4), on the real broker and both ClickHouse backends: a ClickHouse 18.16
server behind ``perfplat api`` + ``perfplat worker``, and chdb inside ``perfplat up``.

Seeded events for today (the simulator's day, squeezed into the hours already gone) go in through
the HTTP ingest routes and the Python SDK. ``GET /services/{s}/kpis``, its series and the group's
figures must then equal an independent count of the same events (``tests.support.kpi_events``)
exactly: the read API documents each float as the exact value rounded once (a group's means
rounded to 3 or 1 places), so they are compared with ``==``. Then the same after everything is
delivered again, after bad input over HTTP and malformed messages straight onto the topics, and
after the worker is killed with SIGKILL mid-stream and restarted.
"""

from __future__ import annotations

import base64
import random
import signal
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Any

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from producers.sdk import Client
from tests.conftest import unique
from tests.support.kpi_events import (
    DAY_MS,
    EPOCH,
    UNITS,
    Ledger,
    Payload,
    Target,
    batches,
    day_start_ms,
    expected_series,
    expected_summary,
    iso_z,
    now_ms,
    running_stack,
    settle_group,
    settle_summary,
    summary_as_compared,
    todays_traffic,
    wait_until,
)

pytestmark = pytest.mark.e2e

KPI_TOPICS = ("transactions.v1", "satisfaction.v1", "availability.v1", "costs.v1")


@pytest.fixture(scope="module", params=["server", "embedded"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """Each stack in turn (the first is stopped before the second starts)."""
    if request.param == "server":
        broker, clickhouse = request.getfixturevalue("broker"), request.getfixturevalue("clickhouse_server")
        with running_stack("server", tmp_path_factory.mktemp("kpi"), broker.bootstrap, clickhouse.url) as t:
            yield t
    else:
        with running_stack("embedded", tmp_path_factory.mktemp("kpi-up")) as t:
            yield t


def send_sdk(target: Target, ledger: Ledger, events: list[tuple[str, Payload]]) -> None:
    """Through the Python SDK straight to Kafka; acknowledged once every delivery report is in."""
    failures: list[Any] = []
    client = Client(target.bootstrap, target.topic_prefix, on_error=failures.append)
    try:
        for kind, e in events:
            if kind == "transactions":
                client.transaction(**e)
            elif kind == "ratings":
                client.rating(**e)
            else:
                client.cost(**e)
        assert client.flush(30) == 0
    finally:
        client.close(5)
    assert failures == [] and client.failed == 0 and client.delivered == len(events)
    for kind, e in events:
        ledger.acknowledged(kind, e["service"], [e])


def iso(ms: int, hours: int) -> str:
    """An instant as ISO 8601 with milliseconds, in a zone ``hours`` from UTC."""
    zone = timezone(timedelta(hours=hours))
    return (EPOCH + timedelta(milliseconds=ms)).astimezone(zone).isoformat(timespec="milliseconds")


def hand_made(service: str, seed: int, now: int) -> tuple[list[Payload], list[Payload]]:
    """A few events as a person writes them: times in other zones, channels spelt loosely, whole
    and four-place costs, a comment with markup."""
    rng = random.Random(seed)
    midnight = day_start_ms(now)

    def at() -> int:
        return midnight + rng.randrange(now - 2000 - midnight)

    t1 = at()
    t2 = t1 + rng.randrange(now - 2000 - t1)
    tx: list[Payload] = [
        {
            "id": f"{service}-h1",
            "service": service,
            "outcome": "started",
            "channel": "Face to face",
            "timestamp": iso(t1, 1),
        },
        {
            "id": f"{service}-h2",
            "service": service,
            "outcome": "completed",
            "channel": "face-to-face",
            "cost": 12,
            "timestamp": iso(t2, 1),
            "started_at": iso(t1, -5),
        },
        {
            "id": f"{service}-h3",
            "service": service,
            "outcome": "completed",
            "channel": "ASSISTED DIGITAL",
            "cost": 0,
            "timestamp": at(),
        },
        {
            "id": f"{service}-h4",
            "service": service,
            "outcome": "completed",
            "channel": "digital",
            "cost": 3.1415,
            "timestamp": iso(at(), 0).replace("+00:00", "Z"),
        },
        {
            "id": f"{service}-h5",
            "service": service,
            "outcome": "failed",
            "channel": "phone",
            "timestamp": at(),
        },
    ]
    ratings: list[Payload] = [
        {
            "id": f"{service}-hr1",
            "service": service,
            "rating": 1,
            "timestamp": iso(at(), 2),
            "comment": "<b>Too slow</b> & ünïcode",
        },
        {"id": f"{service}-hr2", "service": service, "rating": 5, "timestamp": iso(at(), -3)},
    ]
    return tx, ratings


@dataclass
class DayOne:
    """What the first round sent, for the tests that build on it."""

    ledger: Ledger
    group: str
    services: tuple[str, str]
    tokens: dict[str, str]
    day_ms: int
    http: list[tuple[str, str, list[Payload]]]
    sdk: list[tuple[str, Payload]]
    first_cost: Payload
    correction: Payload


@pytest.fixture(scope="module")
def day_one(target: Target) -> DayOne:
    """Two services of one group, registered through the admin API; today's seeded events posted
    through HTTP in batches, a quarter of them through the SDK; a day cost posted and then
    corrected, a week cost, and the per-channel costs (which cost per transaction leaves out)."""
    group, a, b = unique("dept"), unique("svc-a"), unique("svc-b")
    tokens = {a: target.register(a, group), b: target.register(b, group, token="token-" + b)}
    now = now_ms()
    if now - day_start_ms(now) < 60_000:  # leave room for a day's events before now
        time.sleep(61 - (now - day_start_ms(now)) / 1000)
        now = now_ms()
    day_ms = day_start_ms(now)
    today = (EPOCH + timedelta(milliseconds=day_ms)).date()
    monday = today - timedelta(days=today.weekday())
    ledger = Ledger()
    http: list[tuple[str, str, list[Payload]]] = []
    sdk: list[tuple[str, Payload]] = []
    for service, seed, profile, volume in ((a, 41, 0, 3000), (b, 42, 1, 1500)):
        traffic = todays_traffic(seed, service, profile, volume, now)
        extra_tx, extra_ratings = hand_made(service, seed, now)
        for i, batch in enumerate(batches(traffic.transactions + extra_tx, 200)):
            if i % 4 == 3:
                sdk += [("transactions", e) for e in batch]
            else:
                http.append(("transactions", service, batch))
        rating_batches = batches(traffic.ratings + extra_ratings, 25)
        sdk += [("ratings", e) for e in rating_batches[-1]]
        http += [("ratings", service, batch) for batch in rating_batches[:-1]]
        http += [("costs", service, [c]) for c in traffic.costs]
    first_cost = {
        "id": f"{a}-day",
        "service": a,
        "period": "day",
        "start": today.isoformat(),
        "amount": 1500.25,
    }
    correction = {**first_cost, "id": f"{a}-day-corrected", "amount": 1720.5, "channel": "all"}
    http += [("costs", a, [first_cost]), ("costs", a, [correction])]
    http.append(
        (
            "costs",
            b,
            [
                {
                    "id": f"{b}-day",
                    "service": b,
                    "period": "day",
                    "start": today.isoformat(),
                    "amount": 333.3,
                    "channel": "ALL",
                }
            ],
        )
    )
    sdk.append(
        (
            "costs",
            {
                "id": f"{a}-week",
                "service": a,
                "period": "week",
                "start": monday.isoformat(),
                "amount": 7000.75,
                "channel": "all",
            },
        )
    )

    for kind, service, events in http:
        target.post_acknowledged(ledger, kind, service, events, tokens[service])
        if kind == "costs":
            time.sleep(0.005)  # a later post is later by the clock too
    send_sdk(target, ledger, sdk)
    return DayOne(ledger, group, (a, b), tokens, day_ms, http, sdk, first_cost, correction)


# --- the figures ---------------------------------------------------------------------------------


def test_todays_figures_equal_an_independent_count(target: Target, day_one: DayOne) -> None:
    for service in day_one.services:
        body = settle_summary(target, day_one.ledger, service)
        kpis = {k: v["value"] for k, v in body["kpis"].items()}
        assert {k: v["unit"] for k, v in body["kpis"].items()} == UNITS
        # the count is not vacuous: every kind of figure has something behind it
        assert kpis["transactions_completed"] > 100 and kpis["satisfaction_responses"] > 10
        for name in ("digital_takeup", "completion_rate", "cost_per_transaction", "time_to_complete_p95"):
            assert kpis[name] is not None, name
        assert sum(n > 0 for outcomes in body["volumes"]["window"].values() for n in outcomes.values()) >= 8
        assert body["volumes"]["window"]["face_to_face"]["started"] >= 1  # "Face to face" as spelt
        assert kpis["availability"] is None  # never probed: no figure rather than 0


def test_series_for_today_agree(target: Target, day_one: DayOne) -> None:
    """One day bucket (the whole day's costs) and 24 hour buckets (a 24th each)."""
    a = day_one.services[0]
    settle_summary(target, day_one.ledger, a)
    for period, buckets in (("day", 1), ("hour", 24)):
        body = target.get(
            f"/services/{a}/kpis/series",
            period=period,
            start_at=iso_z(day_one.day_ms),
            end_at=iso_z(day_one.day_ms + DAY_MS),
        )
        assert len(body["data"]) == buckets
        assert [b["kpis"] for b in body["data"]] == expected_series(day_one.ledger, a, body), period
    hours = body["data"]  # the hours add up to the summary of the day so far
    assert sum(b["kpis"]["transactions_started"] for b in hours) == sum(
        v["started"] for v in target.summary(a)["volumes"]["window"].values()
    )


def test_group_figures_agree(target: Target, day_one: DayOne) -> None:
    settle_group(target, day_one.ledger, day_one.group, day_one.services)


# --- duplicates ----------------------------------------------------------------------------------


def _sentinels(target: Target, day_one: DayOne, tag: str) -> None:
    """A new transaction and rating per service, behind everything sent so far on its partitions:
    once they show, what was sent before them has been processed."""
    at = now_ms() - 1000
    for s in day_one.services:
        tx = {"id": f"{s}-{tag}", "service": s, "outcome": "started", "channel": "paper", "timestamp": at}
        rating = {"id": f"{s}-{tag}-r", "service": s, "rating": 3, "timestamp": at}
        target.post_acknowledged(day_one.ledger, "transactions", s, [tx], day_one.tokens[s])
        target.post_acknowledged(day_one.ledger, "ratings", s, [rating], None)


def test_everything_delivered_twice_changes_no_figure(target: Target, day_one: DayOne) -> None:
    """Every HTTP batch posted again (last first, each reversed) and the SDK's events published twice
    more, all with their ids: only the two sentinels per service may show."""
    ledger = day_one.ledger
    for s in day_one.services:
        settle_summary(target, ledger, s)
    before = len(ledger.transactions), len(ledger.ratings), len(ledger.costs)
    for kind, service, events in reversed(day_one.http):
        target.post_acknowledged(ledger, kind, service, list(reversed(events)), day_one.tokens[service])
    send_sdk(target, ledger, day_one.sdk)
    send_sdk(target, ledger, day_one.sdk)
    assert (len(ledger.transactions), len(ledger.ratings), len(ledger.costs)) == before
    _sentinels(target, day_one, "after-repeats")
    for s in day_one.services:
        settle_summary(target, ledger, s)
    settle_group(target, ledger, day_one.group, day_one.services)


def test_a_retried_cost_does_not_undo_its_correction(target: Target, day_one: DayOne) -> None:
    """A client's retry of the first day cost arrives after the correction was acknowledged. The
    retry is the same event (same id): per the design, duplicates never change a figure, so the
    correction stays in force. A month cost posted after it shows when the retry was processed."""
    a, ledger = day_one.services[0], day_one.ledger
    target.post_acknowledged(ledger, "costs", a, [day_one.first_cost], day_one.tokens[a])
    month = (EPOCH + timedelta(milliseconds=day_one.day_ms)).date().replace(day=1)
    target.post_acknowledged(
        ledger,
        "costs",
        a,
        [
            {
                "id": f"{a}-month",
                "service": a,
                "period": "month",
                "start": month.isoformat(),
                "amount": 31000.31,
            }
        ],
        day_one.tokens[a],
    )
    if_retry_won = ledger.copy()
    if_retry_won.costs[a, day_one.first_cost["id"]] = (10**9, day_one.first_cost)

    def total(led: Ledger, body: dict[str, Any]) -> Any:
        return expected_summary(led, a, body)["kpis"]["total_cost"]["value"]

    def month_cost_in() -> dict[str, Any] | None:
        body = target.summary(a)
        got = body["kpis"]["total_cost"]["value"]
        return body if got in (total(ledger, body), total(if_retry_won, body)) else None

    body = wait_until(month_cost_in, 60)
    got, want = body["kpis"]["total_cost"]["value"], total(ledger, body)
    assert got == want, (
        f"re-posting cost {day_one.first_cost['id']} (amount {day_one.first_cost['amount']}) after its "
        f"correction {day_one.correction['id']} (amount {day_one.correction['amount']}) brought the old "
        f"amount back: total_cost {got}, the correction gives {want}"
    )
    assert summary_as_compared(body) == expected_summary(ledger, a, body)


# --- bad input -----------------------------------------------------------------------------------

FUTURE_MS = 86_400_000


def _bad_events(service: str, other: str, now: int) -> list[tuple[str, Payload, str | None, str]]:
    """(route, event, field named, what the message must say)."""
    tx = {"id": f"{service}-bad", "outcome": "completed", "channel": "digital", "timestamp": now - 60_000}
    rating = {"id": f"{service}-bad-r", "rating": 4, "timestamp": now - 60_000}
    today = (EPOCH + timedelta(milliseconds=now)).date()
    cost = {"id": f"{service}-bad-c", "period": "day", "start": today.isoformat(), "amount": 10}
    return [
        ("ratings", {**rating, "rating": 0}, "rating", "rating must be an integer from 1 to 5"),
        ("ratings", {**rating, "rating": 6}, "rating", "rating must be an integer from 1 to 5"),
        ("ratings", {**rating, "rating": "5"}, "rating", "rating must be an integer from 1 to 5"),
        ("ratings", {**rating, "rating": 4.5}, "rating", "rating must be an integer from 1 to 5"),
        ("ratings", {**rating, "comment": 42}, "comment", "comment must be a string"),
        (
            "ratings",
            {**rating, "timestamp": now + FUTURE_MS},
            "timestamp",
            "timestamp is more than 5 minutes in the future",
        ),
        (
            "ratings",
            {**rating, "timestamp": "1999-12-31T23:59:59Z"},
            "timestamp",
            "timestamp is before 2000-01-01",
        ),
        (
            "transactions",
            {**tx, "channel": "carrier-pigeon"},
            "channel",
            "channel must be one of digital, phone",
        ),
        ("transactions", {**tx, "outcome": "maybe"}, "outcome", "outcome must be one of started, completed"),
        ("transactions", {**tx, "outcome": 1}, "outcome", "outcome must be one of"),
        ("transactions", {**tx, "cost": -4.25}, "cost", "cost must not be negative"),
        ("transactions", {**tx, "cost": "4.25"}, "cost", "cost must be a number of pounds"),
        ("transactions", {**tx, "cost": 1.23456}, "cost", "cost must have at most 4 decimal places"),
        ("transactions", {**tx, "cost": 2e9}, "cost", "cost must be at most 1000000000 pounds"),
        (
            "transactions",
            {**tx, "timestamp": now + FUTURE_MS},
            "timestamp",
            "timestamp is more than 5 minutes in the future",
        ),
        ("transactions", {**tx, "timestamp": "2999-01-01T00:00:00Z"}, "timestamp", "in the future"),
        ("transactions", {**tx, "timestamp": 0}, "timestamp", "timestamp is before 2000-01-01"),
        ("transactions", {**tx, "timestamp": "1970-01-01T00:00:00+00:00"}, "timestamp", "before 2000-01-01"),
        (
            "transactions",
            {**tx, "timestamp": "yesterday"},
            "timestamp",
            "timestamp must be an ISO 8601 date-time",
        ),
        (
            "transactions",
            {**tx, "timestamp": "2026-01-01T10:00:00"},
            "timestamp",
            "timestamp needs a UTC offset",
        ),
        ("transactions", {**tx, "timestamp": True}, "timestamp", "timestamp must be an ISO 8601"),
        ("transactions", {**tx, "started_at": now}, "started_at", "started_at must not be after timestamp"),
        (
            "transactions",
            {**tx, "outcome": "started", "started_at": now - 90_000},
            "started_at",
            "only allowed when outcome is completed",
        ),
        ("transactions", {k: v for k, v in tx.items() if k != "channel"}, "channel", "channel is required"),
        ("transactions", {**tx, "colour": "red"}, None, 'unknown field "colour"'),
        ("transactions", {**tx, "service": other}, "service", f"service must be {service}"),
        ("transactions", {**tx, "id": "has spaces"}, "id", "id must be 1 to 64 letters"),
        ("costs", {**cost, "amount": -5}, "amount", "amount must not be negative"),
        (
            "costs",
            {**cost, "start": f"{today - timedelta(days=1)}T12:00:00Z"},
            "start",
            "start must be the start of a day",
        ),
        ("costs", {**cost, "period": "fortnight"}, "period", "period must be one of day, week"),
        (
            "costs",
            {**cost, "start": (today + timedelta(days=10)).isoformat()},
            "start",
            "start is more than 5 minutes in the future",
        ),
        ("costs", {**cost, "start": "1999-01-01"}, "start", "start is before 2000-01-01"),
        ("costs", {**cost, "channel": "pigeon"}, "channel", "channel must be one of"),
    ]


def test_bad_input_gets_a_clear_error_stores_nothing_and_the_worker_goes_on(
    target: Target, day_one: DayOne
) -> None:
    service = unique("svc-bad")
    token = target.register(service)
    ledger = Ledger()
    now = now_ms()
    good_tx = {
        "id": f"{service}-g1",
        "service": service,
        "outcome": "completed",
        "channel": "digital",
        "timestamp": now - 120_000,
        "started_at": now - 180_000,
        "cost": 5,
    }
    target.post_acknowledged(ledger, "transactions", service, [good_tx], token)
    target.post_acknowledged(
        ledger,
        "ratings",
        service,
        [{"id": f"{service}-gr", "service": service, "rating": 2, "timestamp": now - 5000}],
        None,
    )
    settle_summary(target, ledger, service)

    for route, event, name, says in _bad_events(service, day_one.services[0], now):
        r = target.post(route, service, [event], token if route != "ratings" else None)
        assert r.status_code == 400, (route, event, r.text)
        doc = r.json()
        assert doc["status"] == "error" and doc["accepted"] == 0 and doc["ids"] == [], doc
        assert [(e["index"], e["field"]) for e in doc["errors"]] == [(0, name)], doc
        assert doc["message"].startswith("event 0: ") and says in doc["message"], doc
        if name is not None:
            assert name in doc["message"]

    def refused(
        route: str, body: Any, status: int, says: str, tok: str | None = token, **headers: str
    ) -> None:
        r = target.post(route, service, body, tok, **headers)
        assert r.status_code == status, (route, r.text)
        assert says in r.json()["message"], r.text

    refused("ratings", b'{"rating": 5', 400, "the body must be JSON")
    refused("transactions", b"\xff\xfe", 400, "the body must be JSON")
    refused("ratings", b"[]", 400, "the body holds no events")
    refused("ratings", [{"rating": 5, "comment": "x" * 1000}] * 1001, 413, "at most 1000 events per request")
    big = orjson.dumps([{"rating": 5, "comment": "y" * 1100}] * 1000)
    assert len(big) > 1_048_576
    refused("ratings", big, 413, "over the limit of 1048576")
    for route in ("transactions", "costs"):
        refused(route, [good_tx], 401, "Expected header of form: Authorization: Bearer <token>", None)
        refused(route, [good_tx], 401, "invalid bearer token", "not-the-token")
        refused(route, [good_tx], 401, "invalid bearer token", day_one.tokens[day_one.services[0]])
        refused(route, [good_tx], 401, "Expected header", None, Authorization=f"bearer {token}")
    r = target.post("transactions", service, [good_tx], None)
    assert r.headers["www-authenticate"] == "bearer"
    r = target.post("ratings", "no-such-service-" + service, [{"rating": 5}])
    assert r.status_code == 404 and "No service named" in r.json()["message"]

    # the SDK refuses the same in the caller's code, before anything is sent
    client = Client(target.bootstrap, target.topic_prefix, service=service)
    try:
        with pytest.raises(ValueError, match="rating must be an integer from 1 to 5"):
            client.rating(0)
        with pytest.raises(ValueError, match="channel must be one of"):
            client.transaction("completed", "carrier-pigeon")
        with pytest.raises(ValueError, match="cost must not be negative"):
            client.transaction("completed", "digital", cost=-1)
    finally:
        client.close(2)
    assert client.delivered == 0

    # nothing of that was stored, and the worker still counts what follows
    after = now_ms() - 1000
    target.post_acknowledged(
        ledger,
        "transactions",
        service,
        [
            {
                "id": f"{service}-g2",
                "service": service,
                "outcome": "started",
                "channel": "phone",
                "timestamp": after,
            }
        ],
        token,
    )
    target.post_acknowledged(
        ledger,
        "ratings",
        service,
        [{"id": f"{service}-gr2", "service": service, "rating": 5, "timestamp": after}],
        None,
    )
    body = settle_summary(target, ledger, service)
    assert body["kpis"]["transactions_started"]["value"] == 1
    assert body["kpis"]["satisfaction_responses"]["value"] == 2
    assert target.alive()


def test_a_batch_with_bad_events_keeps_its_good_ones(target: Target) -> None:
    """The rule for a batch (as for the beacon, ``api.kpi_ingest``): a 400 lists every bad event
    (index, field, reason) and the ids of the good ones, which are stored, once; the bad ones
    are not."""
    service = unique("svc-mixed")
    token = target.register(service)
    now = now_ms()
    ratings = [
        {"id": f"{service}-r0", "rating": 4, "timestamp": now - 10_000},
        {"id": f"{service}-r1", "rating": 0, "timestamp": now - 10_000},
        {"id": f"{service}-r2", "rating": 5, "timestamp": now - 10_000},
        {"id": f"{service}-r3", "rating": 6, "timestamp": now - 10_000},
    ]
    tx = [
        {"id": f"{service}-t0", "outcome": "started", "channel": "digital", "timestamp": now - 10_000},
        {"id": f"{service}-t1", "outcome": "started", "channel": "pigeon", "timestamp": now - 10_000},
    ]
    r = target.post("ratings", service, ratings)
    assert r.status_code == 400, r.text
    doc = r.json()
    assert [(e["index"], e["field"]) for e in doc["errors"]] == [(1, "rating"), (3, "rating")], doc
    assert "event 1: rating must be an integer from 1 to 5" in doc["message"]
    assert "event 3: rating must be an integer from 1 to 5" in doc["message"]
    assert (doc["accepted"], doc["ids"]) == (2, [f"{service}-r0", f"{service}-r2"])
    r = target.post("transactions", service, tx, token)
    assert r.status_code == 400, r.text
    assert [(e["index"], e["field"]) for e in r.json()["errors"]] == [(1, "channel")]
    assert r.json()["ids"] == [f"{service}-t0"]

    ledger = Ledger()  # the good events of both batches
    ledger.acknowledged(
        "ratings", service, [{**ratings[0], "service": service}, {**ratings[2], "service": service}]
    )
    ledger.acknowledged("transactions", service, [{**tx[0], "service": service}])
    at = now_ms() - 1000
    target.post_acknowledged(
        ledger,
        "ratings",
        service,
        [{"id": f"{service}-after", "service": service, "rating": 3, "timestamp": at}],
        None,
    )
    target.post_acknowledged(
        ledger,
        "transactions",
        service,
        [
            {
                "id": f"{service}-after-t",
                "service": service,
                "outcome": "failed",
                "channel": "paper",
                "timestamp": at,
            }
        ],
        token,
    )

    def sentinels_in() -> dict[str, Any] | None:
        b = target.summary(service)
        counted = b["volumes"]["window"]["paper"]["failed"] == 1
        return b if counted and b["kpis"]["satisfaction_responses"]["value"] >= 1 else None

    body = wait_until(sentinels_in, 60)
    stored = (body["kpis"]["satisfaction_responses"]["value"], body["kpis"]["transactions_started"]["value"])
    assert stored == (3, 1), f"stored {stored[0]} ratings and {stored[1]} started transactions"
    assert summary_as_compared(body) == expected_summary(ledger, service, body)


# --- malformed messages on the topics ---------------------------------------------------------------


def _rows(service: str, now: int) -> dict[str, tuple[list[Any], list[Any], str]]:
    """Per topic: a good row, a bad row, and what the dead letter of the bad row says (the row
    layouts of the schemas' docstrings)."""
    t = now - 30_000
    t_s = t // 1000 * 1000
    day = day_start_ms(now)
    return {
        "transactions.v1": (
            [f"{service}-raw-t", service, "RAW-1", "completed", "phone", 42_000, t, t - 61_000, now],
            [f"{service}-raw-t2", service, "RAW-2", "completed", "pigeon", -1, t, -1, now],
            "event 1: channel is not one of",
        ),
        "satisfaction.v1": (
            [f"{service}-raw-r", service, 4, "", t, now],
            [f"{service}-raw-r2", service, 9, "", t, now],
            "event 1: rating is not an integer from 1 to 5",
        ),
        "availability.v1": (
            [f"{service}:{t_s}", service, t_s, True, 123, 200, ""],
            [f"{service}:{t_s + 1000}", service, t_s + 1000, True, -1, 0, "refused"],
            "event 1: up without a response",
        ),
        "costs.v1": (
            [f"{service}-raw-c", service, "day", day, "all", 500_000, now],
            [f"{service}-raw-c2", service, "day", day + 3_600_000, "all", 1, now],
            "event 1: start_ms is not the start of a day",
        ),
    }


def test_malformed_messages_are_dead_lettered_and_the_worker_goes_on(target: Target) -> None:
    service = unique("svc-dlq")
    token = target.register(service)
    now = now_ms()
    rows = _rows(service, now)
    producer = Producer({"bootstrap.servers": target.bootstrap})
    placed: dict[tuple[str, int, int], list[str]] = {}  # (topic, partition, offset) → reasons
    errors: list[Any] = []

    def produce(topic: str, partition: int, value: bytes | None, reasons: list[str]) -> None:
        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(err)
            else:
                placed[msg.topic(), msg.partition(), msg.offset()] = reasons

        producer.produce(topic, value, key=service.encode(), partition=partition, on_delivery=delivered)

    metadata = producer.list_topics(timeout=10)
    for kind in KPI_TOPICS:
        topic = target.topic(kind)
        schema = {
            "transactions.v1": "transaction",
            "satisfaction.v1": "satisfaction",
            "availability.v1": "availability",
            "costs.v1": "cost",
        }[kind]
        partitions = sorted(metadata.topics[topic].partitions)
        for p in partitions:
            produce(topic, p, b"\x00\xffnot json at all", ["not JSON"])
            produce(topic, p, None, ["not JSON"])
            produce(topic, p, b'{"schema": "journey", "v": 1, "events": []}', [f"not a {schema} envelope"])
            produce(
                topic,
                p,
                orjson.dumps({"schema": schema, "v": 99, "events": []}),
                [f"unsupported {schema} schema version 99"],
            )
            produce(
                topic,
                p,
                orjson.dumps({"schema": schema, "v": 1, "events": "nope"}),
                ["events is not an array"],
            )
        good, bad, says = rows[kind]
        mine = zlib.crc32(service.encode()) % len(partitions)  # every event of a service on one partition
        produce(
            topic,
            mine,
            orjson.dumps({"schema": schema, "v": 1, "events": [good, bad, good[:3]]}),
            [says, f"event 2: event is not an array of {len(good)} fields"],
        )
    assert producer.flush(30) == 0 and errors == []

    # good events after the garbage: over HTTP, and a probe result (it has no HTTP route) raw
    ledger = Ledger()
    tx_row, rating_row, probe_row, cost_row = (rows[k][0] for k in KPI_TOPICS)
    ledger.acknowledged(
        "transactions",
        service,
        [
            {
                "id": tx_row[0],
                "outcome": "completed",
                "channel": "phone",
                "cost": 4.2,
                "timestamp": tx_row[6],
                "started_at": tx_row[7],
            },
        ],
    )
    ledger.acknowledged("ratings", service, [{"id": rating_row[0], "rating": 4, "timestamp": rating_row[4]}])
    ledger.acknowledged(
        "costs", service, [{"id": cost_row[0], "period": "day", "start": iso_z(cost_row[3]), "amount": 50}]
    )
    ledger.probe(service, probe_row[2], True, 123)
    after = now_ms() - 1000
    target.post_acknowledged(
        ledger,
        "transactions",
        service,
        [
            {
                "id": f"{service}-after",
                "service": service,
                "outcome": "started",
                "channel": "digital",
                "timestamp": after,
            }
        ],
        token,
    )
    target.post_acknowledged(
        ledger,
        "ratings",
        service,
        [{"id": f"{service}-after-r", "service": service, "rating": 1, "timestamp": after}],
        None,
    )
    week = (EPOCH + timedelta(milliseconds=day_start_ms(now))).date()
    week -= timedelta(days=week.weekday())
    target.post_acknowledged(
        ledger,
        "costs",
        service,
        [
            {
                "id": f"{service}-after-c",
                "service": service,
                "period": "week",
                "start": week.isoformat(),
                "amount": 70,
            }
        ],
        token,
    )
    late_ts = after // 1000 * 1000
    late_probe: list[Any] = [f"{service}:{late_ts}", service, late_ts, False, 250, 503, "HTTP 503"]
    availability = target.topic("availability.v1")
    produce(
        availability,
        zlib.crc32(service.encode()) % len(metadata.topics[availability].partitions),
        orjson.dumps({"schema": "availability", "v": 1, "events": [late_probe]}),
        [],
    )
    assert producer.flush(30) == 0 and errors == []
    ledger.probe(service, late_probe[2], False, 250)

    settle_summary(target, ledger, service)
    assert target.alive()

    # every malformed message and row is on the dead-letter topic, with its place and reason
    wanted = {k: v for k, v in placed.items() if v}
    dlq = Consumer(
        {"bootstrap.servers": target.bootstrap, "group.id": unique("dlq"), "enable.auto.commit": False}
    )
    dlq.assign([TopicPartition(target.topic("dead-letter"), 0, OFFSET_BEGINNING)])
    letters: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    deadline = time.monotonic() + 60
    try:
        while not all(len(letters.get(k, [])) >= len(v) for k, v in wanted.items()):
            assert time.monotonic() < deadline, f"dead letters missing for {set(wanted) - set(letters)}"
            msg = dlq.poll(0.5)
            if msg is None or msg.error():
                continue
            letter = orjson.loads(msg.value() or b"")
            letters.setdefault((letter["topic"], letter["partition"], letter["offset"]), []).append(letter)
    finally:
        dlq.close()
    for place, reasons in wanted.items():
        got = sorted(letter["reason"] for letter in letters[place])
        assert len(got) == len(reasons), (place, got)
        for reason, says in zip(got, sorted(reasons), strict=True):
            assert reason.startswith(says), (place, got, reasons)
    not_json = [letter for place, v in wanted.items() if v == ["not JSON"] for letter in letters[place]]
    assert any(base64.b64decode(letter["value_b64"]) == b"\x00\xffnot json at all" for letter in not_json)


# --- the worker killed mid-stream ---------------------------------------------------------------------


@pytest.mark.parametrize("target", ["server"], indirect=True)
def test_figures_are_exact_after_the_worker_is_killed_mid_stream(target: Target) -> None:
    """SIGKILL while a seeded stream is being posted, once the worker has counted some of it:
    batches it stored but had not committed come again after the restart and must not count
    twice; what was acknowledged while no worker ran must not be lost. The last third of the
    stream waits for the restart, so the stream goes on before, during and after the outage; the
    second third waits until the worker has counted something, so the kill comes mid-stream."""
    assert target.server is not None
    service = unique("svc-kill")
    token = target.register(service)
    traffic = todays_traffic(43, service, 2, 4000, now_ms())
    ledger = Ledger()
    stream: list[tuple[str, list[Payload]]] = [("transactions", b) for b in batches(traffic.transactions, 30)]
    for i, batch in enumerate(batches(traffic.ratings, 5)):
        stream.insert(3 * i + 1, ("ratings", batch))
    stream.append(("costs", traffic.costs))
    first_third, last_third = len(stream) // 3, 2 * len(stream) // 3
    failures: list[BaseException] = []
    progress = [0]
    counted, restarted = threading.Event(), threading.Event()

    def post_all() -> None:
        try:
            for i, (kind, events) in enumerate(stream):
                if i == first_third:
                    assert counted.wait(60), "the worker counted nothing"
                if i == last_third:
                    assert restarted.wait(60), "the worker was not restarted"
                if i % 7 == 6:
                    send_sdk(target, ledger, [(kind, e) for e in events])
                else:
                    target.post_acknowledged(ledger, kind, service, events, token)
                progress[0] = i + 1
                time.sleep(0.05)
        except BaseException as exc:
            failures.append(exc)

    poster = threading.Thread(target=post_all, name="poster")
    poster.start()
    try:
        seen = wait_until(lambda: target.summary(service)["kpis"]["transactions_started"]["value"], 60, 0.05)
        killed_at = progress[0]
        counted.set()
        target.server.worker.signal(signal.SIGKILL)
        proc = target.server.worker.proc
        assert proc is not None and proc.wait(10) == -signal.SIGKILL
        # batches acknowledged while no worker runs
        wait_until(lambda: progress[0] >= killed_at + 3 or failures, 30, 0.05)
        posted_while_down = progress[0] - killed_at
        target.server.start_worker()
        restarted.set()
    finally:
        counted.set()
        restarted.set()
        poster.join(120)
    assert failures == [] and not poster.is_alive()
    assert killed_at < last_third and posted_while_down > 0, (killed_at, posted_while_down, last_third)
    total_started = sum(1 for e in ledger.transactions.values() if e["outcome"] == "started")
    assert 0 < seen < total_started  # the worker had counted part of the stream when it was killed
    settle_summary(target, ledger, service, timeout_s=120)
    assert target.alive()
