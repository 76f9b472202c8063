"""``perfplat up`` end to end: no configuration, one base URL, Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import unique
from tests.e2e.conftest import minute_total, users_now, wait_for_worker
from tests.support.sse import subscribe
from tests.support.stack import EmbeddedStack, wait_until

pytestmark = pytest.mark.e2e


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def test_up_serves_beacon_and_live_figures_then_ctrl_c_stops_everything(tmp_path: Path) -> None:
    stack = EmbeddedStack(tmp_path)
    took = stack.start()
    try:
        assert took < 60
        assert (tmp_path / "var" / "chdb").is_dir()
        base, service = stack.base_url, unique("svc")
        wait_for_worker(base)
        for v in range(4):
            events = [
                {"category": service, "action": "stage", "label": f"s{i}", "id": f"{service}-{v}-{i}"}
                for i in range(10)
            ]
            r = httpx.post(
                base + "/beacon",
                content=orjson.dumps(events),
                headers={"content-type": "text/plain", "user-agent": f"browser-{v}"},
            )
            assert r.status_code == 202, r.text
        wait_until(lambda: users_now(base, service) == 4, 30)
        wait_until(lambda: minute_total(base, service) == 40, 30)
        # a dashboard's EventSource on the one base URL: the ingest process relays the stream
        with httpx.Client(base_url=base, timeout=10) as client, subscribe(client, "/live") as sse:
            figures, _ = sse.figures()
            assert figures["users_now"] == users_now(base, None) >= 4
        children = _children_of(stack.up.proc.pid)  # type: ignore[union-attr]
        assert len(children) >= 3  # broker, core, ingest
    finally:
        os.killpg(stack.up.proc.pid, signal.SIGINT)  # type: ignore[union-attr]  # what Ctrl-C does
        stack.up.proc.wait(40)  # type: ignore[union-attr]
    wait_until(lambda: not any(_listening(p) for p in (stack.port, stack.read_port, stack.broker_port)), 10)
    time.sleep(0.5)
    assert all(
        not Path(f"/proc/{c}").exists() or "zombie" in Path(f"/proc/{c}/status").read_text() for c in children
    )


def test_killed_launcher_leaves_no_orphan_broker(tmp_path: Path) -> None:
    stack = EmbeddedStack(tmp_path)
    stack.start()
    children = _children_of(stack.up.proc.pid)  # type: ignore[union-attr]
    stack.up.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    stack.up.proc.wait(10)  # type: ignore[union-attr]
    wait_until(lambda: not any(Path(f"/proc/{c}").exists() for c in children), 30, 0.2)
    assert not _listening(stack.broker_port)
