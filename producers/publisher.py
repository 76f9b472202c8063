"""The Kafka publisher the ingest API awaits: an event is acknowledged only once Kafka is.

Events bound for the same partition within ``coalesce_window_ms`` travel in one envelope
message, so the stream processor's per-message cost is paid once per batch even when every
request carries a single event. Each caller awaits the delivery report of the message that
carries its events (acks=all, idempotent producer); a failed delivery or an unreachable
broker raises ``BrokerUnavailable``, which the API turns into 503 + Retry-After.

librdkafka is polled from the event loop itself (every millisecond while messages are in
flight), so delivery callbacks settle the waiting requests directly: no poll thread, and no
GIL hand-over between it and the loop on every delivery (which showed in the beacon's p99).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Producer

from pipeline.errors import BrokerUnavailable
from pipeline.settings import Settings
from pipeline.topics import (
    TopicSpec,
    partition_for_data_set,
    partition_for_service,
    topics_for,
)
from producers.kafka_config import producer_config
from schemas import availability, cost, satisfaction, transaction
from schemas.journey import JourneyEvent, encode_envelope
from schemas.records import WriteOp, encode_op

log = logging.getLogger(__name__)


KPI_ENCODERS: dict[str, Callable[[list[Any]], bytes]] = {
    m.SCHEMA: m.encode_envelope for m in (transaction, satisfaction, availability, cost)
}


class EventPublisher(Protocol):
    async def publish(self, events: list[JourneyEvent]) -> None: ...


class OpPublisher(Protocol):
    async def publish_op(self, op: WriteOp) -> None: ...


class KpiPublisher(Protocol):
    async def publish_kpi(self, kind: str, by_service: dict[str, list[Any]]) -> None: ...


@dataclass
class _Pending:
    events: list[JourneyEvent] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class KafkaPublisher:
    def __init__(self, settings: Settings, topic: TopicSpec | None = None) -> None:
        self._settings = settings
        self._topics = topics_for(settings.kafka)
        self._topic = topic or self._topics.journey
        self._window_s = settings.kafka.coalesce_window_ms / 1000
        self._max_events = settings.kafka.coalesce_max_events
        self._pending: dict[int, _Pending] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._producer: Any = None
        self._poller: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._running = False
        self._brokers_down = False
        self._fatal: str | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        conf = producer_config(self._settings)
        conf["error_cb"] = self._on_error
        self._producer = Producer(conf)
        self._running = True
        self._poller = asyncio.create_task(self._poll_loop(), name="kafka-poll")

    async def close(self, timeout_s: float = 10.0) -> None:
        for p in list(self._pending):
            self._flush(p)
        deadline = time.monotonic() + timeout_s
        # librdkafka has no awaitable "queue empty"; the poll loop serves the callbacks meanwhile
        while self._producer is not None and len(self._producer) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        self._running = False
        self._wake.set()
        if self._poller is not None:
            await self._poller

    # --- called on the event loop -------------------------------------------------------

    def _ready_loop(self) -> asyncio.AbstractEventLoop:
        """The loop to publish on, or BrokerUnavailable while the producer cannot deliver."""
        if self._fatal:
            raise BrokerUnavailable(f"Kafka producer failed: {self._fatal}")
        if self._brokers_down and self._pending_count() > 0:
            # while every broker is down, one message at a time probes for recovery
            raise BrokerUnavailable("Kafka brokers are unavailable")
        assert self._loop is not None, "publisher not started"
        return self._loop

    async def publish(self, events: list[JourneyEvent]) -> None:
        loop = self._ready_loop()
        by_partition: dict[int, list[JourneyEvent]] = {}
        n = self._topic.partitions
        for event in events:
            by_partition.setdefault(partition_for_service(event.service, n), []).append(event)
        waiters = []
        for p, evs in by_partition.items():
            pending = self._pending.get(p)
            if pending is None:
                pending = self._pending[p] = _Pending()
                pending.timer = loop.call_later(self._window_s, self._flush, p)
            fut: asyncio.Future[None] = loop.create_future()
            pending.events.extend(evs)
            pending.waiters.append(fut)
            waiters.append(fut)
            if len(pending.events) >= self._max_events:
                self._flush(p)
        if len(waiters) == 1:
            await waiters[0]
        else:
            await asyncio.gather(*waiters)

    async def publish_op(self, op: WriteOp) -> None:
        """One data-set write operation, one message, on its data set's partition; returns
        once Kafka has acknowledged it."""
        topic = self._topics.records
        partition = partition_for_data_set(op.data_set, topic.partitions)
        await self._produce_one(topic, partition, encode_op(op), op.data_set.encode(), b"records.v1")

    async def publish_kpi(self, kind: str, by_service: dict[str, list[Any]]) -> None:
        """KPI events of one kind (``schemas.<kind>``), one envelope per service, each on its
        service's partition; returns once Kafka has acknowledged every one."""
        topic = self._topics.for_kind(kind)
        encode = KPI_ENCODERS[kind]
        await asyncio.gather(
            *(
                self._produce_one(
                    topic,
                    partition_for_service(service, topic.partitions),
                    encode(events),
                    service.encode(),
                    f"{kind}.v1".encode(),
                )
                for service, events in by_service.items()
            )
        )

    async def _produce_one(
        self, topic: TopicSpec, partition: int, value: bytes, key: bytes, schema: bytes
    ) -> None:
        loop = self._ready_loop()
        fut: asyncio.Future[None] = loop.create_future()
        try:
            self._producer.produce(
                topic.name,
                value,
                key=key,
                partition=partition,
                headers=[("schema", schema)],
                on_delivery=partial(self._delivered, [fut]),
            )
        except (BufferError, KafkaException) as exc:
            raise BrokerUnavailable(f"Kafka producer queue refused the message: {exc}") from exc
        self._wake.set()
        await fut

    def _pending_count(self) -> int:
        return len(self._producer) if self._producer is not None else 0

    def _flush(self, partition: int) -> None:
        pending = self._pending.pop(partition, None)
        if pending is None:
            return
        if pending.timer is not None:
            pending.timer.cancel()
        waiters = pending.waiters
        try:
            self._producer.produce(
                self._topic.name,
                encode_envelope(pending.events),
                partition=partition,
                headers=[("schema", b"journey.v1")],
                on_delivery=partial(self._delivered, waiters),
            )
        except (BufferError, KafkaException) as exc:
            _settle(waiters, BrokerUnavailable(f"Kafka producer queue refused the message: {exc}"))
            return
        self._wake.set()

    def _delivered(self, waiters: list[asyncio.Future[None]], err: Any, _msg: Any) -> None:
        if err is None:
            self._brokers_down = False
            _settle(waiters, None)
        else:
            _settle(waiters, BrokerUnavailable(f"Kafka did not acknowledge: {err}"))

    async def _poll_loop(self) -> None:
        """Serve librdkafka's callbacks: every millisecond while anything is in flight, and
        every 100 ms otherwise (error callbacks), waking at once when a message is produced."""
        while self._running:
            self._producer.poll(0)
            if len(self._producer):
                await asyncio.sleep(0.001)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)
        self._producer.poll(0)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err.str()
            log.error("fatal Kafka producer error: %s", err.str())
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._brokers_down = True
            log.warning("all Kafka brokers are down")


def _settle(waiters: Iterable[asyncio.Future[None]], exc: BaseException | None) -> None:
    for fut in waiters:
        if fut.done():
            continue
        if exc is None:
            fut.set_result(None)
        else:
            fut.set_exception(exc)
