"""The live event streams (``api.live_stream``) over real HTTP, on both backends: the read app
(``api.app.read_app``) served by uvicorn on a thread of its own, against a store written the
way the processors write it (journey rows into ``journey_in``, transactions into ``tx_in``),
read with httpx streaming and a parser of the bytes as the SSE specification reads them.

What is asserted: the first event comes at once; a change is pushed within 2 s; an unchanged
state pushes nothing but keep-alive comments; the figures equal the polling routes' (users now,
the day's KPI summary); unknown services are 404; one feed per key whatever the subscribers,
and no feed task left once they disconnect, with nothing logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from api.app import read_app
from api.errors import install_error_handlers
from api.live_stream import TASK_PREFIX, live_router
from api.read import LiveReader
from pipeline.clock import SystemClock
from pipeline.kpi_rows import journey_columns, tx_columns
from pipeline.services import ServiceConfig, ServiceRegistryFile
from pipeline.settings import ApiSettings, Settings
from pipeline.store import Columns, Store
from schemas.journey import JourneyEvent
from schemas.migrations import migrate
from schemas.transaction import TransactionEvent
from tests.support.sse import Sse
from tests.support.stack import free_port, wait_until

pytestmark = pytest.mark.integration

SERVICE = "live-svc"
INTERVAL_MS = 200
PUSH_WITHIN_S = 2.0


class CountingStore:
    """The real store, counting the queries that reach it (the answers are the store's own)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.database = store.database
        self.queries = 0
        self._lock = threading.Lock()

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._store.execute(sql, params)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self._lock:
            self.queries += 1
        return self._store.query(sql, params)

    def query_values(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self._lock:
            self.queries += 1
        return self._store.query_values(sql, params)

    def insert(self, table: str, columns: Columns) -> None:
        self._store.insert(table, columns)

    def server_version(self) -> tuple[int, ...]:
        return self._store.server_version()

    def close(self) -> None:
        self._store.close()


class Served:
    """An ASGI app in uvicorn, on a thread with an event loop of its own."""

    def __init__(self, app: Any) -> None:
        self.base_url = f"http://127.0.0.1:{free_port()}"
        port = int(self.base_url.rsplit(":", 1)[1])
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            http="httptools",
            ws="none",
            lifespan="off",
            log_config=None,  # uvicorn's records reach the root logger, so caplog sees them
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.server.serve(),))

    def __enter__(self) -> Served:
        self.thread.start()
        wait_until(lambda: self.server.started, 10, 0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.loop.close()

    def feed_tasks(self) -> list[str]:
        """The names of the live feed tasks running in the server's loop."""

        async def names() -> list[str]:
            return sorted(t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith(TASK_PREFIX))

        return asyncio.run_coroutine_threadsafe(names(), self.loop).result(5)


@contextlib.contextmanager
def subscribe(client: httpx.Client, path: str) -> Iterator[Sse]:
    with client.stream("GET", path) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        sse = Sse(response)
        assert sse.frame() == {"retry": "3000"}
        yield sse


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def visit(store: Store, service: str, visitors: Sequence[int]) -> None:
    """Journey events as the journey sink writes them, arrived now."""
    t = now_ms()
    events = [JourneyEvent(uuid.uuid4().hex, service, "page", "x", "", "/", t, t, v) for v in visitors]
    store.insert("journey_in", journey_columns(events))


def transact(store: Store, service: str, facts: Sequence[tuple[str, str]]) -> None:
    """Transaction events (channel, outcome) as the KPI sink writes them, stamped now."""
    t = now_ms()
    events = [
        TransactionEvent(uuid.uuid4().hex, service, f"x{i}", outcome, channel, -1, t, -1, t)
        for i, (channel, outcome) in enumerate(facts)
    ]
    store.insert("tx_in", tx_columns(events))


@pytest.fixture
def counted(store: Store, tmp_path: Path) -> CountingStore:
    migrate(store, store.database)
    ServiceRegistryFile(tmp_path / "services.json").create(ServiceConfig(SERVICE, "Live service"))
    return CountingStore(store)


@pytest.fixture
def served(counted: CountingStore, tmp_path: Path) -> Iterator[Served]:
    settings = Settings(data_dir=tmp_path, api=ApiSettings(sse_interval_ms=INTERVAL_MS))
    with Served(read_app(settings, counted, SystemClock())) as s:
        yield s


@pytest.fixture
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.base_url, timeout=httpx.Timeout(10.0)) as c:
        yield c


def quiet(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_service_stream_sends_its_figures_at_once_then_each_change(
    counted: CountingStore, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    t0 = time.monotonic()
    with subscribe(client, f"/services/{SERVICE}/live") as sse:
        fields, first, at = sse.event()
        assert at - t0 < 1.5  # at once: the feed reads on its first subscriber's arrival
        assert first["service"] == SERVICE
        assert first["users_now"] == 0
        assert first["completion_rate"] is None and first["digital_takeup"] is None
        assert {n for v in first["volumes"].values() for n in v.values()} == {0}
        ids = [int(fields["id"])]

        time.sleep(5 * INTERVAL_MS / 1000)  # several readings of an unchanged state
        visit(counted, SERVICE, [1, 2, 2])
        pushed = time.monotonic()
        fields, figures, at = sse.event()  # had an unchanged reading been sent, it would be this one
        assert figures["users_now"] == 2
        assert at - pushed < PUSH_WITHIN_S
        ids.append(int(fields["id"]))

        transact(counted, SERVICE, [("digital", "started"), ("digital", "completed"), ("phone", "started")])
        pushed = time.monotonic()
        fields, figures, at = sse.event()
        assert at - pushed < PUSH_WITHIN_S
        ids.append(int(fields["id"]))
        assert figures["users_now"] == 2
        assert figures["volumes"]["digital"] == {"started": 1, "completed": 1, "failed": 0, "abandoned": 0}
        assert figures["volumes"]["phone"]["started"] == 1
        assert figures["completion_rate"] == 0.5
        assert figures["digital_takeup"] == 1.0
        assert ids == sorted(set(ids))

        summary = client.get(f"/services/{SERVICE}/kpis", params={"period": "day"}).json()
        assert figures["volumes"] == summary["volumes"]["window"]
        assert figures["day_start"] == summary["window"]["start"]
        for kpi in ("completion_rate", "digital_takeup"):
            assert figures[kpi] == summary["kpis"][kpi]["value"]
        assert figures["users_now"] == client.get(f"/services/{SERVICE}/users-now").json()["users_now"]
    assert quiet(caplog) == []


def test_the_platform_stream_counts_users_of_every_service(
    counted: CountingStore, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    visit(counted, SERVICE, [10])
    with subscribe(client, "/live") as sse:
        _, first, _ = sse.event()
        assert set(first) == {"users_now", "at"}
        assert first["users_now"] == 1 == client.get("/users-now").json()["users_now"]
        visit(counted, "not-registered", [11, 12])  # the platform counts every service's users
        pushed = time.monotonic()
        _, figures, at = sse.event()
        assert figures["users_now"] == 3
        assert at - pushed < PUSH_WITHIN_S
    assert quiet(caplog) == []


@pytest.mark.parametrize("name", ["nope", "Not%20A%20Slug", "x" * 200])
def test_an_unknown_service_is_404_and_starts_no_feed(
    name: str, served: Served, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    r = client.get(f"/services/{name}/live")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status"] == "error"
    assert body["message"].startswith("No service named ")
    assert served.feed_tasks() == []
    assert quiet(caplog) == []


def test_subscribers_share_one_feed_per_key_and_leave_no_task_behind(
    counted: CountingStore, served: Served, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with contextlib.ExitStack() as stack:
        streams = [stack.enter_context(subscribe(client, f"/services/{SERVICE}/live")) for _ in range(3)]
        streams.append(stack.enter_context(subscribe(client, "/live")))
        firsts = [sse.event()[1] for sse in streams]
        assert [f["users_now"] for f in firsts] == [0, 0, 0, 0]
        assert served.feed_tasks() == [TASK_PREFIX + SERVICE, TASK_PREFIX + "the platform"]
        streams[0].response.close()  # one subscriber of three leaves: its feed keeps running
        visit(counted, SERVICE, [7])
        assert [sse.event()[1]["users_now"] for sse in streams[1:]] == [1, 1, 1]
        assert served.feed_tasks() == [TASK_PREFIX + SERVICE, TASK_PREFIX + "the platform"]
    wait_until(lambda: served.feed_tasks() == [], 2, 0.05)

    with subscribe(client, f"/services/{SERVICE}/live") as sse:  # a new subscriber starts it anew
        assert sse.event()[1]["users_now"] == 1
        assert served.feed_tasks() == [TASK_PREFIX + SERVICE]
    wait_until(lambda: served.feed_tasks() == [], 2, 0.05)
    assert quiet(caplog) == []


def test_many_subscribers_cost_one_reading_per_interval(
    counted: CountingStore, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    subscribers = 20
    with contextlib.ExitStack() as stack:
        streams = [
            stack.enter_context(subscribe(client, f"/services/{SERVICE}/live")) for _ in range(subscribers)
        ]
        for sse in streams:
            sse.event()
        before, t0 = counted.queries, time.monotonic()
        time.sleep(2.0)
        queries, elapsed = counted.queries - before, time.monotonic() - t0
    readings = elapsed * 1000 / INTERVAL_MS
    # a reading is two queries (users now, the day's transactions); one feed, not one per subscriber
    assert 2 * (readings - 3) <= queries <= 2 * (readings + 2), (queries, readings)
    assert quiet(caplog) == []


def test_an_unchanged_state_sends_only_keep_alive_comments(
    counted: CountingStore, caplog: pytest.LogCaptureFixture
) -> None:
    """With a short keep-alive (the routes' default is 15 s): the live router on its own."""
    clock = SystemClock()
    app = FastAPI()
    install_error_handlers(app, 5)
    app.include_router(
        live_router(LiveReader(counted, clock, 100), counted, clock, lambda s: s == SERVICE, 100, 300)
    )
    with (
        Served(app) as served,
        httpx.Client(base_url=served.base_url, timeout=10.0) as client,
        subscribe(client, f"/services/{SERVICE}/live") as sse,
    ):
        sse.event()
        t0 = time.monotonic()
        frames = [sse.frame() for _ in range(4)]  # about 12 readings of the same figures
        assert frames == [{"comment": "keep-alive"}] * 4
        assert 0.3 * 4 - 0.1 <= time.monotonic() - t0 < 3
        visit(counted, SERVICE, [1])
        _, figures, _ = sse.event()
        assert figures["users_now"] == 1
    assert quiet(caplog) == []
