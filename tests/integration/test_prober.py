"""The availability prober against the real broker and real HTTP servers on loopback: what each
kind of service comes to on the availability topic, the registry re-read while it runs, an
unreachable broker, and ``perfplat probe`` stopped by SIGTERM / SIGINT."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer
from pydantic import SecretStr

from pipeline.broker import EmbeddedBroker
from pipeline.init import ensure_topics
from pipeline.probes import next_due_ms, phase_s
from pipeline.services import ServiceRegistryFile
from pipeline.settings import ClickHouseSettings, KafkaSettings, Settings
from pipeline.topics import partition_for_service, topics_for
from producers.kafka_config import consumer_config
from producers.prober import Prober
from schemas.availability import AvailabilityEvent, decode_envelope
from tests.conftest import unique
from tests.support.stack import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
INTERVAL_S = 5


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(3)  # past the 1 s timeout
        status = 500 if self.path == "/error" else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _service(slug: str, url: str = "", timeout_s: float = 1) -> dict[str, Any]:
    return {
        "slug": slug,
        "name": slug.title(),
        "health_check_url": url,
        "probe_interval_s": INTERVAL_S,
        "probe_timeout_s": timeout_s,
    }


def _write_services(path: Path, services: list[dict[str, Any]]) -> None:
    """As an operator would: the whole file rewritten (atomically, like an editor's save)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps({"services": services}))
    os.replace(tmp, path)


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class RunningProber:
    """The prober's own event loop in a thread, as ``perfplat probe`` runs it, stoppable."""

    def __init__(self, settings: Settings) -> None:
        self.prober = Prober(
            settings, ServiceRegistryFile(settings.services_path, check_interval_s=0.1), reload_interval_s=0.1
        )
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name="prober")

    def _main(self) -> None:
        async def run() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._started.set()
            await self.prober.run(self._stop)

        try:
            asyncio.run(run())
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> RunningProber:
        self._thread.start()
        assert self._started.wait(10)
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 20) -> float:
        """Stop as SIGTERM does; returns how long the prober took to finish."""
        started = time.monotonic()
        if self._loop is not None and self._stop is not None and self.alive:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the prober did not stop"
        return time.monotonic() - started

    def __exit__(self, *_: object) -> None:
        if self._thread.is_alive():
            self.stop()


@dataclass
class Seen:
    partition: int
    key: bytes
    headers: list[tuple[str, bytes]]
    events: list[AvailabilityEvent]


@dataclass
class TopicReader:
    """Everything on the availability topic, read as it arrives."""

    settings: Settings
    seen: list[Seen] = field(default_factory=list)
    _consumer: Any = None

    def __post_init__(self) -> None:
        self._consumer = Consumer(consumer_config(self.settings, unique("prober-reader")))
        self._consumer.subscribe([topics_for(self.settings.kafka).availability.name])

    def read_until(self, condition: Callable[[list[AvailabilityEvent]], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition(self.events()):
            if time.monotonic() > deadline:
                raise AssertionError(f"not seen in {timeout_s} s; seen {self.events()}")
            msg = self._consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            decoded = decode_envelope(msg.value())
            assert decoded.rejects == []
            self.seen.append(Seen(msg.partition(), msg.key(), msg.headers() or [], decoded.events))

    def events(self, service: str | None = None) -> list[AvailabilityEvent]:
        return [e for s in self.seen for e in s.events if service is None or e.service == service]

    def close(self) -> None:
        self._consumer.close()


@pytest.fixture
def reader(kafka_settings: Settings) -> Iterator[TopicReader]:
    ensure_topics(kafka_settings)
    r = TopicReader(kafka_settings)
    yield r
    r.close()


def _has(*slugs: str, at_least: int = 1) -> Callable[[list[AvailabilityEvent]], bool]:
    return lambda events: all(sum(e.service == s for e in events) >= at_least for s in slugs)


def test_each_kind_of_service_comes_to_its_exact_event(
    kafka_settings: Settings, reader: TopicReader, http_server: str, tmp_path: Path
) -> None:
    services_path = tmp_path / "services.json"
    refused = f"http://127.0.0.1:{free_port()}/health"
    _write_services(
        services_path,
        [
            _service("svc-ok", http_server + "/health"),
            _service("svc-error", http_server + "/error"),
            _service("svc-slow", http_server + "/slow"),
            _service("svc-refused", refused),
            _service("svc-unprobed"),
        ],
    )
    settings = kafka_settings.model_copy(update={"services_file": services_path})
    with RunningProber(settings) as running:
        reader.read_until(_has("svc-ok", "svc-error", "svc-slow", "svc-refused"), 30)
        assert running.prober.probing() == ["svc-error", "svc-ok", "svc-refused", "svc-slow"]

        # the operator removes one service and adds another while the prober runs
        _write_services(
            services_path,
            [
                _service("svc-ok", http_server + "/health"),
                _service("svc-error", http_server + "/error"),
                _service("svc-slow", http_server + "/slow"),
                _service("svc-new", http_server + "/health"),
            ],
        )
        _wait(
            lambda: running.prober.probing() == ["svc-error", "svc-new", "svc-ok", "svc-slow"], 10, "reload"
        )
        stopped_refused_ms = int(time.time() * 1000)
        reader.read_until(_has("svc-new", at_least=2), 30)  # a whole interval after the change
        took = running.stop()
    assert running.error is None
    assert took < 5

    def kinds(slug: str) -> set[tuple[bool, int, str, bool]]:
        return {(e.up, e.status, e.error, e.response_ms >= 0) for e in reader.events(slug)}

    assert kinds("svc-ok") == kinds("svc-new") == {(True, 200, "", True)}
    assert kinds("svc-error") == {(False, 500, "HTTP 500", True)}
    assert kinds("svc-slow") == {(False, 0, "timeout after 1 s", False)}
    assert kinds("svc-refused") == {(False, 0, "connection refused", False)}
    assert all(e.response_ms == -1 for e in reader.events("svc-slow") + reader.events("svc-refused"))
    assert reader.events("svc-unprobed") == []
    assert all(e.ts_ms <= stopped_refused_ms for e in reader.events("svc-refused"))

    partitions = topics_for(settings.kafka).availability.partitions
    for seen in reader.seen:
        (event,) = seen.events  # one result, one envelope
        assert seen.key == event.service.encode()
        assert seen.partition == partition_for_service(event.service, partitions)
        assert ("schema", b"availability.v1") in seen.headers
        # on the service's grid, whole seconds: the scheduled time, whoever probes
        assert event.ts_ms % 1000 == 0
        assert (event.ts_ms // 1000 - phase_s(event.service, INTERVAL_S)) % INTERVAL_S == 0
        assert event.id == f"{event.service}:{event.ts_ms}"
    new = sorted(e.ts_ms for e in reader.events("svc-new"))
    assert all(b - a == INTERVAL_S * 1000 for a, b in itertools.pairwise(new))


def test_new_settings_apply_without_waiting_for_the_old_schedule(
    kafka_settings: Settings, reader: TopicReader, http_server: str, tmp_path: Path
) -> None:
    # hourly, and not due for at least ten minutes: only the change can bring a check soon
    now_ms = int(time.time() * 1000)
    slug = next(
        f"svc-hourly-{i}"
        for i in range(1000)
        if next_due_ms(None, 3600, now_ms, phase_s(f"svc-hourly-{i}", 3600)) > now_ms + 600_000
    )
    services_path = tmp_path / "services.json"
    hourly = {**_service(slug, http_server + "/error"), "probe_interval_s": 3600}
    _write_services(services_path, [hourly])
    settings = kafka_settings.model_copy(update={"services_file": services_path})
    with RunningProber(settings) as running:
        _wait(lambda: running.prober.probing() == [slug], 10, "the service to be scheduled")
        time.sleep(0.5)
        _write_services(services_path, [_service(slug, http_server + "/health")])  # every 5 s, new URL
        reader.read_until(_has(slug), 2 * INTERVAL_S + 5)
        running.stop()
    assert running.error is None
    assert {(e.up, e.status) for e in reader.events(slug)} == {(True, 200)}


def test_an_unreachable_broker_does_not_stop_the_prober(http_server: str, tmp_path: Path) -> None:
    port = free_port()
    services_path = tmp_path / "services.json"
    _write_services(services_path, [_service("svc-ok", http_server + "/health")])
    settings = Settings(
        kafka=KafkaSettings(
            bootstrap=f"127.0.0.1:{port}", topic_prefix=unique("t"), delivery_timeout_ms=2000
        ),
        clickhouse=ClickHouseSettings(url="clickhouse://unused", database="unused"),
        visitor_secret=SecretStr("test-secret"),
        services_file=services_path,
    )
    broker = EmbeddedBroker(port, tmp_path / "broker.log")
    try:
        with RunningProber(settings) as running:
            sink = running.prober.sink
            _wait(lambda: sink.stats.failed >= 1, 30, "a failed delivery")
            assert running.alive and running.error is None
            assert sink.stats.delivered == 0

            broker.start()  # the broker comes (back): later results get through
            ensure_topics(settings)
            _wait(lambda: sink.stats.delivered >= 1, 30, "a delivery once the broker is up")
            assert running.prober.probing() == ["svc-ok"]
            running.stop()
        assert running.error is None
        reader = TopicReader(settings)
        try:
            reader.read_until(_has("svc-ok"), 20)
        finally:
            reader.close()
        assert {(e.up, e.status) for e in reader.events()} == {(True, 200)}
    finally:
        broker.stop()


def test_the_prober_stops_at_once_without_any_broker(http_server: str, tmp_path: Path) -> None:
    services_path = tmp_path / "services.json"
    _write_services(services_path, [_service("svc-ok", http_server + "/health")])
    settings = Settings(
        kafka=KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}", delivery_timeout_ms=2000),
        clickhouse=ClickHouseSettings(url="clickhouse://unused", database="unused"),
        visitor_secret=SecretStr("test-secret"),
        services_file=services_path,
    )
    with RunningProber(settings) as running:
        _wait(lambda: running.prober.sink.in_flight() >= 1, 15, "a result waiting for the broker")
        took = running.stop()
    assert running.error is None
    assert took < 2 + 1 + 2  # at most the delivery timeout of what is in flight, plus slack


def _probe_command(settings: Settings, services_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PERFPLAT_KAFKA_BOOTSTRAP": settings.bootstrap,
        "PERFPLAT_CLICKHOUSE_URL": "clickhouse://unused",
        "PERFPLAT_VISITOR_SECRET": "test-secret",
        "PERFPLAT_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "PERFPLAT_SERVICES_FILE": str(services_path),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "probe"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_perfplat_probe_publishes_and_stops_cleanly_on_a_signal(
    kafka_settings: Settings, reader: TopicReader, http_server: str, tmp_path: Path, sig: signal.Signals
) -> None:
    services_path = tmp_path / "services.json"
    _write_services(services_path, [_service("svc-cli", http_server + "/health")])
    proc = _probe_command(kafka_settings, services_path)
    try:
        reader.read_until(_has("svc-cli"), 30)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert b"prober stopped: 1 results delivered, 0 not" in err
    (event,) = reader.events("svc-cli")
    assert (event.up, event.status, event.error) == (True, 200, "")


@pytest.mark.parametrize(
    ("service", "message"),
    [
        ({"health_check_url": "file:///etc/passwd"}, "health_check_url must be an http:// or https:// URL"),
        (
            {"health_check_url": "javascript:alert(1)"},
            "health_check_url must be an http:// or https:// URL, not javascript:",
        ),
        ({"probe_interval_s": 1}, "probe_interval_s must be a whole number of seconds from 5 to 86400"),
    ],
)
def test_perfplat_probe_refuses_a_hostile_registry_at_start(
    kafka_settings: Settings, tmp_path: Path, service: dict[str, Any], message: str
) -> None:
    services_path = tmp_path / "services.json"
    _write_services(services_path, [{"slug": "svc", "name": "Svc", **service}])
    proc = _probe_command(kafka_settings, services_path)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "service #1 in the services file: " + message in err.decode()
