"""Running perfplat's own processes for the end-to-end tier: the distributed pair
(``perfplat api`` + ``perfplat worker``) and the embedded ``perfplat up``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from pipeline.settings import Settings, load_settings

ADMIN_TOKEN = "test-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float = 60, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout_s}s")


def wait_until(predicate: Any, timeout_s: float, interval_s: float = 0.1) -> Any:
    """Poll until ``predicate()`` is truthy; return its value, or fail with the last one."""
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"condition not met in {timeout_s}s (last value {value!r})")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PERFPLAT_")}


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> None:
        self.args, self.env, self.log, self.cwd = args, env, log, cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        with open(self.log, "ab") as out:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline.cli", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                start_new_session=True,
            )
        return self.proc

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout_s: float = 20) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


class ServerStack:
    """Distributed mode on one machine: api and worker processes, real broker, real ClickHouse server."""

    def __init__(self, workdir: Path, bootstrap: str, clickhouse_url: str, name: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.database = name.replace("-", "_")
        self.env = _clean_env() | {
            "PERFPLAT_KAFKA_BOOTSTRAP": bootstrap,
            "PERFPLAT_CLICKHOUSE_URL": clickhouse_url,
            "PERFPLAT_CLICKHOUSE__DATABASE": self.database,
            "PERFPLAT_KAFKA__TOPIC_PREFIX": name,
            "PERFPLAT_WORKER__APP_ID": f"{name}-worker",
            "PERFPLAT_VISITOR_SECRET": "test-secret-" + name,
            "PERFPLAT_API__PORT": str(self.port),
            "PERFPLAT_LOG_LEVEL": "WARNING",
            "PERFPLAT_DATA_DIR": str(workdir),
            "PERFPLAT_ADMIN_TOKEN": ADMIN_TOKEN,
        }
        workdir.mkdir(parents=True, exist_ok=True)
        self.api = Proc(["api"], self.env, workdir / "api.log")
        self.worker = Proc(["worker"], self.env, workdir / "worker.log")

    def settings(self) -> Settings:
        """The settings this stack's processes read, for a test that talks to Kafka or ClickHouse
        directly (``load_settings`` reads the environment, so it is swapped in for the call)."""
        saved = dict(os.environ)
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("PERFPLAT_")})
        try:
            return load_settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def start(self) -> None:
        self.start_worker()
        proc = self.api.start()
        wait_http(self.base_url + "/healthz", 60, proc)

    def start_worker(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.api.stop()
        self.worker.stop()


class EmbeddedStack:
    """``perfplat up`` in a directory of its own, on free ports."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None) -> None:
        """``env``: extra ``PERFPLAT_*`` settings, e.g. an admin token."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.port, self.read_port, self.broker_port = free_port(), free_port(), free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = (
            _clean_env()
            | {
                "PERFPLAT_API__PORT": str(self.port),
                "PERFPLAT_API__READ_PORT": str(self.read_port),
                "PERFPLAT_KAFKA__BROKER_PORT": str(self.broker_port),
                "PERFPLAT_LOG_LEVEL": "WARNING",
            }
            | (env or {})
        )
        self.up = Proc(["up"], self.env, workdir / "up.log", cwd=workdir)

    def start(self, timeout_s: float = 90) -> float:
        t0 = time.monotonic()
        proc = self.up.start()
        wait_until(lambda: "perfplat is up" in self.up.log_tail(200) or proc.poll() is not None, timeout_s)
        if proc.poll() is not None:
            raise RuntimeError("perfplat up exited:\n" + self.up.log_tail())
        return time.monotonic() - t0

    def stop(self) -> int | None:
        return self.up.stop(30)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``perfplat <args>`` with this stack's working directory and settings (so
        ``perfplat datasets …`` edits the registry the running stack reads)."""
        return subprocess.run(
            [sys.executable, "-m", "pipeline.cli", *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
