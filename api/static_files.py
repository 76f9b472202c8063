"""Files served as they are: ``GET /beacon.js``, the browser beacon snippet.

The script is built from ``producers/beacon/beacon.js`` into ``producers/beacon/dist/beacon.min.js``
(``make beacon``), and the built file is committed, so a machine without npm serves it too. It is
read once when the router is made: every request is a dictionary lookup, with an ETag for
revalidation and a gzip copy compressed in advance for clients that accept it.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.datastructures import Headers
from starlette.responses import Response

import producers
from api.responses import JSONBody

BEACON_JS = Path(producers.__file__).parent / "beacon" / "dist" / "beacon.min.js"
JAVASCRIPT = "application/javascript; charset=utf-8"
CACHE_CONTROL = "public, max-age=3600"


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One file's bytes, its gzip copy, and a strong ETag per representation."""

    body: bytes
    gzipped: bytes
    etag: str
    gzip_etag: str
    media_type: str

    @classmethod
    def of(cls, body: bytes, media_type: str) -> StaticFile:
        digest = hashlib.sha256(body).hexdigest()[:32]
        gzipped = gzip.compress(body, compresslevel=9, mtime=0)
        return cls(body, gzipped, f'"{digest}"', f'"{digest}-gzip"', media_type)

    def response(self, headers: Headers) -> Response:
        compress = accepts_gzip(headers.get("accept-encoding", ""))
        etag = self.gzip_etag if compress else self.etag
        common = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Accept-Encoding"}
        if not_modified(headers.get("if-none-match"), (self.etag, self.gzip_etag)):
            return Response(status_code=304, headers=common)
        if compress:
            common["Content-Encoding"] = "gzip"
        common["X-Content-Type-Options"] = "nosniff"
        return Response(self.gzipped if compress else self.body, media_type=self.media_type, headers=common)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether ``Accept-Encoding`` allows gzip: named (or ``*``) with a quality above zero."""
    allowed: dict[str, bool] = {}
    for item in accept_encoding.lower().split(","):
        coding, _, params = item.partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        allowed[coding.strip()] = quality > 0
    return allowed.get("gzip", allowed.get("x-gzip", allowed.get("*", False)))


def not_modified(if_none_match: str | None, etags: tuple[str, ...]) -> bool:
    """``If-None-Match`` names any representation of the file (weak comparison) or is ``*``."""
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or any(e in tags for e in etags)


def static_files_router(beacon_js: Path = BEACON_JS) -> APIRouter:
    """``GET``/``HEAD /beacon.js``. A missing build answers 404 saying how to make it."""
    try:
        beacon = StaticFile.of(beacon_js.read_bytes(), JAVASCRIPT)
    except FileNotFoundError:
        beacon = None
    router = APIRouter()

    @router.api_route("/beacon.js", methods=["GET", "HEAD"], include_in_schema=False)
    async def beacon_script(request: Request) -> Response:
        if beacon is None:
            message = f"{beacon_js.name} is not built: run `make beacon`"
            return JSONBody({"status": "error", "message": message}, status_code=404)
        return beacon.response(request.headers)

    return router
