"""Which events of a batch are new, and the rows KPI events become. Pure."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from pipeline.kpi import bucket_edge_ms
from pipeline.kpi_rows import (
    event_key,
    first_of_each,
    minute_ranges,
    stored_keys_query,
    time_to_complete_ms,
    tx_columns,
)
from pipeline.sql import render
from schemas.transaction import TransactionEvent

T = 1_700_000_040_000  # 2023-11-14T22:14:00Z, on a minute


def tx(
    id_: str, ts: int, outcome: str = "completed", started: int = -1, service: str = "svc"
) -> TransactionEvent:
    return TransactionEvent(id_, service, "", outcome, "digital", -1, ts, started, ts)


def test_an_event_is_its_service_id_and_minute() -> None:
    assert event_key(tx("a", T + 59_999)) == ("svc", "a", T // 1000)
    assert event_key(tx("a", T + 60_000)) == ("svc", "a", T // 1000 + 60)


def test_repeats_in_a_batch_keep_the_first() -> None:
    a1, b, a2, a_next_minute = tx("a", T), tx("b", T), tx("a", T + 5), tx("a", T + 60_000)
    assert first_of_each([a1, b, a2, a_next_minute]) == [a1, b, a_next_minute]


def test_minute_ranges_merge_adjacent_minutes() -> None:
    assert minute_ranges([600, 0, 60, 600, 180]) == [(0, 120), (180, 240), (600, 660)]
    assert minute_ranges([]) == []


@given(st.sets(st.integers(0, 10_000)))
def test_minute_ranges_cover_exactly_the_minutes(minutes: set[int]) -> None:
    starts = {m * 60 for m in minutes}
    ranges = minute_ranges(starts)
    covered = {s for a, b in ranges for s in range(a, b, 60)}
    assert covered == starts
    assert all(b1 < a2 for (_, b1), (a2, _) in itertools.pairwise(ranges))


def test_the_lookup_binds_every_value_and_reads_only_the_batch_minutes() -> None:
    events = [tx("x'); DROP TABLE tx_events; --", T), tx("b", T + 60_000, service="svc-2")]
    sql, params = stored_keys_query("perf", "tx_events", events)
    assert sql == (
        "SELECT service, id, toUInt32(toStartOfMinute(ts)) FROM perf.tx_events "
        "WHERE service IN %(services)s AND ((ts >= %(a0)s AND ts < %(b0)s)) AND id IN %(ids)s"
    )
    assert params["services"] == ["svc", "svc-2"]
    rendered = render(sql, params)
    assert "toDateTime('2023-11-14 22:14:00', 'UTC')" in rendered
    assert "toDateTime('2023-11-14 22:16:00', 'UTC')" in rendered
    assert "'x\\'); DROP TABLE tx_events; --'" in rendered


def test_time_to_complete_only_for_completions_that_say_when_they_started() -> None:
    assert time_to_complete_ms(tx("a", T, started=T - 90_000)) == 90_000
    assert time_to_complete_ms(tx("a", T, started=T)) == 0
    assert time_to_complete_ms(tx("a", T)) == -1
    assert time_to_complete_ms(tx("a", T, outcome="started", started=T - 5)) == -1


def test_transaction_rows() -> None:
    cols = tx_columns([tx("a", T + 999, started=T - 90_000), tx("b", T, outcome="failed")])
    assert cols["ts"] == [T // 1000, T // 1000]
    assert cols["ttc_ms"] == [90_999, -1]
    assert cols["ttc_edge_ms"] == [bucket_edge_ms(90_999), -1]
    assert cols["outcome"] == ["completed", "failed"]
