"""Server-Sent Events routes: a service's live figures (``GET /services/{service}/live``) and the
platform's (``GET /live``), pushed as they change. What an event holds and when one is due is
``pipeline.live_events``; this module runs the feeds and writes the streams.

One feed per key (a service, or the platform) reads the figures every ``interval_ms``, however
many subscribers it has: 100 dashboards on one service cost one users-now query (through a
``LiveReader``, so concurrent readings of one key are one computation) and one transaction query
per interval, not 100. A feed starts with its first subscriber and stops with its last, so no
task outlives its streams. A subscriber gets the feed's newest figures at once, then each change
(a reading equal to the last one sends nothing) and a keep-alive comment when idle.

A failed reading (the store unavailable) keeps the last figures; the first failure of a run is
logged, and its end. A client that disconnects ends its stream quietly: Starlette cancels the
stream, its generator leaves the feed in ``finally``.

Errors: a name that is not a known service's slug is 404, as on the KPI routes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable
from typing import Any

from fastapi import APIRouter
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from api.kpi_read import shown
from api.read import LiveReader
from pipeline.beacon import SLUG
from pipeline.clock import Clock
from pipeline.errors import BadInput
from pipeline.live_events import (
    KEEP_ALIVE_MS,
    Changes,
    Figures,
    Snapshot,
    Subscriber,
    day_tx,
    day_tx_query,
    platform_figures,
    retry_frame,
    service_figures,
)
from pipeline.store import Store

log = logging.getLogger(__name__)

Read = Callable[[], Awaitable[Figures]]
ServiceExists = Callable[[str], bool]
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
TASK_PREFIX = "live-feed:"


def _monotonic_ms() -> int:
    return int(asyncio.get_running_loop().time() * 1000)


class Feed:
    """One key's poller: the newest snapshot, and an event set when a newer one arrives."""

    def __init__(self, name: str, read: Read, clock: Clock, interval_ms: int) -> None:
        self.name = name
        self.latest: Snapshot | None = None
        self.changed = asyncio.Event()
        self.subscribers = 0
        self._read = read
        self._clock = clock
        self._interval_s = interval_ms / 1000
        self._changes = Changes()
        self.task = asyncio.get_running_loop().create_task(self._run(), name=TASK_PREFIX + name)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failing = False
        while True:
            started = loop.time()
            try:
                figures = await self._read()
            except Exception as exc:  # any failure: keep the last figures, try again next interval
                if not failing:
                    log.warning("live figures of %s not read (the last are kept): %r", self.name, exc)
                failing = True
            else:
                if failing:
                    log.warning("live figures of %s are read again", self.name)
                failing = False
                snapshot = self._changes.observe(figures, self._clock.now_ms())
                if snapshot is not None:
                    self.latest = snapshot
                    self.changed.set()
                    self.changed = asyncio.Event()
            await asyncio.sleep(max(0.0, started + self._interval_s - loop.time()))


class Feeds:
    """The running feeds by key; a key's feed exists while it has subscribers."""

    def __init__(self, clock: Clock, interval_ms: int, keep_alive_ms: int = KEEP_ALIVE_MS) -> None:
        if interval_ms <= 0:
            raise ValueError("interval_ms must be positive")
        self.clock = clock
        self.interval_ms = interval_ms
        self.keep_alive_ms = keep_alive_ms
        self.running: dict[Hashable, Feed] = {}

    def _join(self, key: Hashable, name: str, read: Read) -> Feed:
        feed = self.running.get(key)
        if feed is None:
            feed = self.running[key] = Feed(name, read, self.clock, self.interval_ms)
        feed.subscribers += 1
        return feed

    def _leave(self, key: Hashable, feed: Feed) -> None:
        feed.subscribers -= 1
        if feed.subscribers == 0:
            del self.running[key]
            feed.task.cancel()

    async def stream(self, key: Hashable, name: str, read: Read) -> AsyncGenerator[bytes, None]:
        """The frames of one subscriber: ``retry``, the newest figures, each change, keep-alives."""
        feed = self._join(key, name, read)
        try:
            yield retry_frame()
            subscriber = Subscriber(_monotonic_ms(), self.keep_alive_ms)
            while True:
                frame = subscriber.next_frame(feed.latest, _monotonic_ms())
                if frame:
                    yield frame
                    continue
                changed = feed.changed  # taken before waiting: a newer snapshot sets this one
                try:
                    async with asyncio.timeout(subscriber.wait_ms(_monotonic_ms()) / 1000):
                        await changed.wait()
                except TimeoutError:
                    pass
        finally:
            self._leave(key, feed)


class EventStream(StreamingResponse):
    """A ``text/event-stream`` response that closes its generator however the response ends (a
    client gone while a frame was being sent leaves the generator at a ``yield``)."""

    media_type = "text/event-stream"

    def __init__(self, frames: AsyncGenerator[bytes, None]) -> None:
        super().__init__(frames, headers=HEADERS)
        self._frames = frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._frames.aclose()


def live_router(
    reader: LiveReader,
    store: Store,
    clock: Clock,
    service_exists: ServiceExists,
    interval_ms: int,
    keep_alive_ms: int = KEEP_ALIVE_MS,
) -> APIRouter:
    """``GET /live`` and ``GET /services/{service}/live``. Needs the app's error handlers
    (``api.errors``) for the 404."""
    feeds = Feeds(clock, interval_ms, keep_alive_ms)
    router = APIRouter()

    async def platform() -> Figures:
        users: dict[str, Any] = await reader.users_now(None)
        return platform_figures(int(users["users_now"]), clock.now_ms())

    def service_read(slug: str) -> Read:
        async def read() -> Figures:
            now_ms = clock.now_ms()
            sql, params = day_tx_query(store.database, slug, now_ms)
            users, rows = await asyncio.gather(
                reader.users_now(slug), asyncio.to_thread(store.query, sql, params)
            )
            return service_figures(slug, int(users["users_now"]), day_tx(slug, rows), now_ms)

        return read

    @router.get("/live")
    async def platform_live() -> EventStream:
        """The platform's users now, pushed when it changes."""
        return EventStream(feeds.stream("platform", "the platform", platform))

    @router.get("/services/{service}/live")
    async def service_live(service: str) -> EventStream:
        """A service's users now and day-so-far volumes, pushed when they change."""
        if not SLUG.fullmatch(service) or not service_exists(service):
            raise BadInput(f"No service named {shown(service)}", 404)
        return EventStream(feeds.stream(("service", service), service, service_read(service)))

    return router
