"""Read routes for live figures. Parse, call the core's builders, run on the store, shape.

The users-now figure is cached for ``users_now_cache_ms`` and computed once however many
dashboards poll at the same moment (single flight): a live figure, not a per-request scan.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Query

from api.responses import JSONBody
from pipeline.beacon import SLUG
from pipeline.clock import Clock
from pipeline.errors import BadInput
from pipeline.live import (
    UsersNowQuery,
    minute_counts_query,
    minute_counts_sql,
    shape_minute_counts,
    shape_users_now,
    users_now_sql,
)
from pipeline.store import Store

log = logging.getLogger(__name__)


class TtlCache:
    """Single-flight cache: one computation per key per ``ttl_ms``, shared by concurrent callers."""

    def __init__(self, clock: Clock, ttl_ms: int) -> None:
        self._clock = clock
        self._ttl_ms = ttl_ms
        self._entries: dict[Any, tuple[int, asyncio.Future[Any]]] = {}

    async def get(self, key: Any, compute: Callable[[], Awaitable[Any]]) -> Any:
        now = self._clock.now_ms()
        entry = self._entries.get(key)
        if entry is not None and (not entry[1].done() or now < entry[0]):
            return await asyncio.shield(entry[1])
        fut: asyncio.Future[Any] = asyncio.ensure_future(compute())
        self._entries[key] = (now + self._ttl_ms, fut)
        try:
            return await asyncio.shield(fut)
        except Exception:
            self._entries.pop(key, None)
            raise


class StaleWhileRevalidate:
    """A cache for figures many dashboards poll: after the first computation of a key, a caller
    never waits for one. An answer older than ``ttl_ms`` is still returned at once, and one
    refresh (single flight) starts in the background; so a figure is at most ``ttl_ms`` plus one
    computation old, and the read costs a dictionary lookup."""

    def __init__(self, clock: Clock, ttl_ms: int) -> None:
        self._clock = clock
        self._ttl_ms = ttl_ms
        self._values: dict[Any, tuple[int, Any]] = {}
        self._refreshing: dict[Any, asyncio.Future[Any]] = {}

    async def get(self, key: Any, compute: Callable[[], Awaitable[Any]]) -> Any:
        entry = self._values.get(key)
        if entry is None:
            return await self._refresh(key, compute)
        if self._clock.now_ms() >= entry[0] and key not in self._refreshing:
            asyncio.ensure_future(self._refresh(key, compute)).add_done_callback(_log_failure)
        return entry[1]

    async def _refresh(self, key: Any, compute: Callable[[], Awaitable[Any]]) -> Any:
        running = self._refreshing.get(key)
        if running is not None:
            return await asyncio.shield(running)
        started = self._clock.now_ms()
        fut: asyncio.Future[Any] = asyncio.ensure_future(compute())
        self._refreshing[key] = fut
        try:
            value = await asyncio.shield(fut)
        finally:
            self._refreshing.pop(key, None)
        self._values[key] = (started + self._ttl_ms, value)
        return value


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("refreshing a cached figure failed (the last one is served): %s", task.exception())


class LiveReader:
    def __init__(self, store: Store, clock: Clock, cache_ms: int) -> None:
        self.store = store
        self.clock = clock
        self._cache = TtlCache(clock, cache_ms)

    async def _query(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self.store.query, sql, params)

    async def users_now(self, service: str | None) -> dict[str, Any]:
        async def compute() -> dict[str, Any]:
            q = UsersNowQuery(service, self.clock.now_ms())
            return shape_users_now(q, await self._query(*users_now_sql(q, self.store.database)))

        result: dict[str, Any] = await self._cache.get(("users-now", service), compute)
        return result

    async def minute_counts(self, service: str, start_at: str | None, end_at: str | None) -> dict[str, Any]:
        q = minute_counts_query(service, start_at, end_at, self.clock.now_ms())
        return shape_minute_counts(q, await self._query(*minute_counts_sql(q, self.store.database)))


def _service(slug: str) -> str:
    if not SLUG.fullmatch(slug):
        raise BadInput("service must be a slug: lower-case letters, digits, '-' or '_'", 404)
    return slug


def read_router(reader: LiveReader) -> APIRouter:
    router = APIRouter()
    no_store = {"Cache-Control": "no-cache"}

    @router.get("/users-now")
    async def platform_users_now() -> JSONBody:
        return JSONBody(await reader.users_now(None), headers=no_store)

    @router.get("/services/{service}/users-now")
    async def service_users_now(service: str) -> JSONBody:
        return JSONBody(await reader.users_now(_service(service)), headers=no_store)

    @router.get("/services/{service}/events-per-minute")
    async def events_per_minute(
        service: str, start_at: str | None = Query(None), end_at: str | None = Query(None)
    ) -> JSONBody:
        return JSONBody(await reader.minute_counts(_service(service), start_at, end_at), headers=no_store)

    return router
