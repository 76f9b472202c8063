"""The running stacks the end-to-end tier drives over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pipeline.broker import EmbeddedBroker
from pipeline.clickhouse_server import ClickHouseServer
from tests.conftest import unique
from tests.support.browser import browser, browser_page, pytest_runtest_makereport  # noqa: F401
from tests.support.stack import ServerStack, wait_until


@pytest.fixture(scope="module")
def server_stack(
    tmp_path_factory: pytest.TempPathFactory, broker: EmbeddedBroker, clickhouse_server: ClickHouseServer
) -> Iterator[ServerStack]:
    stack = ServerStack(
        tmp_path_factory.mktemp("stack"), broker.bootstrap, clickhouse_server.url, unique("e2e")
    )
    stack.start()
    try:
        wait_for_worker(stack.base_url)
        yield stack
    except BaseException:
        print("api log:\n" + stack.api.log_tail() + "\nworker log:\n" + stack.worker.log_tail())
        raise
    finally:
        stack.stop()


def wait_for_worker(base_url: str, timeout_s: float = 60) -> None:
    """The worker has joined its group once a probe event becomes visible."""
    service = unique("probe")
    r = httpx.post(base_url + "/beacon", json={"category": service}, headers={"user-agent": "probe"})
    assert r.status_code == 202, r.text
    wait_until(lambda: users_now(base_url, service) == 1, timeout_s, 0.2)


def users_now(base_url: str, service: str | None) -> int:
    path = f"/services/{service}/users-now" if service else "/users-now"
    r = httpx.get(base_url + path, timeout=10)
    assert r.status_code == 200, r.text
    return int(r.json()["users_now"])


def minute_total(base_url: str, service: str) -> int:
    r = httpx.get(base_url + f"/services/{service}/events-per-minute", timeout=10)
    assert r.status_code == 200, r.text
    return sum(row["count"] for row in r.json()["totals"])


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
