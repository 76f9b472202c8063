"""uvicorn entry points for the HTTP processes. Each is an entry point: it reads settings once."""

from __future__ import annotations

import gc

import uvicorn

from api.ingest import ASGIApp
from pipeline.settings import Settings, load_settings


def _quiet_gc() -> None:
    """Move start-up objects out of the collector's sight and collect young objects less often:
    a full collection over the imported frameworks was a visible share of the beacon's p99."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)


def embedded_ingest() -> ASGIApp:
    """Factory for the embedded ingest process(es): ingest + a proxy to the core's read side."""
    from api.app import ingest_app

    settings = load_settings()
    app = ingest_app(settings, read_port=settings.api.read_port)
    _quiet_gc()
    return app


def distributed_api() -> ASGIApp:
    from api.app import api_app
    from pipeline.init import ensure_tables, ensure_topics
    from pipeline.store import open_store

    settings = load_settings()
    ensure_topics(settings)
    store = open_store(settings)
    ensure_tables(store)
    app = api_app(settings, store)
    _quiet_gc()
    return app


def run_http(settings: Settings, factory: str, port: int, workers: int) -> None:
    uvicorn.run(
        factory,
        factory=True,
        host=settings.api.host,
        port=port,
        workers=workers if workers > 1 else None,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=5,
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )
