"""The pure core imports no framework, broker client or database driver (STYLE.md habit 1).

Each module is imported in a fresh interpreter, so modules this test process already imported
(the conftest loads the broker and the stores) cannot hide what the module itself pulls in.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PURE_MODULES = [
    "pipeline.windows",
    "pipeline.probes",
    "pipeline.kpi_rows",
    "pipeline.kpi",
    "pipeline.kpi_sql",
    "pipeline.journey_sql",
    "pipeline.charts",
    "pipeline.dashboard_view",
    "pipeline.visitor",
    "pipeline.beacon",
    "pipeline.sql",
    "pipeline.live",
    "pipeline.live_events",
    "pipeline.clock",
    "pipeline.errors",
    "pipeline.spreadsheet",
    "pipeline.records",
    "pipeline.record_rows",
    "pipeline.record_apply",
    "pipeline.staleness",
    "pipeline.alerts",
    "pipeline.query",
    "pipeline.query_sql",
    "pipeline.query_shape",
    "pipeline.query_run",
    "schemas.records",
    "schemas.journey",
    "schemas.fields",
    "schemas.envelope",
    "schemas.transaction",
    "schemas.satisfaction",
    "schemas.availability",
    "schemas.cost",
    "stream_processors.journey",
    "stream_processors.dead_letter",
]
FORBIDDEN = [
    "faust",
    "mode",
    "aiokafka",
    "confluent_kafka",
    "clickhouse_driver",
    "chdb",
    "fastapi",
    "starlette",
    "uvicorn",
]

_PROBE = """
import importlib, json, sys
forbidden = set(sys.argv[2].split(","))
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(n for n in sys.modules if n.split(".")[0] in forbidden)))
"""


def forbidden_imports(module: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, module, ",".join(FORBIDDEN)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    found: list[str] = json.loads(done.stdout)
    return found


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_imports_no_framework_or_driver(module: str) -> None:
    assert forbidden_imports(module) == []


def test_the_probe_sees_a_forbidden_import() -> None:
    """Without this, a probe that never finds anything would pass every test above."""
    found = forbidden_imports("fastapi")
    assert "fastapi" in found
    assert "starlette" in found
