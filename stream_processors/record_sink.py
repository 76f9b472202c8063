"""The ClickHouse sink for data-set write operations (see ``pipeline.record_apply``).

For each data set in a batch it loads what the plan needs (epoch, next version, slot map:
cached between batches; the applied operations and the current rows of the batch's ``_id`` s:
read every batch), then inserts, in this order: slot assignments, new epochs, record rows,
and the operation log. The order makes a crash at any point harmless: a replayed operation is
found applied and skipped, and an epoch is always written before the rows that belong to it.
A failed step drops the cached state and is retried until ClickHouse takes it; only then does
the agent let Faust commit the offsets.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from pipeline.record_apply import Current, DataSetState, Plan, ids_to_look_up, plan
from pipeline.record_rows import ROW_COLUMNS, SlotMap
from pipeline.store import Store
from schemas.records import WriteOp
from stream_processors.retry import until_stored

_LOOKUP_CHUNK = 5000


class RecordSink:
    def __init__(self, store: Store, retry_backoff_ms: int) -> None:
        self._store = store
        self._db = store.database
        self._backoff_s = retry_backoff_ms / 1000
        self._states: dict[str, DataSetState] = {}

    async def write(self, ops: list[WriteOp]) -> None:
        if not ops:
            return
        # memory may be ahead of ClickHouse after a failure: reload the state next time
        await until_stored(
            lambda: self._apply(ops),
            f"applying {len(ops)} write operations",
            self._backoff_s,
            on_failure=self._states.clear,
        )

    def _apply(self, ops: list[WriteOp]) -> None:
        by_set: dict[str, list[WriteOp]] = defaultdict(list)
        for op in ops:
            by_set[op.data_set].append(op)
        total = Plan()
        zero_ops: list[tuple[str, str, int]] = []
        for data_set, set_ops in by_set.items():
            state = self._state(data_set)
            applied = self._applied(data_set, [op.op_id for op in set_ops])
            current = self._current(data_set, state.epoch, ids_to_look_up(set_ops))
            p = plan(data_set, set_ops, state, current, applied)
            total.rows += p.rows
            total.epochs += p.epochs
            total.new_slots += p.new_slots
            # operations that wrote no record rows are logged explicitly (the view logs the rest)
            zero_ops += [(data_set, op_id, 0) for op_id, n in p.op_rows.items() if n == 0]
        self._insert(total, zero_ops)

    def _insert(self, p: Plan, zero_ops: list[tuple[str, str, int]]) -> None:
        store = self._store
        if p.new_slots:
            store.insert("record_fields", _columns(("data_set", "field", "slot"), p.new_slots))
        if p.epochs:
            store.insert("data_set_epochs", _columns(("data_set", "epoch", "op", "at"), p.epochs))
        if p.rows:
            store.insert("records", _columns(ROW_COLUMNS, p.rows))
        if zero_ops:
            store.insert("record_ops", _columns(("data_set", "op", "rows"), zero_ops))

    def _state(self, data_set: str) -> DataSetState:
        state = self._states.get(data_set)
        if state is not None:
            return state
        q = self._store.query
        params = {"ds": data_set}
        ((epoch,),) = q(f"SELECT max(epoch) FROM {self._db}.data_set_epochs WHERE data_set = %(ds)s", params)
        ((version,),) = q(f"SELECT max(version) FROM {self._db}.record_index WHERE data_set = %(ds)s", params)
        slots = q(
            f"SELECT field, any(slot) FROM {self._db}.record_fields WHERE data_set = %(ds)s GROUP BY field",
            params,
        )
        state = DataSetState(
            epoch=int(epoch or 0),
            next_version=max(int(epoch or 0), int(version or 0)) + 1,
            slots=SlotMap({str(f): int(s) for f, s in slots}),
        )
        self._states[data_set] = state
        return state

    def _applied(self, data_set: str, op_ids: list[str]) -> set[str]:
        params = {"ds": data_set, "ops": op_ids}
        rows = self._store.query(
            f"SELECT op FROM {self._db}.record_ops WHERE data_set = %(ds)s AND op IN %(ops)s", params
        )
        rows += self._store.query(
            f"SELECT op FROM {self._db}.data_set_epochs WHERE data_set = %(ds)s AND op IN %(ops)s", params
        )
        return {str(r[0]) for r in rows}

    def _current(self, data_set: str, epoch: int, ids: set[str]) -> dict[str, Current]:
        out: dict[str, Current] = {}
        id_list = sorted(ids)
        for i in range(0, len(id_list), _LOOKUP_CHUNK):
            out.update(self._current_chunk(data_set, epoch, id_list[i : i + _LOOKUP_CHUNK]))
        return out

    def _current_chunk(self, data_set: str, epoch: int, ids: list[str]) -> dict[str, Current]:
        params: dict[str, Any] = {"ds": data_set, "epoch": epoch, "ids": ids}
        latest = self._store.query(
            f"SELECT id, argMax(ts, version), argMax(sign, version), max(version) "
            f"FROM {self._db}.record_index WHERE data_set = %(ds)s AND epoch = %(epoch)s AND id IN %(ids)s "
            "GROUP BY id",
            params,
        )
        live = {str(r[0]): (r[1], int(r[3])) for r in latest if int(r[2]) == 1}
        if not live:
            return {}
        params |= {
            "live": sorted(live),
            "versions": sorted({v for _, v in live.values()}),
            "tss": sorted({_epoch_s(t) for t, _ in live.values()}),
        }
        rows = self._store.query(
            f"SELECT id, version, toUInt32(ts), has_ts, doc FROM {self._db}.records "
            "WHERE data_set = %(ds)s AND epoch = %(epoch)s AND toUInt32(ts) IN %(tss)s "
            "AND id IN %(live)s AND version IN %(versions)s AND sign = 1",
            params,
        )
        out = {}
        for rid, version, ts_s, has_ts, doc in rows:
            if live.get(str(rid), (None, -1))[1] == int(version):
                out[str(rid)] = Current(int(ts_s) * 1000 if int(has_ts) else None, orjson.loads(doc))
        return out


def _epoch_s(value: Any) -> int:
    if isinstance(value, int):
        return value
    return int(value.timestamp())


def _columns(names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}
