"""Ingest routes: ``POST /beacon`` and the ``GET /beacon.gif`` pixel. Parse, validate, publish.

A 202 is sent only after Kafka acknowledged every valid event of the request. A batch with bad
events still publishes its good ones; the answer is then 400 and names each bad event by index
and field, with the ids of the events that were accepted.
"""

from __future__ import annotations

import base64

from fastapi import APIRouter, Request, Response
from api.responses import JSONBody

from pipeline.beacon import Limits, Visit, check_content_type, parse_body, query_event, validate_events
from pipeline.clock import Clock
from pipeline.errors import BadInput
from pipeline.visitor import SaltCache
from producers.publisher import EventPublisher

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


class IngestService:
    """What the routes need, built once at start-up."""

    def __init__(
        self, publisher: EventPublisher, salts: SaltCache, clock: Clock, limits: Limits, max_body_bytes: int
    ) -> None:
        self.publisher = publisher
        self.salts = salts
        self.clock = clock
        self.limits = limits
        self.max_body_bytes = max_body_bytes

    def visit(self, request: Request) -> Visit:
        now = self.clock.now_ms()
        ip = request.client.host if request.client else ""
        return Visit(now, self.salts.salt(now), ip, request.headers.get("user-agent", ""))

    async def read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise BadInput("Content-Length is not a number")
            if int(declared) > self.max_body_bytes:
                raise BadInput(f"body of {declared} bytes is over the limit of {self.max_body_bytes}", 413)
            return await request.body()
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BadInput(f"body is over the limit of {self.max_body_bytes} bytes", 413)
            chunks.append(chunk)
        return b"".join(chunks)


def ingest_router(svc: IngestService) -> APIRouter:
    router = APIRouter()

    @router.post("/beacon", status_code=202)
    async def beacon(request: Request) -> Response:
        check_content_type(request.headers.get("content-type"))
        raws = parse_body(await svc.read_body(request), svc.limits)
        events, drops = validate_events(raws, svc.visit(request), svc.limits)
        if events:
            await svc.publisher.publish(events)
        ids = [e.id for e in events]
        if drops:
            return JSONBody(
                {
                    "status": "error",
                    "message": "; ".join(d.message for d in drops[:10])
                    + (f" (and {len(drops) - 10} more)" if len(drops) > 10 else ""),
                    "errors": [d.as_dict() for d in drops],
                    "accepted": len(events),
                    "ids": ids,
                },
                status_code=400,
            )
        return JSONBody({"status": "ok", "accepted": len(events), "ids": ids}, status_code=202)

    @router.get("/beacon.gif")
    async def pixel(request: Request) -> Response:
        raw = query_event(dict(request.query_params))
        events, drops = validate_events([raw], svc.visit(request), svc.limits)
        if drops:
            raise BadInput(drops[0].message)
        await svc.publisher.publish(events)
        return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})

    return router
