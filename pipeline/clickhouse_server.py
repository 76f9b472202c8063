"""A throwaway ClickHouse server, run as a plain child process: for the integration and e2e
tiers and for ``perfplat bench data-sets``, which measure against the real server.

Debian ships ClickHouse 18.16 (``/usr/sbin/clickhouse-server``); there is no init system in
the test environment, so the server is launched directly with its own ``config.xml`` and
``users.xml`` written into a scratch directory. Nothing under ``/etc/clickhouse-server`` is
read or modified.

Usage::

    with ClickHouseServer(tmp_path / "ch") as ch:
        client = clickhouse_driver.Client("127.0.0.1", port=ch.tcp_port)

Notes on 18.16:

* ``LowCardinality`` DDL needs ``allow_experimental_low_cardinality_type=1``; it is set in the
  ``default`` settings profile here so every session gets it.
* The server runs happily as root when it owns its data directory, and does not daemonize
  unless asked to, so the child we start *is* the server.
* No interserver (replication) port is opened unless ``interserver_http_port`` is configured,
  and it is not.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

_CANDIDATE_BINARIES = ("/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server", "/usr/bin/clickhouse")
_PR_SET_PDEATHSIG = 1
_STOP_GRACE_S = 10.0
_START_ATTEMPTS = 3  # a free port can be taken between probing it and the server binding it


def find_server_binary() -> str | None:
    """Path of an installed ClickHouse server binary, or None.

    ``clickhouse-server`` (Debian's split package) is preferred; the single ``clickhouse``
    multi-call binary of upstream packages is accepted too and is run as ``clickhouse server``.
    """
    for candidate in _CANDIDATE_BINARIES:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    for name in ("clickhouse-server", "clickhouse"):
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _is_listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port, without connecting to it when possible.

    Reads /proc/net/tcp on Linux (a bare connect would leave "Client has not sent any data"
    warnings in the server's error log); elsewhere falls back to a plain connect.
    """
    try:
        table = Path("/proc/net/tcp").read_text(encoding="ascii")
    except OSError:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False
    wanted = {f"0100007F:{port:04X}", f"00000000:{port:04X}"}
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[1] in wanted and fields[3] == "0A":  # 0A = TCP_LISTEN
            return True
    return False


def _tail(path: Path, max_lines: int = 40) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-max_lines:])


def _first_lines(text: str, max_lines: int = 3) -> str:
    """A server exception without its (very long) stack trace."""
    text = text.split("Stack trace:", 1)[0]
    return " ".join(line.strip() for line in text.splitlines()[:max_lines] if line.strip())


def _child_setup() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel SIGKILL the server if our process dies.

    PR_SET_PDEATHSIG is Linux-only and tied to the *thread* that forked the child, so call
    ``start()`` from a thread that lives as long as the server should (normally the main one).
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # resolved in the parent, not after fork
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent_pid = os.getpid()

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            os._exit(127)
        # The parent may have died between fork() and prctl(); the signal would never come.
        if os.getppid() != parent_pid:
            os._exit(127)

    return preexec


class ClickHouseServer:
    """A real ClickHouse server (Debian's 18.16) run as a child process in a temp directory."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.tcp_port: int = 0
        self.http_port: int = 0
        self.binary: str | None = find_server_binary()
        self.config_path = self.base_dir / "config.xml"
        self.users_path = self.base_dir / "users.xml"
        self.log_dir = self.base_dir / "log"
        self.log_path = self.log_dir / "clickhouse-server.log"
        self.err_log_path = self.log_dir / "clickhouse-server.err.log"
        self.stdout_path = self.log_dir / "stdout.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdout: IO[bytes] | None = None

    # -- public API ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"clickhouse://default@127.0.0.1:{self.tcp_port}/default"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def command(self) -> list[str]:
        """The argv used to launch the server (valid once a binary has been found)."""
        if self.binary is None:
            raise RuntimeError("no ClickHouse server binary installed")
        argv = [self.binary]
        if os.path.basename(self.binary) == "clickhouse":
            argv.append("server")
        argv.append(f"--config-file={self.config_path}")
        return argv

    def start(self, timeout_s: float = 60.0) -> None:
        """Write the config, launch the server and wait until ``SELECT 1`` answers on the native port."""
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError(f"ClickHouse server already running (pid {self._proc.pid})")
        if self.binary is None:
            raise RuntimeError("no ClickHouse server binary installed (clickhouse-server / clickhouse)")
        deadline = time.monotonic() + timeout_s
        for attempt in range(1, _START_ATTEMPTS + 1):
            self._launch()
            try:
                self._wait_ready(deadline)
                return
            except RuntimeError:
                early_exit = self._proc is not None and self._proc.poll() is not None
                self.stop()
                if early_exit and attempt < _START_ATTEMPTS and self._port_clash():
                    continue
                raise

    def stop(self) -> None:
        """SIGTERM the server, wait up to 10 s, then SIGKILL its process group. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(_STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
            else:
                # The leader is gone; make sure nothing it left in its session lingers.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None

    def __enter__(self) -> ClickHouseServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------------

    def _launch(self) -> None:
        self.tcp_port = _free_port()
        self.http_port = _free_port()
        while self.http_port == self.tcp_port:
            self.http_port = _free_port()
        for sub in ("data", "tmp", "user_files", "format_schemas", "log"):
            (self.base_dir / sub).mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._write_users()
        # Truncate the error log so a failure report shows only this attempt.
        self.err_log_path.write_bytes(b"")
        self._stdout = open(self.stdout_path, "wb")  # noqa: SIM115 - handed to the child, closed in stop()
        self._proc = subprocess.Popen(
            self.command(),
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Only prctl() and getppid() run between fork and exec.
            preexec_fn=_child_setup(),
        )

    def _wait_ready(self, deadline: float) -> None:
        from clickhouse_driver import Client
        from clickhouse_driver.errors import ServerException

        last_error: BaseException | None = None
        while True:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                raise RuntimeError(self._failure(f"ClickHouse server exited with code {code} while starting"))
            if not _is_listening(self.tcp_port):
                # Not bound yet. Asking clickhouse_driver now would log a traceback per attempt.
                last_error = ConnectionRefusedError(f"nothing listening on 127.0.0.1:{self.tcp_port}")
            else:
                client: Any = Client(
                    "127.0.0.1",
                    port=self.tcp_port,
                    user="default",
                    password="",
                    connect_timeout=1,
                    send_receive_timeout=5,
                    sync_request_timeout=5,
                )
                try:
                    if client.execute("SELECT 1") == [(1,)]:
                        return
                except ServerException as e:
                    # It is up and answering, so this will not go away by waiting (bad users.xml...).
                    raise RuntimeError(
                        self._failure(f"ClickHouse server rejected SELECT 1: {_first_lines(str(e))}")
                    ) from e
                except Exception as e:  # listening but not serving yet: reset, EOF, timeout...
                    last_error = e
                finally:
                    client.disconnect()
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    self._failure(
                        f"ClickHouse server did not answer SELECT 1 on 127.0.0.1:{self.tcp_port} in time "
                        f"(last error: {_first_lines(repr(last_error))})"
                    )
                )
            time.sleep(0.1)

    def _port_clash(self) -> bool:
        text = _tail(self.err_log_path) + "\n" + _tail(self.stdout_path)
        return "Address already in use" in text

    def _failure(self, headline: str) -> str:
        parts = [headline, f"command: {' '.join(self.command())}"]
        err = _tail(self.err_log_path)
        out = _tail(self.stdout_path)
        if err:
            parts.append(f"--- tail of {self.err_log_path} ---\n{err}")
        if out:
            parts.append(f"--- tail of {self.stdout_path} ---\n{out}")
        if not err and not out:
            parts.append(f"--- tail of {self.log_path} ---\n{_tail(self.log_path)}")
        return "\n".join(parts)

    def _write_config(self) -> None:
        root = ET.Element("yandex")
        logger = ET.SubElement(root, "logger")
        _leaf(logger, "level", "information")
        _leaf(logger, "log", str(self.log_path))
        _leaf(logger, "errorlog", str(self.err_log_path))
        _leaf(logger, "size", "100M")
        _leaf(logger, "count", "2")
        _leaf(root, "listen_host", "127.0.0.1")
        _leaf(root, "tcp_port", str(self.tcp_port))
        _leaf(root, "http_port", str(self.http_port))
        # No interserver_http_port: replication is unused, and omitting it keeps the port closed.
        _leaf(root, "path", f"{self.base_dir / 'data'}/")
        _leaf(root, "tmp_path", f"{self.base_dir / 'tmp'}/")
        _leaf(root, "user_files_path", f"{self.base_dir / 'user_files'}/")
        _leaf(root, "format_schema_path", f"{self.base_dir / 'format_schemas'}/")
        _leaf(root, "users_config", str(self.users_path))
        _leaf(root, "default_profile", "default")
        _leaf(root, "default_database", "default")
        _leaf(root, "timezone", "UTC")
        _leaf(root, "umask", "022")
        _leaf(root, "mark_cache_size", str(256 * 1024 * 1024))
        _leaf(root, "uncompressed_cache_size", str(256 * 1024 * 1024))
        _leaf(root, "max_connections", "1024")
        _leaf(root, "max_concurrent_queries", "100")
        _leaf(root, "keep_alive_timeout", "3")
        _leaf(root, "mlock_executable", "false")
        _write_xml(root, self.config_path)

    def _write_users(self) -> None:
        root = ET.Element("yandex")
        default_profile = ET.SubElement(ET.SubElement(root, "profiles"), "default")
        _leaf(default_profile, "allow_experimental_low_cardinality_type", "1")
        _leaf(default_profile, "max_memory_usage", str(4 * 1024**3))
        _leaf(default_profile, "use_uncompressed_cache", "0")
        # 18.16's TCPHandler notices a shutdown only between polls of an idle connection, every
        # poll_interval seconds (default 10): one idle client would stall SIGTERM for ~10 s.
        _leaf(default_profile, "poll_interval", "1")
        user = ET.SubElement(ET.SubElement(root, "users"), "default")
        _leaf(user, "password", "")
        networks = ET.SubElement(user, "networks")
        _leaf(networks, "ip", "127.0.0.1")
        _leaf(networks, "ip", "::1")
        _leaf(user, "profile", "default")
        _leaf(user, "quota", "default")
        interval = ET.SubElement(ET.SubElement(ET.SubElement(root, "quotas"), "default"), "interval")
        _leaf(interval, "duration", "3600")
        for limit in ("queries", "errors", "result_rows", "read_rows", "execution_time"):
            _leaf(interval, limit, "0")
        _write_xml(root, self.users_path)


def _leaf(parent: ET.Element, tag: str, text: str) -> ET.Element:
    el = ET.SubElement(parent, tag)
    el.text = text
    return el


def _write_xml(root: ET.Element, path: Path) -> None:
    ET.indent(root)
    path.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")
