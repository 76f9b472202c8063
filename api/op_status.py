"""Whether a write operation is applied yet: the records processor logs each one in
``record_ops`` with the rows it wrote. Ask the store directly (``perfplat api``) or, in the
embedded ingest process that has no store, the core's read side over loopback."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import orjson

from api.upstream import UpstreamPool
from pipeline.store import Store


class StoreOpStatus:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def rows_applied(self, data_set: str, op_id: str) -> int | None:
        rows = await asyncio.to_thread(
            self.store.query,
            f"SELECT count(), max(rows) FROM {self.store.database}.record_ops "
            "WHERE data_set = %(ds)s AND op = %(op)s",
            {"ds": data_set, "op": op_id},
        )
        ((found, applied),) = rows
        return int(applied) if int(found) else None


class UpstreamOpStatus:
    def __init__(self, upstream: UpstreamPool) -> None:
        self.upstream = upstream

    async def rows_applied(self, data_set: str, op_id: str) -> int | None:
        status, _, body = await self.upstream.get(
            f"/_ops/{quote(data_set, safe='')}/{quote(op_id, safe='')}", b"application/json"
        )
        if status != 200:
            return None
        rows = orjson.loads(body).get("rows")
        return int(rows) if isinstance(rows, int) else None
