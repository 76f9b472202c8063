"""The Kafka publisher the ingest API awaits: an event is acknowledged only once Kafka is.

Events bound for the same partition within ``coalesce_window_ms`` travel in one envelope
message, so the stream processor's per-message cost is paid once per batch even when every
request carries a single event. Each caller awaits the delivery report of the message that
carries its events (acks=all, idempotent producer); a failed delivery or an unreachable
broker raises ``BrokerUnavailable``, which the API turns into 503 + Retry-After.

librdkafka's callbacks run on a poll thread; it hands finished deliveries back to the event
loop in batches (one ``call_soon_threadsafe`` per poll, not per message).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Producer

from pipeline.errors import BrokerUnavailable
from pipeline.settings import Settings
from pipeline.topics import TopicSpec, partition_for_visitor, topics_for
from producers.kafka_config import producer_config
from schemas.journey import JourneyEvent, encode_envelope

log = logging.getLogger(__name__)


class EventPublisher(Protocol):
    async def publish(self, events: list[JourneyEvent]) -> None: ...


@dataclass
class _Pending:
    events: list[JourneyEvent] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class KafkaPublisher:
    def __init__(self, settings: Settings, topic: TopicSpec | None = None) -> None:
        self._settings = settings
        self._topic = topic or topics_for(settings.kafka).journey
        self._window_s = settings.kafka.coalesce_window_ms / 1000
        self._max_events = settings.kafka.coalesce_max_events
        self._pending: dict[int, _Pending] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._producer: Any = None
        self._thread: threading.Thread | None = None
        self._running = False
        self._finished: list[tuple[list[asyncio.Future[None]], Any]] = []
        self._brokers_down = False
        self._fatal: str | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        conf = producer_config(self._settings)
        conf["error_cb"] = self._on_error
        self._producer = Producer(conf)
        self._running = True
        self._thread = threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        for p in list(self._pending):
            self._flush(p)
        if self._producer is not None:
            await asyncio.to_thread(self._producer.flush, 10)
        self._running = False
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)

    # --- called on the event loop -------------------------------------------------------

    async def publish(self, events: list[JourneyEvent]) -> None:
        if self._fatal:
            raise BrokerUnavailable(f"Kafka producer failed: {self._fatal}")
        if self._brokers_down and self._pending_count() > 0:
            # while every broker is down, one message at a time probes for recovery
            raise BrokerUnavailable("Kafka brokers are unavailable")
        loop = self._loop
        assert loop is not None, "publisher not started"
        by_partition: dict[int, list[JourneyEvent]] = {}
        n = self._topic.partitions
        for event in events:
            by_partition.setdefault(partition_for_visitor(event.visitor, n), []).append(event)
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
                on_delivery=lambda err, _msg: self._finished.append((waiters, err)),
            )
        except (BufferError, KafkaException) as exc:
            _settle(waiters, BrokerUnavailable(f"Kafka producer queue refused the message: {exc}"))

    def _settle_batch(self, batch: list[tuple[list[asyncio.Future[None]], Any]]) -> None:
        for waiters, err in batch:
            if err is None:
                self._brokers_down = False
                _settle(waiters, None)
            else:
                _settle(waiters, BrokerUnavailable(f"Kafka did not acknowledge: {err}"))

    # --- called on the poll thread ------------------------------------------------------

    def _poll_loop(self) -> None:
        loop = self._loop
        assert loop is not None
        while self._running:
            self._producer.poll(0.02)
            if self._finished:
                batch, self._finished = self._finished, []
                loop.call_soon_threadsafe(self._settle_batch, batch)

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
