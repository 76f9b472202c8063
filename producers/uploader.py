"""``perfplat upload``: a spreadsheet on disk into a data set, through the backdrop write API.

What performanceplatform-admin's upload page did (performance-platform.md §1.9), from a
terminal: the file is parsed here with ``pipeline.spreadsheet`` (no 1 MB limit: that one
guards the HTTP upload endpoint), the set is optionally emptied with ``PUT []``, and the
records are POSTed as JSON arrays of ``chunk_size`` to ``{url}/data/{group}/{type}`` with the
set's bearer token. Bodies over 2 KiB travel gzipped. 500/502/503 and refused connections are
retried with exponential backoff (honouring ``Retry-After``); any other answer outside 2xx
stops the upload and surfaces the server's ``messages``/``message``.

Chunks already accepted stay stored when a later one fails: the error says how many. backdrop
stores a POST record by record, so a retried 500 may store part of a chunk twice: re-runs are
safe with ``--empty-first`` or a data set with ``auto_ids``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from pipeline.errors import BadInput, PermanentError, RetryableError
from pipeline.spreadsheet import iter_csv_records, parse_spreadsheet

TOKEN_ENV = "PERFPLAT_UPLOAD_TOKEN"
GZIP_OVER_BYTES = 2048
RETRY_STATUSES = frozenset({500, 502, 503})
MAX_RETRY_AFTER_S = 60.0


class UploadRejected(PermanentError):
    """The server refused a request (4xx, or another non-retryable answer)."""

    def __init__(self, status: int, messages: list[str], accepted: int) -> None:
        self.status, self.messages, self.accepted = status, messages, accepted
        super().__init__(f"{status}: {'; '.join(messages)}")


class UploadUnavailable(RetryableError):
    """The server kept answering 5xx (or was unreachable) through every attempt."""

    def __init__(self, detail: str, accepted: int) -> None:
        self.detail, self.accepted = detail, accepted
        super().__init__(detail)


@dataclass(frozen=True, slots=True)
class UploadTarget:
    base_url: str
    data_group: str
    data_type: str
    token: str

    @property
    def url(self) -> str:
        group, kind = quote(self.data_group, safe=""), quote(self.data_type, safe="")
        return f"{self.base_url.rstrip('/')}/data/{group}/{kind}"


@dataclass(frozen=True, slots=True)
class UploadPolicy:
    chunk_size: int = 100
    max_attempts: int = 5
    first_backoff_s: float = 0.5
    timeout_s: float = 60.0


def encode_body(payload: Any) -> tuple[bytes, dict[str, str]]:
    """The JSON body and its headers; gzipped when it is over ``GZIP_OVER_BYTES``."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    headers = {"Content-Type": "application/json"}
    if len(body) > GZIP_OVER_BYTES:
        body = gzip.compress(body, compresslevel=6)
        headers["Content-Encoding"] = "gzip"
    return body, headers


def server_messages(response: httpx.Response) -> list[str]:
    """backdrop's ``{"messages": [...]}`` (validation; sometimes a string) or
    ``{"status": "error", "message": ...}``; else the body's text."""
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        for key in ("messages", "message"):
            value = doc.get(key)
            if isinstance(value, list) and value:
                return [str(item) for item in value]
            if value:
                return [str(value)]
    text = response.text.strip()
    return [text[:500] if text else response.reason_phrase or "no message"]


class Uploader:
    """Sends records to one data set. ``sleep`` is injected so tests need not wait."""

    def __init__(
        self,
        target: UploadTarget,
        policy: UploadPolicy | None = None,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._target = target
        self._policy = policy or UploadPolicy()
        if self._policy.chunk_size < 1 or self._policy.max_attempts < 1:
            raise ValueError("chunk_size and max_attempts must be at least 1")
        self._client = client or httpx.Client(timeout=self._policy.timeout_s)
        self._owns_client = client is None
        self._sleep = sleep
        self._accepted = 0

    def __enter__(self) -> Uploader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def empty(self) -> None:
        """``PUT []``: the data set now holds no records."""
        self._send("PUT", [])

    def upload(
        self, records: Sequence[dict[str, Any]], on_chunk: Callable[[int], object] | None = None
    ) -> int:
        """POST every record, ``chunk_size`` at a time, in order; the number sent.
        ``on_chunk`` hears each accepted chunk's size (a progress bar)."""
        self._accepted = 0
        size = self._policy.chunk_size
        for start in range(0, len(records), size):
            chunk = records[start : start + size]
            self._send("POST", list(chunk))
            self._accepted += len(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
        return self._accepted

    def _send(self, method: str, payload: list[dict[str, Any]]) -> None:
        body, headers = encode_body(payload)
        headers["Authorization"] = f"Bearer {self._target.token}"
        backoff = self._policy.first_backoff_s
        for attempt in range(1, self._policy.max_attempts + 1):
            wait = backoff
            try:
                response = self._client.request(method, self._target.url, content=body, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing was sent: safe to repeat
                problem = f"{method} {self._target.url}: {exc or type(exc).__name__}"
            else:
                if response.is_success:
                    return
                if response.status_code not in RETRY_STATUSES:
                    raise UploadRejected(response.status_code, server_messages(response), self._accepted)
                problem = f"{response.status_code}: {'; '.join(server_messages(response))}"
                wait = max(backoff, _retry_after_s(response))
            if attempt < self._policy.max_attempts:
                self._sleep(wait)
                backoff *= 2
        raise UploadUnavailable(
            f"gave up after {self._policy.max_attempts} attempts; last answer {problem}", self._accepted
        )


def _retry_after_s(response: httpx.Response) -> float:
    try:
        return min(float(response.headers.get("Retry-After", "0")), MAX_RETRY_AFTER_S)
    except ValueError:  # an HTTP date: fall back to our own backoff
        return 0.0


def read_records(path: Path, upload_format: str = "") -> list[dict[str, Any]]:
    """Every record of a file on disk. CSV is streamed line by line, so memory follows the
    records, not the file; Excel workbooks are read whole (their readers need the bytes)."""
    name = path.name.lower()
    if upload_format == "csv" or (not upload_format and name.endswith((".csv", ".txt"))):
        with path.open("rb") as lines:
            return list(iter_csv_records(lines))
    return parse_spreadsheet(path.read_bytes(), upload_format, path.name)


# --- the command ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``perfplat upload`` options."""
    parser.add_argument("file", type=Path, help="a .csv, .xlsx or .xls file; the first row names the fields")
    parser.add_argument("--url", required=True, help="base URL of the write API, e.g. https://host")
    parser.add_argument("--data-group", required=True)
    parser.add_argument("--data-type", required=True)
    parser.add_argument("--token", default=None, help=f"the data set's bearer token (default: ${TOKEN_ENV})")
    parser.add_argument(
        "--format", choices=("csv", "excel"), default="", help="default: guessed from the file"
    )
    parser.add_argument("--chunk-size", type=_positive_int, default=100, help="records per POST")
    parser.add_argument("--empty-first", action="store_true", help="PUT [] to empty the data set first")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(args: argparse.Namespace) -> int:
    """0 when every record was accepted, 1 on any failure, 2 without a token."""
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        sys.stderr.write(f"perfplat upload: give --token or set {TOKEN_ENV}\n")
        return 2
    target = UploadTarget(args.url, args.data_group, args.data_type, token)
    where = f"{args.data_group}/{args.data_type}"
    started = time.monotonic()
    try:
        records = read_records(args.file, args.format)
    except OSError as exc:
        sys.stderr.write(f"perfplat upload: {exc}\n")
        return 1
    except BadInput as exc:
        sys.stderr.write(f"perfplat upload: {args.file}: {exc.message}\n")
        return 1
    bar = None
    if not args.no_progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(records), unit="records", file=sys.stderr)
    emptied = False
    try:
        with Uploader(target, UploadPolicy(chunk_size=args.chunk_size)) as uploader:
            if args.empty_first:
                uploader.empty()
                emptied = True
            sent = uploader.upload(records, on_chunk=bar.update if bar is not None else None)
    except UploadRejected as exc:
        _close(bar)
        sys.stderr.write(f"perfplat upload: {where} refused the upload ({exc.status}):\n")
        sys.stderr.writelines(f"  {message}\n" for message in exc.messages)
        sys.stderr.write(_stored_note(exc.accepted, emptied))
        return 1
    except UploadUnavailable as exc:
        _close(bar)
        sys.stderr.write(f"perfplat upload: {where}: {exc.detail}\n")
        sys.stderr.write(_stored_note(exc.accepted, emptied))
        return 1
    _close(bar)
    sys.stdout.write(f"uploaded {sent} records to {where} in {time.monotonic() - started:.1f} s\n")
    return 0


def _close(bar: Any) -> None:
    if bar is not None:
        bar.close()


def _stored_note(accepted: int, emptied: bool) -> str:
    if accepted:
        return f"{accepted} records were accepted before the failure\n"
    return "the data set was emptied; no records were accepted\n" if emptied else "nothing was stored\n"
