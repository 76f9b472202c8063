"""``perfplat bench``: a load generator and freshness probe for a running stack, over HTTP only.

This module owns the benchmark client: synthetic Stageprompt traffic (one event per request, or
batches as a page's ``sendBeacon`` queue would send them), the read-side pollers, the freshness
probe, and the report. It knows the stack only through its HTTP contract (``POST /beacon``,
``GET /services/{service}/users-now``, ``GET /users-now``) and imports nothing from the server.

It shares a small machine with the server it measures, so the hot path is built to be cheap:
raw asyncio streams (uvloop when importable) on persistent HTTP/1.1 keep-alive connections, one
request in flight per connection, request bytes built before the timed window (only a
fixed-width request number is spliced in per request, which keeps every event id unique), and
responses parsed no further than the status line, the framing headers and ``"accepted"``.

Scenarios:

* ``single``: one event per request; requests/s, events/s, latency p50/p99.
* ``batch``: ``--batch-size`` events per request, plus freshness: while the load runs a probe
  sends one event for a brand-new visitor to its own service and polls that service's
  ``users-now`` every 25 ms until the count has gone up by one. Freshness is the time from
  receiving the probe's 202 to the first poll answer showing the increase.
* ``read``: ``--pollers`` clients polling ``users-now`` (the service's, and the platform's one
  time in ten) back to back.

Each scenario runs ``--runs`` times for ``--duration`` seconds; the report gives the median over
runs of every figure and min/max of the request rate, to show the run-to-run noise.
Percentiles use linear interpolation between closest ranks (see ``percentile``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import queue
import re
import secrets
import sys
import threading
import time
from array import array
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson

SCENARIOS = ("single", "batch", "read")
SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# The server refuses batches over its limit (1000 by default) with 413: stay under it.
MAX_BATCH = 1000

# Every request carries a request number of this many hex digits (the counter is per process and
# run, and the id also names the invocation, scenario, run and process). Its width is fixed, so
# splicing it into a prebuilt body never changes the Content-Length that was computed up front.
REQNO_WIDTH = 10
_REQNO_SLOT = b"~" * REQNO_WIDTH  # "~" cannot occur in a slug, a tag or JSON we generate
_REQNO_FORMAT = b"%010x"

CONNECT_TIMEOUT_S = 5.0
RECONNECT_PAUSE_S = 0.05  # after a failed exchange: never spin on a refused connection
PROBE_INTERVAL_S = 0.2
PROBE_POLL_S = 0.025
PROBE_TIMEOUT_S = 10.0
PROBE_GRACE_S = 2.0  # how long past the load window an in-flight probe may still finish
SETTLE_S = 1.0  # pause between runs so one run's backlog weighs less on the next
BARRIER_TIMEOUT_S = 60.0
BODY_POOL = 64  # distinct bodies per run; heads vary by visitor, so pairs repeat rarely

# What a broken or closed connection (or a garbled response) raises; the hot path catches only these.
_NET_ERRORS = (OSError, EOFError, asyncio.LimitOverrunError, ValueError)
# The probe also reads JSON, which may lack the field or hold the wrong type.
_PROBE_ERRORS = (*_NET_ERRORS, KeyError, TypeError)
# Response framing from parse_head: a length >= 0, or one of these.
CHUNKED = -1
UNTIL_CLOSE = -2

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Pure helpers: statistics
# ---------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks.

    This is numpy's default (Hyndman & Fan type 7): the sorted values sit at positions
    ``0..n-1``, the percentile is read at position ``(n - 1) * q / 100`` and interpolated between
    its two neighbours. NaN for no values.
    """
    return percentiles(values, (q,))[0]


def percentiles(values: Sequence[float], qs: Iterable[float]) -> list[float]:
    """Several percentiles of one sample, sorting it once (see ``percentile``)."""
    wanted = list(qs)
    for q in wanted:
        if not 0 <= q <= 100:
            raise ValueError(f"percentile {q} is outside 0..100")
    if not values:
        return [math.nan for _ in wanted]
    ordered = sorted(values)
    top = len(ordered) - 1
    out = []
    for q in wanted:
        pos = top * q / 100
        lo = math.floor(pos)
        hi = min(lo + 1, top)
        out.append(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))
    return out


def median(values: Sequence[float]) -> float:
    """The middle value (the mean of the middle two for an even count); NaN for none."""
    return percentile(values, 50)


@dataclass(frozen=True, slots=True)
class Spread:
    """One figure over several runs."""

    median: float
    min: float
    max: float


def spread(values: Iterable[float]) -> Spread:
    """Median, min and max, ignoring NaN (a run with no sample); all NaN when nothing is left."""
    kept = [v for v in values if not math.isnan(v)]
    if not kept:
        return Spread(math.nan, math.nan, math.nan)
    return Spread(median(kept), min(kept), max(kept))


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class LoadSample:
    """What one process's connections saw in one timed window. Merged across processes."""

    ok: int = 0  # 2xx responses completed inside the window
    events: int = 0  # events the server acknowledged in those responses
    dropped: int = 0  # events sent in 2xx requests but not counted in "accepted"
    errors: dict[str, int] = field(default_factory=dict)  # "503": n, "conn": n
    latencies: array[float] = field(default_factory=lambda: array("d"))  # seconds, 2xx only
    cpu_s: float = 0.0  # process CPU time spent during the window

    def merge(self, other: LoadSample) -> None:
        self.ok += other.ok
        self.events += other.events
        self.dropped += other.dropped
        for key, n in other.errors.items():
            self.errors[key] = self.errors.get(key, 0) + n
        self.latencies.extend(other.latencies)
        self.cpu_s += other.cpu_s


@dataclass(slots=True)
class ProbeSample:
    """Freshness probes of one run: seconds from the 202 to the first poll showing the visitor."""

    seconds: list[float] = field(default_factory=list)
    timeouts: int = 0
    failures: int = 0  # the probe's own POST or GET did not get a good answer
    unfinished: int = 0  # acknowledged, still waiting when the run's grace ran out: no figure


@dataclass(frozen=True, slots=True)
class RunResult:
    scenario: str
    run: int
    duration_s: float
    requests_ok: int
    rps: float
    events_per_s: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]
    dropped: int
    client_cpu: float  # client CPU seconds per wall second (1.0 = one core busy)
    probes: int | None = None  # freshness, batch only
    freshness_p50_s: float | None = None
    freshness_p99_s: float | None = None
    probe_timeouts: int | None = None
    probe_failures: int | None = None
    probes_unfinished: int | None = None


def run_result(
    scenario: str, run: int, duration_s: float, load: LoadSample, probe: ProbeSample | None
) -> RunResult:
    """The figures of one run from its raw samples."""
    p50, p99 = percentiles(load.latencies, (50, 99))
    fresh: dict[str, Any] = {}
    if probe is not None:
        f50, f99 = percentiles(probe.seconds, (50, 99))
        fresh = {
            "probes": len(probe.seconds) + probe.timeouts + probe.failures,
            "freshness_p50_s": f50,
            "freshness_p99_s": f99,
            "probe_timeouts": probe.timeouts,
            "probe_failures": probe.failures,
            "probes_unfinished": probe.unfinished,
        }
    return RunResult(
        scenario=scenario,
        run=run,
        duration_s=duration_s,
        requests_ok=load.ok,
        rps=load.ok / duration_s,
        events_per_s=load.events / duration_s,
        p50_ms=p50 * 1000,
        p99_ms=p99 * 1000,
        errors=dict(sorted(load.errors.items())),
        dropped=load.dropped,
        client_cpu=load.cpu_s / duration_s,
        **fresh,
    )


@dataclass(frozen=True, slots=True)
class ScenarioSummary:
    """A scenario over its runs: medians (with min/max) of figures, totals of counts."""

    scenario: str
    runs: int
    rps: Spread
    events_per_s: Spread
    p50_ms: Spread
    p99_ms: Spread
    client_cpu: Spread
    errors: dict[str, int]  # totals over runs: a median would hide a bad run
    dropped: int
    probes: int | None
    freshness_p50_s: Spread | None
    freshness_p99_s: Spread | None
    probe_timeouts: int | None
    probe_failures: int | None
    probes_unfinished: int | None


def summarise_runs(results: Sequence[RunResult]) -> ScenarioSummary:
    """Medians over runs of every figure (min/max kept to show the noise); counts are summed."""
    if not results:
        raise ValueError("no runs to summarise")
    errors: dict[str, int] = {}
    for r in results:
        for key, n in r.errors.items():
            errors[key] = errors.get(key, 0) + n
    probed = [r for r in results if r.probes is not None]

    def fresh(values: Iterable[float | None]) -> Spread:
        return spread(math.nan if v is None else v for v in values)

    return ScenarioSummary(
        scenario=results[0].scenario,
        runs=len(results),
        rps=spread(r.rps for r in results),
        events_per_s=spread(r.events_per_s for r in results),
        p50_ms=spread(r.p50_ms for r in results),
        p99_ms=spread(r.p99_ms for r in results),
        client_cpu=spread(r.client_cpu for r in results),
        errors=dict(sorted(errors.items())),
        dropped=sum(r.dropped for r in results),
        probes=sum(r.probes or 0 for r in probed) if probed else None,
        freshness_p50_s=fresh(r.freshness_p50_s for r in probed) if probed else None,
        freshness_p99_s=fresh(r.freshness_p99_s for r in probed) if probed else None,
        probe_timeouts=sum(r.probe_timeouts or 0 for r in probed) if probed else None,
        probe_failures=sum(r.probe_failures or 0 for r in probed) if probed else None,
        probes_unfinished=sum(r.probes_unfinished or 0 for r in probed) if probed else None,
    )


# ---------------------------------------------------------------------------------------------
# Pure helpers: payloads and requests
# ---------------------------------------------------------------------------------------------

_STEPS = ("eligibility", "details", "address", "documents", "payment", "check-answers")
_HELP_LABELS = ("what-is-this", "contact-us", "accessibility", "guidance")


def journey_events(
    service: str, count: int, *, ts_ms: int, id_prefix: str, variant: int = 0
) -> list[dict[str, Any]]:
    """``count`` Stageprompt events for one page's beacon queue, ids ``{id_prefix}.{index}``.

    A batch reads like a journey: ``stage start``, then intermediate steps with a help click
    every fourth event, then ``stage done``; timestamps go one second apart, ending at ``ts_ms``.
    A single event (``count == 1``) is a start, a step, a done or a help click by ``variant``,
    so a pool of single-event bodies still mixes actions.
    """
    if count < 1:
        raise ValueError("a beacon carries at least one event")
    events: list[dict[str, Any]] = []
    for k in range(count):
        slot = variant % 4 if count == 1 else (0 if k == 0 else 2 if k == count - 1 else 1)
        if slot == 1 and count > 1 and k % 4 == 3:
            slot = 3
        step = _STEPS[(k + variant) % len(_STEPS)]
        if slot == 0:
            action, label, kind, path = "stage", "start", "page", "/apply/start"
        elif slot == 1:
            action, label, kind, path = "stage", "intermediate", "page", f"/apply/{step}"
        elif slot == 2:
            action, label, kind, path = "stage", "done", "page", "/apply/done"
        else:
            label = _HELP_LABELS[(k + variant) % len(_HELP_LABELS)]
            action, kind, path = "help", "click", f"/apply/{step}"
        events.append(
            {
                "category": service,
                "action": action,
                "label": label,
                "kind": kind,
                "path": path,
                "ts": ts_ms - (count - 1 - k) * 1000,
                "id": f"{id_prefix}.{k}",
            }
        )
    return events


def beacon_body(events: Sequence[dict[str, Any]]) -> bytes:
    """The POST body: one object for one event (as a page sends it), else an array."""
    return orjson.dumps(events[0] if len(events) == 1 else list(events))


@dataclass(frozen=True, slots=True)
class BodyTemplate:
    """The tail of a POST (Content-Length, blank line, body) cut at the request-number slots.

    ``render(n)`` splices request number ``n`` into every event id with one ``bytes.join``.
    """

    parts: tuple[bytes, ...]
    events: int

    def render(self, reqno: int) -> bytes:
        return (_REQNO_FORMAT % reqno).join(self.parts)


def body_templates(
    service: str, batch_size: int, *, tag: str, ts_ms: int, pool: int = BODY_POOL
) -> list[BodyTemplate]:
    """``pool`` prebuilt bodies of ``batch_size`` events; ids are ``{tag}.{reqno}.{index}``."""
    if not SLUG.match(tag) or "~" in service:
        raise ValueError(f"bad tag {tag!r} or service {service!r}")
    out = []
    for variant in range(pool):
        events = journey_events(
            service,
            batch_size,
            ts_ms=ts_ms - variant,
            id_prefix=f"{tag}.{_REQNO_SLOT.decode()}",
            variant=variant,
        )
        body = beacon_body(events)
        tail = b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        parts = tuple(tail.split(_REQNO_SLOT))
        if len(parts) != batch_size + 1:  # the slot must appear once per event, in its id
            raise AssertionError("request-number slot found outside the event ids")
        out.append(BodyTemplate(parts, batch_size))
    return out


def agent_cut(host: str, tag: str) -> tuple[bytes, bytes]:
    """A beacon POST head cut where the visitor number goes: ``before + b"%d" % n + after``."""
    before, after = post_head(host, visitor_agent(tag, 0)).split(b"-0\r\n", 1)
    return before + b"-", b"\r\n" + after


def visitor_agent(tag: str, n: int | str) -> str:
    """The User-Agent of simulated visitor ``n``: the server keys visitors on IP + User-Agent."""
    return f"Mozilla/5.0 perfplat-bench/{tag}-{n}"


def post_head(host: str, user_agent: str) -> bytes:
    """A beacon POST up to (not including) its Content-Length line, as sendBeacon sends it."""
    return (
        f"POST /beacon HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\n"
        "Content-Type: text/plain;charset=UTF-8\r\n"
    ).encode("latin-1")


def get_request(host: str, path: str, user_agent: str = "perfplat-bench") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\nAccept: application/json\r\n\r\n"
    ).encode("latin-1")


def parse_head(head: bytes) -> tuple[int, int, bool]:
    """(status, framing, close) of a response head ending in a blank line.

    ``framing`` is the Content-Length, ``CHUNKED``, or ``UNTIL_CLOSE`` (no length: the body runs
    to the end of the connection). ``close`` says the server will not keep the connection.
    Raises ValueError for something that is not an HTTP/1.x response.
    """
    if not head.startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP/1.x response: {head[:40]!r}")
    status = int(head[9:12])
    lower = head.lower()
    i = lower.find(b"\r\ncontent-length:")
    if i >= 0:
        framing = int(head[i + 17 : lower.index(b"\r\n", i + 17)])
    elif b"\r\ntransfer-encoding: chunked" in lower:
        framing = CHUNKED
    elif status in (204, 304) or 100 <= status < 200:
        framing = 0
    else:
        framing = UNTIL_CLOSE
    if head[7:8] == b"0":  # HTTP/1.0 closes unless it says otherwise
        close = b"\r\nconnection: keep-alive" not in lower
    else:
        close = b"\r\nconnection: close" in lower
    return status, framing, close or framing == UNTIL_CLOSE


def accepted_count(body: bytes, default: int) -> int:
    """The ``accepted`` figure of a 202 body, found without a JSON parse; ``default`` if absent."""
    i = body.find(b'"accepted":')
    if i < 0:
        return default
    start = i + 11
    ends = [j for j in (body.find(b",", start), body.find(b"}", start)) if j >= 0]
    try:
        return int(body[start : min(ends)]) if ends else default
    except ValueError:
        return default


# ---------------------------------------------------------------------------------------------
# The wire: one keep-alive connection, one request in flight
# ---------------------------------------------------------------------------------------------


class Connection:
    """A persistent HTTP/1.1 connection. Not pipelined: latency is one request's round trip."""

    __slots__ = ("host", "port", "reader", "writer")

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), CONNECT_TIMEOUT_S
        )

    def close(self) -> None:
        # No wait_closed(): the transport finishes closing by itself, and a bench that is being
        # torn down should not wait on a peer that may be the thing that is stuck.
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send one request and read its whole response: (status, body)."""
        if self.writer is None or self.reader is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        # No drain(): with one request in flight the transport buffer holds at most one request,
        # so there is no backlog to apply back-pressure to, and drain costs an await per request.
        self.writer.write(request)
        reader = self.reader
        status, framing, close = parse_head(await reader.readuntil(b"\r\n\r\n"))
        if framing > 0:
            body = await reader.readexactly(framing)
        elif framing == 0:
            body = b""
        elif framing == CHUNKED:
            body = await _read_chunked(reader)
        else:
            body = await reader.read()
        if close:
            self.close()
        return status, body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, then the blank line
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


# ---------------------------------------------------------------------------------------------
# Load loops
# ---------------------------------------------------------------------------------------------


class Feeder:
    """Hands out a run's requests: ``next()`` gives (request bytes, events it carries).

    For POSTs the head is cut around the visitor number and the body around the request number,
    so one request costs a ``%``-format and a ``join`` however many visitors are simulated.
    Visitors are taken round-robin; bodies cycle through the pool. For GETs (``bodies`` empty)
    ``gets`` are whole requests, cycled.
    """

    __slots__ = ("agent_cut", "bodies", "count_accepted", "gets", "n", "visitors")

    def __init__(
        self,
        *,
        bodies: Sequence[BodyTemplate] = (),
        agent_cut: tuple[bytes, bytes] = (b"", b""),
        visitors: int = 1,
        gets: Sequence[bytes] = (),
    ) -> None:
        if not bodies and not gets:
            raise ValueError("a feeder needs bodies to POST or requests to GET")
        self.bodies, self.agent_cut, self.visitors, self.gets = list(bodies), agent_cut, visitors, list(gets)
        self.count_accepted = bool(bodies)
        self.n = 0

    def next(self) -> tuple[bytes, int]:
        n = self.n = self.n + 1
        if not self.bodies:
            return self.gets[n % len(self.gets)], 0
        body = self.bodies[n % len(self.bodies)]
        before, after = self.agent_cut
        return b"%s%d%s%s" % (
            before,
            n % self.visitors,
            after,
            (_REQNO_FORMAT % n).join(body.parts),
        ), body.events


async def _load_worker(
    conn: Connection,
    feeder: Feeder,
    sample: LoadSample,
    deadline: float,
    interval_s: float | None = None,
    offset_s: float = 0.0,
) -> None:
    """Requests on one connection until the deadline (or until cancelled): back to back, or
    with ``interval_s`` one every interval (open loop: a dashboard polling, or a paced rate).

    When paced, latency is measured from the request's scheduled time, so a slow server cannot
    hide its queueing by delaying the client (no coordinated omission).

    Counters live in locals and are flushed in ``finally``, so a worker cancelled mid-request at
    the deadline still reports what it completed inside the window.
    """
    clock = time.perf_counter
    latencies = sample.latencies
    count_accepted = feeder.count_accepted
    ok = events = dropped = 0
    scheduled = clock() + offset_s
    try:
        while True:
            request, sent = feeder.next()
            if interval_s is not None:
                wait = scheduled - clock()
                if wait > 0:
                    await asyncio.sleep(wait)
                t0 = scheduled
                scheduled += interval_s
            else:
                t0 = clock()
            if t0 >= deadline:
                return
            try:
                status, body = await conn.exchange(request)
            except _NET_ERRORS:
                conn.close()
                if clock() < deadline:
                    sample.errors["conn"] = sample.errors.get("conn", 0) + 1
                await asyncio.sleep(RECONNECT_PAUSE_S)
                continue
            t1 = clock()
            if t1 > deadline:  # finished outside the window: not part of this run's figures
                return
            if 200 <= status < 300:
                ok += 1
                latencies.append(t1 - t0)
                if count_accepted:
                    got = accepted_count(body, sent)
                    events += got
                    dropped += sent - got
            else:
                key = str(status)
                sample.errors[key] = sample.errors.get(key, 0) + 1
    finally:
        sample.ok += ok
        sample.events += events
        sample.dropped += dropped


# ---------------------------------------------------------------------------------------------
# Freshness probe
# ---------------------------------------------------------------------------------------------


async def _exchange_retry(conn: Connection, request: bytes) -> tuple[int, bytes]:
    """One exchange, retried once on a fresh connection (an idle keep-alive may have been shut)."""
    try:
        return await conn.exchange(request)
    except _NET_ERRORS:
        conn.close()
        return await conn.exchange(request)


async def _users_now(conn: Connection, request: bytes) -> int:
    status, body = await _exchange_retry(conn, request)
    if status != 200:
        raise ValueError(f"users-now answered {status}")
    value = orjson.loads(body)["users_now"]
    if not isinstance(value, int):
        raise TypeError("users_now is not an integer")
    return value


async def _probe_loop(cfg: BenchConfig, run: int, deadline: float, sample: ProbeSample) -> None:
    """Probes one after another, starting every PROBE_INTERVAL_S (or as soon as the last ends).

    Each probe reads the probe service's count, sends one event for a visitor never seen before
    (a fresh User-Agent), and from its 202 on polls the count every PROBE_POLL_S until it is
    at least one higher. Probes never overlap, so each increase is the probe's own; the probe
    service gets no other traffic. Its connections are its own, apart from the load's.
    """
    clock = time.perf_counter
    host, service, tag = cfg.host_header, cfg.probe_service(run), f"{cfg.tag}x{run}"
    post_conn, get_conn = Connection(cfg.host, cfg.port), Connection(cfg.host, cfg.port)
    count_request = get_request(host, f"/services/{service}/users-now")
    k = 0
    waiting = False  # a probe was acknowledged and its increase not yet seen
    try:
        while clock() < deadline:
            started = clock()
            k += 1
            events = journey_events(service, 1, ts_ms=int(time.time() * 1000), id_prefix=f"{tag}.{k}")
            body = beacon_body(events)
            request = post_head(host, visitor_agent(tag, f"probe-{k}")) + (
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            try:
                baseline = await _users_now(get_conn, count_request)
                status, _ = await _exchange_retry(post_conn, request)
                if not 200 <= status < 300:
                    raise ValueError(f"probe POST answered {status}")
                acked = clock()
                waiting = True
                give_up = acked + PROBE_TIMEOUT_S
                polls = 0
                while True:
                    if await _users_now(get_conn, count_request) > baseline:
                        sample.seconds.append(clock() - acked)
                        break
                    if clock() >= give_up:
                        sample.timeouts += 1
                        break
                    polls += 1  # polls keep a 25 ms cadence from the 202, whatever they cost
                    await asyncio.sleep(max(0.0, acked + polls * PROBE_POLL_S - clock()))
                waiting = False
            except _PROBE_ERRORS:
                post_conn.close()
                get_conn.close()
                sample.failures += 1
                waiting = False
            await asyncio.sleep(max(0.0, started + PROBE_INTERVAL_S - clock()))
    finally:
        # Cancelled at the end of the grace period while waiting: say so, or a stack whose
        # freshness is slower than the run would show no probes at all rather than a problem.
        if waiting:
            sample.unfinished += 1
        post_conn.close()
        get_conn.close()


# ---------------------------------------------------------------------------------------------
# One run, in one process or several
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """Everything a run needs; plain, picklable data so worker processes can receive it."""

    url: str
    host: str
    port: int
    scenarios: tuple[str, ...]
    duration_s: float
    runs: int
    concurrency: int
    batch_size: int
    visitors: int
    service: str
    pollers: int
    processes: int
    tag: str  # random per invocation: visitor agents and event ids never collide across benches
    json_path: str | None = None
    rate: float | None = None  # events/s for single/batch over all processes; None: as fast as it goes
    poll_interval_s: float = 1.0  # each read poller's period

    @property
    def host_header(self) -> str:
        return self.host if self.port == 80 else f"{self.host}:{self.port}"

    def probe_service(self, run: int) -> str:
        # A fresh probe service per run, so nothing from an earlier run ages out of the
        # users-now window (300 s) while a probe is waiting for its increase.
        return f"{self.service[:50]}-probe{run}"  # within the 64-character slug for any run count


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` connections over ``parts`` processes, differing by at most one."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _feeder(cfg: BenchConfig, scenario: str, run: int, proc: int) -> Feeder:
    host = cfg.host_header
    if scenario == "read":
        own = get_request(host, f"/services/{cfg.service}/users-now")
        platform = get_request(host, "/users-now")
        return Feeder(gets=[platform if i == 0 else own for i in range(10)])  # 1 in 10: platform
    batch = 1 if scenario == "single" else cfg.batch_size
    tag = f"{cfg.tag}{scenario[0]}{run}p{proc}"
    return Feeder(
        bodies=body_templates(cfg.service, batch, tag=tag, ts_ms=int(time.time() * 1000)),
        # The same visitors in every run, scenario and process: the service sees --visitors people.
        agent_cut=agent_cut(host, cfg.tag),
        visitors=cfg.visitors,
    )


def _interval_s(cfg: BenchConfig, scenario: str, connections: int) -> float | None:
    """Seconds between requests on one connection: pollers poll every ``poll_interval_s``; with
    ``rate`` the single/batch load is paced to that many events/s over all processes."""
    if scenario == "read":
        return cfg.poll_interval_s
    if cfg.rate is None:
        return None
    per_request = 1 if scenario == "single" else cfg.batch_size
    return connections * per_request * cfg.processes / cfg.rate


async def _load_window(
    cfg: BenchConfig,
    scenario: str,
    run: int,
    proc: int,
    connections: int,
    start_gate: Callable[[], Coroutine[Any, Any, None]] | None,
    probe: ProbeSample | None,
) -> LoadSample:
    """Connect, wait at the gate (other processes), then drive load for one window."""
    feeder = _feeder(cfg, scenario, run, proc)
    conns = [Connection(cfg.host, cfg.port) for _ in range(connections)]
    # Connect before the clock starts; a failure here is retried (and counted) inside the window.
    await asyncio.gather(*(c.open() for c in conns), return_exceptions=True)
    if start_gate is not None:
        await start_gate()
    sample = LoadSample()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    deadline = t0 + cfg.duration_s
    interval = _interval_s(cfg, scenario, connections)
    spread_s = interval or 0.0
    tasks = [
        asyncio.create_task(
            _load_worker(c, feeder, sample, deadline, interval, spread_s * i / max(1, len(conns)))
        )
        for i, c in enumerate(conns)
    ]
    probe_task = None
    if probe is not None:
        probe_task = asyncio.create_task(_probe_loop(cfg, run, deadline, probe))
    try:
        await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        sample.cpu_s = time.process_time() - cpu0
        for c in conns:
            c.close()
        if probe_task is not None:
            # An in-flight probe may finish shortly after the window; after that it is dropped.
            await asyncio.wait({probe_task}, timeout=PROBE_GRACE_S)
            probe_task.cancel()
            await asyncio.gather(probe_task, return_exceptions=True)
    return sample


async def _parent_share(
    cfg: BenchConfig, run: int, barrier: Any, procs: Sequence[Any], with_probe: bool
) -> ProbeSample | None:
    """The parent's part when worker processes carry the load: start them together, then probe.

    The parent joins the start barrier too, and breaks it if a worker dies before reaching it,
    so a worker that failed to start costs a fraction of a second, not the barrier's timeout.
    """
    waiter = asyncio.ensure_future(asyncio.to_thread(barrier.wait, BARRIER_TIMEOUT_S))
    while not waiter.done():
        await asyncio.wait({waiter}, timeout=0.2)
        if not waiter.done() and any(p.exitcode is not None for p in procs):
            barrier.abort()
    waiter.result()  # BrokenBarrierError when aborted or timed out
    if not with_probe:
        return None
    probe = ProbeSample()
    deadline = time.perf_counter() + cfg.duration_s
    task = asyncio.create_task(_probe_loop(cfg, run, deadline, probe))
    await asyncio.wait({task}, timeout=cfg.duration_s + PROBE_GRACE_S)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return probe


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a fresh event loop: uvloop's when importable (cheaper per request)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def _worker_process(
    cfg: BenchConfig,
    scenario: str,
    run: int,
    proc: int,
    connections: int,
    barrier: Any,
    results: Any,
) -> None:
    """Entry point of a spawned load process: one window, results sent back as plain data."""

    async def gate() -> None:
        await asyncio.to_thread(barrier.wait, BARRIER_TIMEOUT_S)

    try:
        sample = run_async(_load_window(cfg, scenario, run, proc, connections, gate, None))
        results.put(
            {
                "proc": proc,
                "ok": sample.ok,
                "events": sample.events,
                "dropped": sample.dropped,
                "errors": sample.errors,
                "latencies": sample.latencies.tobytes(),
                "cpu_s": sample.cpu_s,
            }
        )
    except threading.BrokenBarrierError:
        results.put({"proc": proc, "failed": "another process never reached the start"})
    except Exception as exc:
        results.put({"proc": proc, "failed": repr(exc)})
        raise


def _mp_context() -> Any:
    # fork where the platform has it: quick to start, and it does not re-import the __main__ of
    # whatever script called us (spawn does, and fails without a __main__ guard). At this point
    # the parent runs no event loop and no threads (each run_async closes its loop and executor),
    # which is what makes fork safe here.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _run_multiprocess(cfg: BenchConfig, scenario: str, run: int) -> tuple[LoadSample, ProbeSample | None]:
    ctx = _mp_context()
    total = cfg.pollers if scenario == "read" else cfg.concurrency
    shares = [n for n in split_evenly(total, cfg.processes) if n > 0]
    barrier = ctx.Barrier(len(shares) + 1)  # the parent starts the clock with them
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker_process,
            args=(cfg, scenario, run, i, n, barrier, results),
            name=f"perfplat-bench-{i}",
            daemon=True,
        )
        for i, n in enumerate(shares)
    ]
    for p in procs:
        p.start()
    try:
        try:
            probe = run_async(_parent_share(cfg, run, barrier, procs, scenario == "batch"))
        except threading.BrokenBarrierError:
            raise RuntimeError("a load process failed before the start (see its error above)") from None
        load = LoadSample()
        # The window is over: workers report within a few seconds. Never wait forever.
        give_up = time.monotonic() + PROBE_GRACE_S + 30
        for _ in procs:
            try:
                got = results.get(timeout=max(0.1, give_up - time.monotonic()))
            except queue.Empty:
                raise RuntimeError("a load process did not report back in time") from None
            if "failed" in got:
                raise RuntimeError(f"load process {got['proc']} failed: {got['failed']}")
            latencies: array[float] = array("d")
            latencies.frombytes(got["latencies"])
            load.merge(
                LoadSample(got["ok"], got["events"], got["dropped"], got["errors"], latencies, got["cpu_s"])
            )
        return load, probe
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()  # only our own children, by handle
                p.join(timeout=5)


def run_once(cfg: BenchConfig, scenario: str, run: int) -> RunResult:
    """One timed run of one scenario, in this process or in ``cfg.processes`` load processes."""
    if cfg.processes > 1:
        load, probe = _run_multiprocess(cfg, scenario, run)
    else:
        probe = ProbeSample() if scenario == "batch" else None
        connections = cfg.pollers if scenario == "read" else cfg.concurrency
        load = run_async(_load_window(cfg, scenario, run, 0, connections, None, probe))
    return run_result(scenario, run, cfg.duration_s, load, probe)


async def _preflight(cfg: BenchConfig) -> str | None:
    """None when ``GET /users-now`` answers 200 with a count, else what went wrong."""
    conn = Connection(cfg.host, cfg.port)
    try:
        await asyncio.wait_for(_users_now(conn, get_request(cfg.host_header, "/users-now")), 10)
    except _PROBE_ERRORS as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    finally:
        conn.close()
    return None


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _num(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.0f}"


def _ms(x: float) -> str:
    if math.isnan(x):
        return "- ms"
    return f"{x:.2f} ms" if x < 10 else f"{x:.1f} ms"


def _secs(x: float) -> str:
    return "- s" if math.isnan(x) else f"{x:.2f} s"


def _errors(errors: dict[str, int]) -> str:
    total = sum(errors.values())
    if not total:
        return "errors 0"
    return f"errors {total} (" + ", ".join(f"{k}: {n}" for k, n in errors.items()) + ")"


def format_summary(s: ScenarioSummary) -> str:
    """One scenario's lines of the report."""
    line = f"{s.scenario:<7}  rps median {_num(s.rps.median)} (min {_num(s.rps.min)}, max {_num(s.rps.max)})"
    if s.scenario != "read":
        line += f"  events/s {_num(s.events_per_s.median)}"
    line += f"  p50 {_ms(s.p50_ms.median)}  p99 {_ms(s.p99_ms.median)}  {_errors(s.errors)}"
    if s.dropped:
        line += f"  dropped events {s.dropped}"
    line += f"  client cpu {s.client_cpu.median:.2f}\n"
    if s.freshness_p50_s is not None and s.freshness_p99_s is not None:
        line += (
            f"{'':<7}  freshness p50 {_secs(s.freshness_p50_s.median)}  p99 {_secs(s.freshness_p99_s.median)}"
            f"  (probes {s.probes}, timeouts {s.probe_timeouts}, failed {s.probe_failures}"
            + (f", unfinished {s.probes_unfinished}" if s.probes_unfinished else "")
            + ")\n"
        )
    return line


def format_report(cfg: BenchConfig, summaries: Sequence[ScenarioSummary]) -> str:
    head = (
        f"perfplat bench  {cfg.url}  service {cfg.service}  {cfg.runs} run(s) x {cfg.duration_s:g} s  "
        f"{cfg.concurrency} connections  batch {cfg.batch_size}  {cfg.visitors} visitors  "
        f"{cfg.pollers} pollers every {cfg.poll_interval_s:g} s  {cfg.processes} process(es)  "
        f"rate {f'{cfg.rate:g} events/s' if cfg.rate else 'unpaced'}\n"
        "medians over runs (rps min/max show the noise); errors, drops, probes and timeouts are "
        "totals; client cpu is the bench's own CPU in cores\n"
    )
    return head + "".join(format_summary(s) for s in summaries)


def results_json(cfg: BenchConfig, summaries: Sequence[ScenarioSummary], runs: Sequence[RunResult]) -> bytes:
    """Machine-readable results: config, per-scenario summaries and every run. NaN becomes null."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    doc = {
        "config": {k: v for k, v in asdict(cfg).items() if k != "json_path"},
        "percentile_method": "linear interpolation between closest ranks (numpy default)",
        "scenarios": {
            s.scenario: {
                "summary": asdict(s),
                "runs": [asdict(r) for r in runs if r.scenario == s.scenario],
            }
            for s in summaries
        },
    }
    return orjson.dumps(clean(doc), option=orjson.OPT_INDENT_2)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds")
    return value


def _batch_size(text: str) -> int:
    value = positive_int(text)
    if value > MAX_BATCH:
        raise argparse.ArgumentTypeError(f"batches are at most {MAX_BATCH} events (the server's limit)")
    return value


def _slug(text: str) -> str:
    if not SLUG.match(text) or len(text) > 56:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a service slug of up to 56 characters: lower-case letters, digits, '-', '_'"
        )
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``perfplat bench`` options."""
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="base URL of the running stack")
    parser.add_argument("--scenario", choices=(*SCENARIOS, "all"), default="all")
    parser.add_argument("--duration", type=positive_float, default=10.0, help="seconds per run")
    parser.add_argument("--runs", type=positive_int, default=3, help="runs per scenario (medians reported)")
    parser.add_argument("--concurrency", type=positive_int, default=64, help="connections for single/batch")
    parser.add_argument("--batch-size", type=_batch_size, default=50, help="events per request in batch")
    parser.add_argument("--visitors", type=positive_int, default=10_000, help="distinct simulated visitors")
    parser.add_argument(
        "--service", type=_slug, default=None, help="service slug (default: a fresh bench-xxxxxx)"
    )
    parser.add_argument("--pollers", type=positive_int, default=100, help="concurrent readers in read")
    parser.add_argument(
        "--processes", type=positive_int, default=1, help="load-generating processes (results combined)"
    )
    parser.add_argument("--json", default=None, metavar="PATH", help="also write results as JSON here")
    parser.add_argument(
        "--rate",
        type=positive_float,
        default=None,
        help="pace single/batch to this many events/s (default: as fast as the stack answers)",
    )
    parser.add_argument(
        "--poll-interval",
        type=positive_float,
        default=1.0,
        help="seconds between one read poller's requests",
    )


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    parts = urlsplit(args.url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"--url must be http://host[:port], got {args.url!r}")
    if parts.path not in ("", "/"):
        raise ValueError("--url is the stack's base URL, without a path")
    tag = secrets.token_hex(3)
    return BenchConfig(
        url=args.url,
        host=parts.hostname,
        port=parts.port or 80,
        scenarios=SCENARIOS if args.scenario == "all" else (args.scenario,),
        duration_s=args.duration,
        runs=args.runs,
        concurrency=args.concurrency,
        batch_size=args.batch_size,
        visitors=args.visitors,
        service=args.service or f"bench-{tag}",
        pollers=args.pollers,
        processes=args.processes,
        tag=tag,
        json_path=args.json,
        rate=args.rate,
        poll_interval_s=args.poll_interval,
    )


def main(args: argparse.Namespace) -> int:
    """Run the chosen scenarios and print the report. 0: done; 1: a run got no 2xx; 2: no stack."""
    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        sys.stderr.write(f"perfplat bench: {exc}\n")
        return 2
    problem = run_async(_preflight(cfg))
    if problem is not None:
        sys.stderr.write(f"perfplat bench: {cfg.url}/users-now is not answering ({problem})\n")
        return 2
    all_runs: list[RunResult] = []
    summaries = []
    for scenario in cfg.scenarios:
        runs = []
        for run in range(cfg.runs):
            if all_runs:
                time.sleep(SETTLE_S)
            try:
                result = run_once(cfg, scenario, run)
            except RuntimeError as exc:
                sys.stderr.write(f"perfplat bench: {scenario} run {run + 1}: {exc}\n")
                return 1
            sys.stderr.write(
                f"{scenario} run {run + 1}/{cfg.runs}: {result.rps:.0f} rps, "
                f"{result.events_per_s:.0f} events/s, {sum(result.errors.values())} errors\n"
            )
            runs.append(result)
            all_runs.append(result)
        summaries.append(summarise_runs(runs))
    sys.stdout.write(format_report(cfg, summaries))
    if cfg.json_path:
        Path(cfg.json_path).write_bytes(results_json(cfg, summaries, all_runs))
    return 1 if any(r.requests_ok == 0 for r in all_runs) else 0
