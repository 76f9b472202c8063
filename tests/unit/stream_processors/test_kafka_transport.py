"""The worker's Kafka transport (``stream_processors.kafka_transport``): the worker consumer that
Faust builds waits at the broker ``KafkaSettings.fetch_max_wait_ms`` per Fetch, not Faust's fixed
1.5 s (Tansu holds a Fetch that finds nothing new for the whole wait)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.settings import KafkaSettings, Settings
from stream_processors.app import make_app
from stream_processors.kafka_transport import WorkerApp


class _NoStore:
    """make_app only hands the store to the sinks; nothing here writes."""

    database = "perfplat"


def worker_consumer_wait_ms(settings: Settings) -> Any:
    app = make_app(settings, _NoStore())  # type: ignore[arg-type]
    assert isinstance(app, WorkerApp)

    thread = app.consumer._thread  # type: ignore[attr-defined]

    async def build() -> int:
        # built as Faust builds it (in the consumer thread's loop), but never started
        consumer = thread._create_worker_consumer(app.transport)
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()

    try:
        return thread.thread_loop.run_until_complete(build())
    finally:
        thread.thread_loop.close()
        app.loop.close()


def test_the_worker_consumer_waits_the_configured_fetch_time(tmp_path: Path) -> None:
    settings = Settings(kafka=KafkaSettings(fetch_max_wait_ms=123), data_dir=tmp_path)
    assert worker_consumer_wait_ms(settings) == 123


def test_the_default_fetch_wait_is_well_below_fausts_fixed_one(tmp_path: Path) -> None:
    assert worker_consumer_wait_ms(Settings(data_dir=tmp_path)) == KafkaSettings().fetch_max_wait_ms <= 250


def test_a_fetch_wait_below_one_ms_is_refused() -> None:
    with pytest.raises(ValueError, match="fetch_max_wait_ms"):
        WorkerApp("x", fetch_max_wait_ms=0)
    with pytest.raises(ValueError, match="fetch_max_wait_ms"):
        KafkaSettings(fetch_max_wait_ms=0)
