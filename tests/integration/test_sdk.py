"""The Python producer SDK (``producers.sdk``) against the real broker: what a service sends is on
the kind's topic, in envelopes, on its service's partition, exactly as sent; a bad call raises
before anything is sent; an unreachable broker is counted and reported, never raised. Then
``perfplat simulate`` through the SDK, and through the real ingest API for journeys."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer

from pipeline import cli
from pipeline.beacon import DropReason
from pipeline.clickhouse_server import ClickHouseServer
from pipeline.init import ensure_topics
from pipeline.settings import Settings
from pipeline.topics import partition_for_service, topics_for
from producers.kafka_config import consumer_config
from producers.sdk import Client, DeliveryFailure
from producers.simulate import JourneySim, ProbeSim, default_services, simulate
from schemas import availability, cost, journey, satisfaction, transaction
from schemas.fields import InvalidEvent
from tests.conftest import unique
from tests.support.stack import ServerStack, free_port

pytestmark = pytest.mark.integration

KINDS = {m.SCHEMA: m for m in (transaction, satisfaction, cost, availability)}


@dataclass(frozen=True)
class Message:
    kind: str
    partition: int
    key: bytes
    events: list[Any]


def consume(
    settings: Settings, until_events: int, timeout_s: float = 20, settle_s: float = 1.0
) -> list[Message]:
    """Every message on the four KPI topics: until ``until_events`` events have come and then
    ``settle_s`` more (so that anything extra would show), or the timeout."""
    topics = topics_for(settings.kafka)
    names = {topics.for_kind(kind).name: kind for kind in KINDS}
    consumer = Consumer(consumer_config(settings, unique("reader")))
    consumer.subscribe(list(names))
    out: list[Message] = []
    deadline = time.monotonic() + timeout_s
    quiet_until: float | None = None
    try:
        while time.monotonic() < deadline and (quiet_until is None or time.monotonic() < quiet_until):
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            kind = names[msg.topic() or ""]
            decoded = KINDS[kind].decode_envelope(msg.value() or b"")
            assert decoded.rejects == []
            out.append(Message(kind, msg.partition() or 0, msg.key() or b"", decoded.events))
            if quiet_until is None and sum(len(m.events) for m in out) >= until_events:
                quiet_until = time.monotonic() + settle_s
    finally:
        consumer.close()
    return out


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def timeout_ms(ms: int) -> dict[str, Any]:
    """A librdkafka override: its dotted name goes through ``**``."""
    return {"message.timeout.ms": ms}


# --- delivery --------------------------------------------------------------------------------------------


def test_what_a_service_sends_arrives_exactly_on_its_partition(kafka_settings: Settings) -> None:
    ensure_topics(kafka_settings)
    prefix = kafka_settings.kafka.topic_prefix
    started = datetime.now(UTC) - timedelta(minutes=20)
    before = now_ms()
    with Client(kafka_settings.bootstrap, prefix, service="apply-passport") as client:
        tx_ids = [client.transaction("started", "digital", transaction_id=f"PP-{i}") for i in range(150)]
        done_id = client.transaction(
            "completed",
            "Face to face",
            id="tx-done-1",
            transaction_id="PP-1",
            cost=4.25,
            timestamp=datetime.now(timezone(timedelta(hours=1))),
            started_at=started,
        )
        other_ids = [
            client.transaction("abandoned", "phone", service=f"svc-{i % 3}", timestamp=before - i)
            for i in range(30)
        ]
        rating_id = client.rating(5, comment="Quick and clear <b>thanks</b>", service="carers-allowance")
        cost_id = client.cost("quarter", date(2026, 1, 1), 125000.5, channel="digital")
        probe = availability.probe_result("apply-passport", before, True, 120, 200)
        probe_id = client.probe(probe)
        assert client.flush(10) == 0
        assert (client.delivered, client.failed, client.pending) == (184, 0, 0)
    after = now_ms()

    messages = consume(kafka_settings, 184)
    arrived = {e.id: (m, e) for m in messages for e in m.events}
    assert len(arrived) == sum(len(m.events) for m in messages) == 184

    partitions = kafka_settings.kafka.partitions
    for m in messages:
        services = {e.service for e in m.events}
        assert len(services) == 1  # an envelope carries one service's events
        (service,) = services
        assert m.key == service.encode()
        assert m.partition == partition_for_service(service, partitions)
    # events sent in a burst travel together: far fewer messages than events
    assert len([m for m in messages if m.kind == "transaction"]) < 20

    for i, event_id in enumerate(tx_ids):
        m, e = arrived[event_id]
        assert m.kind == "transaction"
        assert (e.service, e.outcome, e.channel, e.transaction_id, e.cost_e4, e.started_ms) == (
            "apply-passport",
            "started",
            "digital",
            f"PP-{i}",
            -1,
            -1,
        )
        assert before <= e.ts_ms == e.received_ms <= after
    _, done = arrived[done_id]
    assert done_id == "tx-done-1"
    assert (done.outcome, done.channel, done.cost_e4) == ("completed", "face_to_face", 42_500)
    assert done.started_ms == int(started.timestamp() * 1000)
    assert before <= done.ts_ms <= after
    assert sorted(arrived[i][1].service for i in other_ids) == sorted(f"svc-{i % 3}" for i in range(30))
    assert [arrived[i][1].ts_ms for i in other_ids] == [before - i for i in range(30)]

    m, rated = arrived[rating_id]
    assert (m.kind, rated.service, rated.rating, rated.comment) == (
        "satisfaction",
        "carers-allowance",
        5,
        "Quick and clear <b>thanks</b>",
    )
    m, spent = arrived[cost_id]
    assert (m.kind, spent.period, spent.channel, spent.amount_e4) == (
        "cost",
        "quarter",
        "digital",
        1_250_005_000,
    )
    assert spent.start_ms == int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    m, probed = arrived[probe_id]
    assert (m.kind, probed) == ("availability", probe)


def test_a_bad_call_raises_in_the_caller_and_sends_nothing(kafka_settings: Settings) -> None:
    ensure_topics(kafka_settings)
    client = Client(kafka_settings.bootstrap, kafka_settings.kafka.topic_prefix, service="svc")
    bad_calls: list[tuple[Callable[[], object], str]] = [
        (lambda: client.transaction("finished", "digital"), "outcome"),
        (lambda: client.transaction("started", "pigeon"), "channel"),
        (lambda: client.transaction("started", "digital", service="Not A Slug"), "service"),
        (lambda: client.transaction("started", "digital", started_at=now_ms() - 1), "started_at"),
        (lambda: client.transaction("completed", "digital", cost=0.12345), "cost"),
        (lambda: client.transaction("started", "digital", timestamp=datetime(2026, 1, 1)), "timestamp"),  # noqa: DTZ001
        (lambda: client.transaction("started", "digital", timestamp=now_ms() + 3_600_000), "timestamp"),
        (lambda: client.transaction("started", "digital", id="no spaces allowed"), "id"),
        (lambda: client.rating(6), "rating"),
        (lambda: client.rating(True), "rating"),
        (lambda: client.rating(4, comment="x" * 1201), "comment"),
        (lambda: client.cost("week", date(2026, 1, 1), 10.0), "start"),  # a Thursday
        (lambda: client.cost("hour", date(2026, 1, 1), 10.0), "period"),
        (lambda: client.cost("day", date(2026, 1, 1), -1.0), "amount"),
    ]
    for call, field_name in bad_calls:
        with pytest.raises(InvalidEvent) as raised:
            call()
        assert raised.value.field == field_name
        assert isinstance(raised.value, ValueError)
    nameless = Client(kafka_settings.bootstrap, kafka_settings.kafka.topic_prefix)
    with pytest.raises(InvalidEvent) as missing:
        nameless.rating(3)
    assert (missing.value.field, missing.value.reason) == ("service", DropReason.MISSING)
    with pytest.raises(ValueError):
        client.probe(availability.AvailabilityEvent("svc:1", "svc", 2, True, 5, 200, ""))
    assert client.pending == 0

    marker = client.rating(3)  # one good event, so the read below knows when it has everything
    assert client.flush(10) == 0
    client.close()
    nameless.close()
    messages = consume(kafka_settings, 1)
    assert [e.id for m in messages for e in m.events] == [marker]
    assert (client.delivered, client.failed) == (1, 0)
    with pytest.raises(RuntimeError):
        client.rating(3)


def test_large_batches_are_split_to_fit_a_message(kafka_settings: Settings) -> None:
    ensure_topics(kafka_settings)
    comment = "é" * 1200  # ~2.4 kB of JSON each: 500 of them would pass the broker's 1 MB limit
    with Client(
        kafka_settings.bootstrap, kafka_settings.kafka.topic_prefix, service="svc", linger_ms=200
    ) as c:
        ids = [c.rating(1 + i % 5, comment=comment) for i in range(900)]
        assert c.flush(20) == 0
        assert (c.delivered, c.failed) == (900, 0)
    messages = consume(kafka_settings, 900)
    assert sorted(e.id for m in messages for e in m.events) == sorted(ids)
    assert len(messages) > 2


def test_many_threads_share_one_client(kafka_settings: Settings) -> None:
    ensure_topics(kafka_settings)
    with Client(kafka_settings.bootstrap, kafka_settings.kafka.topic_prefix) as client:
        ids: list[str] = []
        lock = threading.Lock()

        def work(n: int) -> None:
            mine = [client.transaction("started", "digital", service=f"svc-{n}") for _ in range(300)]
            with lock:
                ids.extend(mine)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert client.flush(20) == 0
        assert client.delivered == 1800
    messages = consume(kafka_settings, 1800)
    assert Counter(e.id for m in messages for e in m.events) == Counter(ids)


def test_what_is_buffered_at_exit_is_flushed(kafka_settings: Settings) -> None:
    """A service that never closes its client still gets its events out when Python exits."""
    ensure_topics(kafka_settings)
    script = (
        "import sys; from producers.sdk import Client; "
        "c = Client(sys.argv[1], sys.argv[2], service='svc', linger_ms=600_000); "
        "print(','.join(c.rating(4) for _ in range(20)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, kafka_settings.bootstrap, kafka_settings.kafka.topic_prefix],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    ids = done.stdout.strip().split(",")
    messages = consume(kafka_settings, 20)
    assert sorted(e.id for m in messages for e in m.events) == sorted(ids)


# --- failure ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("partitions", [4, None], ids=["partitions-given", "partitions-from-metadata"])
def test_a_dead_broker_is_counted_and_reported_never_raised(partitions: int | None) -> None:
    failures: list[DeliveryFailure] = []
    client = Client(
        f"127.0.0.1:{free_port()}",
        "perfplat",
        service="svc",
        partitions=partitions,
        on_error=failures.append,
        **timeout_ms(3000),
    )
    ids = [client.transaction("started", "digital") for _ in range(5)]
    ids += [client.rating(4, service="other") for _ in range(2)]
    assert client.flush(1) == 7  # nothing can be delivered yet, and nothing has timed out
    assert client.failed == 0
    assert client.flush(15) == 0  # every event settled: as failed
    assert (client.delivered, client.failed) == (0, 7)
    assert sorted(i for f in failures for i in f.event_ids) == sorted(ids)
    assert {(f.kind, f.service) for f in failures} == {("transaction", "svc"), ("satisfaction", "other")}
    assert all(f.reason for f in failures)
    assert {f.topic for f in failures} == {"perfplat.transactions.v1", "perfplat.satisfaction.v1"}
    client.close(1)


def test_an_on_error_that_raises_does_not_break_the_client() -> None:
    def explode(_failure: DeliveryFailure) -> None:
        raise RuntimeError("the service's own bug")

    client = Client(f"127.0.0.1:{free_port()}", partitions=2, on_error=explode, **timeout_ms(1500))
    client.transaction("started", "digital", service="svc")
    assert client.flush(15) == 0
    assert client.failed == 1
    client.transaction("started", "digital", service="svc")  # still usable
    client.close(0.5)
    assert client.failed == 2  # what close gave up on counts as failed


def test_close_gives_up_on_what_is_left_and_counts_it() -> None:
    client = Client(f"127.0.0.1:{free_port()}", partitions=1, service="svc", **timeout_ms(60_000))
    for _ in range(3):
        client.rating(2)
    started = time.monotonic()
    client.close(0.5)
    assert time.monotonic() - started < 5
    assert (client.pending, client.delivered, client.failed) == (0, 0, 3)


def test_a_full_client_pushes_back_with_buffer_error() -> None:
    client = Client(
        f"127.0.0.1:{free_port()}", partitions=1, service="svc", max_pending_events=10, max_block_ms=100
    )
    for _ in range(10):
        client.transaction("started", "digital")
    with pytest.raises(BufferError):
        client.transaction("started", "digital")
    assert client.pending == 10
    client.close(0.1)


# --- perfplat simulate ---------------------------------------------------------------------------------


def test_simulate_sends_the_day_through_the_sdk(
    kafka_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    ensure_topics(kafka_settings)
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    argv = [
        "simulate",
        "--bootstrap",
        kafka_settings.bootstrap,
        "--topic-prefix",
        kafka_settings.kafka.topic_prefix,
        "--services",
        "3",
        "--events",
        "6000",
        "--day",
        day.isoformat(),
        "--seed",
        "42",
        "--as-fast-as-possible",
    ]
    assert cli.main(argv) == 0
    summary = orjson.loads(capsys.readouterr().out)
    expected = list(simulate(42, day, default_services(3), 6000))
    by_kind = Counter(e.kind for e in expected)
    assert summary["sent"] == {**by_kind, "journey": 0}
    assert summary["skipped_journeys"] == by_kind["journey"]
    kafka_events = len(expected) - by_kind["journey"]
    assert summary["kafka"] == {"delivered": kafka_events, "failed": 0, "undelivered": 0}

    messages = consume(kafka_settings, kafka_events)
    arrived = Counter(m.kind for m in messages for e in m.events)
    assert arrived == {k: n for k, n in by_kind.items() if k != "journey"}
    ids = {e.id for m in messages for e in m.events}
    assert ids == {
        e.payload.id if isinstance(e, ProbeSim) else e.payload["id"]
        for e in expected
        if not isinstance(e, JourneySim)
    }


def test_simulate_paces_at_the_rate_asked(
    kafka_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    ensure_topics(kafka_settings)
    day = (datetime.now(UTC) - timedelta(days=2)).date()
    base = [
        "simulate",
        "--bootstrap",
        kafka_settings.bootstrap,
        "--topic-prefix",
        kafka_settings.kafka.topic_prefix,
    ]
    argv = [*base, "--services", "1", "--events", "300", "--day", day.isoformat(), "--rate", "200"]
    started = time.monotonic()
    assert cli.main(argv) == 0
    took = time.monotonic() - started
    sent = sum(orjson.loads(capsys.readouterr().out)["sent"].values())
    assert sent >= 100
    assert took >= (sent - 1) / 200


def test_simulate_today_sends_only_what_has_happened(
    kafka_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    ensure_topics(kafka_settings)
    base = [
        "simulate",
        "--bootstrap",
        kafka_settings.bootstrap,
        "--topic-prefix",
        kafka_settings.kafka.topic_prefix,
    ]
    before = now_ms()
    assert cli.main([*base, "--services", "2", "--events", "2000", "--as-fast-as-possible"]) == 0
    after = now_ms()
    summary = orjson.loads(capsys.readouterr().out)
    today = datetime.now(UTC).date()
    assert summary["day"] == today.isoformat()
    whole = list(simulate(1, today, default_services(2), 2000))
    sent = sum(summary["sent"].values()) + summary["skipped_journeys"]
    assert sum(1 for e in whole if e.ts_ms <= before) <= sent <= sum(1 for e in whole if e.ts_ms <= after)
    assert summary["stopped_at_now"] == (sent < len(whole))
    assert summary["kafka"]["failed"] == 0


def test_simulate_against_a_dead_broker_fails_loudly(capsys: pytest.CaptureFixture[str]) -> None:
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    argv = ["simulate", "--bootstrap", f"127.0.0.1:{free_port()}", "--events", "300", "--services", "1"]
    argv += ["--day", day.isoformat(), "--partitions", "4", "--as-fast-as-possible"]
    argv += ["--delivery-timeout-ms", "2000"]
    assert cli.main(argv) == 1
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["kafka"]["delivered"] == 0
    assert summary["kafka"]["failed"] + summary["kafka"]["undelivered"] == sum(summary["sent"].values())


@pytest.fixture
def api_stack(tmp_path: Path, broker: Any, clickhouse_server: ClickHouseServer) -> Iterator[ServerStack]:
    """The real ``perfplat api`` (ingest routes; no worker needed to see journeys on Kafka)."""
    stack = ServerStack(tmp_path / "stack", broker.bootstrap, clickhouse_server.url, unique("sim"))
    proc = stack.api.start()
    from tests.support.stack import wait_http

    try:
        wait_http(stack.base_url + "/healthz", 60, proc)
        yield stack
    finally:
        stack.api.stop()


def test_simulate_sends_journeys_to_the_real_beacon(
    api_stack: ServerStack, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = api_stack.settings()
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    argv = ["simulate", "--bootstrap", settings.bootstrap, "--topic-prefix", settings.kafka.topic_prefix]
    argv += ["--services", "2", "--events", "3000", "--day", day.isoformat(), "--seed", "5"]
    argv += ["--as-fast-as-possible", "--beacon-url", api_stack.base_url + "/beacon"]
    assert cli.main(argv) == 0
    summary = orjson.loads(capsys.readouterr().out)
    journeys = [e for e in simulate(5, day, default_services(2), 3000) if isinstance(e, JourneySim)]
    assert summary["beacon"]["accepted"] == len(journeys)
    assert (summary["beacon"]["dropped"], summary["beacon"]["failed"]) == (0, 0)

    consumer = Consumer(consumer_config(settings, unique("reader")))
    consumer.subscribe([topics_for(settings.kafka).journey.name])
    seen: list[journey.JourneyEvent] = []
    deadline = time.monotonic() + 20
    try:
        while len(seen) < len(journeys) and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                seen.extend(journey.decode_envelope(msg.value() or b"").events)
    finally:
        consumer.close()
    assert sorted(e.id for e in seen) == sorted(j.payload["id"] for j in journeys)
    # each simulated user is a visitor of their own
    visitors_per_user = {(j.service, j.visitor) for j in journeys}
    assert len({(e.service, e.visitor) for e in seen}) == len(visitors_per_user)
