"""Distributed mode end to end: ``perfplat api`` + ``perfplat worker`` processes against the real
broker and the real ClickHouse 18.16 server. HTTP in, figures out."""

from __future__ import annotations

import signal
import threading
import time
import uuid

import httpx
import orjson
import pytest
from confluent_kafka import Consumer, Producer

from pipeline.topics import topics_for
from producers.kafka_config import consumer_config
from tests.conftest import unique
from tests.e2e.conftest import minute_total, users_now, wait_for_worker
from tests.support.stack import ServerStack, wait_until

pytestmark = pytest.mark.e2e


def _batch(service: str, n: int, start: int = 0) -> list[dict[str, object]]:
    labels = ["start", "details", "done", "info:eligibility"]
    return [
        {
            "category": service,
            "action": "help" if i % 7 == 0 else "stage",
            "label": labels[i % 4],
            "kind": "click" if i % 7 == 0 else "page",
            "path": f"/s/{i % 4}",
            "id": f"{service}-{start + i}",
        }
        for i in range(n)
    ]


def test_beacon_in_figures_out(server_stack: ServerStack) -> None:
    base, service = server_stack.base_url, unique("svc")
    with httpx.Client(base_url=base, timeout=10) as client:
        for v in range(12):
            r = client.post(
                "/beacon",
                content=orjson.dumps(_batch(service, 5, v * 5)),
                headers={"content-type": "text/plain;charset=UTF-8", "user-agent": f"ua-{v}"},
            )
            assert r.status_code == 202, r.text
            assert r.json()["accepted"] == 5
        r = client.get(
            "/beacon.gif",
            params={"category": service, "action": "stage", "label": "start"},
            headers={"user-agent": "pixel-visitor"},
        )
        assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
    wait_until(lambda: users_now(base, service) == 13, 30)
    wait_until(lambda: minute_total(base, service) == 61, 30)
    assert users_now(base, None) >= 13
    expected: dict[tuple[str, str, str], int] = {("stage", "start", "page"): 1}  # the pixel
    for v in range(12):
        for e in _batch(service, 5, v * 5):
            key = (str(e["action"]), str(e["label"]), str(e["kind"]))
            expected[key] = expected.get(key, 0) + 1
    got: dict[tuple[str, str, str], int] = {}
    for row in httpx.get(base + f"/services/{service}/events-per-minute").json()["data"]:
        key = (row["action"], row["label"], row["kind"])
        got[key] = got.get(key, 0) + row["count"]
    assert got == expected


def test_client_retries_do_not_change_the_figures(server_stack: ServerStack) -> None:
    base, service = server_stack.base_url, unique("svc")
    body = orjson.dumps(_batch(service, 20))
    for _ in range(3):  # the same events, ids and visitor sent three times
        r = httpx.post(base + "/beacon", content=body, headers={"user-agent": "retrying-browser"})
        assert r.status_code == 202
    wait_until(lambda: minute_total(base, service) == 20, 30)
    time.sleep(1.5)  # give a double count the chance to show
    assert minute_total(base, service) == 20
    assert users_now(base, service) == 1


def test_worker_killed_mid_stream_leaves_counts_exact(server_stack: ServerStack) -> None:
    base, service = server_stack.base_url, unique("svc")
    sent_ids: set[str] = set()
    visitors: set[str] = set()
    stop = threading.Event()
    errors: list[str] = []

    def send() -> None:
        i = 0
        with httpx.Client(base_url=base, timeout=30) as client:
            while not stop.is_set() and i < 20_000:
                ua = f"visitor-{i % 97}"
                batch = _batch(service, 25, i)
                r = client.post("/beacon", content=orjson.dumps(batch), headers={"user-agent": ua})
                if r.status_code == 202:
                    sent_ids.update(str(e["id"]) for e in batch)
                    visitors.add(ua)
                else:
                    errors.append(r.text)
                i += 25

    t = threading.Thread(target=send)
    t.start()
    time.sleep(3)
    server_stack.worker.signal(signal.SIGKILL)
    server_stack.worker.proc.wait(10)  # type: ignore[union-attr]
    time.sleep(2)
    server_stack.start_worker()
    time.sleep(3)
    stop.set()
    t.join(60)
    assert not errors
    assert len(sent_ids) > 500
    wait_until(lambda: minute_total(base, service) == len(sent_ids), 90, 0.5)
    assert users_now(base, service) == len(visitors)
    time.sleep(2)
    assert minute_total(base, service) == len(sent_ids)


HUGE = b'[{"category":"svc","label":"' + b"x" * 2_000_000 + b'"}]'
DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("body", "content_type", "status", "needle"),
    [
        (b'{"category":', "application/json", 400, "not valid JSON"),
        (b'{"category": 5}', "application/json", 400, "'category' must be a string"),
        (b'{"action": "stage"}', "text/plain", 400, "'category' is required"),
        (b'{"category": "<script>alert(1)</script>"}', "text/plain", 400, "service slug"),
        (b'{"category": "svc", "ts": "yesterday"}', "text/plain", 400, "'ts'"),
        (b'{"category": "svc", "kind": "hover"}', "text/plain", 400, "'kind'"),
        (b"", "text/plain", 400, "empty body"),
        (b"[]", "text/plain", 400, "empty batch"),
        (b"42", "text/plain", 400, "one event object or an array"),
        (b"\xff\xfe\x00garbage", "text/plain", 400, "not valid JSON"),
        (DEEP, "text/plain", 400, "not valid JSON"),
        (HUGE, "text/plain", 413, "over the limit"),
        (orjson.dumps([{"category": "svc"}] * 1001), "text/plain", 413, "over the limit of 1000"),
        (b"<xml/>", "application/xml", 415, "unsupported content type"),
        (b"category=svc", "application/x-www-form-urlencoded", 415, "unsupported content type"),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    server_stack: ServerStack, body: bytes, content_type: str, status: int, needle: str
) -> None:
    r = httpx.post(server_stack.base_url + "/beacon", content=body, headers={"content-type": content_type})
    assert r.status_code == status, r.text
    assert r.json()["status"] == "error"
    assert needle in r.json()["message"]


def test_a_bad_event_does_not_take_its_neighbours_down(server_stack: ServerStack) -> None:
    base, service = server_stack.base_url, unique("svc")
    batch = [
        {"category": service, "id": "good-1"},
        {"category": service, "ts": True},
        {"category": service, "id": "good-2", "label": "'; DROP TABLE x; --"},
        "not an object",
    ]
    r = httpx.post(base + "/beacon", content=orjson.dumps(batch), headers={"user-agent": "mixed"})
    assert r.status_code == 400
    doc = r.json()
    assert doc["accepted"] == 2 and doc["ids"] == ["good-1", "good-2"]
    assert [(e["index"], e["field"]) for e in doc["errors"]] == [(1, "ts"), (3, None)]
    assert "event 1: 'ts'" in doc["message"]
    wait_until(lambda: minute_total(base, service) == 2, 30)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/beacon.gif?action=stage", 400),
        ("/beacon.gif?category=Bad%20Slug", 400),
        ("/services/svc/events-per-minute?start_at=garbage", 400),
        ("/services/svc/events-per-minute?start_at=2026-01-01T00:00:00", 400),
        ("/services/svc/events-per-minute?start_at=2026-01-01T00:00:00Z&end_at=2026-03-01T00:00:00Z", 400),
        ("/services/%3Cscript%3E/users-now", 404),
        ("/no-such-route", 404),
    ],
)
def test_bad_read_and_pixel_requests(server_stack: ServerStack, path: str, status: int) -> None:
    r = httpx.get(server_stack.base_url + path)
    assert r.status_code == status, r.text
    assert r.json()["status"] == "error" and r.json()["message"]


def test_malformed_kafka_messages_are_dead_lettered(server_stack: ServerStack) -> None:
    settings = server_stack.settings()
    topics = topics_for(settings.kafka)
    producer = Producer({"bootstrap.servers": settings.bootstrap})
    bad_row_envelope = orjson.dumps({"schema": "journey", "v": 1, "events": [["only", "three", "fields"]]})
    for value in (b"not json at all", b'{"schema": "journey", "v": 99, "events": []}', bad_row_envelope):
        producer.produce(topics.journey.name, value, partition=0)
    producer.flush(10)

    consumer = Consumer(consumer_config(settings, "dlq-reader-" + uuid.uuid4().hex[:6]))
    consumer.subscribe([topics.dead_letter.name])
    reasons: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while len(reasons) < 3 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                reasons.append(orjson.loads(msg.value())["reason"])
    finally:
        consumer.close()
    assert any("not JSON" in r for r in reasons)
    assert any("version 99" in r for r in reasons)
    assert any("event 0" in r for r in reasons)
    # and the worker is alive and still counting
    wait_for_worker(server_stack.base_url)
