"""What leaves the ingest process: no raw IP anywhere downstream; CORS for configured origins;
``perfplat init`` is idempotent against the real services."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
from confluent_kafka import Consumer

from pipeline.broker import EmbeddedBroker
from pipeline.clickhouse_server import ClickHouseServer
from pipeline.stores.server import ServerStore
from pipeline.topics import topics_for
from producers.kafka_config import consumer_config
from tests.conftest import unique
from tests.e2e.conftest import minute_total, users_now, wait_for_worker
from tests.support.stack import ServerStack, wait_until

pytestmark = pytest.mark.e2e


def test_the_raw_ip_is_neither_on_kafka_nor_in_clickhouse(server_stack: ServerStack) -> None:
    service = unique("svc")
    # The stack is on loopback, so the client address is 127.0.0.1: it must appear nowhere.
    ip = "127.0.0.1"
    events = [{"category": service, "label": f"l{i}", "id": f"{service}-{i}"} for i in range(5)]
    r = httpx.post(
        server_stack.base_url + "/beacon", content=orjson.dumps(events), headers={"user-agent": "u"}
    )
    assert r.status_code == 202
    wait_until(lambda: minute_total(server_stack.base_url, service) == 5, 30)

    settings = server_stack.settings()
    consumer = Consumer(consumer_config(settings, "privacy-" + uuid.uuid4().hex[:6]))
    consumer.subscribe([topics_for(settings.kafka).journey.name])
    found = False
    raw_values: list[bytes] = []
    deadline = time.monotonic() + 20
    try:
        while not found and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                raw_values.append(msg.value())
                found = service.encode() in msg.value()
    finally:
        consumer.close()
    assert found
    assert not any(ip.encode() in v for v in raw_values)

    store = ServerStore(settings.clickhouse.url, settings.clickhouse.database)
    try:
        rows = store.query(
            f"SELECT count() FROM {store.database}.journey_events WHERE service = %(s)s AND "
            "(position(id, %(ip)s) > 0 OR position(label, %(ip)s) > 0 OR position(path, %(ip)s) > 0 "
            "OR position(action, %(ip)s) > 0)",
            {"s": service, "ip": ip},
        )
        (total,) = store.query(
            f"SELECT count() FROM {store.database}.journey_events FINAL WHERE service = %(s)s", {"s": service}
        )
    finally:
        store.close()
    assert rows[0][0] == 0 and total[0] == 5


def test_cors_on_the_beacon_and_preflight(server_stack: ServerStack) -> None:
    origin = {"origin": "https://www.service.example"}
    r = httpx.post(server_stack.base_url + "/beacon", json={"category": "svc"}, headers=origin)
    assert r.status_code == 202
    assert r.headers["access-control-allow-origin"] in ("*", origin["origin"])
    r = httpx.options(
        server_stack.base_url + "/beacon",
        headers=origin
        | {"access-control-request-method": "POST", "access-control-request-headers": "content-type"},
    )
    assert r.status_code == 200
    assert "POST" in r.headers["access-control-allow-methods"]


def test_init_is_idempotent(server_stack: ServerStack) -> None:
    env = server_stack.env
    runs = [
        subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "init"], env=env, capture_output=True, text=True
        )
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    # the stack already created everything at start, so neither run creates or applies anything
    assert all("topics created: none; migrations applied: none" in r.stdout for r in runs)


def test_forwarded_for_is_ignored_from_an_untrusted_peer(server_stack: ServerStack) -> None:
    service = unique("svc")
    for spoofed in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        r = httpx.post(
            server_stack.base_url + "/beacon",
            json={"category": service},
            headers={"user-agent": "same-browser", "x-forwarded-for": spoofed},
        )
        assert r.status_code == 202
    wait_until(lambda: minute_total(server_stack.base_url, service) == 3, 30)
    assert users_now(server_stack.base_url, service) == 1


def test_forwarded_for_from_a_trusted_proxy_tells_visitors_apart(
    tmp_path: Path, broker: EmbeddedBroker, clickhouse_server: ClickHouseServer
) -> None:
    stack = ServerStack(tmp_path, broker.bootstrap, clickhouse_server.url, unique("proxy"))
    stack.env["PERFPLAT_API__TRUSTED_PROXIES"] = '["127.0.0.1"]'
    stack.start()
    try:
        wait_for_worker(stack.base_url)
        service = unique("svc")
        for client in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
            r = httpx.post(
                stack.base_url + "/beacon",
                json={"category": service},
                headers={"user-agent": "same-browser", "x-forwarded-for": f"6.6.6.6, {client}"},
            )
            assert r.status_code == 202
        wait_until(lambda: users_now(stack.base_url, service) == 3, 30)
    finally:
        stack.stop()
