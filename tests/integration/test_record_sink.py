"""The records sink on both backends: replacing by _id, delete, patch, empty, and replays.

The live content of a data set (rows whose sign sums to 1 in its latest epoch) is compared
with a plain-Python model of the same operations applied in order.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from pipeline.query import parse_query
from pipeline.query_sql import Snapshot, build, snapshot_sql
from pipeline.record_rows import SlotMap
from pipeline.store import Store
from schemas.migrations import migrate
from schemas.records import Record, Scalar, WriteOp
from stream_processors.record_sink import RecordSink

pytestmark = pytest.mark.integration


def _live(store: Store, data_set: str) -> dict[str, tuple[int | None, dict[str, Any]]]:
    db = store.database
    rows = store.query(
        f"SELECT id, toUInt32(ts), has_ts, doc, sum(sign) AS n FROM {db}.records "
        f"WHERE data_set = %(ds)s AND epoch = (SELECT max(epoch) FROM {db}.data_set_epochs "
        "WHERE data_set = %(ds)s) GROUP BY id, ts, has_ts, doc HAVING n > 0",
        {"ds": data_set},
    )
    out: dict[str, tuple[int | None, dict[str, Any]]] = {}
    for rid, ts_s, has_ts, doc, n in rows:
        assert n == 1, f"record {rid} counted {n} times"
        assert rid not in out, f"record {rid} live twice"
        out[str(rid)] = (int(ts_s) * 1000 if has_ts else None, orjson.loads(doc))
    return out


def _model(ops: list[WriteOp]) -> dict[str, dict[str, tuple[int | None, dict[str, Any]]]]:
    sets: dict[str, dict[str, tuple[int | None, dict[str, Any]]]] = {}
    for op in ops:
        live = sets.setdefault(op.data_set, {})
        if op.op == "empty":
            live.clear()
        for r in op.records:
            if op.op == "post":
                live[r.id] = (r.ts_ms // 1000 * 1000 if r.ts_ms is not None else None, dict(r.fields))
            elif op.op == "delete":
                live.pop(r.id, None)
            elif op.op == "patch" and r.id in live:
                ts, fields = live[r.id]
                live[r.id] = (r.ts_ms // 1000 * 1000 if r.ts_ms is not None else ts, {**fields, **r.fields})
    return sets


def _random_ops(seed: int, n: int) -> list[WriteOp]:
    rnd = random.Random(seed)
    ops = []
    for i in range(n):
        ds = rnd.choice(["g_a", "g_b"])
        kind = rnd.choices(["post", "delete", "patch", "empty"], [12, 2, 2, 1])[0]
        op_id = f"op-{seed}-{i}"
        ms = 1_600_000_000_000 + i * 1000
        if kind == "post":
            records = []
            for j in range(rnd.randint(1, 6)):
                given = rnd.random() < 0.7
                rid = f"r{rnd.randint(0, 12)}" if given else f"auto-{seed}-{i}-{j}"
                fields: dict[str, Scalar] = {"channel": rnd.choice(["web", "phone"]), "n": rnd.randint(0, 9)}
                if rnd.random() < 0.3:
                    fields[f"extra{rnd.randint(0, 30)}"] = "x'y\\z"
                ts = ms + rnd.randint(-(10**9), 10**9) if rnd.random() < 0.9 else None
                records.append(Record(rid, given, ts, fields))
            ops.append(WriteOp("post", op_id, ds, ms, tuple(records)))
        elif kind == "delete":
            ops.append(WriteOp("delete", op_id, ds, ms, (Record(f"r{rnd.randint(0, 12)}", True, None, {}),)))
        elif kind == "patch":
            rec = Record(f"r{rnd.randint(0, 12)}", True, None, {"patched": True, "n": -1})
            ops.append(WriteOp("patch", op_id, ds, ms, (rec,)))
        else:
            ops.append(WriteOp("empty", op_id, ds, ms))
    return ops


def _apply(store: Store, batches: list[list[WriteOp]]) -> None:
    sink = RecordSink(store, retry_backoff_ms=10)
    for batch in batches:
        asyncio.run(sink.write(batch))


@pytest.mark.parametrize("seed", [1, 2])
def test_operations_in_batches_match_the_model(store: Store, seed: int) -> None:
    migrate(store, store.database)
    ops = _random_ops(seed, 80)
    rnd = random.Random(seed)
    batches, i = [], 0
    while i < len(ops):
        k = rnd.randint(1, 9)
        batches.append(ops[i : i + k])
        i += k
    _apply(store, batches)
    expected = _model(ops)
    for ds in ("g_a", "g_b"):
        assert _live(store, ds) == expected.get(ds, {})


def test_replays_and_restarts_change_nothing(store: Store) -> None:
    """Every batch delivered twice, through fresh sinks (a restarted worker reloads its state)."""
    migrate(store, store.database)
    ops = _random_ops(7, 60)
    batches = [ops[i : i + 5] for i in range(0, len(ops), 5)]
    _apply(store, batches)
    once = {ds: _live(store, ds) for ds in ("g_a", "g_b")}
    # a worker killed before committing: the last batches come again, to a new sink
    _apply(store, batches[-4:])
    _apply(store, batches)
    assert {ds: _live(store, ds) for ds in ("g_a", "g_b")} == once
    expected = _model(ops)
    assert once == {ds: expected.get(ds, {}) for ds in ("g_a", "g_b")}


def test_delete_and_patch_of_unknown_ids_are_logged_with_no_rows(store: Store) -> None:
    migrate(store, store.database)
    _apply(store, [[WriteOp("delete", "op-x", "g_a", 1_700_000_000_000, (Record("nope", True, None, {}),))]])
    rows = store.query(f"SELECT op, max(rows) FROM {store.database}.record_ops GROUP BY op")
    assert [(str(o), int(n)) for o, n in rows] == [("op-x", 0)]


def _snapshot(store: Store, data_set: str) -> Snapshot:
    ((epoch, version),) = store.query(*snapshot_sql(data_set, store.database))
    return Snapshot(int(epoch or 0), int(version or 0))


def _raw_read(store: Store, data_set: str, snapshot: Snapshot) -> dict[str, Any]:
    query = parse_query([], True, datetime(2026, 1, 1, tzinfo=UTC))
    compiled = build(query, data_set, SlotMap(), store.database, snapshot=snapshot)
    rows = store.query(compiled.sql, compiled.params)
    ids = [str(r[0]) for r in rows]
    assert len(ids) == len(set(ids)), f"an _id read twice: {sorted(ids)}"
    return {str(r[0]): orjson.loads(r[4]) for r in rows}


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_a_raw_read_on_a_snapshot_ignores_every_later_write(store: Store, seed: int) -> None:
    """A raw query reads the records several times; bound to a snapshot, a write that lands
    meanwhile (re-posts that cancel rows, deletes, patches, an empty) changes none of them."""
    migrate(store, store.database)
    ops = _random_ops(seed, 70)
    before, after = ops[:35], ops[35:]
    _apply(store, [before[i : i + 4] for i in range(0, len(before), 4)])
    snaps = {ds: _snapshot(store, ds) for ds in ("g_a", "g_b")}
    # as during one query's few milliseconds: the later writes land, no merge collapses them yet
    store.execute(f"SYSTEM STOP MERGES {store.database}.records")
    _apply(store, [after[i : i + 4] for i in range(0, len(after), 4)])
    then, now = _model(before), _model(ops)
    assert then != now
    for ds in ("g_a", "g_b"):
        assert _raw_read(store, ds, snaps[ds]) == {rid: doc for rid, (_, doc) in then.get(ds, {}).items()}
        assert _raw_read(store, ds, _snapshot(store, ds)) == {
            rid: doc for rid, (_, doc) in now.get(ds, {}).items()
        }
