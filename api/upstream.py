"""A lean HTTP/1.1 client for one loopback upstream: the embedded ingest process forwards read
requests to the core process with it.

A general-purpose client (httpx) cost the ingest process more per forwarded request than the
read itself (measured: 50 requests/s through httpx against 1.5k/s served directly), so this
keeps a pool of keep-alive connections and parses only what the read side sends: a status
line, headers and a ``Content-Length`` body.
"""

from __future__ import annotations

import asyncio
import time

from pipeline.errors import RetryableError

IDLE_LIMIT_S = 4.0  # below uvicorn's 5 s keep-alive timeout, so an idle connection is still open


class UpstreamUnavailable(RetryableError):
    pass


class UpstreamPool:
    def __init__(self, host: str, port: int, max_idle: int = 64, timeout_s: float = 10.0) -> None:
        self._host, self._port = host, port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self._max_idle = max_idle
        self._timeout_s = timeout_s

    async def get(
        self, target: str, accept: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """``target`` is the path with its query string; ``extra`` are request headers to pass
        on (already parsed by the server, so free of line breaks). Retries once on a stale idle
        connection."""
        more = b"".join(k + b": " + v + b"\r\n" for k, v in extra)
        request = (
            b"GET "
            + target.encode("latin-1")
            + b" HTTP/1.1\r\nhost: read\r\naccept: "
            + accept
            + b"\r\n"
            + more
            + b"\r\n"
        )
        for attempt in (0, 1):
            pooled = self._take() if attempt == 0 else None
            reader, writer = pooled or await self._connect()
            try:
                writer.write(request)
                status, headers, body, keep = await asyncio.wait_for(self._read(reader), self._timeout_s)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                writer.close()
                if pooled is None:
                    raise UpstreamUnavailable(f"read side unavailable: {exc!r}") from None
                self.close()  # the upstream restarted or dropped idle connections: drop them all
                continue
            if keep and len(self._idle) < self._max_idle:
                self._idle.append((reader, writer, time.monotonic()))
            else:
                writer.close()
            return status, headers, body
        raise UpstreamUnavailable("read side unavailable")  # pragma: no cover - loop always returns

    async def stream(
        self, target: str, extra: tuple[tuple[bytes, bytes], ...] = ()
    ) -> tuple[int, list[tuple[bytes, bytes]], asyncio.StreamReader, asyncio.StreamWriter]:
        """A response that does not end (Server-Sent Events): its status, headers and the open
        connection, whose reader yields the body as the read side writes it (chunked, as uvicorn
        sends a body of unknown length). The caller closes the writer when its client goes."""
        more = b"".join(k + b": " + v + b"\r\n" for k, v in extra)
        request = (
            b"GET "
            + target.encode("latin-1")
            + b" HTTP/1.1\r\nhost: read\r\nconnection: close\r\n"
            + more
            + b"\r\n"
        )
        reader, writer = await self._connect()
        try:
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self._timeout_s)
            lines = head[:-4].split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
        except (
            TimeoutError,
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
        ) as exc:
            writer.close()
            raise UpstreamUnavailable(f"read side unavailable: {exc!r}") from None
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower(), value.strip()))
        return status, headers, reader, writer

    def _take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        now = time.monotonic()
        while self._idle:
            reader, writer, since = self._idle.pop()
            if now - since < IDLE_LIMIT_S:
                return reader, writer
            writer.close()
        return None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.wait_for(asyncio.open_connection(self._host, self._port), self._timeout_s)
        except (TimeoutError, OSError) as exc:
            raise UpstreamUnavailable(f"read side unavailable: {exc!r}") from None

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers: list[tuple[bytes, bytes]] = []
        length = 0
        keep = True
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.lower() == b"close":
                keep = False
            elif name == b"transfer-encoding":
                raise ValueError("chunked responses are not expected from the read side")
            headers.append((name, value))
        body = await reader.readexactly(length) if length else b""
        return status, headers, body, keep

    def close(self) -> None:
        for _, writer, _ in self._idle:
            writer.close()
        self._idle.clear()
