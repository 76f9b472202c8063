"""The backdrop write API: ``POST|PUT /data/{group}/{type}``, ``DELETE|PATCH …/{id}``, the
deprecated ``POST /{name}``, and ``POST /upload/{group}/{type}`` for spreadsheets.

Routes are thin: find the data set, check the bearer token, decode and validate the body with
``pipeline.records`` (every error of every record in one 400, nothing published), publish one
write operation, answer. A 200 means Kafka has the operation (acks=all). Records are queryable
within about a second; ``?wait=queryable`` makes the write wait until they are. DELETE and
PATCH always wait, because only the processor knows whether the ``_id`` exists.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

from fastapi import APIRouter, Request, UploadFile
from starlette.responses import Response

from api.responses import JSONBody
from pipeline.clock import Clock
from pipeline.datasets import NAME, DataSetConfig, RegistryFile, token_matches
from pipeline.errors import BadInput
from pipeline.records import RecordsRejected, decode_body, validate_records
from pipeline.spreadsheet import check_upload, parse_spreadsheet
from producers.publisher import OpPublisher
from schemas.records import OpKind, Record, WriteOp

NO_CACHE = {"Cache-Control": "no-cache"}
AUTH_EXPECTED = "Expected header of form: Authorization: Bearer <token>"
DEPRECATION = (
    "Deprecation Warning: accessing by data-set name is deprecated, Please use the /data-group/data-type form"
)


class OpStatus(Protocol):
    async def rows_applied(self, data_set: str, op_id: str) -> int | None:
        """Rows the operation wrote once it is applied; None while it is not (yet)."""
        ...


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONBody:
    return JSONBody(
        {"status": "error", "message": message}, status_code=status, headers={**NO_CACHE, **(headers or {})}
    )


def unauthorized(message: str) -> JSONBody:
    return error(401, message, {"WWW-Authenticate": "bearer"})


class WriteService:
    def __init__(
        self,
        registry: RegistryFile,
        publisher: OpPublisher,
        status: OpStatus,
        clock: Clock,
        max_body_bytes: int,
        wait_ms: int,
    ) -> None:
        self.registry = registry
        self.publisher = publisher
        self.status = status
        self.clock = clock
        self.max_body_bytes = max_body_bytes
        self.wait_ms = wait_ms

    def authorise(self, config: DataSetConfig | None, request: Request) -> DataSetConfig | JSONBody:
        """The original's order: unknown set (404), then header (401), then token (401)."""
        if config is None:
            return error(404, "Could not find data_set_config")
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return unauthorized(AUTH_EXPECTED)
        token = header[len("Bearer ") :]
        if not token_matches(token, config.token_hash):
            return unauthorized(f"Unauthorized: Invalid bearer token '{token}' for '{config.name}'")
        return config

    async def body(self, request: Request) -> bytes:
        """The request body, refused with 413 as soon as it passes the limit (never buffered whole)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise BadInput(f"Request body of {declared} bytes is larger than {self.max_body_bytes}", 413)
        chunks, size = [], 0
        stream: AsyncIterator[bytes] = request.stream()
        async for chunk in stream:
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BadInput(f"Request body is larger than {self.max_body_bytes} bytes", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    def records(self, config: DataSetConfig, items: list[Any]) -> list[Record]:
        return validate_records(items, config.auto_ids, config.schema, lambda: uuid.uuid4().hex)

    async def publish(self, kind: OpKind, config: DataSetConfig, records: list[Record]) -> str:
        op = WriteOp(kind, uuid.uuid4().hex, config.name, self.clock.now_ms(), tuple(records))
        await self.publisher.publish_op(op)
        return op.op_id

    async def wait(self, data_set: str, op_id: str) -> int | None:
        """Rows the operation wrote, polling until it is applied or the wait runs out (None)."""
        deadline = self.clock.now_ms() + self.wait_ms
        delay = 0.01
        while True:
            rows = await self.status.rows_applied(data_set, op_id)
            if rows is not None or self.clock.now_ms() >= deadline:
                return rows
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.1)


def _messages(exc: RecordsRejected) -> JSONBody:
    return JSONBody({"messages": exc.messages}, status_code=400, headers=NO_CACHE)


def _bad(exc: BadInput) -> JSONBody:
    """The original answers some write errors as ``{"messages": […]}``, the rest as status+message."""
    body = getattr(exc, "body", None)
    if body is not None:
        return JSONBody(body, status_code=exc.status, headers=NO_CACHE)
    return error(exc.status, exc.message)


async def _post(
    svc: WriteService, config: DataSetConfig | JSONBody, request: Request, legacy: bool
) -> Response:
    if isinstance(config, JSONBody):
        return config
    try:
        raw = await svc.body(request)
        items = decode_body(request.headers.get("content-type"), request.headers.get("content-encoding"), raw)
        records = svc.records(config, items)
    except RecordsRejected as exc:
        return _messages(exc)
    except BadInput as exc:
        return _bad(exc)
    doc: dict[str, Any] = {"status": "ok"}
    if records:
        op_id = await svc.publish("post", config, records)
        if request.query_params.get("wait") == "queryable":
            doc["queryable"] = await svc.wait(config.name, op_id) is not None
    if legacy:
        doc["message"] = DEPRECATION
    return JSONBody(doc, headers=NO_CACHE)


def write_router(svc: WriteService) -> APIRouter:
    router = APIRouter()

    @router.post("/data/{group}/{data_type}")
    async def post_records(group: str, data_type: str, request: Request) -> Response:
        config = svc.authorise(svc.registry.current().get(group, data_type), request)
        return await _post(svc, config, request, legacy=False)

    @router.put("/data/{group}/{data_type}")
    async def empty_data_set(group: str, data_type: str, request: Request) -> Response:
        config = svc.authorise(svc.registry.current().get(group, data_type), request)
        if isinstance(config, JSONBody):
            return config
        try:
            items = decode_body(
                request.headers.get("content-type"),
                request.headers.get("content-encoding"),
                await svc.body(request),
            )
        except BadInput as exc:
            return _bad(exc)
        if items:
            return error(400, "Not implemented: you can only pass an empty JSON list")
        op_id = await svc.publish("empty", config, [])
        if request.query_params.get("wait") == "queryable":
            await svc.wait(config.name, op_id)
        return JSONBody(
            {"status": "ok", "message": f"{config.name} now contains 0 records"}, headers=NO_CACHE
        )

    async def by_id(kind: OpKind, group: str, data_type: str, record_id: str, request: Request) -> Response:
        config = svc.authorise(svc.registry.current().get(group, data_type), request)
        if isinstance(config, JSONBody):
            return config
        fields: dict[str, Any] = {}
        if kind == "patch":
            try:
                items = decode_body(
                    request.headers.get("content-type"),
                    request.headers.get("content-encoding"),
                    await svc.body(request),
                )
                if len(items) != 1:
                    return error(400, "PATCH takes one JSON object")
                patch = (
                    {k: v for k, v in items[0].items() if k != "_id"}
                    if isinstance(items[0], dict)
                    else items[0]
                )
                (checked,) = validate_records([patch], (), None, lambda: record_id)
            except RecordsRejected as exc:
                return _messages(exc)
            except BadInput as exc:
                return _bad(exc)
            record = Record(record_id, True, checked.ts_ms, checked.fields)
        else:
            record = Record(record_id, True, None, fields)
        op_id = await svc.publish(kind, config, [record])
        rows = await svc.wait(config.name, op_id)
        if rows is None:
            return JSONBody(
                {"status": "ok", "message": f"{kind} of {record_id} accepted; not applied yet"},
                status_code=202,
                headers=NO_CACHE,
            )
        if rows == 0:
            return JSONBody(
                {"messages": f"No record found with id {record_id}"}, status_code=400, headers=NO_CACHE
            )
        return JSONBody({"status": "ok"}, headers=NO_CACHE)

    @router.delete("/data/{group}/{data_type}/{record_id}")
    async def delete_record(group: str, data_type: str, record_id: str, request: Request) -> Response:
        return await by_id("delete", group, data_type, record_id, request)

    @router.patch("/data/{group}/{data_type}/{record_id}")
    async def patch_record(group: str, data_type: str, record_id: str, request: Request) -> Response:
        return await by_id("patch", group, data_type, record_id, request)

    @router.post("/upload/{group}/{data_type}")
    async def upload(group: str, data_type: str, request: Request, file: UploadFile) -> Response:
        config = svc.authorise(svc.registry.current().get(group, data_type), request)
        if isinstance(config, JSONBody):
            return config
        data = await file.read()
        try:
            check_upload(file.filename or "", data)
            items = parse_spreadsheet(data, config.upload_format, file.filename or "")
            records = svc.records(config, items)
        except RecordsRejected as exc:
            return _messages(exc)
        except BadInput as exc:
            return _bad(exc)
        if records:
            op_id = await svc.publish("post", config, records)
            if request.query_params.get("wait") == "queryable":
                await svc.wait(config.name, op_id)
        return JSONBody({"status": "ok", "records": len(records)}, headers=NO_CACHE)

    return router


def legacy_write_router(svc: WriteService) -> APIRouter:
    """``POST /{name}``: registered last, after every other POST route."""
    router = APIRouter()

    @router.post("/{name}")
    async def post_by_name(name: str, request: Request) -> Response:
        if not NAME.fullmatch(name) or name.startswith("_") or len(name) < 2:
            return error(404, "Not Found")
        config = svc.authorise(svc.registry.current().by_name(name), request)
        return await _post(svc, config, request, legacy=True)

    return router
