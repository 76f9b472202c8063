"""The ClickHouse sinks of the KPI event kinds (``schemas/ddl/0003_kpi.sql``).

* Counted kinds (transactions, ratings): per batch, drop repeats within the batch, look the
  rest up in the events table (``pipeline.kpi_rows.stored_keys_query``) and insert only the new
  ones into the kind's Null table, whose views update the events table and the minute, hour
  and day sums in that one insert. So a replayed message or a client's retry adds nothing.
  Every event of a service travels on one partition, so one worker at a time counts it.
* Kept kinds (probes, costs): inserted as they come; their tables replace by identity and
  the read side reads each identity once.

A failed step is retried until ClickHouse takes it (``stream_processors.retry``); only then
does the agent let Faust commit the batch's offsets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic

from pipeline.kpi_rows import C, Columns, Key, event_key, first_of_each, stored_keys_query
from pipeline.store import Store
from stream_processors.retry import until_stored

LOOKUP_CHUNK = 5000
"""Events per duplicate lookup: bounds the size of the query's id list."""


class CountedSink(Generic[C]):
    def __init__(
        self,
        store: Store,
        retry_backoff_ms: int,
        *,
        events_table: str,
        in_table: str,
        columns: Callable[[Sequence[C]], Columns],
    ) -> None:
        self._store = store
        self._backoff_s = retry_backoff_ms / 1000
        self._events_table = events_table
        self._in_table = in_table
        self._columns = columns

    async def write(self, events: list[C]) -> None:
        if events:
            await until_stored(
                lambda: self._apply(events), f"storing {len(events)} {self._in_table} events", self._backoff_s
            )

    def _apply(self, events: list[C]) -> None:
        unique = first_of_each(events)
        stored = self._stored(unique)
        fresh = [e for e in unique if event_key(e) not in stored]
        if fresh:
            self._store.insert(self._in_table, self._columns(fresh))

    def _stored(self, events: list[C]) -> set[Key]:
        found: set[Key] = set()
        for i in range(0, len(events), LOOKUP_CHUNK):
            sql, params = stored_keys_query(
                self._store.database, self._events_table, events[i : i + LOOKUP_CHUNK]
            )
            found.update((str(s), str(id_), int(m)) for s, id_, m in self._store.query(sql, params))
        return found


class KeptSink:
    def __init__(
        self, store: Store, retry_backoff_ms: int, *, table: str, columns: Callable[[Sequence[Any]], Columns]
    ) -> None:
        self._store = store
        self._backoff_s = retry_backoff_ms / 1000
        self._table = table
        self._columns = columns

    async def write(self, events: list[Any]) -> None:
        if events:
            columns = self._columns(events)
            await until_stored(
                lambda: self._store.insert(self._table, columns),
                f"insert of {len(events)} {self._table} rows",
                self._backoff_s,
            )
