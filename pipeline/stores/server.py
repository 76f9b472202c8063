"""Store backend for a ClickHouse server, over clickhouse-driver's native protocol.

clickhouse-driver clients are not thread-safe, so each thread gets its own connection.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors

from pipeline.errors import StoreUnavailable
from pipeline.sql import identifier, render
from pipeline.store import Columns

_UNAVAILABLE = (ch_errors.NetworkError, ch_errors.SocketTimeoutError, EOFError, OSError)


class ServerStore:
    def __init__(self, url: str, database: str) -> None:
        self.database = identifier(database)
        self._url = url
        self._local = threading.local()
        self._clients: list[Client] = []
        self._lock = threading.Lock()

    def _client(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = Client.from_url(self._url)
            # a client-side timeout (as a query setting the server would only warn "unknown")
            client.connection.send_receive_timeout = 30
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def _run(self, sql: str, data: Any = None, columnar: bool = False) -> Any:
        try:
            if data is None:
                return self._client().execute(sql)
            return self._client().execute(sql, data, columnar=columnar, types_check=False)
        except _UNAVAILABLE as exc:
            self._client().disconnect()
            raise StoreUnavailable(f"ClickHouse server unavailable: {exc}") from exc

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._run(render(sql, params))

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        rows = self._run(render(sql, params))
        return [tuple(r) for r in rows]

    def query_values(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """clickhouse-driver's rows are already the quickest this backend has."""
        return self.query(sql, params)

    def insert(self, table: str, columns: Columns) -> None:
        names = list(columns)
        if not names or not len(columns[names[0]]):
            return
        sql = f"INSERT INTO {self.database}.{identifier(table)} ({', '.join(names)}) VALUES"
        self._run(sql, [list(columns[n]) for n in names], columnar=True)

    def server_version(self) -> tuple[int, ...]:
        (row,) = self.query("SELECT version()")
        return tuple(int(p) for p in str(row[0]).split(".") if p.isdigit())

    def close(self) -> None:
        with self._lock:
            for client in self._clients:
                client.disconnect()
            self._clients.clear()
        self._local = threading.local()
