"""The Kafka publisher against the real broker: acknowledged events are on the topic, in
envelopes on the partition their visitor maps to; an unreachable broker is an error, not a 2xx."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from pipeline.broker import EmbeddedBroker
from pipeline.errors import BrokerUnavailable
from pipeline.init import ensure_topics
from pipeline.settings import ClickHouseSettings, KafkaSettings, Settings
from pipeline.topics import partition_for_service, topics_for
from producers.kafka_config import consumer_config
from producers.publisher import KafkaPublisher
from schemas.journey import JourneyEvent, decode_envelope
from tests.support.stack import free_port

pytestmark = pytest.mark.integration


def _event(i: int, visitor: int) -> JourneyEvent:
    now = int(time.time() * 1000)
    return JourneyEvent(f"id-{i}", f"svc-{i % 13}", "stage", "start", "page", "/", now, now, visitor)


def _consume_all(
    settings: Settings, expected_events: int, timeout_s: float = 20
) -> list[tuple[int, JourneyEvent]]:
    consumer = Consumer(consumer_config(settings, "test-reader-" + settings.kafka.topic_prefix))
    consumer.subscribe([topics_for(settings.kafka).journey.name])
    seen: list[tuple[int, JourneyEvent]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen) < expected_events and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            seen.extend((msg.partition(), e) for e in decode_envelope(msg.value()).events)
    finally:
        consumer.close()
    return seen


def test_acknowledged_events_are_on_their_services_partition(kafka_settings: Settings) -> None:
    ensure_topics(kafka_settings)
    events = [_event(i, visitor=i * 7919) for i in range(200)]

    async def go() -> None:
        pub = KafkaPublisher(kafka_settings)
        await pub.start()
        # concurrent single-event publishes, as concurrent beacon requests make them
        await asyncio.gather(*(pub.publish([e]) for e in events))
        await pub.close()

    asyncio.run(go())
    seen = _consume_all(kafka_settings, len(events))
    assert sorted(e.id for _, e in seen) == sorted(e.id for e in events)
    n = kafka_settings.kafka.partitions
    assert all(p == partition_for_service(e.service, n) for p, e in seen)


def test_topics_are_created_once(kafka_settings: Settings) -> None:
    created = ensure_topics(kafka_settings)
    assert sorted(created) == sorted(t.name for t in topics_for(kafka_settings.kafka).all())
    assert ensure_topics(kafka_settings) == []


def test_unreachable_broker_raises_instead_of_acknowledging(tmp_path: Path) -> None:
    broker = EmbeddedBroker(free_port(), tmp_path / "b.log")
    broker.start()
    settings = Settings(
        kafka=KafkaSettings(bootstrap=broker.bootstrap, delivery_timeout_ms=3000),
        clickhouse=ClickHouseSettings(url="clickhouse://unused"),
        visitor_secret="s",  # type: ignore[arg-type]
    )
    ensure_topics(settings)

    async def go() -> tuple[float, BaseException | None]:
        pub = KafkaPublisher(settings)
        await pub.start()
        await pub.publish([_event(0, 1)])  # delivered while the broker is up
        broker.stop()
        t0 = time.monotonic()
        error: BaseException | None = None
        try:
            await asyncio.wait_for(pub.publish([_event(1, 2)]), 30)
        except BrokerUnavailable as exc:
            error = exc
        took = time.monotonic() - t0
        await asyncio.wait_for(pub.close(), 30)
        return took, error

    took, error = asyncio.run(go())
    assert isinstance(error, BrokerUnavailable)
    assert took < 10
