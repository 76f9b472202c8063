"""Which events of a batch are new, and the rows KPI events become. Pure."""

from __future__ import annotations

from pipeline.kpi import bucket_edge_ms
from pipeline.kpi_rows import (
    by_key,
    event_key,
    minute_ids_query,
    probe_columns,
    time_to_complete_ms,
    tx_columns,
)
from pipeline.sql import render
from schemas.availability import event_id, probe_result
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
    unique = by_key([a1, b, a2, a_next_minute])
    assert list(unique.values()) == [a1, b, a_next_minute]
    assert list(unique) == [event_key(a1), event_key(b), event_key(a_next_minute)]
    assert unique[event_key(a2)] is a1


def test_the_lookup_binds_every_value_and_reads_only_the_given_minutes() -> None:
    minute = T // 1000
    sql, params = minute_ids_query(
        "perf", "tx_events", [("svc-2", minute + 60), ("x'); --", minute), ("svc-2", minute + 60)]
    )
    assert sql == (
        "SELECT service, toUInt32(toStartOfMinute(ts)) AS minute, id FROM perf.tx_events "
        "WHERE service IN %(services)s AND ts >= %(a)s AND ts < %(b)s "
        "AND concat(service, ':', toString(minute)) IN %(keys)s"
    )
    assert params["services"] == ["svc-2", "x'); --"]
    assert params["keys"] == [f"svc-2:{minute + 60}", f"x'); --:{minute}"]
    rendered = render(sql, params)
    assert "ts >= toDateTime('2023-11-14 22:14:00', 'UTC')" in rendered
    assert "AND ts < toDateTime('2023-11-14 22:16:00', 'UTC')" in rendered
    assert "'x\\'); --'" in rendered


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


def test_probe_rows_carry_their_id_and_response_time_edge() -> None:
    up = probe_result("svc", T + 1_500, True, 230, 200)
    down = probe_result("svc", T + 60_000, False, -1, 0, "connection refused")
    cols = probe_columns([up, down])
    assert cols["id"] == [event_id("svc", T + 1_500), event_id("svc", T + 60_000)]
    assert cols["ts"] == [T // 1000 + 1, T // 1000 + 60]
    assert cols["up"] == [1, 0] and cols["response_ms"] == [230, -1]
    assert cols["edge_ms"] == [bucket_edge_ms(230), -1]
    assert cols["edge_ms"][0] >= 230
    assert event_key(up) == ("svc", event_id("svc", T + 1_500), T // 1000)
