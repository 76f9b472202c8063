"""FastAPI app factories. Which routers a process serves depends on how perfplat runs:

- embedded ingest process: ``/beacon`` routes; read routes are proxied to the core process, so
  the user has one base URL while ingest keeps a core (and a GIL) of its own;
- embedded core process: read routes, next to the Faust worker that owns chdb;
- distributed ``perfplat api``: ingest and read routes against Kafka and a ClickHouse server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware

from api.errors import install_error_handlers
from api.ingest import ASGIApp, IngestFastPath, IngestService
from api.read import LiveReader, read_router
from api.responses import JSONBody
from pipeline.beacon import Limits
from pipeline.clock import Clock, SystemClock
from pipeline.settings import Settings
from pipeline.store import Store
from pipeline.visitor import SaltCache
from producers.publisher import KafkaPublisher

HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
)


def _base(settings: Settings, title: str, lifespan: object = None) -> FastAPI:
    app = FastAPI(title=title, default_response_class=JSONBody, lifespan=lifespan)  # type: ignore[arg-type]
    install_error_handlers(app, settings.api.retry_after_s)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.api.cors_origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["content-type"],
        max_age=86400,
    )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _ingest_service(settings: Settings, publisher: KafkaPublisher, clock: Clock) -> IngestService:
    limits = Limits(settings.api.max_batch_events, settings.api.max_field_chars)
    salts = SaltCache(settings.visitor_secret.get_secret_value().encode())
    return IngestService(publisher, salts, clock, limits, settings.api.max_body_bytes)


def _with_ingest(app: FastAPI, settings: Settings, svc: IngestService) -> ASGIApp:
    return IngestFastPath(app, svc, settings.api.cors_origins, settings.api.retry_after_s)


def ingest_app(settings: Settings, read_upstream: str | None = None, clock: Clock | None = None) -> ASGIApp:
    clock = clock or SystemClock()
    publisher = KafkaPublisher(settings)
    upstream: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await publisher.start()
        if read_upstream:
            upstream["client"] = httpx.AsyncClient(
                base_url=read_upstream, timeout=10, limits=httpx.Limits(max_keepalive_connections=64)
            )
        yield
        await publisher.close()
        if "client" in upstream:
            await upstream["client"].aclose()

    app = _base(settings, "perfplat ingest", lifespan)

    if read_upstream:

        @app.get("/{path:path}", include_in_schema=False)
        async def proxy(path: str, request: Request) -> Response:
            """Everything that is not ingest is the read side's, one hop away on loopback."""
            try:
                r = await upstream["client"].get(
                    "/" + path,
                    params=request.query_params,
                    headers={"accept": request.headers.get("accept", "*/*")},
                )
            except httpx.HTTPError as exc:
                return JSONBody(
                    {"status": "error", "message": f"read side unavailable: {exc}"},
                    status_code=503,
                    headers={"Retry-After": str(settings.api.retry_after_s)},
                )
            headers = {k: v for k, v in r.headers.items() if k.lower() not in HOP_HEADERS}
            return Response(r.content, status_code=r.status_code, headers=headers)

    return _with_ingest(app, settings, _ingest_service(settings, publisher, clock))


def read_app(settings: Settings, store: Store, clock: Clock | None = None) -> FastAPI:
    clock = clock or SystemClock()
    app = _base(settings, "perfplat read")
    app.include_router(read_router(LiveReader(store, clock, settings.api.users_now_cache_ms)))
    return app


def api_app(settings: Settings, store: Store, clock: Clock | None = None) -> ASGIApp:
    """Distributed mode: ingest and read in one app, any number of processes."""
    clock = clock or SystemClock()
    publisher = KafkaPublisher(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await publisher.start()
        yield
        await publisher.close()

    app = _base(settings, "perfplat", lifespan)
    app.include_router(read_router(LiveReader(store, clock, settings.api.users_now_cache_ms)))
    return _with_ingest(app, settings, _ingest_service(settings, publisher, clock))
