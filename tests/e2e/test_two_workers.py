"""Distributed mode with two workers in one consumer group: the figures are exact while they
share the partitions, and stay exact when one leaves and the other takes its partitions back."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import orjson
import pytest

from pipeline.broker import EmbeddedBroker
from pipeline.clickhouse_server import ClickHouseServer
from tests.conftest import unique
from tests.e2e.conftest import minute_total, users_now, wait_for_worker
from tests.support.stack import Proc, ServerStack, wait_until

pytestmark = pytest.mark.e2e


def test_two_workers_in_one_group_count_exactly_through_a_rebalance(
    tmp_path: Path, broker: EmbeddedBroker, clickhouse_server: ClickHouseServer
) -> None:
    stack = ServerStack(tmp_path, broker.bootstrap, clickhouse_server.url, unique("two"))
    second = Proc(["worker"], stack.env, tmp_path / "worker2.log")
    stack.start()
    second.start()
    try:
        wait_for_worker(stack.base_url)
        service = unique("svc")

        def send(start: int, visitors: int) -> None:
            for v in range(visitors):
                events = [
                    {"category": service, "label": f"l{i}", "id": f"{service}-{start + v}-{i}"}
                    for i in range(10)
                ]
                r = httpx.post(
                    stack.base_url + "/beacon",
                    content=orjson.dumps(events),
                    headers={"user-agent": f"visitor-{start + v}"},
                )
                assert r.status_code == 202, r.text

        send(0, 40)  # 40 visitors spread over the 4 partitions, so both workers get some
        wait_until(lambda: minute_total(stack.base_url, service) == 400, 60, 0.3)
        assert users_now(stack.base_url, service) == 40

        second.signal(signal.SIGTERM)  # a clean leave: the first worker takes every partition
        assert second.proc is not None
        second.proc.wait(30)
        send(40, 20)
        wait_until(lambda: minute_total(stack.base_url, service) == 600, 60, 0.3)
        assert users_now(stack.base_url, service) == 60
    finally:
        second.stop()
        stack.stop()
