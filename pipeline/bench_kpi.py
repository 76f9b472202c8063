"""``perfplat bench kpi``: the live-KPI targets, measured on a stack of its own.

* **load** — transactions sent through the producer SDK (straight to Kafka, as a service's back
  end would) at ``--rate`` events/s over ``--services`` services for ``--duration`` seconds,
  ``--runs`` times. Meanwhile a probe service gets one transaction every half second and the
  KPI API is polled until its count includes it: that delay is the freshness (sent → in the
  figures). After each run: how long until every delivered event was counted, and whether the
  count is exact. Before the first run one warm-up probe waits until the worker counts, so
  the worker's start-up is not timed as freshness.
* **read** — ``--pollers`` concurrent readers of one service's KPI summary
  (``GET /services/{s}/kpis``), each every ``--poll-interval`` seconds, for ``--duration``.
  Before it, the same pollers read ``/healthz`` of the same api process for as long: the
  control, which does no work, so its latencies are this machine's, this client's and the HTTP
  stack's floor, and the difference between the two is the summary's own.

The stack is the distributed mode's (``pipeline.bench_datasets.running_stack``): the Tansu
broker, Debian's ClickHouse server, one ``perfplat api`` and one ``perfplat worker``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from pipeline.bench import (
    Connection,
    get_request,
    median,
    percentile,
    positive_float,
    positive_int,
    run_async,
)
from pipeline.bench_datasets import BenchStack, running_stack
from pipeline.clickhouse_server import ClickHouseServer
from schemas.fields import CHANNELS

PROBE = "bench-probe"
PROBE_EVERY_S = 0.5
WARM_UP_TIMEOUT_S = 90.0


@dataclass
class LoadRun:
    run: int
    duration_s: float
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    freshness_s: list[float] = field(default_factory=list)
    counted_after_s: float | None = None
    counted: int = 0

    @property
    def events_per_s(self) -> float:
        return self.delivered / self.duration_s


def format_load(runs: list[LoadRun], rate: float, services: int) -> str:
    lines = [f"load: transactions at {rate:,.0f}/s over {services} services, through the SDK"]
    for r in runs:
        fresh = r.freshness_s
        counted = "never" if r.counted_after_s is None else f"{r.counted_after_s:.2f} s"
        lines.append(
            f"  run {r.run + 1}: {r.events_per_s:,.0f} events/s delivered ({r.failed} failed); "
            f"freshness p50 {percentile(fresh, 50):.2f} s p99 {percentile(fresh, 99):.2f} s "
            f"(n={len(fresh)}); all counted {counted} after the load, "
            f"counted {r.counted:,} of {r.delivered:,}"
        )
    all_fresh = [f for r in runs for f in r.freshness_s]
    lines.append(
        f"  median: {median([r.events_per_s for r in runs]):,.0f} events/s, freshness p99 over all runs "
        f"{percentile(all_fresh, 99):.2f} s (targets: >= 20,000 events/s, p99 <= 2 s)"
    )
    return "\n".join(lines) + "\n"


def _latencies(run: ReadRun) -> str:
    ms = run.latencies_ms
    return (
        f"{len(ms):,} requests: p50 {percentile(ms, 50):.1f} ms, p99 {percentile(ms, 99):.1f} ms, "
        f"max {max(ms):.1f} ms (first request alone {run.first_ms:.1f} ms)"
    )


def format_read(summary: ReadRun, control: ReadRun, pollers: int, interval_s: float) -> str:
    return (
        f"read: {pollers} pollers of one service's KPI summary, each every {interval_s:g} s\n"
        f"  control (/healthz): {_latencies(control)}\n"
        f"  KPI summary:        {_latencies(summary)}; target p99 <= 20 ms\n"
    )


def _create_services(bench: BenchStack, slugs: list[str]) -> None:
    for slug in slugs:
        r = httpx.post(
            bench.base_url + "/_admin/services",
            json={"slug": slug, "name": f"Bench {slug}"},
            headers={"Authorization": f"Bearer {bench.admin_token}"},
            timeout=10,
        )
        if r.status_code not in (201, 409):
            raise RuntimeError(f"creating service {slug}: {r.status_code} {r.text[:200]}")


def _kpi_count(client: httpx.Client, service: str, name: str = "transactions_started") -> int:
    r = client.get(f"/services/{service}/kpis", params={"period": "day"}, timeout=10)
    r.raise_for_status()
    return int(r.json()["kpis"][name]["value"] or 0)


def _total(client: httpx.Client, services: list[str]) -> int:
    total = 0
    for s in services:
        r = client.get(f"/services/{s}/kpis", params={"period": "day"}, timeout=10)
        r.raise_for_status()
        kpis = r.json()["kpis"]
        total += int(kpis["transactions_started"]["value"] or 0)
        total += int(kpis["transactions_completed"]["value"] or 0)
    return total


def _wait_counted(client: httpx.Client, probes: int, timeout_s: float, what: str) -> None:
    """Poll the probe service's KPI summary until it counts ``probes`` transactions."""
    started = time.monotonic()
    while _kpi_count(client, PROBE) < probes:
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"{what} was not counted within {timeout_s:g} s")
        time.sleep(0.02)


def bench_load(bench: BenchStack, args: argparse.Namespace, services: list[str]) -> list[LoadRun]:
    from producers.sdk import Client  # the SDK pulls in confluent-kafka only when the bench runs

    runs = []
    rng = random.Random(args.seed)
    probes_sent = 0
    expected_total = 0
    with httpx.Client(base_url=bench.base_url) as http, Client(bench.broker.bootstrap) as sdk:
        # The stack counts as up once the API answers, but the worker may still be starting
        # (its consumer group join alone takes about 3 s on Tansu). Without this warm-up probe the
        # first run's first probe timed the worker's start-up, not the pipeline's freshness, and
        # among the 10-20 probes of a 10 s run that one sample was the run's p99.
        sdk.transaction("started", "digital", service=PROBE)
        probes_sent += 1
        _wait_counted(http, probes_sent, WARM_UP_TIMEOUT_S, "the warm-up probe")
        sdk.flush(30)  # its delivery report, before the first run takes its `delivered` baseline
        for i in range(args.runs):
            run = LoadRun(run=i, duration_s=args.duration)
            delivered_before, failed_before = sdk.delivered, sdk.failed
            stop = threading.Event()

            def load(run: LoadRun = run, stop: threading.Event = stop) -> None:
                t0 = time.perf_counter()
                while not stop.is_set():
                    due = int(args.rate * (time.perf_counter() - t0))
                    for _ in range(due - run.sent):
                        # started and completed only, so the two counts add up to what was sent
                        outcome = "started" if rng.random() < 0.55 else "completed"
                        sdk.transaction(outcome, rng.choice(CHANNELS), service=rng.choice(services))
                    run.sent = max(run.sent, due)
                    time.sleep(0.005)

            loader = threading.Thread(target=load, name="bench-load")
            started = time.monotonic()
            loader.start()
            while time.monotonic() - started < args.duration:
                slot = time.monotonic()
                sdk.transaction("started", "digital", service=PROBE)
                probes_sent += 1
                _wait_counted(http, probes_sent, 30, "a probe transaction")
                run.freshness_s.append(time.monotonic() - slot)
                time.sleep(max(0.0, PROBE_EVERY_S - (time.monotonic() - slot)))
            stop.set()
            loader.join()
            run.duration_s = time.monotonic() - started  # the load ran until the last probe was seen
            sdk.flush(30)
            stopped = time.monotonic()
            run.delivered = sdk.delivered - delivered_before
            run.failed = sdk.failed - failed_before
            run.delivered -= len(run.freshness_s)  # the probes are not part of the load
            expected_total += run.delivered
            while time.monotonic() - stopped < 120:
                run.counted = _total(http, services) - (expected_total - run.delivered)
                if run.counted >= run.delivered:
                    run.counted_after_s = time.monotonic() - stopped
                    break
                time.sleep(0.2)
            sys.stderr.write(
                f"kpi load run {i + 1}/{args.runs}: {run.events_per_s:,.0f} events/s, "
                f"freshness p99 {percentile(run.freshness_s, 99):.2f} s\n"
            )
            runs.append(run)
    return runs


async def _poller(bench: BenchStack, path: str, interval_s: float, deadline: float, out: list[float]) -> None:
    """One dashboard polling ``path`` over a kept-alive connection (a raw HTTP/1.1 client, so the
    client's own cost in each latency is small)."""
    conn = Connection("127.0.0.1", bench.port)
    request = get_request(f"127.0.0.1:{bench.port}", path)
    try:
        await asyncio.sleep(random.random() * interval_s)  # spread the pollers over the interval
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            status, body = await conn.exchange(request)
            out.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
            await asyncio.sleep(max(0.0, interval_s - (time.perf_counter() - t0)))
    finally:
        conn.close()


@dataclass
class ReadRun:
    path: str
    first_ms: float
    """The first request alone: it computes the figures (nothing cached yet)."""
    latencies_ms: list[float]
    """Every poller's requests after it."""


def bench_read(bench: BenchStack, args: argparse.Namespace, path: str) -> ReadRun:
    """The first request alone (a cold cache: its figures are computed for it), then
    ``--pollers`` pollers for ``--duration`` seconds. Without the first request on its own, every
    poller's first request waits for that one computation, and those 20 samples would be the
    p99 of a steady read."""

    async def poll_all() -> ReadRun:
        conn = Connection("127.0.0.1", bench.port)
        await conn.open()
        try:
            t0 = time.perf_counter()
            status, body = await conn.exchange(get_request(f"127.0.0.1:{bench.port}", path))
            first_ms = (time.perf_counter() - t0) * 1000
        finally:
            conn.close()
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
        latencies: list[float] = []
        deadline = time.monotonic() + args.duration
        await asyncio.gather(
            *(_poller(bench, path, args.poll_interval, deadline, latencies) for _ in range(args.pollers))
        )
        return ReadRun(path, first_ms, latencies)

    return run_async(poll_all())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", choices=("load", "read", "all"), default="all")
    parser.add_argument("--rate", type=positive_float, default=20_000.0, help="transactions/s in load")
    parser.add_argument("--duration", type=positive_float, default=20.0, help="seconds per run")
    parser.add_argument("--runs", type=positive_int, default=3, help="load runs (median reported)")
    parser.add_argument("--services", type=positive_int, default=5, help="services the load spreads over")
    parser.add_argument("--pollers", type=positive_int, default=20, help="concurrent readers in read")
    parser.add_argument("--poll-interval", type=positive_float, default=0.1, help="seconds between reads")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None, help="run the stack in this directory, kept")


def main(args: argparse.Namespace) -> int:
    if ClickHouseServer(Path(".")).binary is None:
        sys.stderr.write("perfplat bench kpi: needs Debian's clickhouse-server (make system-deps)\n")
        return 2
    services = [f"bench-{i}" for i in range(args.services)]
    out = []
    with running_stack(args.keep) as bench:
        _create_services(bench, [PROBE, *services])
        if args.scenario in ("load", "all"):
            out.append(format_load(bench_load(bench, args, services), args.rate, len(services)))
        if args.scenario in ("read", "all"):
            control = bench_read(bench, args, "/healthz")
            summary = bench_read(bench, args, f"/services/{services[0]}/kpis?period=week")
            out.append(format_read(summary, control, args.pollers, args.poll_interval))
    sys.stdout.write("".join(out))
    return 0
