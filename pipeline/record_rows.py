"""How a data-set record is laid out in ClickHouse (see ``schemas/ddl/0002_records.sql``). Pure.

Each field of a data set owns one of ``SLOTS`` slot columns, assigned in order of first
appearance; a slot holds the value as compact JSON text, '' when the record lacks the field.
The read side compiles a field name to ``slot_expr(field)``; the processor turns records into
rows with ``record_row``. Both use the same ``SlotMap``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.sql import quote_string

SLOTS = 24
SLOT_COLUMNS = tuple(f"s{i}" for i in range(SLOTS))
ROW_COLUMNS = (
    "data_set",
    "epoch",
    "ts",
    "has_ts",
    "id",
    "sign",
    "version",
    "op",
    "updated",
    "doc",
    *SLOT_COLUMNS,
)


def json_text(value: Any) -> str:
    """The one JSON encoding used in slots, in ``doc`` and in filters: compact orjson."""
    return orjson.dumps(value).decode()


@dataclass
class SlotMap:
    """Field name → slot number for one data set."""

    slots: dict[str, int] = field(default_factory=dict)

    def assign(self, names: Iterable[str]) -> dict[str, int]:
        """Give every new name the next free slot (while any is left); returns the new ones."""
        new: dict[str, int] = {}
        for name in names:
            if name not in self.slots and len(self.slots) < SLOTS:
                self.slots[name] = new[name] = len(self.slots)
        return new

    def slot_expr(self, name: str) -> str:
        """SQL for the field's JSON text ('' when absent). ``name`` is a validated key."""
        slot = self.slots.get(name)
        if slot is not None:
            return SLOT_COLUMNS[slot]
        return f"visitParamExtractRaw(doc, {quote_string(name)})"


def record_row(
    data_set: str,
    epoch: int,
    record_id: str,
    ts_ms: int | None,
    fields: Mapping[str, Any],
    sign: int,
    version: int,
    op_id: str,
    updated_s: int,
    slots: SlotMap,
) -> tuple[Any, ...]:
    """One row in ``ROW_COLUMNS`` order; DateTime columns as epoch seconds."""
    cells = [""] * SLOTS
    for name, value in fields.items():
        slot = slots.slots.get(name)
        if slot is not None:
            cells[slot] = json_text(value)
    ts_s = ts_ms // 1000 if ts_ms is not None else 0
    return (
        data_set,
        epoch,
        max(ts_s, 0),
        1 if ts_ms is not None else 0,
        record_id,
        sign,
        version,
        op_id,
        updated_s,
        json_text(dict(fields)),
        *cells,
    )
