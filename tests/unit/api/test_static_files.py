"""``GET /beacon.js``: the committed minified beacon, with its type, caching, ETag and gzip."""

from __future__ import annotations

import asyncio
import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.static_files import BEACON_JS, accepts_gzip, not_modified, static_files_router


@dataclass
class Answer:
    status_code: int
    headers: httpx.Headers
    content: bytes
    """The body as sent (not decompressed)."""


class Client:
    """An app with only this router, called in-process (Starlette's TestClient is deprecated here)."""

    def __init__(self, beacon_js: Path = BEACON_JS) -> None:
        self.app = FastAPI()
        self.app.include_router(static_files_router(beacon_js))

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> Answer:
        async def call() -> Answer:
            transport = httpx.ASGITransport(app=self.app)
            async with (
                httpx.AsyncClient(transport=transport, base_url="http://perfplat") as http,
                http.stream(method, path, headers=headers) as r,
            ):
                raw = b"".join([chunk async for chunk in r.aiter_raw()])
                return Answer(r.status_code, r.headers, raw)

        return asyncio.run(call())

    def get(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        return self.request("GET", path, headers)

    def head(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        return self.request("HEAD", path, headers)


def client(beacon_js: Path = BEACON_JS) -> Client:
    return Client(beacon_js)


def test_serves_the_minified_beacon_as_javascript_with_an_hour_of_caching() -> None:
    r = client().get("/beacon.js", headers={"accept-encoding": "identity"})
    assert r.status_code == 200
    assert r.content == BEACON_JS.read_bytes()
    assert r.headers["content-type"] == "application/javascript; charset=utf-8"
    assert r.headers["cache-control"] == "public, max-age=3600"
    assert r.headers["vary"] == "Accept-Encoding"
    assert "content-encoding" not in r.headers
    assert r.headers["etag"].startswith('"') and r.headers["etag"].endswith('"')
    assert b"perfplat" in r.content


def test_gzips_when_the_client_accepts_it_under_its_own_etag() -> None:
    c = client()
    plain = c.get("/beacon.js", headers={"accept-encoding": "identity"})
    zipped = c.get("/beacon.js", headers={"accept-encoding": "gzip, br"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert gzip.decompress(zipped.content) == plain.content
    assert len(zipped.content) < len(plain.content)
    assert zipped.headers["etag"] != plain.headers["etag"]


def test_answers_304_to_a_client_holding_either_representation() -> None:
    c = client()
    plain = c.get("/beacon.js", headers={"accept-encoding": "identity"}).headers["etag"]
    zipped = c.get("/beacon.js", headers={"accept-encoding": "gzip"}).headers["etag"]
    for tag in (plain, zipped, f"W/{plain}", f'"other", {zipped}', "*"):
        r = c.get("/beacon.js", headers={"if-none-match": tag, "accept-encoding": "gzip"})
        assert r.status_code == 304, tag
        assert r.content == b""
        assert r.headers["etag"] == zipped
        assert r.headers["cache-control"] == "public, max-age=3600"
    r = c.get("/beacon.js", headers={"if-none-match": '"something-else"'})
    assert r.status_code == 200


def test_head_gives_the_headers_without_a_body() -> None:
    r = client().head("/beacon.js", headers={"accept-encoding": "identity"})
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["content-length"] == str(len(BEACON_JS.read_bytes()))


def test_a_missing_build_is_a_404_that_says_how_to_build_it(tmp_path: Path) -> None:
    r = client(tmp_path / "beacon.min.js").get("/beacon.js")
    assert r.status_code == 404
    assert "make beacon" in json.loads(r.content)["message"]


def test_serves_the_file_read_when_the_router_was_made(tmp_path: Path) -> None:
    path = tmp_path / "beacon.min.js"
    path.write_text("window.x=1;\n")
    c = client(path)
    path.write_text("window.x=2;\n")
    assert c.get("/beacon.js", {"accept-encoding": "identity"}).content == b"window.x=1;\n"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.8", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("*", True),
        ("", False),
        ("identity", False),
        ("br", False),
        ("gzip;q=0", False),
        ("gzip;q=0, *", False),
        ("*;q=0", False),
        ("gzip;q=nonsense", False),
    ],
)
def test_accept_encoding(header: str, expected: bool) -> None:
    assert accepts_gzip(header) is expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ('"a"', True),
        ('W/"b"', True),
        ('"x", "b"', True),
        ("*", True),
        ('"c"', False),
    ],
)
def test_if_none_match(header: str | None, expected: bool) -> None:
    assert not_modified(header, ('"a"', '"b"')) is expected
