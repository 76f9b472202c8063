"""The backdrop read API: ``GET|OPTIONS /data/{group}/{type}``, the legacy ``GET|OPTIONS /{name}``
(with ETag / 304), ``/_status``, ``/_status/data-sets``, and ``/_ops/{set}/{op}`` (is a write
applied yet, for the write side's ``?wait=queryable``).

Routes are thin: find the data set, hand the query string to ``pipeline.query`` (parse and
validate) and ``pipeline.query_run`` (compile, run on the store, shape), then set the original's
headers: cache lifetime by ``realtime``/``published``, CORS on everything, CSV on request.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.op_status import StoreOpStatus
from api.responses import JSONBody
from pipeline.clock import Clock
from pipeline.datasets import NAME, DataSetConfig, RegistryFile
from pipeline.errors import BadInput
from pipeline.query import parse_query
from pipeline.query_run import execute, to_csv
from pipeline.record_rows import SlotMap
from pipeline.staleness import epochs_sql, newest_by_set, newest_sql, status
from pipeline.store import Store

UNPUBLISHED = "Warning: This data-set is unpublished. Data may be subject to change or be inaccurate."
CORS = {"Access-Control-Allow-Origin": "*"}
PREFLIGHT = {
    **CORS,
    "Access-Control-Max-Age": "86400",
    "Access-Control-Allow-Headers": "cache-control, govuk-request-id, request-id",
}


def not_found(message: str = "data_set not found") -> JSONBody:
    return JSONBody({"status": "error", "message": message}, status_code=404, headers=CORS)


class SlotCache:
    """Each data set's field → slot map, re-read at most every ``ttl_s``. A stale map is still
    correct: a field it does not know yet is read from ``doc`` instead of its slot."""

    def __init__(self, store: Store, ttl_s: float = 2.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._maps: dict[str, tuple[float, SlotMap]] = {}

    def get(self, data_set: str) -> SlotMap:
        hit = self._maps.get(data_set)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        rows = self.store.query(
            f"SELECT field, any(slot) FROM {self.store.database}.record_fields "
            "WHERE data_set = %(ds)s GROUP BY field",
            {"ds": data_set},
        )
        slots = SlotMap({str(f): int(s) for f, s in rows})
        self._maps[data_set] = (now, slots)
        return slots


class DataReader:
    def __init__(self, registry: RegistryFile, store: Store, clock: Clock) -> None:
        self.registry = registry
        self.store = store
        self.clock = clock
        self.slots = SlotCache(store)
        self.ops = StoreOpStatus(store)

    def _query(self, config: DataSetConfig, params: list[tuple[str, str]]) -> tuple[dict[str, Any], str]:
        now = datetime.fromtimestamp(self.clock.now_ms() / 1000, tz=UTC)
        query = parse_query(params, config.raw_queries_allowed, now)
        slots = self.slots.get(config.name)
        doc = execute(query, config.name, slots, self.store.database, self.store.query)
        fmt = "csv" if query.format == "csv" else "json"
        if fmt == "csv":
            return doc, to_csv(doc["data"])
        return doc, ""

    async def respond(self, config: DataSetConfig | None, request: Request, etag: bool) -> Response:
        if config is None or not config.queryable:
            return not_found()
        headers = dict(CORS)
        if not config.published:
            headers["Cache-Control"] = "no-cache"
        else:
            headers["Cache-Control"] = f"max-age={120 if config.realtime else 1800}, must-revalidate"
        try:
            doc, csv_text = await asyncio.to_thread(
                self._query, config, list(request.query_params.multi_items())
            )
        except BadInput as exc:
            return JSONBody({"status": "error", "message": exc.message}, status_code=exc.status, headers=CORS)
        if csv_text:
            if not config.published:
                return not_found()
            headers["Content-Disposition"] = "attachment; filename=export.csv"
            return Response(csv_text, media_type="text/csv", headers=headers)
        if not config.published:
            doc["warning"] = UNPUBLISHED
        response = JSONBody(doc, headers=headers)
        if etag:
            tag = hashlib.sha1(response.body).hexdigest()
            response.headers["ETag"] = tag
            if request.headers.get("if-none-match", "").strip('"') == tag:
                return Response(status_code=304, headers={**headers, "ETag": tag})
        return response

    async def stale_sets(self) -> dict[str, Any]:
        db = self.store.database
        newest_rows = await asyncio.to_thread(self.store.query, newest_sql(db))
        epoch_rows = await asyncio.to_thread(self.store.query, epochs_sql(db))
        newest = newest_by_set(newest_rows, epoch_rows)
        return status(self.registry.current().sets.values(), newest, self.clock.now_ms())


def preflight() -> Response:
    return Response(status_code=200, headers=PREFLIGHT)


def options_router() -> APIRouter:
    """OPTIONS answers need no data set; both the read and the write side serve them."""
    router = APIRouter()

    @router.options("/data/{group}/{data_type}")
    async def data_options(group: str, data_type: str) -> Response:
        return preflight()

    @router.options("/{name}")
    async def legacy_options(name: str) -> Response:
        return preflight()

    return router


def status_router(reader: DataReader | None) -> APIRouter:
    router = APIRouter()

    @router.get("/_status")
    async def app_status() -> JSONBody:
        return JSONBody({"status": "ok", "message": "app is up"}, headers={"Cache-Control": "no-cache"})

    if reader is not None:

        @router.get("/_status/data-sets")
        async def data_sets_status() -> JSONBody:
            return JSONBody(await reader.stale_sets(), headers={"Cache-Control": "no-cache"})

    return router


def data_read_router(reader: DataReader) -> APIRouter:
    router = APIRouter()

    @router.get("/_ops/{data_set}/{op_id}")
    async def op_status(data_set: str, op_id: str) -> JSONBody:
        return JSONBody(
            {"rows": await reader.ops.rows_applied(data_set, op_id)}, headers={"Cache-Control": "no-store"}
        )

    @router.get("/data/{group}/{data_type}")
    async def read_data(group: str, data_type: str, request: Request) -> Response:
        return await reader.respond(reader.registry.current().get(group, data_type), request, etag=False)

    return router


def legacy_read_router(reader: DataReader) -> APIRouter:
    """``GET /{name}``: registered after every other GET route."""
    router = APIRouter()

    @router.get("/{name}")
    async def read_by_name(name: str, request: Request) -> Response:
        if not NAME.fullmatch(name) or name.startswith("_"):
            return not_found("Not Found")
        return await reader.respond(reader.registry.current().by_name(name), request, etag=True)

    return router
