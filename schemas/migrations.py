"""Versioned ClickHouse schema migrations, applied in order and idempotently.

Each ``schemas/ddl/NNNN_name.sql`` file is one migration; ``{db}`` stands for the database.
Applied versions are recorded in ``{db}.schema_migrations``; every statement is written to be
harmless if re-run (``IF NOT EXISTS``), so two processes racing at start-up do no damage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Protocol

from pipeline.sql import identifier


class _Executes(Protocol):
    def execute(self, sql: str) -> None: ...
    def query(self, sql: str) -> list[tuple[object, ...]]: ...


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def _split(text: str) -> tuple[str, ...]:
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("--")]
    return tuple(s.strip() for s in "\n".join(lines).split(";") if s.strip())


def load_migrations(database: str) -> list[Migration]:
    db = identifier(database)
    out = []
    for entry in sorted(resources.files("schemas").joinpath("ddl").iterdir(), key=lambda e: e.name):
        m = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if m:
            text = entry.read_text(encoding="utf-8").replace("{db}", db)
            out.append(Migration(int(m.group(1)), m.group(2), _split(text)))
    return out


def migrate(store: _Executes, database: str) -> list[int]:
    """Create the database and apply every migration not yet recorded. Returns those applied."""
    db = identifier(database)
    store.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
    store.execute(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations (version UInt32, name String, "
        "applied DateTime('UTC') DEFAULT now()) ENGINE = ReplacingMergeTree ORDER BY version"
    )
    done = {int(str(r[0])) for r in store.query(f"SELECT version FROM {db}.schema_migrations")}
    applied = []
    for mig in load_migrations(database):
        if mig.version in done:
            continue
        for statement in mig.statements:
            store.execute(statement)
        store.execute(
            f"INSERT INTO {db}.schema_migrations (version, name) SELECT {mig.version}, '{mig.name}'"
        )
        applied.append(mig.version)
    return applied
