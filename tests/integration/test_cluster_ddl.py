"""deploy/clickhouse/cluster.sql against the migrations, on the real ClickHouse 18.16 server.

There is no ZooKeeper or cluster here, so the file is checked in two ways:

* verbatim, each statement is sent to the server, which has no macros: it must get as far as
  expanding ``{cluster}`` (so 18.16 parsed it) and fail there, before doing anything;
* in single-node form (no ``ON CLUSTER``, ``Replicated<X>MergeTree(path, replica, args)`` as
  ``<X>MergeTree(args)``, ``<name>_local`` as ``<name>``, the Distributed tables left out) it is
  run into one fresh database and the migrations into another, and the two must hold the same
  tables with the same columns, engines, keys and view definitions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_driver import errors as ch_errors

from pipeline.clickhouse_server import ClickHouseServer
from pipeline.stores.server import ServerStore
from schemas.migrations import migrate
from tests.conftest import unique

pytestmark = pytest.mark.integration

CLUSTER_SQL = Path(__file__).resolve().parents[2] / "deploy" / "clickhouse" / "cluster.sql"
DB = "perfplat"
ON_CLUSTER = " ON CLUSTER '{cluster}'"

_REPLICATED = re.compile(
    r"\bReplicated(?P<family>\w*MergeTree)\(\s*'(?P<path>[^']*)'\s*,\s*'(?P<replica>[^']*)'\s*"
    r"(?:,\s*(?P<args>[^)]*?))?\s*\)"
)
_DISTRIBUTED = re.compile(
    r"CREATE TABLE IF NOT EXISTS perfplat\.(?P<name>\w+)\s+ON CLUSTER '\{cluster\}'\s+"
    r"AS perfplat\.(?P<as>\w+)\s+ENGINE = Distributed\(\s*'(?P<cluster>[^']*)'\s*,\s*(?P<db>\w+)\s*,"
    r"\s*(?P<local>\w+)\s*,\s*(?P<key>.+)\)$",
    re.S,
)
_CREATED = re.compile(r"^CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS perfplat\.(\w+)")


def _statements() -> list[str]:
    text = CLUSTER_SQL.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _single_node(statement: str, database: str) -> str:
    """The statement for one plain node and ``database``, as the migrations would write it."""

    def plain(m: re.Match[str]) -> str:
        family, args = m.group("family"), m.group("args")
        return f"{family}({args})" if args else family

    sql = statement.replace(ON_CLUSTER, "")
    sql = _REPLICATED.sub(plain, sql)
    sql = re.sub(r"\bperfplat\.(\w+)_local\b", rf"{database}.\1", sql)
    return re.sub(r"\bperfplat\b", database, sql)


def _catalogue(store: ServerStore, database: str) -> dict[str, dict[str, object]]:
    """What system.tables and system.columns say of every table in ``database``, with the
    database's name replaced by ``DB`` so that two databases compare."""

    def norm(text: str) -> str:
        return text.replace(f"{database}.", "DB.")

    out: dict[str, dict[str, object]] = {}
    for name, engine, engine_full, partition_key, sorting_key, query, deps in store.query(
        "SELECT name, engine, engine_full, partition_key, sorting_key, create_table_query, "
        "dependencies_table FROM system.tables WHERE database = %(db)s",
        {"db": database},
    ):
        out[name] = {
            "engine": engine,
            "engine_full": norm(engine_full),
            "partition_key": partition_key,
            "sorting_key": sorting_key,
            "create_table_query": norm(query),
            "views": sorted(deps),
            "columns": [],
        }
    # 18.16's system.columns has no position: its rows come in each table's column order
    for table, column, type_ in store.query(
        "SELECT table, name, type FROM system.columns WHERE database = %(db)s", {"db": database}
    ):
        columns = out[table]["columns"]
        assert isinstance(columns, list)
        columns.append((column, type_))
    return out


@pytest.fixture
def server_store(clickhouse_server: ClickHouseServer) -> Iterator[ServerStore]:
    """The ClickHouse 18.16 server only: chdb has neither ON CLUSTER nor Replicated tables."""
    store = ServerStore(clickhouse_server.url, "default")
    yield store
    store.close()


def test_every_statement_is_on_cluster_and_parses_on_18_16(server_store: ServerStore) -> None:
    statements = _statements()
    assert statements
    for statement in statements:
        assert statement.startswith(("CREATE ", "DROP ")), statement[:80]
        assert ON_CLUSTER in statement, f"not ON CLUSTER: {statement[:80]}"
        # The test server has no macros: a statement 18.16 parses fails on expanding {cluster},
        # before it does anything; one it cannot parse fails with "Syntax error".
        with pytest.raises(ch_errors.ServerException) as failure:
            server_store.execute(statement)
        message = failure.value.message.split("Stack trace")[0].strip()
        if "No macro cluster in config" not in message:
            pytest.fail(f"{message}\nin: {statement[:300]}")


def test_tables_are_replicated_locals_behind_distributed_tables(server_store: ServerStore) -> None:
    statements = _statements()
    created = {m.group(1) for s in statements if (m := _CREATED.match(s))}
    distributed: dict[str, str] = {}
    replicated: set[str] = set()
    null_tables: set[str] = set()
    for statement in statements:
        if (d := _DISTRIBUTED.match(statement)) is not None:
            name = d.group("name")
            assert (d.group("as"), d.group("local")) == (f"{name}_local", f"{name}_local"), statement
            assert (d.group("cluster"), d.group("db")) == ("{cluster}", DB), statement
            assert d.group("local") in created, f"{name} is over {d.group('local')}: not in the file"
            distributed[name] = d.group("key").strip()
            continue
        if "ENGINE = Distributed" in statement:
            pytest.fail(f"a Distributed table not in the form of this file: {statement[:200]}")
        if (r := _REPLICATED.search(statement)) is not None:
            (name,) = re.findall(r"perfplat\.(\w+)_local ON CLUSTER", statement[: r.start()])
            assert r.group("path") == f"/clickhouse/tables/{{shard}}/perfplat/{name}", statement[:200]
            assert r.group("replica") == "{replica}", statement[:200]
            replicated.add(name)
        elif (n := _CREATED.match(statement)) is not None and re.search(r"\bENGINE = Null$", statement):
            null_tables.add(n.group(1))
    assert replicated == set(distributed), "every <name>_local needs its Distributed <name>, and back"
    for statement in statements:
        if statement.startswith("CREATE MATERIALIZED VIEW"):
            (target,) = re.findall(r"\bTO perfplat\.(\w+)", statement)
            assert target.removesuffix("_local") in replicated and target.endswith("_local"), statement[:200]
            for source in re.findall(r"\bFROM perfplat\.(\w+)", statement):
                assert source in null_tables or source.removesuffix("_local") in replicated, statement[:200]
                assert source not in distributed, f"a view over a Distributed table: {statement[:200]}"

    # the sharding keys are expressions over the table's own columns
    database = unique("cluster_keys").replace("-", "_")
    try:
        for statement in statements:
            if not _DISTRIBUTED.match(statement):
                server_store.execute(_single_node(statement, database))
        for name, key in distributed.items():
            server_store.query(f"SELECT {key} FROM {database}.{name} LIMIT 0")
    finally:
        server_store.execute(f"DROP DATABASE IF EXISTS {database}")


def test_single_node_form_matches_the_migrations(server_store: ServerStore) -> None:
    from_file = unique("cluster_file").replace("-", "_")
    migrated = unique("cluster_migrated").replace("-", "_")
    try:
        for statement in _statements():
            if not _DISTRIBUTED.match(statement):
                server_store.execute(_single_node(statement, from_file))
        migrate(server_store, migrated)
        file_tables = _catalogue(server_store, from_file)
        migration_tables = _catalogue(server_store, migrated)
    finally:
        server_store.execute(f"DROP DATABASE IF EXISTS {from_file}")
        server_store.execute(f"DROP DATABASE IF EXISTS {migrated}")

    # schema_migrations stays local to each node (see the file's header): migrate() makes it
    assert "schema_migrations" not in file_tables
    del migration_tables["schema_migrations"]
    missing, extra = set(migration_tables) - set(file_tables), set(file_tables) - set(migration_tables)
    assert (sorted(missing), sorted(extra)) == ([], []), "(in the migrations only, in the file only)"
    for name, expected in sorted(migration_tables.items()):
        got = file_tables[name]
        assert got["columns"] == expected["columns"], name
        for field in ("engine", "engine_full", "partition_key", "sorting_key", "views", "create_table_query"):
            assert got[field] == expected[field], f"{name}: {field}"
