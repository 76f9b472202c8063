"""Ingest routes of the KPI event kinds: a service's transactions, costs and ratings.

``POST /services/{service}/transactions`` and ``/costs`` need the service's bearer token (the
services registry, ``perfplat services add``); ``POST /services/{service}/ratings`` is what the
"done" page's survey posts from the browser, so it needs none (and takes ``text/plain`` so a
page can send it without a CORS preflight). A body is one event object or an array of them;
an event may leave ``service`` out (the path names it). The answer follows the beacon's: 202
with the accepted ids once Kafka has acknowledged every valid event; with bad events, 400
naming each by index and field, the good ones still published.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from api.responses import JSONBody
from api.writes import error, unauthorized
from pipeline.beacon import SLUG, DropReason
from pipeline.clock import Clock
from pipeline.errors import BadInput, RetryableError
from pipeline.registry_file import token_matches
from pipeline.services import ServiceConfig
from producers.publisher import KpiPublisher
from schemas import cost, satisfaction, transaction
from schemas.fields import InvalidEvent, validate_all

AUTH_EXPECTED = "Expected header of form: Authorization: Bearer <token>"
KINDS: dict[str, tuple[str, Callable[..., Any], bool]] = {
    # path → (schema kind, event validator, needs the service's token)
    "transactions": (transaction.SCHEMA, transaction.validate, True),
    "costs": (cost.SCHEMA, cost.validate, True),
    "ratings": (satisfaction.SCHEMA, satisfaction.validate, False),
}


class KpiIngest:
    def __init__(
        self,
        service: Callable[[str], ServiceConfig | None],
        publisher: KpiPublisher,
        clock: Clock,
        max_body_bytes: int,
        max_batch_events: int,
        retry_after_s: int,
    ) -> None:
        self.service = service
        self.publisher = publisher
        self.clock = clock
        self.max_body_bytes = max_body_bytes
        self.max_batch_events = max_batch_events
        self.retry_after_s = retry_after_s

    def authorise(self, slug: str, needs_token: bool, request: Request) -> ServiceConfig | Response:
        config = self.service(slug) if SLUG.fullmatch(slug) else None
        if config is None:
            return error(404, f"No service named {slug[:64]}")
        if not needs_token:
            return config
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return unauthorized(AUTH_EXPECTED)
        if not config.token_hash or not token_matches(header[len("Bearer ") :], config.token_hash):
            return unauthorized(f"Unauthorized: invalid bearer token for service '{slug}'")
        return config

    async def items(self, request: Request) -> list[Any]:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise BadInput(f"body of {declared} bytes is over the limit of {self.max_body_bytes}", 413)
        body, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BadInput(f"body is over the limit of {self.max_body_bytes} bytes", 413)
            body.append(chunk)
        try:
            doc = orjson.loads(b"".join(body))
        except orjson.JSONDecodeError:
            raise BadInput("the body must be JSON: one event object or an array of them") from None
        items = doc if isinstance(doc, list) else [doc]
        if not items:
            raise BadInput("the body holds no events")
        if len(items) > self.max_batch_events:
            raise BadInput(f"at most {self.max_batch_events} events per request, got {len(items)}", 413)
        return items

    async def ingest(self, kind_path: str, slug: str, request: Request) -> Response:
        kind, validate, needs_token = KINDS[kind_path]
        config = self.authorise(slug, needs_token, request)
        if isinstance(config, Response):
            return config
        try:
            items = await self.items(request)
        except BadInput as exc:
            return error(exc.status, exc.message)
        now = self.clock.now_ms()

        def one(raw: object) -> Any:
            # the path names the service: an event may leave it out, but not name another
            if isinstance(raw, dict):
                named = raw.setdefault("service", slug)
                if named != slug:
                    raise InvalidEvent(
                        "service", DropReason.BAD_FORMAT, f"service must be {slug} (the path's)"
                    )
            return validate(raw, now, now)

        good, drops = validate_all(items, one)
        if good:
            by_service: dict[str, list[Any]] = {slug: good}
            try:
                await self.publisher.publish_kpi(kind, by_service)
            except RetryableError as exc:
                message = f"temporarily unavailable, retry later: {exc}"
                return error(503, message, {"Retry-After": str(self.retry_after_s)})
        ids = [e.id for e in good]
        if not drops:
            return JSONBody({"status": "ok", "accepted": len(good), "ids": ids}, status_code=202)
        more = f" (and {len(drops) - 10} more)" if len(drops) > 10 else ""
        return JSONBody(
            {
                "status": "error",
                "message": "; ".join(d.message for d in drops[:10]) + more,
                "errors": [d.as_dict() for d in drops],
                "accepted": len(good),
                "ids": ids,
            },
            status_code=400,
        )


def kpi_ingest_router(svc: KpiIngest) -> APIRouter:
    router = APIRouter()

    @router.post("/services/{service}/transactions")
    async def transactions(service: str, request: Request) -> Response:
        return await svc.ingest("transactions", service, request)

    @router.post("/services/{service}/costs")
    async def costs(service: str, request: Request) -> Response:
        return await svc.ingest("costs", service, request)

    @router.post("/services/{service}/ratings")
    async def ratings(service: str, request: Request) -> Response:
        return await svc.ingest("ratings", service, request)

    return router
