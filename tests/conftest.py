"""Session services for the integration and e2e tiers: a real Tansu broker, a real ClickHouse
18.16 server (Debian's package) and chdb, all started and stopped by the test session itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.broker import EmbeddedBroker
from pipeline.clickhouse_server import ClickHouseServer, find_server_binary
from pipeline.settings import ClickHouseSettings, KafkaSettings, Settings
from pipeline.store import Store
from pipeline.stores.embedded import EmbeddedStore
from pipeline.stores.server import ServerStore
from tests.support.stack import free_port


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(free_port(), tmp_path_factory.mktemp("broker") / "tansu.log")
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    if find_server_binary() is None:
        pytest.fail("Debian's clickhouse-server is not installed: `make test` installs it")
    server = ClickHouseServer(tmp_path_factory.mktemp("clickhouse"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """chdb allows one data directory per process, so the whole test session shares this one."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture(params=["server", "chdb"])
def store(request: pytest.FixtureRequest, chdb_path: Path) -> Iterator[Store]:
    """Each backend in turn, with a database of its own for this test."""
    database = unique("t").replace("-", "_")
    s: Store
    if request.param == "server":
        server: ClickHouseServer = request.getfixturevalue("clickhouse_server")
        s = ServerStore(server.url, database)
    else:
        s = EmbeddedStore(chdb_path, database)
    yield s
    s.execute(f"DROP DATABASE IF EXISTS {database}")
    s.close()


@pytest.fixture
def kafka_settings(broker: EmbeddedBroker) -> Settings:
    """Settings pointing at the session broker, with topics of this test's own."""
    return Settings(
        kafka=KafkaSettings(bootstrap=broker.bootstrap, topic_prefix=unique("t")),
        clickhouse=ClickHouseSettings(url="clickhouse://unused", database="unused"),
        visitor_secret="test-secret",  # type: ignore[arg-type]
    )
