"""The spreadsheet uploader (``producers.uploader``) against a real HTTP server on loopback:
chunking, gzip, the bearer token, ``PUT []``, retries of 5xx and none of 4xx, and the command."""

from __future__ import annotations

import gzip
import json
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from pipeline import cli
from producers.uploader import (
    GZIP_OVER_BYTES,
    TOKEN_ENV,
    Uploader,
    UploadPolicy,
    UploadRejected,
    UploadTarget,
    UploadUnavailable,
    encode_body,
)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def records(self) -> Any:
        body = gzip.decompress(self.raw) if self.headers.get("content-encoding") == "gzip" else self.raw
        return json.loads(body)


@dataclass
class Backdrop:
    """Records every request; answers from ``script`` (status, body, headers) in turn, then 200."""

    url: str
    seen: list[Seen] = field(default_factory=list)
    script: list[tuple[int, Any, dict[str, str]]] = field(default_factory=list)

    def answer(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.script.append((status, body, headers or {}))


@pytest.fixture
def backdrop() -> Iterator[Backdrop]:
    lock = threading.Lock()
    state = Backdrop(url="")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                state.seen.append(
                    Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
                )
                status, body, headers = state.script.pop(0) if state.script else (200, {"status": "ok"}, {})
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_POST = do_PUT = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


def records(n: int) -> list[dict[str, Any]]:
    return [{"_timestamp": "2014-01-01T00:00:00+00:00", "count": i, "channel": "digital"} for i in range(n)]


def uploader(backdrop: Backdrop, chunk_size: int = 100, sleeps: list[float] | None = None) -> Uploader:
    target = UploadTarget(backdrop.url + "/", "carers-allowance", "transactions", "s3cret")
    sink = sleeps if sleeps is not None else []
    return Uploader(target, UploadPolicy(chunk_size=chunk_size, first_backoff_s=0.5), sleep=sink.append)


# --- the uploader -----------------------------------------------------------------------------


def test_records_go_in_chunks_in_order_with_the_bearer_token(backdrop: Backdrop) -> None:
    sizes: list[int] = []
    with uploader(backdrop) as up:
        assert up.upload(records(250), on_chunk=sizes.append) == 250
    assert [(s.method, s.path) for s in backdrop.seen] == [
        ("POST", "/data/carers-allowance/transactions")
    ] * 3
    assert [len(s.records) for s in backdrop.seen] == [100, 100, 50] == sizes
    assert [r["count"] for s in backdrop.seen for r in s.records] == list(range(250))
    for seen in backdrop.seen:
        assert seen.headers["authorization"] == "Bearer s3cret"
        assert seen.headers["content-type"] == "application/json"


def test_big_bodies_are_gzipped_and_small_ones_are_not(backdrop: Backdrop) -> None:
    with uploader(backdrop, chunk_size=100) as up:
        up.upload(records(101))
    big, small = backdrop.seen
    assert big.headers["content-encoding"] == "gzip"
    assert big.raw[:2] == b"\x1f\x8b"
    assert len(gzip.decompress(big.raw)) > GZIP_OVER_BYTES
    assert big.records == records(101)[:100]
    assert "content-encoding" not in small.headers
    assert small.records == [records(101)[100]]


def test_encode_body_gzips_only_over_the_threshold() -> None:
    body, headers = encode_body([{"a": "x" * (GZIP_OVER_BYTES - 10)}])
    assert len(body) == GZIP_OVER_BYTES and "Content-Encoding" not in headers
    body, headers = encode_body([{"a": "x" * (GZIP_OVER_BYTES - 9)}])
    assert headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(body)) == [{"a": "x" * (GZIP_OVER_BYTES - 9)}]


def test_empty_puts_an_empty_list(backdrop: Backdrop) -> None:
    backdrop.answer(200, {"status": "ok", "message": "carers_allowance_transactions now contains 0 records"})
    with uploader(backdrop) as up:
        up.empty()
        up.upload(records(3))
    put, post = backdrop.seen
    assert (put.method, put.path, put.records) == ("PUT", "/data/carers-allowance/transactions", [])
    assert put.headers["authorization"] == "Bearer s3cret"
    assert (post.method, len(post.records)) == ("POST", 3)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retried_with_exponential_backoff_then_succeeds(backdrop: Backdrop, status: int) -> None:
    for _ in range(3):
        backdrop.answer(status, {"status": "error", "message": "busy"})
    sleeps: list[float] = []
    with uploader(backdrop, sleeps=sleeps) as up:
        assert up.upload(records(5)) == 5
    assert len(backdrop.seen) == 4
    assert all(s.records == records(5) for s in backdrop.seen)  # the same chunk each time
    assert sleeps == [0.5, 1.0, 2.0]


def test_retry_after_is_honoured(backdrop: Backdrop) -> None:
    backdrop.answer(503, {"message": "broker unavailable"}, {"Retry-After": "3"})
    sleeps: list[float] = []
    with uploader(backdrop, sleeps=sleeps) as up:
        up.upload(records(1))
    assert sleeps == [3.0]


def test_gives_up_after_five_attempts(backdrop: Backdrop) -> None:
    for _ in range(5):
        backdrop.answer(503, {"status": "error", "message": "still down"})
    sleeps: list[float] = []
    with uploader(backdrop, sleeps=sleeps) as up, pytest.raises(UploadUnavailable) as caught:
        up.upload(records(150))
    assert len(backdrop.seen) == 5
    assert sleeps == [0.5, 1.0, 2.0, 4.0]  # no sleep after the last attempt
    assert "gave up after 5 attempts" in caught.value.detail
    assert "503: still down" in caught.value.detail
    assert caught.value.accepted == 0


def test_an_unreachable_server_is_retried_then_reported() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps: list[float] = []
    target = UploadTarget(f"http://127.0.0.1:{port}", "g", "t", "tok")
    with (
        Uploader(target, UploadPolicy(max_attempts=2), sleep=sleeps.append) as up,
        pytest.raises(UploadUnavailable, match="gave up after 2 attempts") as caught,
    ):
        up.upload(records(1))
    assert sleeps == [0.5]
    assert caught.value.accepted == 0


def test_400_stops_at_once_and_surfaces_backdrop_messages(backdrop: Backdrop) -> None:
    backdrop.answer(200, {"status": "ok"})
    messages = ["'_timestamp' is a required property", "count has an invalid value"]
    backdrop.answer(400, {"messages": messages})
    sleeps: list[float] = []
    with uploader(backdrop, sleeps=sleeps) as up, pytest.raises(UploadRejected) as caught:
        up.upload(records(300))
    assert len(backdrop.seen) == 2  # no retry, and the third chunk is never sent
    assert sleeps == []
    assert caught.value.status == 400
    assert caught.value.messages == messages
    assert caught.value.accepted == 100
    assert str(caught.value) == "400: '_timestamp' is a required property; count has an invalid value"


@pytest.mark.parametrize(
    ("status", "body", "messages"),
    [
        (
            401,
            {"status": "error", "message": "Unauthorized: Invalid bearer token 's3cret' for 'x'"},
            ["Unauthorized: Invalid bearer token 's3cret' for 'x'"],
        ),
        (400, {"messages": "No record found with id 1"}, ["No record found with id 1"]),
        (404, {"status": "error", "message": "data_set not found"}, ["data_set not found"]),
        (413, b"payload too large", ["payload too large"]),
        (400, b"", ["Bad Request"]),
    ],
    ids=["401 message", "messages as a string", "404", "text body", "empty body"],
)
def test_other_refusals_surface_their_message(
    backdrop: Backdrop, status: int, body: Any, messages: list[str]
) -> None:
    backdrop.answer(status, body)
    with uploader(backdrop) as up, pytest.raises(UploadRejected) as caught:
        up.empty()
    assert (caught.value.status, caught.value.messages) == (status, messages)
    assert len(backdrop.seen) == 1


def test_no_records_means_no_request(backdrop: Backdrop) -> None:
    with uploader(backdrop) as up:
        assert up.upload([]) == 0
    assert backdrop.seen == []


# --- the command ------------------------------------------------------------------------------


def command(backdrop: Backdrop, path: Path, *extra: str) -> list[str]:
    return ["upload", str(path), "--url", backdrop.url, "--data-group", "g", "--data-type", "t", *extra]


def write_csv(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(
        "# exported\n_timestamp,count,comment\n"
        + "".join(f"2014-01-0{1 + i % 9}T00:00:00Z,{i},note\n" for i in range(rows))
    )
    return path


def test_upload_command_sends_a_csv_and_prints_a_summary(
    backdrop: Backdrop, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path, 250)
    code = cli.main(command(backdrop, path, "--token", "tok", "--empty-first", "--chunk-size", "100"))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [(s.method, len(s.records)) for s in backdrop.seen] == [
        ("PUT", 0),
        ("POST", 100),
        ("POST", 100),
        ("POST", 50),
    ]
    assert backdrop.seen[1].records[0] == {"_timestamp": "2014-01-01T00:00:00Z", "count": 0}
    assert backdrop.seen[1].headers["authorization"] == "Bearer tok"
    assert out.startswith("uploaded 250 records to g/t in ")
    assert out.endswith(" s\n") and out.count("\n") == 1
    assert err == ""  # stderr is not a TTY here: no progress bar


def test_upload_command_reads_the_token_from_the_environment(
    backdrop: Backdrop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    book = Workbook()
    book.active.append(["_timestamp", "count"])
    book.active.append(["2014-01-01T00:00:00Z", 3])
    path = tmp_path / "sheet.xlsx"
    book.save(path)
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert cli.main(command(backdrop, path, "--no-progress")) == 0
    [post] = backdrop.seen
    assert post.headers["authorization"] == "Bearer from-env"
    assert post.records == [{"_timestamp": "2014-01-01T00:00:00Z", "count": 3}]
    assert "uploaded 1 records to g/t" in capsys.readouterr().out


def test_upload_command_without_a_token_is_a_usage_error(
    backdrop: Backdrop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert cli.main(command(backdrop, write_csv(tmp_path, 1))) == 2
    assert TOKEN_ENV in capsys.readouterr().err
    assert backdrop.seen == []


def test_upload_command_prints_backdrop_messages_and_fails(
    backdrop: Backdrop, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backdrop.answer(200, {"status": "ok"})
    backdrop.answer(400, {"messages": ["count has an invalid value"]})
    code = cli.main(command(backdrop, write_csv(tmp_path, 150), "--token", "tok"))
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert "g/t refused the upload (400):\n  count has an invalid value\n" in err
    assert "100 records were accepted before the failure" in err


def test_upload_command_reports_a_file_that_does_not_parse(
    backdrop: Backdrop, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"a,b\n1,2,3\n")
    assert cli.main(command(backdrop, path, "--token", "tok")) == 1
    assert "Some rows in the CSV file contain more values than columns" in capsys.readouterr().err
    assert backdrop.seen == []  # nothing is sent from a file that is not wholly readable


def test_upload_command_reports_a_missing_file(
    backdrop: Backdrop, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(command(backdrop, tmp_path / "nope.csv", "--token", "tok")) == 1
    assert "nope.csv" in capsys.readouterr().err


@pytest.mark.parametrize("no_progress", [False, True])
def test_progress_bar_on_a_terminal_unless_turned_off(
    backdrop: Backdrop,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_progress: bool,
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    extra = ["--no-progress"] if no_progress else []
    assert (
        cli.main(command(backdrop, write_csv(tmp_path, 30), "--token", "tok", "--chunk-size", "10", *extra))
        == 0
    )
    err = capsys.readouterr().err
    if no_progress:
        assert err == ""
    else:
        assert "30/30" in err and "records" in err
