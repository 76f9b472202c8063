"""One contract, both backends: the ClickHouse 18.16 server (clickhouse-driver) and chdb 26.x.

Figures are checked against an independent count over the rows the test wrote.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime

import pytest

from pipeline.kpi_rows import journey_columns
from pipeline.live import (
    MinuteCountsQuery,
    UsersNowQuery,
    minute_counts_sql,
    shape_minute_counts,
    shape_users_now,
    users_now_sql,
)
from pipeline.store import Store
from schemas.journey import JourneyEvent
from schemas.migrations import load_migrations, migrate
from stream_processors.kpi_sink import CountedSink, journey_sink

pytestmark = pytest.mark.integration


def _events(n: int, now_ms: int, service: str = "svc", seed: int = 1) -> list[JourneyEvent]:
    rnd = random.Random(seed)
    return [
        JourneyEvent(
            id=f"e{seed}-{i}",
            service=service,
            action=rnd.choice(["stage", "help"]),
            label=rnd.choice(["start", "done", "info:more"]),
            kind=rnd.choice(["page", "click"]),
            path="/p",
            ts_ms=now_ms - rnd.randrange(0, 120_000),
            received_ms=now_ms,
            visitor=rnd.randrange(0, 40),
        )
        for i in range(n)
    ]


def _users_now(store: Store, service: str | None, now_ms: int) -> int:
    q = UsersNowQuery(service, now_ms)
    return int(shape_users_now(q, store.query(*users_now_sql(q, store.database)))["users_now"])


def _minute_totals(store: Store, service: str, now_ms: int) -> dict[datetime, int]:
    end = datetime.fromtimestamp(now_ms / 1000 + 60, tz=UTC)
    q = MinuteCountsQuery(service, datetime.fromtimestamp(now_ms / 1000 - 600, tz=UTC), end)
    shaped = shape_minute_counts(q, store.query(*minute_counts_sql(q, store.database)))
    return {datetime.fromisoformat(r["_start_at"]): r["count"] for r in shaped["totals"] if r["count"]}


def _expected_minutes(events: list[JourneyEvent]) -> dict[datetime, int]:
    out: dict[datetime, int] = {}
    for e in {e.id: e for e in events}.values():
        m = datetime.fromtimestamp(e.ts_ms // 60_000 * 60, tz=UTC)
        out[m] = out.get(m, 0) + 1
    return out


def test_migrations_apply_once_and_are_recorded(store: Store) -> None:
    first = migrate(store, store.database)
    assert first == [m.version for m in load_migrations(store.database)]
    assert migrate(store, store.database) == []
    tables = {
        r[0]
        for r in store.query("SELECT name FROM system.tables WHERE database = %(db)s", {"db": store.database})
    }
    assert {"journey_in", "journey_events", "visitors_live", "journey_minute", "journey_day"} <= tables
    assert "journey_counts_minute" not in tables


def test_aggregates_equal_an_independent_count(store: Store) -> None:
    migrate(store, store.database)
    now_ms = int(time.time() * 1000)
    events = _events(500, now_ms) + _events(200, now_ms, service="other", seed=2)
    store.insert("journey_in", journey_columns(events))
    svc = [e for e in events if e.service == "svc"]
    assert _users_now(store, "svc", now_ms) == len({e.visitor for e in svc})
    assert _users_now(store, None, now_ms) == len({e.visitor for e in events})
    assert _minute_totals(store, "svc", now_ms) == _expected_minutes(svc)


def test_duplicates_and_replays_through_the_sink_never_change_a_figure(store: Store) -> None:
    migrate(store, store.database)
    now_ms = int(time.time() * 1000)
    events = _events(300, now_ms)

    def write(batch: list[JourneyEvent], sink: CountedSink[JourneyEvent] | None = None) -> None:
        asyncio.run((sink or journey_sink(store, 100)).write(batch))

    sink = journey_sink(store, 100)
    write(events + events[:10], sink)  # a batch that repeats some of its own events
    before = (_users_now(store, "svc", now_ms), _minute_totals(store, "svc", now_ms))
    assert before[1] == _expected_minutes(events)
    # a replayed batch on the same sink, a partial replay on a fresh one (a restarted worker),
    # and single client retries
    write(events, sink)
    write(events[100:150])
    for e in events[:5]:
        write([e])
    assert (_users_now(store, "svc", now_ms), _minute_totals(store, "svc", now_ms)) == before
    (raw,) = store.query(f"SELECT count() FROM {store.database}.journey_events FINAL")
    assert raw[0] == len(events)


def test_users_now_forgets_visitors_older_than_the_window(store: Store) -> None:
    migrate(store, store.database)
    now_ms = int(time.time() * 1000)
    old = [
        JourneyEvent(
            f"o{i}", "svc", "stage", "start", "page", "/", now_ms - 400_000, now_ms - 400_000, 1000 + i
        )
        for i in range(7)
    ]
    new = [JourneyEvent(f"n{i}", "svc", "stage", "start", "page", "/", now_ms, now_ms, i) for i in range(3)]
    store.insert("journey_in", journey_columns(old + new))
    assert _users_now(store, "svc", now_ms) == 3
    assert _users_now(store, "svc", now_ms - 390_000) == 7


def test_hostile_strings_round_trip_as_data(store: Store) -> None:
    migrate(store, store.database)
    now_ms = int(time.time() * 1000)
    nasty = [
        "'; DROP TABLE journey_in; --",
        "back\\slash",
        "quote'\"",
        "new\nline",
        "<script>alert(1)</script>",
        "%(service)s",
        "ünïcödé ✓",
    ]
    events = [
        JourneyEvent(f"h{i}", "svc", "stage", label, "click", "/", now_ms, now_ms, i)
        for i, label in enumerate(nasty)
    ]
    store.insert("journey_in", journey_columns(events))
    rows = store.query(
        f"SELECT label FROM {store.database}.journey_events FINAL "
        "WHERE service = %(s)s AND label IN %(labels)s",
        {"s": "svc", "labels": nasty},
    )
    assert sorted(r[0] for r in rows) == sorted(nasty)


def test_server_version_is_reported(store: Store) -> None:
    version = store.server_version()
    assert len(version) >= 2 and version[0] in (18, 26)


def test_query_values_answers_the_rows_of_query(store: Store) -> None:
    """The fast path of the KPI reads gives exactly what ``query`` gives, for the column types it
    is for: integers of every width and sign, floats, strings (hostile ones too), LowCardinality;
    and no rows for an empty answer."""
    migrate(store, store.database)
    statements = [
        (
            "SELECT toInt64(number) - 5 AS a, toUInt64(number) * 1000000007 AS b, toUInt8(number % 3) AS c, "
            "toFloat64(number) / 3 AS f, concat('s', toString(number)) AS s, "
            "toLowCardinality(if(number % 2 = 0, 'even', 'odd')) AS lc "
            "FROM system.numbers LIMIT 3000",
            None,
        ),
        ("SELECT toUInt64(18446744073709551615), toInt64(-9223372036854775808), %(s)s", {"s": "ünï'\\\"\n✓"}),
        ("SELECT number FROM system.numbers WHERE number > 10 LIMIT 0", None),
        (
            f"SELECT service, action, count() FROM {store.database}.journey_events "
            "WHERE service = %(s)s GROUP BY service, action",
            {"s": "nobody"},
        ),
    ]
    for sql, params in statements:
        assert store.query_values(sql, params) == store.query(sql, params), sql
    assert len(store.query_values(statements[0][0])) == 3000
