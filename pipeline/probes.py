"""The prober's pure half (``perfplat probe``, ``producers.prober``): *when* each service is due
(``next_due_ms``, on a grid phased by a hash of the slug, so any prober checks at the same
instants) and *what a check means* (``classify``, ``describe_error``). No I/O; time is an argument.
"""

from __future__ import annotations

import errno
import socket
import ssl
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from schemas.availability import MAX_RESPONSE_MS, NO_RESPONSE

MAX_REDIRECTS = 5
LATE_MS = 1000
"""A check may start this late and still be made; later than that, its slot is skipped."""


# --- pure: schedule -------------------------------------------------------------------------


def phase_s(slug: str, interval_s: int) -> int:
    """Where in each interval a service's checks fall: the same for every prober."""
    return zlib.crc32(slug.encode()) % interval_s


def next_due_ms(last_due_ms: int | None, interval_s: int, now_ms: int, phase: int = 0) -> int:
    """When a service's next check is due, in epoch ms, on the grid ``phase + k * interval_s``
    seconds. The first check (``last_due_ms`` None) is the first grid point at or after ``now``.
    After a check due at ``last_due_ms`` the next is the grid point that follows it — unless that
    is more than ``LATE_MS`` in the past (the prober was held up: slots are skipped, never made
    up in a burst), or the clock went back by more than an interval since: then, again, the
    first grid point at or after ``now``. A changed interval moves to its own grid."""
    interval_ms = interval_s * 1000
    offset_ms = (phase % interval_s) * 1000

    def grid_after(t: int) -> int:
        """The first grid point strictly after ``t``."""
        return (t - offset_ms) // interval_ms * interval_ms + offset_ms + interval_ms

    first = grid_after(now_ms - 1)
    if last_due_ms is None:
        return first
    following = grid_after(last_due_ms)
    if following < now_ms - LATE_MS or now_ms < last_due_ms - interval_ms:
        return first
    return following


# --- pure: what a check means ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """One check's result, as the availability event carries it."""

    up: bool
    status: int
    """The final HTTP status; 0 when there was no (usable) response."""
    response_ms: int
    """Time to the final response's headers; -1 without a response."""
    error: str
    """What went wrong, short; "" when nothing did."""


def classify(
    answer: int | BaseException, elapsed_ms: float, timeout_s: float, redirects_left: bool = False
) -> Outcome:
    """What a check came to: ``answer`` is the final response's status code (reached after
    ``elapsed_ms``), or the exception the check raised. Up means a 2xx or 3xx final status within
    the timeout. ``redirects_left`` says the final response was a redirect not followed because
    the limit was reached."""
    if isinstance(answer, BaseException):
        return Outcome(False, 0, NO_RESPONSE, describe_error(answer, timeout_s))
    status = answer
    if not 100 <= status <= 599:
        return Outcome(False, 0, NO_RESPONSE, f"invalid HTTP status {status}")
    response_ms = min(max(round(elapsed_ms), 0), MAX_RESPONSE_MS)
    if 200 <= status <= 399:
        note = f"stopped after {MAX_REDIRECTS} redirects" if redirects_left and status >= 300 else ""
        return Outcome(True, status, response_ms, note)
    return Outcome(False, status, response_ms, f"HTTP {status}")


def describe_error(exc: BaseException, timeout_s: float) -> str:
    """A short reason for a check that got no response, from the exception and its causes."""
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"timeout after {timeout_s:g} s"
    chain = list(_causes(exc))
    for cause in chain:
        if isinstance(cause, TimeoutError):
            return f"timeout after {timeout_s:g} s"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return f"DNS lookup failed: {cause.strerror or cause}"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not accepted: {getattr(cause, 'verify_message', '') or cause}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {getattr(cause, 'reason', '') or cause}"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, OSError) and cause.errno in _ERRNO_TEXT:
            return _ERRNO_TEXT[cause.errno]
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return f"unsupported URL: {exc}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"protocol error: {exc}"
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed: {exc}"
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


_ERRNO_TEXT = {
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ECONNABORTED: "connection aborted",
    errno.EPIPE: "connection closed",
}


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
