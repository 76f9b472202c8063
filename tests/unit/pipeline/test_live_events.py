"""Live figures as Server-Sent Events (``pipeline.live_events``): what an event holds (the same
day figures as the KPI summary), when one is due (changes only, keep-alives when idle) and the
bytes on the wire, read back with a parser written from the SSE specification."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.clock import iso_utc
from pipeline.kpi import CHANNELS, OUTCOMES, TxAgg, TxFact, WindowAggs, tx_agg_of
from pipeline.kpi_sql import read_window, summary_json, tx_window_sql
from pipeline.live_events import (
    KEEP_ALIVE,
    KEEP_ALIVE_MS,
    RETRY_MS,
    Changes,
    Snapshot,
    Subscriber,
    day_tx,
    day_tx_query,
    day_window,
    event_frame,
    platform_figures,
    retry_frame,
    same_figures,
    service_figures,
)
from pipeline.windows import previous_so_far_window, so_far_window


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * 1000


NOW = ms(2024, 4, 3, 10, 15, 30) + 250
MIDNIGHT = ms(2024, 4, 3)


def parse_sse(stream: bytes) -> list[dict[str, Any]]:
    """Dispatched events and comments of a stream, as the HTML specification's parser reads it
    (fields up to the first colon, one optional space after it; a blank line dispatches)."""
    out: list[dict[str, Any]] = []
    block: dict[str, Any] = {}
    data: list[str] = []
    for line in stream.decode().split("\n"):
        if line == "":
            if data or block:
                out.append(block | ({"data": "\n".join(data)} if data else {}))
            block, data = {}, []
        elif line.startswith(":"):
            out.append({"comment": line[1:].strip()})
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                block[name] = value
    return out


# --- what an event holds ----------------------------------------------------------------------------


def test_day_window_is_the_utc_day_so_far_read_in_whole_minutes() -> None:
    assert day_window(NOW) == (MIDNIGHT // 1000, ms(2024, 4, 3, 10, 16) // 1000)
    assert day_window(NOW) == read_window(*so_far_window(NOW, "day"))
    assert day_window(MIDNIGHT) == (MIDNIGHT // 1000, MIDNIGHT // 1000)  # the first ms: empty


def test_day_tx_query_reads_the_day_window_of_one_service() -> None:
    assert day_tx_query("perfplat", "svc", NOW) == tx_window_sql("perfplat", ["svc"], *day_window(NOW))


def test_day_tx_folds_the_rows_of_the_service_and_is_empty_without_rows() -> None:
    rows = [
        ("svc", "digital", "completed", -1, 3, 0, 0, 0, 0),
        ("svc", "digital", "started", -1, 4, 0, 0, 0, 0),
        ("svc", "phone", "completed", -1, 2, 0, 0, 0, 0),
    ]
    tx = day_tx("svc", rows)
    assert (tx.count("digital", "completed"), tx.count("digital", "started"), tx.count()) == (3, 4, 9)
    assert day_tx("svc", []) == TxAgg()
    assert day_tx("other", rows) == TxAgg()


def facts() -> list[TxFact]:
    return [
        *[TxFact("digital", "started")] * 5,
        *[TxFact("digital", "completed")] * 3,
        *[TxFact("phone", "started")] * 2,
        TxFact("phone", "completed"),
        TxFact("paper", "abandoned"),
        TxFact("assisted_digital", "failed"),
    ]


def test_service_figures_hold_the_day_volumes_and_rates_the_kpi_summary_gives() -> None:
    tx = tx_agg_of(facts())
    body = service_figures("svc", 7, tx, NOW)
    start_s, end_s = day_window(NOW)
    current = WindowAggs(start_s * 1000, end_s * 1000, tx=tx)
    prev_start, prev_end = read_window(*previous_so_far_window(NOW, "day"))
    prev = WindowAggs(prev_start * 1000, prev_end * 1000)
    summary = orjson.loads(orjson.dumps(summary_json("svc", "day", current, prev)))

    assert set(body) == {
        "service",
        "users_now",
        "day_start",
        "volumes",
        "completion_rate",
        "digital_takeup",
        "at",
    }
    assert body["service"] == "svc"
    assert body["users_now"] == 7
    assert body["day_start"] == "2024-04-03T00:00:00+00:00" == summary["window"]["start"]
    assert body["at"] == iso_utc(NOW)
    assert body["volumes"] == summary["volumes"]["window"]
    assert list(body["volumes"]) == list(CHANNELS)
    assert all(list(v) == list(OUTCOMES) for v in body["volumes"].values())
    assert body["completion_rate"] == summary["kpis"]["completion_rate"]["value"] == 4 / 7
    assert body["digital_takeup"] == summary["kpis"]["digital_takeup"]["value"] == 3 / 4
    assert orjson.loads(orjson.dumps(body)) == body  # plain JSON values


def test_service_figures_without_transactions_have_zero_volumes_and_no_rates() -> None:
    body = service_figures("svc", 0, TxAgg(), MIDNIGHT)
    assert body["completion_rate"] is None
    assert body["digital_takeup"] is None
    assert {n for v in body["volumes"].values() for n in v.values()} == {0}
    assert body["day_start"] == iso_utc(MIDNIGHT)


def test_platform_figures_are_users_now_and_the_time_read() -> None:
    assert platform_figures(12, NOW) == {"users_now": 12, "at": iso_utc(NOW)}


def test_the_time_read_is_not_a_change_but_any_figure_is() -> None:
    a = service_figures("svc", 3, TxAgg(), NOW)
    assert same_figures(a, service_figures("svc", 3, TxAgg(), NOW + 1000))
    assert not same_figures(a, service_figures("svc", 4, TxAgg(), NOW))
    assert not same_figures(a, service_figures("svc", 3, tx_agg_of([TxFact("phone", "started")]), NOW))
    assert not same_figures(a, service_figures("svc", 3, TxAgg(), NOW + 86_400_000))  # a new day


# --- when an event is due -----------------------------------------------------------------------------


def test_changes_make_a_snapshot_for_the_first_reading_and_each_change_only() -> None:
    changes = Changes()
    first = changes.observe(platform_figures(1, NOW), NOW)
    assert first == Snapshot(NOW, platform_figures(1, NOW))
    assert changes.observe(platform_figures(1, NOW + 1000), NOW + 1000) is None
    second = changes.observe(platform_figures(2, NOW + 2000), NOW + 2000)
    assert second == Snapshot(NOW + 2000, platform_figures(2, NOW + 2000))
    assert changes.observe(platform_figures(1, NOW + 3000), NOW + 3000) is not None  # back to 1: a change


def test_snapshot_ids_increase_even_when_the_clock_does_not() -> None:
    changes = Changes()
    ids = [changes.observe(platform_figures(n, NOW), t) for n, t in ((1, NOW), (2, NOW), (3, NOW - 5000))]
    assert [s.id for s in ids if s is not None] == [NOW, NOW + 1, NOW + 2]


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(-2000, 2000)), max_size=40))
def test_snapshots_are_exactly_the_changes_with_increasing_ids(readings: list[tuple[int, int]]) -> None:
    changes = Changes()
    emitted: list[Snapshot] = []
    last: int | None = None
    for i, (users, jitter) in enumerate(readings):
        now = NOW + i * 1000 + jitter
        snapshot = changes.observe(platform_figures(users, now), now)
        assert (snapshot is not None) == (users != last)
        if snapshot is not None:
            assert snapshot.figures["users_now"] == users
            emitted.append(snapshot)
            last = users
    assert all(a.id < b.id for a, b in pairwise(emitted))


def test_a_subscriber_writes_the_newest_snapshot_once_then_keeps_alive() -> None:
    t = 1_000_000
    sub = Subscriber(t)
    assert sub.next_frame(None, t) == b""  # nothing read yet, nothing due
    assert sub.wait_ms(t) == KEEP_ALIVE_MS
    a = Snapshot(NOW, platform_figures(1, NOW))
    assert sub.next_frame(a, t + 5) == event_frame(a)
    assert sub.sent_id == NOW
    assert sub.next_frame(a, t + 6) == b""
    assert sub.wait_ms(t + 6) == KEEP_ALIVE_MS - 1
    assert sub.next_frame(a, t + 5 + KEEP_ALIVE_MS - 1) == b""
    assert sub.next_frame(a, t + 5 + KEEP_ALIVE_MS) == KEEP_ALIVE
    assert sub.wait_ms(t + 5 + KEEP_ALIVE_MS) == KEEP_ALIVE_MS  # the keep-alive was a write
    b = Snapshot(NOW + 9, platform_figures(3, NOW + 9))  # a slow subscriber skips to the newest
    assert sub.next_frame(b, t + 6 + KEEP_ALIVE_MS) == event_frame(b)
    assert sub.next_frame(b, t + 7 + KEEP_ALIVE_MS) == b""


def test_a_subscriber_without_figures_still_keeps_alive() -> None:
    sub = Subscriber(0, keep_alive_ms=300)
    assert sub.next_frame(None, 299) == b""
    assert sub.next_frame(None, 300) == KEEP_ALIVE
    assert sub.wait_ms(300) == 300
    with pytest.raises(ValueError, match="keep_alive_ms"):
        Subscriber(0, keep_alive_ms=0)


# --- how it is written ----------------------------------------------------------------------------------


def test_the_stream_starts_with_the_retry_delay() -> None:
    assert retry_frame() == b"retry: 3000\n\n" == retry_frame(RETRY_MS)
    assert parse_sse(retry_frame()) == [{"retry": "3000"}]


def test_an_event_is_figures_with_its_id_and_one_line_of_json() -> None:
    snapshot = Snapshot(NOW, service_figures("svc", 2, tx_agg_of(facts()), NOW))
    frame = event_frame(snapshot)
    assert frame.startswith(b"event: figures\nid: %d\ndata: {" % NOW)
    assert frame.endswith(b"}\n\n")
    assert frame.count(b"\n") == 4
    (event,) = parse_sse(frame)
    assert event["event"] == "figures"
    assert event["id"] == str(NOW)
    assert orjson.loads(event["data"]) == snapshot.figures


def test_line_breaks_in_a_value_cannot_split_the_data_line() -> None:
    figures = {"users_now": 1, "at": "x\ny\r\nid: 9\n\ndata: evil"}
    frame = event_frame(Snapshot(5, figures))
    assert frame.count(b"\n") == 4
    assert [orjson.loads(e["data"]) for e in parse_sse(frame)] == [figures]


def test_a_keep_alive_is_a_comment_that_dispatches_no_event() -> None:
    assert KEEP_ALIVE == b": keep-alive\n\n"
    assert parse_sse(KEEP_ALIVE) == [{"comment": "keep-alive"}]
