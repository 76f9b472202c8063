"""Ingest routes: ``POST /beacon`` and the ``GET /beacon.gif`` pixel. Parse, validate, publish.

They are served by a small ASGI layer in front of the FastAPI app rather than as FastAPI routes:
the beacon is the hottest path in the platform and FastAPI's middleware stack costs several
times the work of the route itself (measured: ~1.9k requests/s through FastAPI against the
target of 4k). Everything else falls through to FastAPI.

A 202 is sent only after Kafka acknowledged every valid event of the request. A batch with bad
events still publishes its good ones; the answer is then 400 and names each bad event by index
and field, with the ids of the events that were accepted.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from pipeline.beacon import Limits, Visit, check_content_type, parse_body, query_event, validate_events
from pipeline.clock import Clock
from pipeline.errors import BadInput, RetryableError
from pipeline.visitor import SaltCache, client_ip
from producers.publisher import EventPublisher

log = logging.getLogger(__name__)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class IngestService:
    """What the ingest routes need, built once at start-up."""

    def __init__(
        self,
        publisher: EventPublisher,
        salts: SaltCache,
        clock: Clock,
        limits: Limits,
        max_body_bytes: int,
        trusted_proxies: frozenset[str] = frozenset(),
    ) -> None:
        self.trusted_proxies = trusted_proxies
        self.publisher = publisher
        self.salts = salts
        self.clock = clock
        self.limits = limits
        self.max_body_bytes = max_body_bytes

    def visit(self, ip: str, user_agent: str) -> Visit:
        now = self.clock.now_ms()
        return Visit(now, self.salts.salt(now), ip, user_agent)

    async def beacon(self, content_type: str | None, body: bytes, visit: Visit) -> tuple[int, dict[str, Any]]:
        check_content_type(content_type)
        raws = parse_body(body, self.limits)
        events, drops = validate_events(raws, visit, self.limits)
        if events:
            await self.publisher.publish(events)
        ids = [e.id for e in events]
        if not drops:
            return 202, {"status": "ok", "accepted": len(events), "ids": ids}
        more = f" (and {len(drops) - 10} more)" if len(drops) > 10 else ""
        return 400, {
            "status": "error",
            "message": "; ".join(d.message for d in drops[:10]) + more,
            "errors": [d.as_dict() for d in drops],
            "accepted": len(events),
            "ids": ids,
        }

    async def pixel(self, query: str, visit: Visit) -> None:
        raw = query_event(dict(parse_qsl(query, keep_blank_values=True)))
        events, drops = validate_events([raw], visit, self.limits)
        if drops:
            raise BadInput(drops[0].message)
        await self.publisher.publish(events)


class IngestFastPath:
    """ASGI app: the two ingest routes, then everything else to ``app``."""

    def __init__(self, app: ASGIApp, svc: IngestService, cors_origins: list[str], retry_after_s: int) -> None:
        self.app = app
        self.svc = svc
        self.any_origin = "*" in cors_origins
        self.origins = {o.encode() for o in cors_origins}
        self.retry_after = str(retry_after_s).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            if path == "/beacon" and method == "POST":
                return await self._handle(scope, receive, send, pixel=False)
            if path == "/beacon.gif" and method in ("GET", "HEAD"):
                return await self._handle(scope, receive, send, pixel=True)
        await self.app(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, pixel: bool) -> None:
        headers = dict(scope["headers"])
        client = scope.get("client")
        peer = client[0] if client else ""
        forwarded = headers.get(b"x-forwarded-for")
        if forwarded is not None and self.svc.trusted_proxies:
            peer = client_ip(peer, forwarded.decode("latin-1"), self.svc.trusted_proxies)
        visit = self.svc.visit(peer, headers.get(b"user-agent", b"").decode("latin-1"))
        extra = self._cors(headers.get(b"origin"))
        try:
            if pixel:
                await self.svc.pixel(scope["query_string"].decode("latin-1"), visit)
                extra.append((b"cache-control", b"no-store"))
                return await _respond(send, 200, PIXEL, b"image/gif", extra)
            body = await self._body(headers, receive)
            ctype = headers.get(b"content-type")
            status, doc = await self.svc.beacon(ctype.decode("latin-1") if ctype else None, body, visit)
            return await _respond(send, status, orjson.dumps(doc), b"application/json", extra)
        except BadInput as exc:
            doc = {"status": "error", "message": exc.message}
            return await _respond(send, exc.status, orjson.dumps(doc), b"application/json", extra)
        except RetryableError as exc:
            doc = {"status": "error", "message": f"temporarily unavailable, retry later: {exc}"}
            extra.append((b"retry-after", self.retry_after))
            return await _respond(send, 503, orjson.dumps(doc), b"application/json", extra)

    async def _body(self, headers: dict[bytes, bytes], receive: Receive) -> bytes:
        limit = self.svc.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BadInput(f"body of {int(declared)} bytes is over the limit of {limit}", 413)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadInput("client went away before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BadInput(f"body is over the limit of {limit} bytes", 413)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _cors(self, origin: bytes | None) -> list[tuple[bytes, bytes]]:
        if origin is None:
            return []
        if self.any_origin:
            return [(b"access-control-allow-origin", b"*")]
        if origin in self.origins:
            return [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
        return []


async def _respond(
    send: Send, status: int, body: bytes, media_type: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    headers = [(b"content-type", media_type), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
