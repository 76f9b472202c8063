"""The settings root (``pipeline.settings``): embedded by default, distributed only with both the
broker and the ClickHouse server named (and a visitor secret), nested ``__`` variables."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.settings import Mode, Settings, load_settings

BOOTSTRAP = "kafka-1.internal:9092,kafka-2.internal:9092"
CLICKHOUSE_URL = "clickhouse://perfplat:pw@ch.internal:9000/perfplat"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """No PERFPLAT_* variable from the machine may leak into a test; run from an empty directory."""
    for name in list(os.environ):
        if name.upper().startswith("PERFPLAT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield monkeypatch


def test_no_settings_is_embedded_mode_on_the_local_broker_port() -> None:
    s = load_settings()
    assert s.mode is Mode.EMBEDDED
    assert s.bootstrap == f"127.0.0.1:{s.kafka.broker_port}"
    assert s.kafka.bootstrap == ""
    assert s.clickhouse.url == ""


def test_the_embedded_bootstrap_follows_the_broker_port(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PERFPLAT_KAFKA__BROKER_PORT", "29092")
    s = Settings()
    assert s.mode is Mode.EMBEDDED
    assert s.bootstrap == "127.0.0.1:29092"


@pytest.mark.parametrize(
    "env",
    [
        {"PERFPLAT_KAFKA_BOOTSTRAP": BOOTSTRAP},
        {"PERFPLAT_CLICKHOUSE_URL": CLICKHOUSE_URL},
        {"PERFPLAT_KAFKA_BOOTSTRAP": BOOTSTRAP, "PERFPLAT_VISITOR_SECRET": "s3cret"},
        {"PERFPLAT_KAFKA__BOOTSTRAP": BOOTSTRAP, "PERFPLAT_VISITOR_SECRET": "s3cret"},
    ],
    ids=["kafka only", "clickhouse only", "kafka and secret", "nested kafka and secret"],
)
def test_half_a_distributed_setup_is_refused(clean_env: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    with pytest.raises(ValidationError, match="needs both"):
        Settings()


def test_distributed_mode_needs_a_visitor_secret(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PERFPLAT_KAFKA_BOOTSTRAP", BOOTSTRAP)
    clean_env.setenv("PERFPLAT_CLICKHOUSE_URL", CLICKHOUSE_URL)
    with pytest.raises(ValidationError, match="PERFPLAT_VISITOR_SECRET"):
        Settings()


@pytest.mark.parametrize("placeholder", ["change-me", "CHANGEME", " secret "])
def test_a_placeholder_visitor_secret_is_refused(clean_env: pytest.MonkeyPatch, placeholder: str) -> None:
    clean_env.setenv("PERFPLAT_KAFKA_BOOTSTRAP", BOOTSTRAP)
    clean_env.setenv("PERFPLAT_CLICKHOUSE_URL", CLICKHOUSE_URL)
    clean_env.setenv("PERFPLAT_VISITOR_SECRET", placeholder)
    with pytest.raises(ValidationError, match="placeholder"):
        Settings()


@pytest.mark.parametrize(
    ("kafka_var", "clickhouse_var"),
    [
        ("PERFPLAT_KAFKA_BOOTSTRAP", "PERFPLAT_CLICKHOUSE_URL"),
        ("PERFPLAT_KAFKA__BOOTSTRAP", "PERFPLAT_CLICKHOUSE__URL"),
    ],
    ids=["short aliases", "nested form"],
)
def test_broker_server_and_secret_select_distributed_mode(
    clean_env: pytest.MonkeyPatch, kafka_var: str, clickhouse_var: str
) -> None:
    clean_env.setenv(kafka_var, BOOTSTRAP)
    clean_env.setenv(clickhouse_var, CLICKHOUSE_URL)
    clean_env.setenv("PERFPLAT_VISITOR_SECRET", "s3cret")
    s = Settings()
    assert s.mode is Mode.DISTRIBUTED
    assert s.bootstrap == BOOTSTRAP
    assert s.clickhouse.url == CLICKHOUSE_URL
    assert s.visitor_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)


def test_nested_variables_set_section_fields(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PERFPLAT_KAFKA__PARTITIONS", "8")
    clean_env.setenv("PERFPLAT_WORKER__FLUSH_INTERVAL_MS", "100")
    s = Settings()
    assert s.kafka.partitions == 8
    assert s.worker.flush_interval_ms == 100
    assert s.mode is Mode.EMBEDDED


def test_a_short_alias_and_a_nested_field_of_the_same_section_combine(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PERFPLAT_KAFKA_BOOTSTRAP", BOOTSTRAP)
    clean_env.setenv("PERFPLAT_KAFKA__PARTITIONS", "8")
    clean_env.setenv("PERFPLAT_CLICKHOUSE_URL", CLICKHOUSE_URL)
    clean_env.setenv("PERFPLAT_CLICKHOUSE__DATABASE", "perf_prod")
    clean_env.setenv("PERFPLAT_VISITOR_SECRET", "s3cret")
    s = Settings()
    assert (s.kafka.bootstrap, s.kafka.partitions) == (BOOTSTRAP, 8)
    assert (s.clickhouse.url, s.clickhouse.database) == (CLICKHOUSE_URL, "perf_prod")
    assert s.mode is Mode.DISTRIBUTED


def test_a_non_numeric_nested_value_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PERFPLAT_KAFKA__PARTITIONS", "eight")
    with pytest.raises(ValidationError, match="partitions"):
        Settings()


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.log_level = "DEBUG"  # type: ignore[misc]


def test_the_workers_fetch_wait_is_a_kafka_setting(clean_env: pytest.MonkeyPatch) -> None:
    assert Settings().kafka.fetch_max_wait_ms == 100
    clean_env.setenv("PERFPLAT_KAFKA__FETCH_MAX_WAIT_MS", "40")
    assert Settings().kafka.fetch_max_wait_ms == 40
    clean_env.setenv("PERFPLAT_KAFKA__FETCH_MAX_WAIT_MS", "0")
    with pytest.raises(ValidationError, match="fetch_max_wait_ms"):
        Settings()
