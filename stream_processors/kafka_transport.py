"""Faust's aiokafka transport with a bounded fetch wait: how long the broker may hold a Fetch.

faust-streaming creates its worker consumer with ``fetch_max_wait_ms=1500`` and no setting to
change it. Apache Kafka answers a waiting Fetch as soon as data arrives, so there the figure
only matters when a topic is idle. Tansu (the broker of the embedded mode and of the tests and
benchmarks) does not: it holds every Fetch that finds no new data for the whole wait, so a
message produced just after such a Fetch reached it waited up to 1.5 s before the worker saw it
(measured with aiokafka on Tansu 0.6.0: a message sent 0.3 s after the previous one reached the
consumer 450 ms later with the 1.5 s wait, 77 ms later with 500 ms, under 10 ms with 50 ms). In
``perfplat bench kpi`` at 20,000 events/s it was about 0.4 s of the median freshness of ~1 s, and
most of the time the worker took to count the last events once the load stopped.

``WorkerApp`` is ``faust.App`` whose worker consumer waits ``fetch_max_wait_ms`` instead
(``KafkaSettings.fetch_max_wait_ms``, 100 ms by default). The cost of a shorter wait is one empty
Fetch per wait per broker while the topics are idle: on Tansu, one idle consumer of 24 partitions
cost the broker 4% of a core with 100 ms against 0.5% with 1.5 s.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:  # an aiokafka.AIOKafkaConsumer
        consumer = super()._create_worker_consumer(transport)
        # read by AIOKafkaConsumer.start() when it builds its fetcher; the consumer is not started yet
        if not hasattr(consumer, "_fetch_max_wait_ms"):  # pragma: no cover - an aiokafka upgrade
            raise RuntimeError("aiokafka's consumer no longer has _fetch_max_wait_ms")
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # type: ignore[attr-defined]
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class WorkerApp(faust.App):
    """``faust.App`` for a ``kafka://`` broker whose worker consumer waits at most
    ``fetch_max_wait_ms`` per Fetch."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        if fetch_max_wait_ms < 1:
            raise ValueError("fetch_max_wait_ms must be at least 1")
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)
