"""The availability prober (``perfplat probe``): what Pingdom did for the original platform.

Every service in the services registry with a ``health_check_url`` is checked every
``probe_interval_s``: an HTTP GET that follows at most 5 redirects and must end within the
service's ``probe_timeout_s``. The service is up when the final status is 2xx or 3xx. Each
result becomes one ``schemas.availability`` event, published alone in its envelope to the
availability topic, keyed by and on the partition of its service.

The module has two halves. The pure half decides *when* (``next_due_ms``) and *what a check
means* (``classify``); it does no I/O and takes time as an argument. The edge does the rest:

- one asyncio task per probed service, so a slow service never delays another's schedule;
  checks of one service never overlap, because the timeout is shorter than the interval;
- a supervisor that re-reads the registry when it changes: new services start being probed,
  removed ones stop, changed settings apply at once (a new interval is a new schedule);
- ``KafkaResults``: a confluent-kafka producer (``producer_config``: acks=all, idempotent).
  A result counts as delivered only on its delivery report; failures are counted and logged,
  never raised, and never hold up a check: results wait for an unreachable broker up to the
  delivery timeout and are then lost, but the schedule is kept;
- SIGTERM / SIGINT stop the checks and flush what is in flight before ``run_prober`` returns.

Checks are scheduled on a grid: service ``s`` with interval ``I`` is due at the epoch seconds
``t`` with ``t ≡ phase(s) (mod I)``, ``phase`` a hash of the slug, so services spread over the
interval instead of all checking at the same second, and a check's time (its event's ``ts_ms``
and id) is the same whichever prober makes it: two probers, or a restarted one, produce the same
events, which the processors count once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
from confluent_kafka import KafkaError, KafkaException, Producer

from pipeline.clock import Clock, SystemClock
from pipeline.probes import MAX_REDIRECTS, Outcome, classify, next_due_ms, phase_s
from pipeline.services import ServiceConfig, ServiceRegistryFile
from pipeline.settings import Settings
from pipeline.topics import partition_for_service, topics_for
from producers.kafka_config import producer_config
from schemas.availability import (
    AvailabilityEvent,
    encode_envelope,
    probe_result,
)

log = logging.getLogger(__name__)

USER_AGENT = "perfplat-prober/1 (availability check)"
FAILURE_LOG_INTERVAL_S = 30.0


# --- edge: one check ------------------------------------------------------------------------


def probe_client() -> httpx.AsyncClient:
    """One client for every check: a fresh connection per check (no keep-alive, so a check
    measures what a new visitor meets), no pool limit (a slow service holds only its own
    connection), redirects followed by ``check`` itself."""
    return httpx.AsyncClient(
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
        follow_redirects=False,
    )


async def check(client: httpx.AsyncClient, service: ServiceConfig) -> Outcome:
    """GET the service's health-check URL, following at most ``MAX_REDIRECTS`` redirects, all
    within its timeout. The body is not read."""
    timeout_s = service.probe_timeout_s
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            request = client.build_request("GET", service.health_check_url, timeout=timeout_s)
            hops = 0
            while True:
                response = await client.send(request, stream=True)
                elapsed_ms = (time.monotonic() - started) * 1000
                await response.aclose()
                follow = response.next_request
                if follow is None or hops == MAX_REDIRECTS:
                    break
                request, hops = follow, hops + 1
    except Exception as exc:  # every failure is a result; cancellation still propagates
        return classify(exc, (time.monotonic() - started) * 1000, timeout_s)
    return classify(response.status_code, elapsed_ms, timeout_s, redirects_left=follow is not None)


# --- edge: Kafka ----------------------------------------------------------------------------


@dataclass
class DeliveryStats:
    delivered: int = 0
    failed: int = 0
    last_error: str = ""
    failed_since_log: int = 0


class KafkaResults:
    """Publishes probe results, one envelope per result, on the service's partition. Never
    raises: a result the producer refuses or Kafka does not acknowledge is counted and logged."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topic = topics_for(settings.kafka).availability
        self._producer: Any = None
        self._fatal = False
        self.stats = DeliveryStats()

    def _new_producer(self) -> Any:
        conf = producer_config(self._settings)
        conf["client.id"] = "perfplat-prober"
        conf["error_cb"] = self._on_error
        return Producer(conf)

    def publish(self, event: AvailabilityEvent) -> None:
        if self._producer is None or self._fatal:
            # a fatal error (idempotence broken) leaves the old producer unusable: start afresh
            self._producer, self._fatal = self._new_producer(), False
        try:
            self._producer.produce(
                self._topic.name,
                encode_envelope([event]),
                key=event.service.encode(),
                partition=partition_for_service(event.service, self._topic.partitions),
                headers=[("schema", b"availability.v1")],
                on_delivery=partial(self._delivered, event.id),
            )
        except (BufferError, KafkaException) as exc:
            self._failed(event.id, f"producer refused it: {exc}")

    def poll(self) -> None:
        """Serve delivery reports and errors (the edge calls this often)."""
        if self._producer is not None:
            self._producer.poll(0)

    def in_flight(self) -> int:
        return len(self._producer) if self._producer is not None else 0

    def close(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for the delivery reports of everything produced, give up on
        the rest (counted as failed) and release the producer; returns how many were given up."""
        producer, self._producer = self._producer, None
        if producer is None:
            return 0
        left: int = producer.flush(timeout_s)
        if left:
            producer.purge()  # their delivery reports (failures) come with the next poll
            producer.poll(0)
        close = getattr(producer, "close", None)  # confluent-kafka >= 2.9; before, on collection
        if close is not None:
            close()
        return left

    def _delivered(self, event_id: str, err: Any, _msg: Any) -> None:
        if err is None:
            self.stats.delivered += 1
        else:
            self._failed(event_id, f"Kafka did not acknowledge it: {err.str()}")

    def _failed(self, event_id: str, reason: str) -> None:
        stats = self.stats
        if stats.failed_since_log == 0:  # the first of a burst at once; the rest in log_failures
            log.warning("probe result %s not delivered: %s", event_id, reason)
        stats.failed += 1
        stats.failed_since_log += 1
        stats.last_error = reason

    def log_failures(self) -> None:
        """One line for the failures since the last one (delivery failures come in bursts)."""
        stats = self.stats
        if stats.failed_since_log:
            log.warning(
                "%d probe results not delivered in the last %.0f s (last: %s)",
                stats.failed_since_log,
                FAILURE_LOG_INTERVAL_S,
                stats.last_error,
            )
            stats.failed_since_log = 0

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = True
            log.error("fatal Kafka producer error: %s", err.str())
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            log.warning(
                "all Kafka brokers are down; probe results wait for them (up to the delivery timeout)"
            )


# --- edge: the loop -------------------------------------------------------------------------


@dataclass
class _Probing:
    task: asyncio.Task[None]
    changed: asyncio.Event
    """Set when the service's settings change, so a long wait is cut short and rescheduled."""
    up: bool | None = None


@dataclass
class Prober:
    """Runs the checks of every probed service until ``stop`` is set (see ``run``)."""

    settings: Settings
    services: ServiceRegistryFile
    clock: Clock = field(default_factory=SystemClock)
    reload_interval_s: float = 1.0
    results: KafkaResults | None = None
    _configs: dict[str, ServiceConfig] = field(default_factory=dict, init=False)
    _probing: dict[str, _Probing] = field(default_factory=dict, init=False)
    _stopping: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _registry_error: str = field(default="", init=False)

    def __post_init__(self) -> None:
        if self.results is None:
            self.results = KafkaResults(self.settings)

    @property
    def sink(self) -> KafkaResults:
        assert self.results is not None
        return self.results

    def probing(self) -> list[str]:
        """The slugs being checked now."""
        return sorted(self._probing)

    async def run(self, stop: asyncio.Event) -> None:
        """Check every probed service on its schedule until ``stop`` is set, then cancel the checks
        in progress and wait (up to the delivery timeout) for the results already published."""
        sink = self.sink
        last_failure_log = time.monotonic()
        async with probe_client() as client:
            try:
                while not stop.is_set():
                    self._reconcile(client)
                    sink.poll()
                    if time.monotonic() - last_failure_log >= FAILURE_LOG_INTERVAL_S:
                        sink.log_failures()
                        last_failure_log = time.monotonic()
                    await _wait(stop, 0.05 if sink.in_flight() else self.reload_interval_s)
            finally:
                await self._stop_all()
                flush_s = self.settings.kafka.delivery_timeout_ms / 1000 + 1
                left = await asyncio.to_thread(sink.close, flush_s)
                sink.log_failures()
                if left:
                    log.warning("%d probe results were still unacknowledged at shutdown", left)
                log.info(
                    "prober stopped: %d results delivered, %d not", sink.stats.delivered, sink.stats.failed
                )

    def _reconcile(self, client: httpx.AsyncClient) -> None:
        """Bring the running checks in line with the registry (re-read when it changed)."""
        try:
            wanted = {s.slug: s for s in self.services.current().probed()}
        except (OSError, ValueError) as exc:
            if str(exc) != self._registry_error:
                self._registry_error = str(exc)
                log.error(
                    "services registry %s unusable, still probing as before: %s", self.services.path, exc
                )
            return
        if self._registry_error:
            self._registry_error = ""
            log.info("services registry %s usable again", self.services.path)
        previous, self._configs = self._configs, wanted
        for slug in [s for s in self._probing if s not in wanted]:
            task = self._probing.pop(slug).task
            task.cancel()
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)
            log.info("stopped probing %s", slug)
        for slug, probing in list(self._probing.items()):
            if probing.task.done():  # a bug, not a check result: say so and start it again
                died = None if probing.task.cancelled() else probing.task.exception()
                log.error("probing %s stopped unexpectedly: %r; restarting it", slug, died)
                del self._probing[slug]
        for slug, config in wanted.items():
            if slug not in self._probing:
                changed = asyncio.Event()
                task = asyncio.create_task(self._probe_forever(slug, client, changed), name=f"probe-{slug}")
                self._probing[slug] = _Probing(task, changed)
                log.info("probing %s every %d s", slug, config.probe_interval_s)
            elif previous.get(slug) != config:
                self._probing[slug].changed.set()

    async def _probe_forever(self, slug: str, client: httpx.AsyncClient, changed: asyncio.Event) -> None:
        """Check one service on its schedule; removed from the registry, it is cancelled."""
        last_due: int | None = None
        while True:
            config = self._configs[slug]
            interval = config.probe_interval_s
            now = self.clock.now_ms()
            due = next_due_ms(last_due, interval, now, phase_s(slug, interval))
            changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), max(due - now, 0) / 1000)
                continue  # new settings: the schedule is worked out again (a new interval, a new grid)
            config = self._configs[slug]
            outcome = await check(client, config)
            self._report(slug, due, outcome)
            last_due = due

    def _report(self, slug: str, due_ms: int, outcome: Outcome) -> None:
        event = probe_result(
            slug, due_ms - due_ms % 1000, outcome.up, outcome.response_ms, outcome.status, outcome.error
        )
        self.sink.publish(event)
        probing = self._probing.get(slug)
        if probing is not None and probing.up is not outcome.up:
            if outcome.up:
                log.info("%s is up (HTTP %d, %d ms)", slug, outcome.status, outcome.response_ms)
            else:
                log.warning("%s is down: %s", slug, outcome.error)
            probing.up = outcome.up

    async def _stop_all(self) -> None:
        tasks = [p.task for p in self._probing.values()] + list(self._stopping)
        self._probing.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _wait(stop: asyncio.Event, timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout_s)


def run_prober(settings: Settings) -> int:
    """``perfplat probe``: probe until SIGTERM or SIGINT. A services file that cannot be read
    at start is an error (exit 1); later, a broken edit is logged and the last good one kept."""
    # httpx narrates every request at INFO; the prober's own lines say what matters
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    services = ServiceRegistryFile(settings.services_path)
    try:
        probed = services.reload().probed()
    except (OSError, ValueError) as exc:
        log.error("cannot read the services registry %s: %s", settings.services_path, exc)
        return 1
    log.info(
        "probing %d services from %s; results to %s at %s",
        len(probed),
        settings.services_path,
        topics_for(settings.kafka).availability.name,
        settings.bootstrap,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Prober(settings, services).run(stop)

    asyncio.run(main())
    return 0
