"""The storage interface. Two backends keep it and pass one contract suite:
``pipeline.stores.server`` (a ClickHouse server over clickhouse-driver's native protocol) and
``pipeline.stores.embedded`` (chdb, in-process, one process per data directory).

Calls are synchronous; async edges run them in a thread. Failures to reach the store raise
``StoreUnavailable`` (retryable); errors in the SQL itself propagate as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pipeline.settings import Settings

Columns = Mapping[str, Sequence[Any]]
"""Columnar rows for insert: column name → values. DateTime columns take epoch seconds."""


class Store(Protocol):
    database: str

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None: ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]: ...

    def query_values(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """:meth:`query` for a statement whose columns are all integers, floats and strings (no
        DateTime, Date, Decimal, Nullable or Array): the same rows, fetched the fastest way the
        backend has. The KPI reads are such statements."""
        ...

    def insert(self, table: str, columns: Columns) -> None: ...

    def server_version(self) -> tuple[int, ...]: ...

    def close(self) -> None: ...


def open_store(settings: Settings) -> Store:
    """The backend the settings select: chdb when no ClickHouse URL is set."""
    if settings.clickhouse.url:
        from pipeline.stores.server import ServerStore

        return ServerStore(settings.clickhouse.url, settings.clickhouse.database)
    from pipeline.stores.embedded import EmbeddedStore

    return EmbeddedStore(settings.chdb_path, settings.clickhouse.database)
