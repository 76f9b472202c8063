"""Acknowledged means durable: with the broker gone, the beacon answers 503, never 2xx."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pipeline.broker import EmbeddedBroker
from pipeline.clickhouse_server import ClickHouseServer
from tests.conftest import unique
from tests.support.stack import ServerStack, free_port

pytestmark = pytest.mark.e2e


def test_beacon_answers_503_when_the_broker_is_down(
    tmp_path: Path, clickhouse_server: ClickHouseServer
) -> None:
    broker = EmbeddedBroker(free_port(), tmp_path / "tansu.log")
    broker.start()
    stack = ServerStack(tmp_path / "stack", broker.bootstrap, clickhouse_server.url, unique("down"))
    stack.env["PERFPLAT_KAFKA__DELIVERY_TIMEOUT_MS"] = "3000"
    try:
        proc = stack.api.start()
        from tests.support.stack import wait_http

        wait_http(stack.base_url + "/healthz", 60, proc)
        event = {"category": "svc", "action": "stage"}
        assert httpx.post(stack.base_url + "/beacon", json=event, timeout=30).status_code == 202
        broker.stop()
        statuses = []
        for _ in range(3):
            r = httpx.post(stack.base_url + "/beacon", json=event, timeout=30)
            statuses.append(r.status_code)
            assert r.status_code == 503, r.text
            assert int(r.headers["retry-after"]) > 0
            assert "unavailable" in r.json()["message"]
        r = httpx.get(stack.base_url + "/beacon.gif", params={"category": "svc"}, timeout=30)
        assert r.status_code == 503
    finally:
        stack.api.stop()
        broker.stop()
