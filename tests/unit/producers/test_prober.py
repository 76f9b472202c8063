"""The availability prober's pure half — the schedule (``next_due_ms``, ``phase_s``) and what a
check means (``classify``, ``describe_error``) — exhaustively, and its HTTP check (``check``)
against real HTTP servers on loopback. The prober with Kafka is in tests/integration."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.probes import LATE_MS, MAX_REDIRECTS, Outcome, classify, describe_error, next_due_ms, phase_s
from pipeline.services import MAX_PROBE_INTERVAL_S, MIN_PROBE_INTERVAL_S, ServiceConfig
from producers.prober import check, probe_client
from schemas.availability import MAX_RESPONSE_MS, probe_result
from tests.support.stack import free_port

T0 = 1_795_348_740_000  # 2026-11-22T11:59:00Z, a multiple of 60 s

# --- the schedule ---------------------------------------------------------------------------


def test_the_first_check_is_the_first_grid_point_from_now() -> None:
    assert next_due_ms(None, 60, T0, 0) == T0  # exactly on the grid: now
    assert next_due_ms(None, 60, T0 + 1, 0) == T0 + 60_000
    assert next_due_ms(None, 60, T0 + 59_999, 0) == T0 + 60_000
    assert next_due_ms(None, 60, T0 - 1, 0) == T0


def test_the_phase_shifts_the_grid_by_whole_seconds() -> None:
    assert next_due_ms(None, 60, T0, 7) == T0 + 7_000
    assert next_due_ms(None, 60, T0 + 7_001, 7) == T0 + 67_000
    assert next_due_ms(T0 + 7_000, 60, T0 + 7_400, 7) == T0 + 67_000
    assert next_due_ms(None, 60, T0, 67) == T0 + 7_000  # a phase is taken modulo the interval


def test_after_a_check_the_next_is_one_interval_later() -> None:
    assert next_due_ms(T0, 60, T0 + 350, 0) == T0 + 60_000
    # a check that took its whole timeout still leaves the next slot ahead
    assert next_due_ms(T0, 60, T0 + 59_000, 0) == T0 + 60_000


def test_a_slot_up_to_late_ms_late_is_still_made() -> None:
    assert next_due_ms(T0, 5, T0 + 5_000 + LATE_MS, 0) == T0 + 5_000
    assert next_due_ms(T0, 5, T0 + 5_000 + LATE_MS - 1, 0) == T0 + 5_000


def test_slots_missed_by_more_than_late_ms_are_skipped_not_made_up() -> None:
    assert next_due_ms(T0, 5, T0 + 5_000 + LATE_MS + 1, 0) == T0 + 10_000
    # held up for an hour: the next check is the next slot, one check, not 720
    assert next_due_ms(T0, 5, T0 + 3_600_000 + 1, 0) == T0 + 3_605_000


def test_a_clock_that_went_back_does_not_stall_the_schedule() -> None:
    # the last check was due an hour "in the future": start again from now
    assert next_due_ms(T0 + 3_600_000, 60, T0 + 1, 0) == T0 + 60_000
    # back by up to an interval: the following slot is kept (no slot is checked twice)
    assert next_due_ms(T0, 60, T0 - 30_000, 0) == T0 + 60_000
    assert next_due_ms(T0, 60, T0 - 60_000, 0) == T0 + 60_000
    assert next_due_ms(T0, 60, T0 - 60_001, 0) == T0 - 60_000


def test_a_changed_interval_moves_to_its_own_grid() -> None:
    # checked at T0 + 60 s on a 60 s grid; now every 45 s: the next 45 s grid point after it
    last = T0 + 60_000
    due = next_due_ms(last, 45, last + 200, 0)
    assert due % 45_000 == 0 and last < due <= last + 45_000


@given(
    last=st.none() | st.integers(0, 2**41),
    now=st.integers(0, 2**41),
    interval=st.integers(MIN_PROBE_INTERVAL_S, MAX_PROBE_INTERVAL_S),
    phase=st.integers(0, 10**6),
)
def test_the_due_time_is_always_on_the_grid_and_near_now(
    last: int | None, now: int, interval: int, phase: int
) -> None:
    due = next_due_ms(last, interval, now, phase)
    assert due % 1000 == 0
    assert (due // 1000 - phase) % interval == 0
    assert now - LATE_MS <= due <= now + 2 * interval * 1000
    if last is None or now < last - interval * 1000:
        assert now <= due < now + interval * 1000
    elif last % 1000 == 0 and (last // 1000 - phase) % interval == 0 and last <= now:
        assert due > last  # never the same slot twice while time goes forward


def test_phases_are_stable_and_spread() -> None:
    assert phase_s("apply-passport", 60) == phase_s("apply-passport", 60)
    phases = {phase_s(f"service-{i}", 60) for i in range(200)}
    assert phases <= set(range(60)) and len(phases) > 40


# --- what a check means ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 204, 299, 300, 301, 302, 304, 307, 399])
def test_a_2xx_or_3xx_final_status_is_up(status: int) -> None:
    assert classify(status, 123.4, 10) == Outcome(True, status, 123, "")


@pytest.mark.parametrize("status", [100, 101, 199, 400, 401, 404, 429, 500, 502, 503, 599])
def test_any_other_status_is_down_with_the_status(status: int) -> None:
    assert classify(status, 80.6, 10) == Outcome(False, status, 81, f"HTTP {status}")


@pytest.mark.parametrize("status", [-1, 0, 42, 600, 999])
def test_a_status_outside_http_is_no_response(status: int) -> None:
    assert classify(status, 5, 10) == Outcome(False, 0, -1, f"invalid HTTP status {status}")


def test_response_times_are_whole_ms_within_the_row_limits() -> None:
    assert classify(200, 0.4, 10).response_ms == 0
    assert classify(200, 0.5, 10).response_ms == 0  # round half to even
    assert classify(200, 1.5, 10).response_ms == 2
    assert classify(200, -3, 10).response_ms == 0  # a clock step never gives a negative time
    assert classify(200, 1e12, 10).response_ms == MAX_RESPONSE_MS


def test_a_redirect_left_unfollowed_is_up_and_says_so() -> None:
    assert classify(302, 20, 10, redirects_left=True) == Outcome(
        True, 302, 20, f"stopped after {MAX_REDIRECTS} redirects"
    )
    assert classify(200, 20, 10, redirects_left=True).error == ""
    assert classify(500, 20, 10, redirects_left=True).error == "HTTP 500"


def _raised(exc: BaseException, cause: BaseException | None = None) -> BaseException:
    """``exc`` as it arrives from an ``except`` clause, raised from ``cause``."""
    try:
        raise exc from cause
    except BaseException as caught:
        return caught


def _connect_error(cause: BaseException) -> BaseException:
    """What httpx raises when connecting fails: ConnectError over httpcore's, over the OSError."""
    return _raised(httpx.ConnectError("All connection attempts failed"), _raised(OSError("attempts"), cause))


@pytest.mark.parametrize(
    ("exc", "timeout_s", "error"),
    [
        (TimeoutError(), 10, "timeout after 10 s"),
        (TimeoutError(), 2.5, "timeout after 2.5 s"),
        (httpx.ConnectTimeout("connect"), 10, "timeout after 10 s"),
        (httpx.ReadTimeout("read"), 3, "timeout after 3 s"),
        (httpx.PoolTimeout("pool"), 3, "timeout after 3 s"),
        (_raised(httpx.ConnectError("x"), TimeoutError()), 4, "timeout after 4 s"),
        (_connect_error(ConnectionRefusedError(errno.ECONNREFUSED, "refused")), 10, "connection refused"),
        (
            _connect_error(socket.gaierror(-2, "Name or service not known")),
            10,
            "DNS lookup failed: Name or service not known",
        ),
        (_connect_error(OSError(errno.ENETUNREACH, "unreachable")), 10, "network unreachable"),
        (_connect_error(OSError(errno.EHOSTUNREACH, "no route")), 10, "host unreachable"),
        (_raised(httpx.ReadError("reset"), ConnectionResetError(104, "reset")), 10, "connection reset"),
        (_connect_error(ssl.SSLError(1, "[SSL] bad")), 10, "TLS error: [SSL] bad"),
        (httpx.ConnectError("something else"), 10, "connection failed: something else"),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            10,
            "protocol error: Server disconnected without sending a response.",
        ),
        (
            httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'file://'."),
            10,
            "unsupported URL: Request URL has an unsupported protocol 'file://'.",
        ),
        (httpx.DecodingError("bad gzip"), 10, "DecodingError: bad gzip"),
        (RuntimeError("boom"), 10, "RuntimeError: boom"),
        (RuntimeError(), 10, "RuntimeError"),
    ],
)
def test_no_response_is_down_with_a_short_reason(exc: BaseException, timeout_s: float, error: str) -> None:
    assert describe_error(exc, timeout_s) == error
    assert classify(exc, 1234, timeout_s) == Outcome(False, 0, -1, error)


def test_a_certificate_not_accepted_says_why() -> None:
    cert = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cert.verify_message = "self-signed certificate"
    assert describe_error(_connect_error(cert), 10) == "TLS certificate not accepted: self-signed certificate"


def test_a_cause_chain_with_a_loop_ends() -> None:
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__context__, b.__context__ = b, a
    assert describe_error(a, 10) == "RuntimeError: a"


@given(
    answer=st.integers(-5, 1000) | st.sampled_from([TimeoutError(), httpx.ConnectError("x"), OSError()]),
    elapsed=st.floats(-1e6, 1e13, allow_nan=False),
    timeout_s=st.integers(1, 3600) | st.floats(0.001, 3600),
    redirects_left=st.booleans(),
)
def test_every_outcome_is_a_valid_probe_result(
    answer: int | BaseException, elapsed: float, timeout_s: float, redirects_left: bool
) -> None:
    outcome = classify(answer, elapsed, timeout_s, redirects_left)
    event = probe_result("svc", 1_000, outcome.up, outcome.response_ms, outcome.status, outcome.error)
    assert event.up is (isinstance(answer, int) and 200 <= answer <= 399)


# --- the HTTP check against real servers ------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path
        if path == "/ok":
            self._answer(200)
        elif path == "/fail":
            self._answer(503)
        elif path == "/slow":
            time.sleep(2)
            self._answer(200)
        elif path.startswith("/hop/"):  # /hop/N redirects N times, then /ok
            n = int(path.rsplit("/", 1)[1])
            self._answer(302, f"/hop/{n - 1}" if n > 1 else "/ok")
        elif path == "/to-file":
            self._answer(302, "file:///etc/passwd")
        elif path == "/not-modified":
            self._answer(304)
        elif path == "/hang-up":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    def _answer(self, status: int, location: str = "") -> None:
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _check(url: str, timeout_s: float = 1) -> tuple[Outcome, float]:
    service = ServiceConfig("svc", "Service", health_check_url=url, probe_timeout_s=timeout_s)

    async def go() -> Outcome:
        async with probe_client() as client:
            return await check(client, service)

    started = time.monotonic()
    outcome = asyncio.run(go())
    return outcome, time.monotonic() - started


def test_check_a_healthy_service(server: str) -> None:
    outcome, took = _check(server + "/ok")
    assert (outcome.up, outcome.status, outcome.error) == (True, 200, "")
    assert 0 <= outcome.response_ms <= took * 1000 + 1


def test_check_a_failing_service(server: str) -> None:
    outcome, _ = _check(server + "/fail")
    assert (outcome.up, outcome.status, outcome.error) == (False, 503, "HTTP 503")
    assert outcome.response_ms >= 0


def test_check_a_service_slower_than_its_timeout(server: str) -> None:
    outcome, took = _check(server + "/slow", timeout_s=0.5)
    assert outcome == Outcome(False, 0, -1, "timeout after 0.5 s")
    assert took < 1.5


def test_check_a_refused_port() -> None:
    outcome, _ = _check(f"http://127.0.0.1:{free_port()}/")
    assert outcome == Outcome(False, 0, -1, "connection refused")


def test_check_a_server_that_hangs_up(server: str) -> None:
    outcome, _ = _check(server + "/hang-up")
    assert (outcome.up, outcome.status, outcome.response_ms) == (False, 0, -1)
    assert outcome.error.startswith("protocol error")


def test_check_follows_up_to_five_redirects(server: str) -> None:
    outcome, _ = _check(server + f"/hop/{MAX_REDIRECTS}")
    assert (outcome.up, outcome.status, outcome.error) == (True, 200, "")
    outcome, _ = _check(server + f"/hop/{MAX_REDIRECTS + 1}")
    assert (outcome.up, outcome.status, outcome.error) == (True, 302, "stopped after 5 redirects")


def test_check_a_final_3xx_without_location_is_up(server: str) -> None:
    outcome, _ = _check(server + "/not-modified")
    assert (outcome.up, outcome.status, outcome.error) == (True, 304, "")


def test_check_never_follows_a_redirect_out_of_http(server: str) -> None:
    outcome, _ = _check(server + "/to-file")
    assert outcome == Outcome(
        False, 0, -1, "unsupported URL: Request URL has an unsupported protocol 'file://'."
    )
