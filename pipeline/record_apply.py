"""Applying data-set write operations to the records layout: operations in, rows out. Pure.

The records processor loads, per data set, its current epoch, the next version number, the
field → slot map and the current rows of the ``_id`` s a batch touches; ``plan`` then turns the
batch's operations, in order, into the rows to insert:

- ``post``: a new row per record; a record whose ``_id`` exists first cancels the current row
  (a ``sign = -1`` copy), so ``sum(sign)`` counts it once;
- ``delete``: the cancel row of the current row (nothing when the id does not exist);
- ``patch``: cancel the current row, write it again with the patch's fields merged in;
- ``empty``: start a new epoch; reads see only the latest epoch, so the set is empty at once.

Versions increase by one per row written and per epoch, so the latest row of an ``_id`` is the
one with the highest version. Operations already applied (their ids are in ``applied``) are
skipped, which makes redelivery harmless, and so are operations that precede an ``empty`` of
the same batch: the empty wipes whatever they would write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.record_rows import SlotMap, record_row
from schemas.records import Record, Scalar, WriteOp


@dataclass(frozen=True, slots=True)
class Current:
    """The live row of an ``_id``: what a cancel row must copy."""

    ts_ms: int | None
    fields: dict[str, Scalar]


@dataclass
class DataSetState:
    epoch: int = 0
    next_version: int = 1
    slots: SlotMap = field(default_factory=SlotMap)


@dataclass
class Plan:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    epochs: list[tuple[str, int, str, int]] = field(default_factory=list)
    """(data_set, epoch, op_id, at_s) rows for data_set_epochs; insert them before ``rows``."""
    new_slots: list[tuple[str, str, int]] = field(default_factory=list)
    """(data_set, field, slot) assignments; insert them before ``rows``."""
    op_rows: dict[str, int] = field(default_factory=dict)
    """op_id → rows written, for every operation applied (0 for a delete of an unknown id)."""


def ids_to_look_up(ops: list[WriteOp]) -> set[str]:
    """The ``_id`` s whose current row the plan may need (client-given ids only)."""
    return {r.id for op in ops if op.op != "empty" for r in op.records if r.id_given}


def plan(
    data_set: str,
    ops: list[WriteOp],
    state: DataSetState,
    current: dict[str, Current],
    applied: set[str],
) -> Plan:
    """Rows for ``ops`` (all of ``data_set``, in order). ``current`` holds the live rows of the
    looked-up ids in ``state.epoch``; ``state`` and ``current`` are advanced in place."""
    out = Plan()
    last_empty = max((i for i, op in enumerate(ops) if op.op == "empty"), default=-1)
    live = current

    def emit(op: WriteOp, rid: str, ts_ms: int | None, fields: dict[str, Scalar], sign: int) -> None:
        for name, slot in state.slots.assign(fields).items():
            out.new_slots.append((data_set, name, slot))
        out.rows.append(
            record_row(
                data_set,
                state.epoch,
                rid,
                ts_ms,
                fields,
                sign,
                state.next_version,
                op.op_id,
                op.received_ms // 1000,
                state.slots,
            )
        )
        state.next_version += 1
        out.op_rows[op.op_id] = out.op_rows.get(op.op_id, 0) + 1

    for i, op in enumerate(ops):
        if op.op_id in applied or (i < last_empty and op.op != "empty"):
            continue
        out.op_rows.setdefault(op.op_id, 0)
        if op.op == "empty":
            state.epoch = state.next_version
            state.next_version += 1
            out.epochs.append((data_set, state.epoch, op.op_id, op.received_ms // 1000))
            live = {}
            continue
        for record in op.records:
            old = live.get(record.id) if record.id_given else None
            if op.op in ("delete", "patch") and old is None:
                continue
            if old is not None:
                emit(op, record.id, old.ts_ms, old.fields, -1)
            if op.op == "delete":
                live.pop(record.id, None)
                continue
            new = _patched(old, record) if op.op == "patch" and old is not None else record
            emit(op, record.id, new.ts_ms, new.fields, 1)
            if record.id_given:
                live[record.id] = Current(new.ts_ms, dict(new.fields))
    if live is not current:
        current.clear()
        current.update(live)
    return out


def _patched(old: Current, patch: Record) -> Current:
    ts_ms = patch.ts_ms if patch.ts_ms is not None else old.ts_ms
    return Current(ts_ms, {**old.fields, **patch.fields})
