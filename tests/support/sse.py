"""Reading Server-Sent Events in tests: the response's bytes read as the SSE specification
reads them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson


class Sse:
    """One subscriber: the response's bytes read as the SSE specification reads them."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._chunks = response.iter_raw()
        self._buffer = b""

    def _line(self) -> str:
        while b"\n" not in self._buffer:
            self._buffer += next(self._chunks)
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def frame(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        while True:
            line = self._line()
            if line == "":
                if fields:
                    return fields
            elif line.startswith(":"):
                return {"comment": line[1:].strip()}
            else:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")

    def event(self) -> tuple[dict[str, str], dict[str, Any], float]:
        """The next figures event (keep-alives skipped): fields, figures, arrival time."""
        while "event" not in (fields := self.frame()):
            assert set(fields) == {"comment"}, fields
        assert fields["event"] == "figures"
        return fields, orjson.loads(fields["data"]), time.monotonic()

    def figures(self) -> tuple[dict[str, Any], float]:
        """The next figures event's data (keep-alives skipped) and its arrival time."""
        _, figures, at = self.event()
        return figures, at


@contextlib.contextmanager
def subscribe(client: httpx.Client, path: str) -> Iterator[Sse]:
    with client.stream(
        "GET", path, headers={"accept": "text/event-stream"}
    ) as response:  # as EventSource asks
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        sse = Sse(response)
        assert sse.frame() == {"retry": "3000"}
        yield sse
