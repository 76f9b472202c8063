"""Running the Faust worker: ``perfplat worker`` (distributed) and the embedded core process.

The embedded core process also serves the read API from the same event loop, because chdb
allows one process per data directory and this process owns it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import faust
import uvicorn

from pipeline.init import ensure_tables, ensure_topics
from pipeline.settings import Settings
from pipeline.store import open_store
from stream_processors.app import make_app

log = logging.getLogger(__name__)


class _GuestServer(uvicorn.Server):
    """uvicorn as a guest in Faust's event loop: Faust owns the signals and the shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run_worker(settings: Settings, serve_read: bool) -> None:
    ensure_topics(settings)
    store = open_store(settings)
    ensure_tables(store)
    app = make_app(settings, store)

    if serve_read:
        from api.app import read_app

        config = uvicorn.Config(
            read_app(settings, store),
            host=settings.api.host,
            port=settings.api.read_port,
            loop="none",
            lifespan="on",  # the read app's lifespan runs the alert evaluator
            access_log=False,
            log_level="warning",
        )
        server = _GuestServer(config)

        @app.task  # type: ignore[untyped-decorator]
        async def serve_read_api() -> None:
            await server.serve()

    worker = faust.Worker(app, loglevel=settings.log_level.lower(), override_logging=False, quiet=True)
    try:
        worker.execute_from_commandline()
    finally:
        store.close()
