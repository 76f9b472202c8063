"""``perfplat bench data-sets``: the data-set API's two targets, measured on a stack of its own.

* **write** — ``--connections`` keep-alive connections POST bodies of ``--batch`` records to one
  ``perfplat api`` process for ``--duration`` seconds, ``--runs`` times. Reported per run:
  records/s acknowledged (a 200 means durable in Kafka), request latency, and once the load
  stops, how long until every acknowledged record is readable, with a check that none is missing.
* **query** — one data set of ``--records`` records: a sample is posted through the API (so the
  records processor lays its fields out as it always does), then multiplied inside ClickHouse by
  ``INSERT … SELECT`` with fresh ``_id`` s and timestamps spread over a year. Each query shape is
  then fetched ``--queries`` times over HTTP, one at a time; p50, p90 and max are reported.

The stack is the one distributed mode runs: the Tansu broker, Debian's ClickHouse server, one
``perfplat api`` and one ``perfplat worker``, in a temporary directory, stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from pipeline.bench import Connection, median, percentile, positive_int, run_async
from pipeline.broker import EmbeddedBroker, die_with_parent
from pipeline.clickhouse_server import ClickHouseServer
from pipeline.datasets import data_set_name
from pipeline.record_rows import ROW_COLUMNS
from pipeline.settings import ClickHouseSettings, KafkaSettings, Settings
from pipeline.store import open_store

GROUP = "bench"
CHANNELS = ("digital", "phone", "paper", "face_to_face", "assisted_digital")
REGIONS = tuple(f"region-{i:02d}" for i in range(12))
SAMPLE = 2000
"""Records posted through the API before the query data set is multiplied in ClickHouse."""
COPIES_PER_INSERT = 500
YEAR_S = 52 * 7 * 86400
QUERY_SHAPES: dict[str, dict[str, str | list[str]]] = {
    "week x group_by": {"period": "week", "group_by": "channel", "collect": "count:sum"},
    "week x 2 group_by": {"period": "week", "group_by": ["channel", "region"], "collect": "count:sum"},
    "month, flatten": {"period": "month", "collect": "count:sum", "flatten": "true"},
    "group_by only": {"group_by": "region", "collect": "count:mean"},
    "raw, limit 50": {"sort_by": "_timestamp:descending", "limit": "50"},
}


# ---------------------------------------------------------------------------------------------
# Pure parts: record bodies, the seeding SQL, the report
# ---------------------------------------------------------------------------------------------


def record(rng: random.Random, record_id: str, ts: datetime, run: str) -> dict[str, Any]:
    """One synthetic record: a channel, a region and a count, as a service's script would post."""
    return {
        "_id": record_id,
        "_timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        "channel": rng.choice(CHANNELS),
        "region": rng.choice(REGIONS),
        "count": rng.randint(1, 100),
        "run": run,
    }


def write_request(host: str, path: str, token: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1") + body


def multiply_sql(database: str, first_copy: int, last_copy: int) -> str:
    """``INSERT … SELECT`` copies ``first_copy..last_copy-1`` of the sample rows of a data set.

    A copy gets ``_id`` ``<sample id>-<copy>`` and its timestamp moved by ``copy * 7919 s``
    within the year that starts at ``%(start)s``, so the copies spread over every week. Only
    sample rows (ids without '-') are copied, never earlier copies.
    """
    shifted = "toDateTime(%(start)s + (toUInt32(ts) - %(start)s + n * 7919) % " + str(YEAR_S) + ", 'UTC')"
    exprs = {"ts": shifted, "id": "concat(id, '-', toString(n))"}
    columns = ", ".join(ROW_COLUMNS)
    select = ", ".join(exprs.get(c, c) for c in ROW_COLUMNS)
    return (
        f"INSERT INTO {database}.records ({columns}) SELECT {select} FROM {database}.records "
        f"ARRAY JOIN arrayMap(x -> x + {first_copy}, range({last_copy - first_copy})) AS n "
        "WHERE data_set = %(data_set)s AND position(id, '-') = 0"
    )


def copy_ranges(total: int, sample: int, per_insert: int) -> list[tuple[int, int]]:
    """The copy numbers (1-based, half-open ranges) that bring ``sample`` rows up to ``total``."""
    copies = max(0, math.ceil(total / sample) - 1)
    return [(lo, min(lo + per_insert, copies + 1)) for lo in range(1, copies + 1, per_insert)]


@dataclass
class WriteRun:
    run: int
    duration_s: float
    requests_ok: int = 0
    records_ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    readable_after_s: float | None = None
    readable: int = 0

    @property
    def records_per_s(self) -> float:
        return self.records_ok / self.duration_s


def format_write(runs: Sequence[WriteRun], batch: int, connections: int) -> str:
    lines = [f"write: {batch}-record POSTs over {connections} connections to one api process"]
    for r in runs:
        lat = r.latencies_ms
        lost = r.records_ok - min(r.readable, r.records_ok)
        readable = "never" if r.readable_after_s is None else f"{r.readable_after_s:.2f} s"
        lines.append(
            f"  run {r.run + 1}: {r.records_per_s:,.0f} records/s acknowledged, request p50 "
            f"{percentile(lat, 50):.1f} ms p99 {percentile(lat, 99):.1f} ms, errors {r.errors or 0}; "
            f"all readable {readable} after the load, missing {lost}"
        )
    lines.append(f"  median: {median([r.records_per_s for r in runs]):,.0f} records/s (target >= 5,000)")
    return "\n".join(lines) + "\n"


def format_query(records: int, timings: dict[str, list[float]]) -> str:
    lines = [f"query: one data set of {records:,} records, one request at a time"]
    for name, ms in timings.items():
        lines.append(
            f"  {name:<18} p50 {percentile(ms, 50):7.1f} ms  p90 {percentile(ms, 90):7.1f} ms  "
            f"max {max(ms):7.1f} ms  (n={len(ms)})"
        )
    lines.append("  target: week x group_by p50 <= 150 ms")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The stack
# ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BenchStack:
    """Broker, ClickHouse server, one api and one worker process, in ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_urlsafe(16)
        self.broker = EmbeddedBroker(_free_port(), workdir / "broker.log")
        self.clickhouse = ClickHouseServer(workdir / "clickhouse")
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def settings(self) -> Settings:
        return Settings(
            kafka=KafkaSettings(bootstrap=self.broker.bootstrap),
            clickhouse=ClickHouseSettings(url=self.clickhouse.url),
            visitor_secret=self.admin_token,
            data_dir=self.workdir,
        )

    def spawn(self, command: str) -> subprocess.Popen[bytes]:
        """``perfplat {command}`` on this stack's broker and ClickHouse server, logging to
        ``{command}.log`` in the work directory; kept in ``procs``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PERFPLAT_")} | {
            "PERFPLAT_KAFKA_BOOTSTRAP": self.broker.bootstrap,
            "PERFPLAT_CLICKHOUSE_URL": self.clickhouse.url,
            "PERFPLAT_API__PORT": str(self.port),
            "PERFPLAT_DATA_DIR": str(self.workdir),
            "PERFPLAT_ADMIN_TOKEN": self.admin_token,
            "PERFPLAT_VISITOR_SECRET": self.admin_token,
            "PERFPLAT_LOG_LEVEL": "WARNING",
        }
        with open(self.workdir / f"{command}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline.cli", command],
                env=env,
                stdout=log,
                stderr=log,
                preexec_fn=die_with_parent,
            )
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        self.broker.start()
        self.clickhouse.start()
        for command in ("worker", "api"):
            self.spawn(command)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"a perfplat process exited; see {self.workdir}/*.log")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + "/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError("perfplat api did not become healthy in 90 s")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        self.clickhouse.stop()
        self.broker.stop()

    def create_data_set(self, data_type: str) -> str:
        r = httpx.post(
            self.base_url + "/_admin/data-sets",
            json={"data_group": GROUP, "data_type": data_type},
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=10,
        )
        r.raise_for_status()
        return str(r.json()["bearer_token"])


@contextlib.contextmanager
def running_stack(keep: Path | None) -> Iterator[BenchStack]:
    with contextlib.ExitStack() as stack:
        workdir = keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="perfplat-bench-")))
        workdir.mkdir(parents=True, exist_ok=True)
        bench = BenchStack(workdir.resolve())
        stack.callback(bench.stop)
        bench.start()
        yield bench


def _post(client: httpx.Client, path: str, token: str, records: list[dict[str, Any]], wait: bool) -> None:
    r = client.post(
        path + ("?wait=queryable" if wait else ""),
        content=orjson.dumps(records),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=60,
    )
    if r.status_code != 200:
        raise RuntimeError(f"POST {path} answered {r.status_code}: {r.text[:200]}")


def _count(client: httpx.Client, path: str, run: str) -> int:
    r = client.get(path, params={"filter_by": f"run:{run}", "group_by": "run"}, timeout=30)
    r.raise_for_status()
    return sum(int(row["_count"]) for row in r.json()["data"])


# ---------------------------------------------------------------------------------------------
# write
# ---------------------------------------------------------------------------------------------


async def _write_connection(
    bench: BenchStack, path: str, token: str, batch: int, run: WriteRun, tag: str, deadline: float
) -> None:
    rng = random.Random(tag)
    conn = Connection("127.0.0.1", bench.port)
    host = f"127.0.0.1:{bench.port}"
    now = datetime.now(UTC).replace(microsecond=0)
    n = 0
    try:
        while time.monotonic() < deadline:
            n += 1
            records = [record(rng, f"{tag}-{n}-{i}", now, run=f"r{run.run}") for i in range(batch)]
            request = write_request(host, path, token, orjson.dumps(records))
            t0 = time.perf_counter()
            try:
                status, body = await conn.exchange(request)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                run.errors[type(exc).__name__] = run.errors.get(type(exc).__name__, 0) + 1
                conn.close()
                continue
            run.latencies_ms.append((time.perf_counter() - t0) * 1000)
            if status == 200:
                run.requests_ok += 1
                run.records_ok += batch
            else:
                key = f"{status} {body[:60].decode(errors='replace')}"
                run.errors[key] = run.errors.get(key, 0) + 1
    finally:
        conn.close()


def bench_write(bench: BenchStack, args: argparse.Namespace) -> list[WriteRun]:
    data_type = "write-" + secrets.token_hex(3)
    token = bench.create_data_set(data_type)
    path = f"/data/{GROUP}/{data_type}"
    runs = []
    with httpx.Client(base_url=bench.base_url) as client:
        _post(client, path, token, [{"_id": "warm-up", "run": "warm-up"}], wait=True)
        for i in range(args.runs):
            run = WriteRun(run=i, duration_s=args.duration)

            async def load(run: WriteRun = run) -> None:
                deadline = time.monotonic() + args.duration
                await asyncio.gather(
                    *(
                        _write_connection(bench, path, token, args.batch, run, f"r{run.run}c{c}", deadline)
                        for c in range(args.connections)
                    )
                )

            run_async(load())
            stopped = time.monotonic()
            while time.monotonic() - stopped < 120:
                run.readable = _count(client, path, f"r{i}")
                if run.readable >= run.records_ok:
                    run.readable_after_s = time.monotonic() - stopped
                    break
                time.sleep(0.1)
            sys.stderr.write(f"write run {i + 1}/{args.runs}: {run.records_per_s:,.0f} records/s\n")
            runs.append(run)
            time.sleep(2)
    return runs


# ---------------------------------------------------------------------------------------------
# query
# ---------------------------------------------------------------------------------------------


def _week_start(now: datetime) -> datetime:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def seed_query_set(bench: BenchStack, records: int) -> tuple[str, datetime, datetime]:
    """A data set of ``records`` records over the 52 weeks before this week; its path and range."""
    data_type = "query-" + secrets.token_hex(3)
    token = bench.create_data_set(data_type)
    path = f"/data/{GROUP}/{data_type}"
    end = _week_start(datetime.now(UTC))
    start = end - timedelta(seconds=YEAR_S)
    rng = random.Random(data_type)
    sample = min(SAMPLE, records)
    with httpx.Client(base_url=bench.base_url) as client:
        for lo in range(0, sample, 100):
            batch = [
                record(rng, f"s{i}", start + timedelta(seconds=rng.randrange(YEAR_S)), run="seed")
                for i in range(lo, min(lo + 100, sample))
            ]
            _post(client, path, token, batch, wait=lo + 100 >= sample)
    store = open_store(bench.settings)
    try:
        db = store.database
        params = {"data_set": data_set_name(GROUP, data_type), "start": int(start.timestamp())}
        (rows,) = store.query(f"SELECT count() FROM {db}.records WHERE data_set = %(data_set)s", params)[0]
        if rows != sample:
            raise RuntimeError(f"expected the {sample} sample rows in ClickHouse, found {rows}")
        t0 = time.monotonic()
        for lo, hi in copy_ranges(records, sample, COPIES_PER_INSERT):
            store.execute(multiply_sql(db, lo, hi), params)
        store.execute(f"OPTIMIZE TABLE {db}.records")
        sys.stderr.write(f"query: {records:,} records loaded in {time.monotonic() - t0:.0f} s\n")
    finally:
        store.close()
    return path, start, end


def bench_query(bench: BenchStack, args: argparse.Namespace) -> dict[str, list[float]]:
    path, start, end = seed_query_set(bench, args.records)
    bounds = {"start_at": start.isoformat(), "end_at": end.isoformat()}
    timings: dict[str, list[float]] = {}
    with httpx.Client(base_url=bench.base_url, timeout=60) as client:
        for name, shape in QUERY_SHAPES.items():
            url = path + "?" + urlencode({**bounds, **shape}, doseq=True)
            for _ in range(3):  # warm caches: the figure is the steady state
                client.get(url).raise_for_status()
            timings[name] = []
            for _ in range(args.queries):
                t0 = time.perf_counter()
                r = client.get(url)
                timings[name].append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
            if name == "week x group_by":
                total = sum(v["_count"] for row in r.json()["data"] for v in row["values"])
                if total < args.records:
                    raise RuntimeError(f"the query counted {total} records, expected {args.records}")
    return timings


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", choices=("write", "query", "all"), default="all")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of load per write run")
    parser.add_argument("--runs", type=positive_int, default=3, help="write runs (median reported)")
    parser.add_argument("--connections", type=positive_int, default=8, help="write connections")
    parser.add_argument("--batch", type=positive_int, default=100, help="records per write request")
    parser.add_argument("--records", type=positive_int, default=10_000_000, help="records in the query set")
    parser.add_argument("--queries", type=positive_int, default=40, help="timed requests per query shape")
    parser.add_argument("--keep", type=Path, default=None, help="run the stack in this directory, kept")


def main(args: argparse.Namespace) -> int:
    if ClickHouseServer(Path(".")).binary is None:
        sys.stderr.write("perfplat bench data-sets: needs Debian's clickhouse-server (make system-deps)\n")
        return 2
    out = []
    with running_stack(args.keep) as bench:
        if args.scenario in ("write", "all"):
            out.append(format_write(bench_write(bench, args), args.batch, args.connections))
        if args.scenario in ("query", "all"):
            out.append(format_query(args.records, bench_query(bench, args)))
    sys.stdout.write("".join(out))
    return 0
