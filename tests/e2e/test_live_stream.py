"""Live event streams through the whole distributed stack: beacons posted over HTTP go through
the broker and the worker into ClickHouse, and the ``perfplat api`` process pushes the rise of
users now to a service's stream and to the platform's, within 2 s of the figure being
queryable. Dashboards that leave end their streams without an error in the api's log."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from tests.conftest import unique
from tests.e2e.conftest import users_now
from tests.support.sse import Sse, subscribe
from tests.support.stack import ADMIN_TOKEN, ServerStack, wait_until

pytestmark = pytest.mark.e2e

PUSH_WITHIN_S = 2.0


def register(base_url: str, slug: str) -> None:
    r = httpx.post(
        base_url + "/_admin/services",
        json={"slug": slug, "name": "Live e2e"},
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    wait_until(lambda: httpx.get(base_url + f"/services/{slug}/kpis", timeout=10).status_code == 200, 10)


def beacon(base_url: str, service: str, user_agent: str) -> None:
    r = httpx.post(base_url + "/beacon", json={"category": service}, headers={"user-agent": user_agent})
    assert r.status_code == 202, r.text


def first_seen(base_url: str, service: str | None, target: int, out: dict[str, float]) -> None:
    """Poll the users-now route until it reaches ``target``; record when (monotonic)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if users_now(base_url, service) >= target:
            out["at"] = time.monotonic()
            return
        time.sleep(0.05)


def rise(sse: Sse, target: int) -> tuple[dict[str, Any], float]:
    """Events until users now reaches ``target`` (the worker may store the beacons in two
    batches); each holds more users than the last."""
    last = -1
    while True:
        figures, at = sse.figures()
        assert figures["users_now"] > last, figures
        last = figures["users_now"]
        if last >= target:
            return figures, at


def test_users_now_rises_in_the_service_and_platform_streams(server_stack: ServerStack) -> None:
    base = server_stack.base_url
    service = unique("live")
    register(base, service)
    platform_before = users_now(base, None)
    with (
        httpx.Client(base_url=base, timeout=httpx.Timeout(10.0, read=30.0)) as client,
        subscribe(client, f"/services/{service}/live") as service_sse,
        subscribe(client, "/live") as platform_sse,
    ):
        t0 = time.monotonic()
        first, at = service_sse.figures()
        assert at - t0 < 1.5
        assert first["service"] == service
        assert first["users_now"] == 0
        platform_first, _ = platform_sse.figures()
        assert platform_first["users_now"] == platform_before

        seen: dict[str, float] = {}
        poller = threading.Thread(target=first_seen, args=(base, service, 2, seen))
        poller.start()
        for agent in (f"{service}-browser-a", f"{service}-browser-b"):
            beacon(base, service, agent)
        figures, pushed_at = rise(service_sse, 2)
        poller.join(60)
        assert figures["users_now"] == 2
        assert "at" in seen
        assert pushed_at - seen["at"] < PUSH_WITHIN_S  # pushed within 2 s of being queryable

        platform, _ = rise(platform_sse, platform_before + 2)
        assert platform["users_now"] == platform_before + 2

    # the dashboards left: the api keeps serving and logged nothing about the streams
    assert users_now(base, service) == 2
    log = server_stack.api.log_tail(200)
    assert "Traceback" not in log
    assert "live-feed" not in log
    assert "live figures" not in log


def test_an_unknown_service_stream_is_404(server_stack: ServerStack) -> None:
    r = httpx.get(server_stack.base_url + f"/services/{unique('nobody')}/live", timeout=10)
    assert r.status_code == 404
    assert r.json()["message"].startswith("No service named ")
