"""The ClickHouse sinks of journey events and of the KPI event kinds
(``schemas/ddl/0003_kpi.sql``, ``0006_journey_sums.sql``).

* Counted kinds (journey events, transactions, ratings, probes): per batch, drop repeats within the
  batch, drop the events already stored (their (service, id, minute), see ``CountedSink``) and insert the new
  ones into the kind's Null table, whose views update the events table and the minute, hour
  and day sums in that one insert. So a replayed message or a client's retry adds nothing.
  Every event of a service travels on one partition, so one worker at a time counts it.
* Kept kind (costs): inserted as they come. Costs keep every arrival of every post
  (``cost_posts``, ``schemas/ddl/0005_cost_posts.sql``) and the read side takes each post at its
  first arrival.

A failed step is retried until ClickHouse takes it (``stream_processors.retry``); only then
does the agent let Faust commit the batch's offsets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic

from pipeline.kpi_rows import C, Columns, by_key, journey_columns, minute_ids_query, probe_columns
from pipeline.store import Store
from schemas.availability import AvailabilityEvent
from schemas.journey import JourneyEvent
from stream_processors.retry import until_stored

LOOKUP_CHUNK = 200
"""(service, minute) pairs per load: bounds the size of the query."""
RELOAD_S = 30.0
FORGET_S = 120.0


class CountedSink(Generic[C]):
    """Inserts only events whose (service, id, minute) is not stored yet.

    The ids of each (service, minute) the sink writes are kept in memory: loaded from the events
    table the first time a batch touches that minute, and again once they are ``reload_s`` old
    (so a write by another worker, during a rebalance, is seen), then kept up to date with what
    the sink inserts. A minute unused for ``forget_s`` is dropped. A failure drops them all."""

    def __init__(
        self,
        store: Store,
        retry_backoff_ms: int,
        *,
        events_table: str,
        in_table: str,
        columns: Callable[[Sequence[C]], Columns],
        reload_s: float = RELOAD_S,
        forget_s: float = FORGET_S,
    ) -> None:
        self._store = store
        self._backoff_s = retry_backoff_ms / 1000
        self._events_table = events_table
        self._in_table = in_table
        self._columns = columns
        self._reload_s = reload_s
        self._forget_s = forget_s
        self._minutes: dict[tuple[str, int], _Minute] = {}

    async def write(self, events: list[C]) -> None:
        if events:
            await until_stored(
                lambda: self._apply(events),
                f"storing {len(events)} {self._in_table} events",
                self._backoff_s,
                on_failure=self._minutes.clear,
            )

    def _apply(self, events: list[C]) -> None:
        now = time.monotonic()
        unique = by_key(events)
        self._load({(s, m) for s, _, m in unique}, now)
        minutes = self._minutes
        fresh = {k: e for k, e in unique.items() if k[1] not in minutes[k[0], k[2]].ids}
        if fresh:
            self._store.insert(self._in_table, self._columns(list(fresh.values())))
            for s, i, m in fresh:
                minutes[s, m].ids.add(i)
        for key in [k for k, v in self._minutes.items() if now - v.used > self._forget_s]:
            del self._minutes[key]

    def _load(self, wanted: set[tuple[str, int]], now: float) -> None:
        stale = sorted(
            k for k in wanted if k not in self._minutes or now - self._minutes[k].loaded > self._reload_s
        )
        for i in range(0, len(stale), LOOKUP_CHUNK):
            chunk = stale[i : i + LOOKUP_CHUNK]
            sql, params = minute_ids_query(self._store.database, self._events_table, chunk)
            loaded = {k: _Minute(now) for k in chunk}
            for service, minute, id_ in self._store.query(sql, params):
                loaded[str(service), int(minute)].ids.add(str(id_))
            self._minutes.update(loaded)
        for k in wanted:
            self._minutes[k].used = now


def journey_sink(store: Store, retry_backoff_ms: int) -> CountedSink[JourneyEvent]:
    """The sink of journey events: counted, looked up in ``journey_events``."""
    return CountedSink(
        store,
        retry_backoff_ms,
        events_table="journey_events",
        in_table="journey_in",
        columns=journey_columns,
    )


def probe_sink(store: Store, retry_backoff_ms: int) -> CountedSink[AvailabilityEvent]:
    """The sink of availability probes: counted, looked up in ``probe_events``."""
    return CountedSink(
        store,
        retry_backoff_ms,
        events_table="probe_events",
        in_table="probe_in",
        columns=probe_columns,
    )


@dataclass
class _Minute:
    loaded: float
    used: float = 0.0
    ids: set[str] = field(default_factory=set)


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
