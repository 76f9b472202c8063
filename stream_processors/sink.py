"""The ClickHouse sink for journey events: one columnar insert per batch into ``journey_in``.

A failed insert is backpressure: the sink retries (with backoff) until the store takes the
batch, and only then does the agent let Faust acknowledge the messages, so offsets are never
committed ahead of ClickHouse. The insert is idempotent (see the DDL), so a retry that
follows a write the store did take changes nothing.
"""

from __future__ import annotations

from pipeline.store import Store
from schemas.journey import JourneyEvent
from stream_processors.retry import until_stored


def journey_columns(events: list[JourneyEvent]) -> dict[str, list[object]]:
    return {
        "id": [e.id for e in events],
        "service": [e.service for e in events],
        "action": [e.action for e in events],
        "label": [e.label for e in events],
        "kind": [e.kind for e in events],
        "path": [e.path for e in events],
        "ts": [e.ts_ms // 1000 for e in events],
        "received": [e.received_ms // 1000 for e in events],
        "visitor": [e.visitor for e in events],
    }


class JourneySink:
    def __init__(self, store: Store, retry_backoff_ms: int) -> None:
        self._store = store
        self._backoff_s = retry_backoff_ms / 1000

    async def write(self, events: list[JourneyEvent]) -> None:
        if not events:
            return
        columns = journey_columns(events)
        await until_stored(
            lambda: self._store.insert("journey_in", columns),
            f"insert of {len(events)} rows",
            self._backoff_s,
        )
