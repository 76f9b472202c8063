"""``perfplat up``: the whole stack on one machine with no configuration.

Processes (the launcher supervises them and stops them all on Ctrl-C or SIGTERM):

- the Tansu broker (memory storage), a child that dies with the launcher;
- the core process: the Faust worker, which owns chdb under ``./var/chdb``, and the read API
  on ``api.read_port`` in the same event loop;
- the ingest process(es): ``POST /beacon`` on ``api.port``, publishing to Kafka, with every other
  route proxied to the core, so the user has one base URL while ingest has a core of its own;
- the prober (``perfplat probe``): checks the registered services' health-check URLs.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType

from pipeline.broker import EmbeddedBroker, die_with_parent
from pipeline.init import ensure_topics
from pipeline.settings import Settings

log = logging.getLogger(__name__)


def visitor_secret(data_dir: Path) -> str:
    """The embedded mode's visitor-salt key, made once and kept under the data directory."""
    path = data_dir / "visitor-secret"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _wait_healthy(url: str, timeout_s: float, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a perfplat process exited during start-up; see the log above")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout_s:.0f}s")
        time.sleep(0.1)


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.broker = EmbeddedBroker(settings.kafka.broker_port, settings.data_dir / "broker.log")
        self.procs: list[subprocess.Popen[bytes]] = []

    def _spawn(self, command: str, env: dict[str, str], nice: int = 0) -> subprocess.Popen[bytes]:
        def prepare() -> None:
            die_with_parent()
            if nice:
                os.nice(nice)

        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", command],
            env=env,
            preexec_fn=prepare,
            start_new_session=True,  # the launcher decides the order of shutdown, not the terminal
        )
        self.procs.append(proc)
        return proc

    def start(self) -> float:
        t0 = time.monotonic()
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PERFPLAT_VISITOR_SECRET"] = s.visitor_secret.get_secret_value() or visitor_secret(s.data_dir)
        env["PERFPLAT_DATA_DIR"] = str(s.data_dir.resolve())
        self.broker.start()
        ensure_topics(s)
        # On a shared machine the worker yields the CPU to ingest: a beacon waits for its ack,
        # while the worker only needs to keep up (freshness is measured in seconds, not ms).
        self._spawn("core", env, nice=self.settings.worker.embedded_nice)
        self._spawn("ingest", env)
        # availability checks of the registered services' health-check URLs (idle without any)
        self._spawn("probe", env, nice=self.settings.worker.embedded_nice)
        _wait_healthy(f"http://{s.api.host}:{s.api.read_port}/healthz", 60, self.procs)
        _wait_healthy(f"http://{s.api.host}:{s.api.port}/healthz", 60, self.procs)
        return time.monotonic() - t0

    def wait(self) -> int:
        """Until a child exits (an error) or we are told to stop."""
        while True:
            for p in self.procs:
                code = p.poll()
                if code is not None:
                    log.error("process %s exited with %s; stopping perfplat", p.args, code)
                    return code or 1
            if not self.broker.running:
                log.error("the broker exited; stopping perfplat")
                return 1
            time.sleep(0.2)

    def stop(self) -> None:
        """Prober and ingest first (no new events), then the core (commits what it wrote), then
        the broker."""
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                log.warning("process %s did not stop in 15s; killing it", p.args)
                p.kill()
                p.wait(5)
        self.broker.stop()


class _Stop(Exception):
    pass


def up(settings: Settings) -> int:
    stack = Stack(settings)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise _Stop(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    try:
        took = stack.start()
        base = f"http://{settings.api.host}:{settings.api.port}"
        sys.stdout.write(
            f"perfplat is up in {took:.1f}s (embedded: Tansu broker on {settings.bootstrap}, "
            f"chdb in {settings.chdb_path})\n"
            f"  beacon:     POST {base}/beacon\n"
            f"  users now:  {base}/users-now  and  {base}/services/<service>/users-now\n"
            f"  per minute: {base}/services/<service>/events-per-minute\n"
            "Ctrl-C stops everything.\n"
        )
        sys.stdout.flush()
        code = stack.wait()
    except _Stop:
        sys.stdout.write("stopping perfplat...\n")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
    return code
