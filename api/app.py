"""App factories. Which routes a process serves depends on how perfplat runs (the beacon routes
are a raw ASGI layer in front of FastAPI, see ``api.ingest``):

- embedded ingest process: ``/beacon`` routes; read routes are proxied to the core process, so
  the user has one base URL while ingest keeps a core (and a GIL) of its own;
- embedded core process: read routes, next to the Faust worker that owns chdb;
- distributed ``perfplat api``: ingest and read routes against Kafka and a ClickHouse server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.admin import admin_router, services_admin_router
from api.alerts import AlertReader, AlertRunner, alerts_router
from api.dashboard import Dashboard, dashboard_router
from api.data_read import DataReader, data_read_router, legacy_read_router, options_router, status_router
from api.errors import install_error_handlers
from api.ingest import ASGIApp, IngestFastPath, IngestService, Receive, Scope, Send
from api.kpi_ingest import KpiIngest, kpi_ingest_router
from api.kpi_read import KpiReader, kpi_router
from api.live_stream import live_router
from api.op_status import StoreOpStatus, UpstreamOpStatus
from api.read import LiveReader, read_router
from api.responses import JSONBody
from api.static_files import static_files_router
from api.upstream import UpstreamPool, UpstreamUnavailable
from api.writes import OpStatus, WriteService, legacy_write_router, write_router
from pipeline.beacon import Limits
from pipeline.clock import Clock, SystemClock
from pipeline.datasets import RegistryFile
from pipeline.services import ServiceRegistryFile
from pipeline.settings import Settings
from pipeline.store import Store
from pipeline.visitor import SaltCache
from producers.publisher import KafkaPublisher, KpiPublisher

FORWARDED_HEADERS = (b"authorization", b"if-none-match", b"origin", b"govuk-request-id", b"accept-encoding")
HOP_HEADERS = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length"})


def _base(settings: Settings, title: str, lifespan: object = None) -> FastAPI:
    app = FastAPI(title=title, default_response_class=JSONBody, lifespan=lifespan)  # type: ignore[arg-type]
    install_error_handlers(app, settings.api.retry_after_s)
    app.include_router(static_files_router())
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.api.cors_origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=[
            "content-type",
            "content-encoding",
            "authorization",
            "cache-control",
            "govuk-request-id",
            "request-id",
        ],
        max_age=86400,
    )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _ingest_service(settings: Settings, publisher: KafkaPublisher, clock: Clock) -> IngestService:
    limits = Limits(settings.api.max_batch_events, settings.api.max_field_chars)
    salts = SaltCache(settings.visitor_secret.get_secret_value().encode())
    return IngestService(
        publisher, salts, clock, limits, settings.api.max_body_bytes, frozenset(settings.api.trusted_proxies)
    )


def _with_ingest(app: ASGIApp, settings: Settings, svc: IngestService) -> ASGIApp:
    return IngestFastPath(app, svc, settings.api.cors_origins, settings.api.retry_after_s)


def ingest_app(settings: Settings, read_port: int | None = None, clock: Clock | None = None) -> ASGIApp:
    """The embedded ingest process: the beacon, and (with ``read_port``) every other route
    forwarded to the core process's read side on loopback."""
    clock = clock or SystemClock()
    publisher = KafkaPublisher(settings)
    upstream = UpstreamPool("127.0.0.1", read_port) if read_port else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await publisher.start()
        yield
        await publisher.close()
        if upstream is not None:
            upstream.close()

    app = _base(settings, "perfplat ingest", lifespan)
    svc = _ingest_service(settings, publisher, clock)
    registry = RegistryFile(settings.registry_path)
    status: OpStatus = UpstreamOpStatus(upstream) if upstream is not None else _NeverApplied()
    writes = _writes(settings, registry, publisher, status, clock)
    _write_routes(app, settings, registry, writes, publisher, None)
    if upstream is None:
        return _with_ingest(app, settings, svc)
    return _with_ingest(_Forward(app, upstream, settings.api.retry_after_s), settings, svc)


class _Forward:
    """ASGI: ``/healthz`` and CORS preflights stay here; every other GET goes to the read side."""

    def __init__(self, app: FastAPI, upstream: UpstreamPool, retry_after_s: int) -> None:
        self.app = app
        self.upstream = upstream
        self.retry_after = str(retry_after_s).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or scope["path"] == "/healthz":
            return await self.app(scope, receive, send)
        target = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        request_headers = dict(scope["headers"])
        accept = request_headers.get(b"accept", b"*/*")
        extra = tuple((k, request_headers[k]) for k in FORWARDED_HEADERS if k in request_headers)
        if accept.startswith(b"text/event-stream") or _is_live(scope["path"]):
            return await self._stream(target, extra, receive, send)
        try:
            status, headers, body = await self.upstream.get(target, accept, extra)
        except UpstreamUnavailable as exc:
            status, body = 503, orjson.dumps({"status": "error", "message": str(exc)})
            headers = [(b"content-type", b"application/json"), (b"retry-after", self.retry_after)]
        headers = [(k, v) for k, v in headers if k not in HOP_HEADERS]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _stream(
        self, target: str, extra: tuple[tuple[bytes, bytes], ...], receive: Receive, send: Send
    ) -> None:
        """A Server-Sent Events route (``EventSource`` asks with ``Accept: text/event-stream``):
        relayed as the read side writes it, until either end goes."""
        try:
            status, headers, reader, writer = await self.upstream.stream(target, extra)
        except UpstreamUnavailable as exc:
            body = orjson.dumps({"status": "error", "message": str(exc)})
            headers = [(b"content-type", b"application/json"), (b"retry-after", self.retry_after)]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        chunked = (b"transfer-encoding", b"chunked") in headers
        headers = [(k, v) for k, v in headers if k not in HOP_HEADERS]
        await send({"type": "http.response.start", "status": status, "headers": headers})

        async def relay() -> None:
            while chunk := await (read_chunk(reader) if chunked else reader.read(65_536)):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async def client_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        tasks = [asyncio.ensure_future(relay()), asyncio.ensure_future(client_gone())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            writer.close()
        if tasks[0] in done and not tasks[0].cancelled() and tasks[0].exception() is None:
            await send({"type": "http.response.body", "body": b""})


def _is_live(path: str) -> bool:
    """A Server-Sent Events route (``/live``, ``/services/{s}/live``): streamed whatever the
    client's ``Accept`` says, as the read side answers it with a stream."""
    return path == "/live" or (path.startswith("/services/") and path.endswith("/live"))


async def read_chunk(reader: asyncio.StreamReader) -> bytes:
    """The next chunk of a chunked HTTP/1.1 body; ``b""`` at its end (a zero-size chunk)."""
    size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
    if size == 0:
        return b""
    data = await reader.readexactly(size + 2)
    return data[:-2]


class _NeverApplied:
    async def rows_applied(self, data_set: str, op_id: str) -> int | None:
        return None


def _writes(
    settings: Settings, registry: RegistryFile, publisher: KafkaPublisher, status: OpStatus, clock: Clock
) -> WriteService:
    return WriteService(
        registry, publisher, status, clock, settings.api.max_write_bytes, settings.api.write_wait_ms
    )


def _write_routes(
    app: FastAPI,
    settings: Settings,
    registry: RegistryFile,
    writes: WriteService,
    publisher: KpiPublisher,
    reader: DataReader | None,
) -> None:
    """Every data-set route of a process, in matching order: fixed paths first, then the
    legacy by-name routes that match any single path segment."""
    app.include_router(status_router(reader))
    app.include_router(admin_router(registry, settings.admin_token.get_secret_value()))
    app.include_router(
        services_admin_router(
            ServiceRegistryFile(settings.services_path), settings.admin_token.get_secret_value()
        )
    )
    app.include_router(options_router())
    app.include_router(write_router(writes))
    services = ServiceRegistryFile(settings.services_path)
    kpi = KpiIngest(
        lambda slug: services.current().get(slug),
        publisher,
        writes.clock,
        settings.api.max_body_bytes,
        settings.api.max_batch_events,
        settings.api.retry_after_s,
    )
    app.include_router(kpi_ingest_router(kpi))
    if reader is not None:
        app.include_router(data_read_router(reader))
        app.include_router(legacy_read_router(reader))
    app.include_router(legacy_write_router(writes))


def _read_routes(app: FastAPI, settings: Settings, store: Store, clock: Clock) -> DataReader:
    app.include_router(read_router(LiveReader(store, clock, settings.api.users_now_cache_ms)))
    services = ServiceRegistryFile(settings.services_path)
    app.include_router(
        dashboard_router(
            Dashboard(
                KpiReader(
                    store,
                    clock,
                    lambda slug: services.current().get(slug) is not None,
                    lambda group: [c.slug for c in services.current().entries.values() if c.group == group],
                    settings.api.kpi_cache_ms,
                ),
                LiveReader(store, clock, settings.api.users_now_cache_ms),
                lambda: list(services.current().entries.values()),
                clock,
                settings.api.kpi_cache_ms,
            )
        )
    )
    app.include_router(
        kpi_router(
            store,
            clock,
            lambda slug: services.current().get(slug) is not None,
            lambda group: [c.slug for c in services.current().entries.values() if c.group == group],
            settings.api.kpi_cache_ms,
        )
    )
    app.include_router(
        live_router(
            LiveReader(store, clock, settings.api.users_now_cache_ms),
            store,
            clock,
            lambda slug: services.current().get(slug) is not None,
            settings.api.sse_interval_ms,
        )
    )
    return DataReader(RegistryFile(settings.registry_path), store, clock)


def _alerts(app: FastAPI, settings: Settings, store: Store, clock: Clock) -> AlertRunner:
    """``GET /services/{service}/alerts``, and the evaluator the caller's lifespan runs."""
    services = ServiceRegistryFile(settings.services_path)
    app.include_router(alerts_router(AlertReader(store, services)))
    return AlertRunner(store, clock, services, RegistryFile(settings.registry_path), settings.alerts)


def read_app(settings: Settings, store: Store, clock: Clock | None = None) -> FastAPI:
    """The embedded core's read side (writes arrive at the ingest process)."""
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with alerts.running():
            yield

    app = _base(settings, "perfplat read", lifespan)
    reader = _read_routes(app, settings, store, clock)
    alerts = _alerts(app, settings, store, clock)
    app.include_router(status_router(reader))
    app.include_router(admin_router(reader.registry, settings.admin_token.get_secret_value()))
    app.include_router(
        services_admin_router(
            ServiceRegistryFile(settings.services_path), settings.admin_token.get_secret_value()
        )
    )
    app.include_router(options_router())
    app.include_router(data_read_router(reader))
    app.include_router(legacy_read_router(reader))
    return app


def api_app(settings: Settings, store: Store, clock: Clock | None = None) -> ASGIApp:
    """Distributed mode: ingest and read in one app, any number of processes."""
    clock = clock or SystemClock()
    publisher = KafkaPublisher(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await publisher.start()
        async with alerts.running():
            yield
        await publisher.close()

    app = _base(settings, "perfplat", lifespan)
    reader = _read_routes(app, settings, store, clock)
    alerts = _alerts(app, settings, store, clock)
    writes = _writes(settings, reader.registry, publisher, StoreOpStatus(store), clock)
    _write_routes(app, settings, reader.registry, writes, publisher, reader)
    return _with_ingest(app, settings, _ingest_service(settings, publisher, clock))
