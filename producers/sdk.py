"""The Python producer SDK: a service's back end sends its KPI events straight to Kafka.

Transaction events, satisfaction ratings and costs (and, for the platform's prober, availability
results) go to the topics the stream processors read, in the same envelopes the HTTP write API
publishes, so a service may use either and the figures come out the same::

    from datetime import date
    from producers.sdk import Client

    with Client("kafka-1:9092,kafka-2:9092", service="apply-passport") as perfplat:
        perfplat.transaction("started", "digital", transaction_id="PP-123")
        ...
        perfplat.transaction(
            "completed", "digital", transaction_id="PP-123", cost=4.25, started_at=started
        )
        perfplat.rating(5, comment="Quick and clear")
        perfplat.cost("quarter", date(2026, 10, 1), 125000.5, channel="digital")
    # leaving the block waits (up to 10 s) until every event is delivered or counted as failed

What the client promises:

* **A bad call fails in the caller's code.** Each call runs the event kind's own ``validate()``
  (``schemas.transaction`` and friends) and raises its ``InvalidEvent`` (a ``ValueError`` naming
  the field) at once; nothing of that call is sent. A call returns the event's id: the one given,
  or one assigned here. Give your own ids when you may resend: the platform drops repeated ids.
* **Batching.** Accepted events wait in a buffer per (kind, service); a background thread sends a
  buffer as one envelope when it holds ``max_batch_events`` or ``linger_ms`` after its first event.
  The stream processors pay their cost per Kafka message (a few thousand messages per second per
  core), so an envelope of many events is what lets them keep up; librdkafka's own batching puts
  many messages in one request but leaves each a message for the consumer. An envelope holds one
  service's events, produced to the kind's topic on ``partition_for_service`` and keyed by the
  service, exactly as the ingest API does.
* **Delivery.** acks=all and the idempotent producer; librdkafka retries transient errors until
  ``message.timeout.ms`` (30 s here). Every event ends up counted once, in ``delivered`` or in
  ``failed``; for a failed envelope ``on_error`` gets a ``DeliveryFailure`` (its event ids and the
  reason). Nothing raises out of a delivery callback: an exception in ``on_error`` is logged.
* **Partitions.** The topic's partition count is read from the broker's metadata (or given as
  ``partitions=``). Until it is known events wait; if no broker answers within
  ``message.timeout.ms`` they fail like any event that could not be delivered.
* **Backpressure.** At most ``max_pending_events`` events may be accepted and not yet settled; past
  that a call waits up to ``max_block_ms`` for room, then raises ``BufferError``.
* ``flush(timeout_s)`` sends what is buffered and returns how many events still await a delivery
  report (0: all settled; ``failed`` says whether any did not make it). ``close()`` flushes, then
  gives up on what is left (counted as failed). The client flushes at interpreter exit too.

The client is thread-safe: any number of threads may call it.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from types import TracebackType
from typing import Any, Protocol

from confluent_kafka import KafkaException, Producer

from pipeline.beacon import DropReason, new_event_id
from pipeline.clock import Clock, SystemClock
from pipeline.settings import KafkaSettings
from pipeline.topics import partition_for_service, topics_for
from schemas import availability, satisfaction
from schemas import cost as cost_schema
from schemas import transaction as tx_schema
from schemas.availability import AvailabilityEvent
from schemas.fields import InvalidEvent, to_ms

log = logging.getLogger(__name__)

Instant = datetime | str | int
"""A time as the SDK takes it: an aware ``datetime``, ISO 8601 text with an offset, or epoch ms."""

DEFAULT_MESSAGE_TIMEOUT_MS = 30_000
MAX_MESSAGE_BYTES = 900_000
"""An envelope is split before it passes this: Kafka's default topic limit is 1 MB."""
_METADATA_TIMEOUT_S = 1.0
_METADATA_RETRY_S = 0.5
_IDLE_WAIT_S = 0.1
_IN_FLIGHT_POLL_S = 0.005
_PURGE_WAIT_S = 2.0

_ENCODERS: dict[str, Callable[[Sequence[Any]], bytes]] = {
    m.SCHEMA: m.encode_envelope for m in (tx_schema, satisfaction, availability, cost_schema)
}


class _Event(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def service(self) -> str: ...

    def as_row(self) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """Events that were not delivered: one envelope's worth (or one buffer's, when the topic's
    partitions could not be learnt)."""

    kind: str
    service: str
    topic: str
    event_ids: tuple[str, ...]
    reason: str


@dataclass(slots=True)
class _Batch:
    kind: str
    service: str
    born_s: float
    """Monotonic time of the first event: it fails once ``message.timeout.ms`` has passed unsent."""
    due_s: float
    events: list[_Event] = field(default_factory=list)


def sdk_producer_config(bootstrap_servers: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """librdkafka settings for the SDK: those of ``producers.kafka_config.producer_config`` (acks=all,
    idempotence, lz4), a longer delivery timeout (a service's back end does not hold an HTTP
    request open while it waits), then the caller's overrides."""
    return {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 5,
        "message.timeout.ms": DEFAULT_MESSAGE_TIMEOUT_MS,
        "socket.connection.setup.timeout.ms": 3000,
        "reconnect.backoff.max.ms": 1000,
        "client.id": "perfplat-sdk",
        "logger": logging.getLogger("producers.sdk.librdkafka"),  # not raw lines on stderr
        "message.max.bytes": 2 * MAX_MESSAGE_BYTES,
        **overrides,
    }


class Client:
    """Sends KPI events to Kafka in envelopes; see the module docstring for what it promises.

    ``service`` is the default for every call's ``service``. ``**overrides`` are librdkafka
    settings (``**{"message.timeout.ms": 5000}``) applied over the SDK's own.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic_prefix: str = "perfplat",
        *,
        service: str | None = None,
        partitions: int | None = None,
        linger_ms: float = 5.0,
        max_batch_events: int = 500,
        max_pending_events: int = 100_000,
        max_block_ms: float = 1000.0,
        on_error: Callable[[DeliveryFailure], object] | None = None,
        atexit_timeout_s: float = 10.0,
        clock: Clock | None = None,
        id_factory: Callable[[], str] = new_event_id,
        **overrides: Any,
    ) -> None:
        if max_batch_events < 1 or max_pending_events < 1:
            raise ValueError("max_batch_events and max_pending_events must be at least 1")
        if partitions is not None and partitions < 1:
            raise ValueError("partitions must be at least 1")
        topics = topics_for(KafkaSettings(topic_prefix=topic_prefix))
        self._topic_of = {kind: topics.for_kind(kind).name for kind in _ENCODERS}
        self._partition_counts: dict[str, int] = (
            {} if partitions is None else dict.fromkeys(self._topic_of.values(), partitions)
        )
        self._service = service
        self._linger_s = linger_ms / 1000
        self._max_batch_events = max_batch_events
        self._max_pending = max_pending_events
        self._max_block_s = max_block_ms / 1000
        self._on_error = on_error
        self._atexit_timeout_s = atexit_timeout_s
        self._clock: Clock = clock or SystemClock()
        self._id_factory = id_factory

        user_error_cb = overrides.pop("error_cb", None)
        conf = sdk_producer_config(bootstrap_servers, overrides)
        conf["error_cb"] = partial(_on_client_error, user_error_cb)
        self._message_timeout_s = int(conf["message.timeout.ms"]) / 1000
        self._producer: Any = Producer(conf)

        self._cond = threading.Condition()
        self._buffers: dict[tuple[str, str], _Batch] = {}
        self._unrouted: list[_Batch] = []
        """Batches waiting for their topic's partition count (only the sender thread touches it)."""
        self._next_metadata_s = 0.0
        self._metadata_problem = "no metadata yet"
        self._pending = 0
        self._delivered = 0
        self._failed = 0
        self._flushers = 0
        self._close_started = False
        self._closing = False
        self._closed = False
        self._sender = threading.Thread(target=self._run, name="perfplat-sdk-sender", daemon=True)
        self._sender.start()
        atexit.register(self._at_exit)

    # --- the calls a service makes -------------------------------------------------------------

    def transaction(
        self,
        outcome: str,
        channel: str,
        *,
        service: str | None = None,
        id: str | None = None,
        transaction_id: str = "",
        cost: float | None = None,
        timestamp: Instant | None = None,
        started_at: Instant | None = None,
    ) -> str:
        """A transaction was started, completed, failed or abandoned; returns the event's id.
        ``started_at`` (completions only) gives the time to complete; ``timestamp`` defaults to now."""
        raw: dict[str, Any] = {"outcome": outcome, "channel": channel}
        if transaction_id != "":
            raw["transaction_id"] = transaction_id
        if cost is not None:
            raw["cost"] = cost
        self._common(raw, service, id)
        self._instant(raw, "timestamp", timestamp)
        self._instant(raw, "started_at", started_at)
        now = self._clock.now_ms()
        return self._enqueue(tx_schema.SCHEMA, tx_schema.validate(raw, now, now, self._id_factory))

    def rating(
        self,
        rating: int,
        *,
        comment: str = "",
        service: str | None = None,
        id: str | None = None,
        timestamp: Instant | None = None,
    ) -> str:
        """One answer to the done page's survey, 1 (very dissatisfied) to 5 (very satisfied)."""
        raw: dict[str, Any] = {"rating": rating, "comment": comment}
        self._common(raw, service, id)
        self._instant(raw, "timestamp", timestamp)
        now = self._clock.now_ms()
        return self._enqueue(satisfaction.SCHEMA, satisfaction.validate(raw, now, now, self._id_factory))

    def cost(
        self,
        period: str,
        start: date | str,
        amount: float,
        channel: str = "all",
        *,
        service: str | None = None,
        id: str | None = None,
    ) -> str:
        """What the service spent over one period (``day`` … ``year``) starting at ``start`` (the
        first moment of the period in UTC: a ``date``, an aware ``datetime`` or ISO text). A later
        cost for the same service, period, start and channel replaces this one."""
        raw: dict[str, Any] = {"period": period, "amount": amount, "channel": channel}
        if isinstance(start, datetime):
            raw["start"] = _aware(start, "start").isoformat()
        elif isinstance(start, date):
            raw["start"] = start.isoformat()
        else:
            raw["start"] = start
        self._common(raw, service, id)
        now = self._clock.now_ms()
        return self._enqueue(cost_schema.SCHEMA, cost_schema.validate(raw, now, now, self._id_factory))

    def probe(self, event: AvailabilityEvent) -> str:
        """One probe result built with ``schemas.availability.probe_result`` (checked again here)."""
        if not isinstance(event, AvailabilityEvent):
            raise TypeError("probe() takes an AvailabilityEvent from schemas.availability.probe_result")
        checked = availability.probe_result(
            event.service, event.ts_ms, event.up, event.response_ms, event.status, event.error
        )
        if checked != event:
            raise ValueError("not a probe result: build it with schemas.availability.probe_result")
        return self._enqueue(availability.SCHEMA, checked)

    # --- settling ----------------------------------------------------------------------------------

    @property
    def delivered(self) -> int:
        """Events Kafka has acknowledged (acks=all)."""
        return self._delivered

    @property
    def failed(self) -> int:
        """Events given up on: not acknowledged within ``message.timeout.ms``, refused, or left at close."""
        return self._failed

    @property
    def pending(self) -> int:
        """Events accepted and not yet settled (buffered, or awaiting their delivery report)."""
        return self._pending

    def flush(self, timeout_s: float = 10.0) -> int:
        """Send every buffered event now and wait up to ``timeout_s`` for their delivery reports;
        returns how many events still await one."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._flushers += 1
            self._cond.notify_all()
            try:
                while self._pending > 0 and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                return self._pending
            finally:
                self._flushers -= 1

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush for up to ``timeout_s``, then stop: events still unsettled count as failed (an
        event in flight may yet have reached Kafka; resending it with its id is safe)."""
        with self._cond:
            if self._close_started:
                return
            self._close_started = True
        atexit.unregister(self._at_exit)
        self.flush(timeout_s)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._sender.join()
        for batch in self._unrouted:
            self._settle_failed(batch.kind, batch.service, batch.events, "the client was closed")
        self._unrouted = []
        # what librdkafka still holds comes back through the delivery callbacks as purged
        self._producer.purge(in_queue=True, in_flight=True, blocking=False)
        deadline = time.monotonic() + _PURGE_WAIT_S
        while len(self._producer) > 0 and time.monotonic() < deadline:
            self._producer.poll(0.05)
        self._producer.poll(0)
        with self._cond:
            if self._pending:  # reports librdkafka never gave: counted, though not attributable
                log.warning("perfplat SDK: %d events unsettled at close", self._pending)
                self._failed += self._pending
                self._pending = 0
            self._closed = True
            self._cond.notify_all()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _at_exit(self) -> None:
        self.close(self._atexit_timeout_s)

    # --- the caller's side -------------------------------------------------------------------------

    def _common(self, raw: dict[str, Any], service: str | None, event_id: str | None) -> None:
        chosen = self._service if service is None else service
        if chosen is not None:
            raw["service"] = chosen
        if event_id is not None:
            raw["id"] = event_id

    @staticmethod
    def _instant(raw: dict[str, Any], name: str, value: Instant | None) -> None:
        if value is None:
            return
        raw[name] = to_ms(_aware(value, name)) if isinstance(value, datetime) else value

    def _enqueue(self, kind: str, event: _Event) -> str:
        with self._cond:
            if self._closing:
                raise RuntimeError("the perfplat client is closed")
            deadline = time.monotonic() + self._max_block_s
            while self._pending >= self._max_pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BufferError(
                        f"{self._pending} events await delivery (max_pending_events): "
                        "the broker is slow or unreachable"
                    )
                self._cond.wait(remaining)
            self._pending += 1
            key = (kind, event.service)
            batch = self._buffers.get(key)
            if batch is None:
                now = time.monotonic()
                batch = self._buffers[key] = _Batch(kind, event.service, now, now + self._linger_s)
                self._cond.notify_all()
            batch.events.append(event)
            if len(batch.events) >= self._max_batch_events:
                batch.due_s = 0.0
                self._cond.notify_all()
        return event.id

    # --- the sender thread -------------------------------------------------------------------------

    def _run(self) -> None:
        """Send due buffers, route batches waiting for metadata, and serve librdkafka's callbacks."""
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    batches = self._take_due(now)
                    if batches or self._closing or self._pending_in_kafka() or self._metadata_due(now):
                        break
                    self._cond.wait(self._idle_wait_s(now))
                closing = self._closing
            self._route(batches)
            if closing:
                with self._cond:
                    if not self._buffers:
                        return
                continue
            self._producer.poll(_IN_FLIGHT_POLL_S if self._pending_in_kafka() else 0)

    def _take_due(self, now: float) -> list[_Batch]:
        everything = self._closing or self._flushers > 0
        due = [key for key, b in self._buffers.items() if everything or b.due_s <= now]
        return [self._buffers.pop(key) for key in due]

    def _pending_in_kafka(self) -> bool:
        return len(self._producer) > 0

    def _metadata_due(self, now: float) -> bool:
        return bool(self._unrouted) and now >= self._next_metadata_s

    def _idle_wait_s(self, now: float) -> float:
        wake = [b.due_s for b in self._buffers.values()]
        if self._unrouted:
            wake.append(self._next_metadata_s)
        return max(0.0, min([now + _IDLE_WAIT_S, *wake]) - now)

    def _route(self, batches: list[_Batch]) -> None:
        waiting, self._unrouted = [*self._unrouted, *batches], []
        now = time.monotonic()
        for batch in waiting:
            topic = self._topic_of[batch.kind]
            partitions = self._partitions(topic)
            if partitions is not None:
                self._produce(batch, topic, partition_for_service(batch.service, partitions))
            elif now - batch.born_s >= self._message_timeout_s or self._closing:
                reason = f"no partition count for {topic} within message.timeout.ms: {self._metadata_problem}"
                self._settle_failed(batch.kind, batch.service, batch.events, reason)
            else:
                self._unrouted.append(batch)

    def _partitions(self, topic: str) -> int | None:
        known = self._partition_counts.get(topic)
        if known is not None or time.monotonic() < self._next_metadata_s:
            return known
        try:
            metadata = self._producer.list_topics(timeout=_METADATA_TIMEOUT_S)
        except KafkaException as exc:
            self._metadata_problem = f"broker metadata unavailable: {exc.args[0]}"
        else:
            for name in self._topic_of.values():
                found = metadata.topics.get(name)
                if found is not None and found.error is None and found.partitions:
                    self._partition_counts[name] = len(found.partitions)
            if topic not in self._partition_counts:
                self._metadata_problem = f"topic {topic} does not exist (create it with `perfplat init`)"
        if topic not in self._partition_counts:
            self._next_metadata_s = time.monotonic() + _METADATA_RETRY_S
        return self._partition_counts.get(topic)

    def _produce(self, batch: _Batch, topic: str, partition: int) -> None:
        try:
            envelopes = _envelopes(batch.events, _ENCODERS[batch.kind])
        except Exception as exc:  # a bug, not bad input (validate ran): fail the batch, keep going
            log.exception("perfplat SDK could not encode %d %s events", len(batch.events), batch.kind)
            self._settle_failed(batch.kind, batch.service, batch.events, f"could not encode: {exc!r}")
            return
        key = batch.service.encode()
        headers = [("schema", f"{batch.kind}.v1".encode())]
        for events, value in envelopes:
            callback = partial(self._delivered_cb, batch.kind, batch.service, topic, events)
            while True:
                try:
                    self._producer.produce(
                        topic, value, key=key, partition=partition, headers=headers, on_delivery=callback
                    )
                    break
                except BufferError:  # librdkafka's queue is full: serve callbacks to make room
                    self._producer.poll(0.05)
                except KafkaException as exc:
                    self._settle_failed(batch.kind, batch.service, events, f"produce refused: {exc.args[0]}")
                    break

    def _delivered_cb(
        self, kind: str, service: str, topic: str, events: list[_Event], err: Any, _msg: Any
    ) -> None:
        try:
            if err is None:
                with self._cond:
                    self._pending -= len(events)
                    self._delivered += len(events)
                    self._cond.notify_all()
            else:
                self._settle_failed(kind, service, events, f"not delivered: {err.str()}")
        except Exception:  # never raise into librdkafka's poll
            log.exception("perfplat SDK delivery callback failed")

    def _settle_failed(self, kind: str, service: str, events: list[_Event], reason: str) -> None:
        with self._cond:
            self._pending -= len(events)
            self._failed += len(events)
            self._cond.notify_all()
        if self._on_error is None:
            log.warning("perfplat SDK: %d %s events of %s failed: %s", len(events), kind, service, reason)
            return
        failure = DeliveryFailure(kind, service, self._topic_of[kind], tuple(e.id for e in events), reason)
        try:
            self._on_error(failure)
        except Exception:
            log.exception("perfplat SDK on_error callback raised")


def _envelopes(
    events: list[_Event], encode: Callable[[Sequence[Any]], bytes]
) -> list[tuple[list[_Event], bytes]]:
    """The batch as envelopes of at most ``MAX_MESSAGE_BYTES`` each (halving until they fit; one
    event that is too large on its own goes alone, and the broker's refusal reports it)."""
    value = encode(events)
    if len(value) <= MAX_MESSAGE_BYTES or len(events) == 1:
        return [(events, value)]
    half = len(events) // 2
    return _envelopes(events[:half], encode) + _envelopes(events[half:], encode)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidEvent(
            name, DropReason.BAD_FORMAT, f"{name} must be an aware datetime (with a time zone)"
        )
    return value.astimezone(UTC)


def _on_client_error(user_cb: Callable[[Any], object] | None, err: Any) -> None:
    """librdkafka's client-level errors (broker down, and so on): logged, then the caller's
    ``error_cb`` if one was given. Never raises."""
    try:
        if err.fatal():
            log.error("perfplat SDK: fatal Kafka producer error: %s", err.str())
        else:
            log.debug("perfplat SDK: Kafka client error: %s", err.str())
        if user_cb is not None:
            user_cb(err)
    except Exception:
        log.exception("perfplat SDK error callback failed")
