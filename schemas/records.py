"""Data-set write operations as they travel on Kafka, schema ``records`` version 1.

One Kafka message is one write operation on one data set: what one ``POST``, ``PUT []``,
``DELETE`` or ``PATCH`` request asked for, after validation at ingest::

    {"schema": "records", "v": 1, "op": "post" | "empty" | "delete" | "patch",
     "op_id": "…", "data_set": "group_type", "received_ms": 1700000000000,
     "records": [[id, id_given, ts_ms | null, {field: value, …}], …]}

Every message of one data set goes to the same partition (``pipeline.topics``), so the
operations on a data set are applied in the order they were acknowledged: an ``empty``
followed by a ``post`` never comes out the other way round. ``op_id`` is unique per request;
the processor remembers applied operations, so a redelivered message changes nothing.

``fields`` holds the record's user fields and ``_start_at``/``_end_at`` (already normalised to
UTC ISO text); ``_id`` and ``_timestamp`` travel in their own positions. ``id_given`` is false
when ingest generated the id, so the processor knows it cannot replace an earlier record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from pipeline.errors import SchemaMismatch

SCHEMA = "records"
VERSION = 1
Scalar = str | int | float | bool | None
OpKind = Literal["post", "empty", "delete", "patch"]
OP_KINDS: tuple[OpKind, ...] = ("post", "empty", "delete", "patch")


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    id_given: bool
    ts_ms: int | None
    fields: dict[str, Scalar]


@dataclass(frozen=True, slots=True)
class WriteOp:
    op: OpKind
    op_id: str
    data_set: str
    received_ms: int
    records: tuple[Record, ...] = ()
    """post: the records; delete: one record with only its id; patch: the id and the fields to set."""


def encode_op(op: WriteOp) -> bytes:
    return orjson.dumps(
        {
            "schema": SCHEMA,
            "v": VERSION,
            "op": op.op,
            "op_id": op.op_id,
            "data_set": op.data_set,
            "received_ms": op.received_ms,
            "records": [[r.id, r.id_given, r.ts_ms, r.fields] for r in op.records],
        }
    )


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def _record(row: Any) -> Record:
    if not isinstance(row, list) or len(row) != 4:
        raise SchemaMismatch("record is not an array of 4 fields")
    rid, given, ts_ms, fields = row
    if not isinstance(rid, str) or not rid or not isinstance(given, bool):
        raise SchemaMismatch("record id is not a non-empty string with a flag")
    if ts_ms is not None and (type(ts_ms) is not int or not -(2**41) < ts_ms < 2**42):
        raise SchemaMismatch("record timestamp is not epoch milliseconds")
    if not isinstance(fields, dict) or not all(isinstance(k, str) and _scalar(v) for k, v in fields.items()):
        raise SchemaMismatch("record fields are not an object of scalars")
    return Record(rid, given, ts_ms, fields)


def decode_op(value: bytes) -> WriteOp:
    """Decode one message; raises SchemaMismatch when it is not a records v1 operation."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise SchemaMismatch(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise SchemaMismatch("not a records operation")
    if type(doc.get("v")) is not int or doc["v"] != VERSION:
        raise SchemaMismatch(f"unsupported records schema version {doc.get('v')!r}")
    op, op_id, data_set, received = (
        doc.get("op"),
        doc.get("op_id"),
        doc.get("data_set"),
        doc.get("received_ms"),
    )
    if op not in OP_KINDS:
        raise SchemaMismatch(f"unknown operation {op!r}")
    if not isinstance(op_id, str) or not op_id or not isinstance(data_set, str) or not data_set:
        raise SchemaMismatch("operation without op_id or data_set")
    if type(received) is not int or received < 0:
        raise SchemaMismatch("received_ms is not a non-negative integer")
    rows = doc.get("records")
    if not isinstance(rows, list):
        raise SchemaMismatch("records is not an array")
    return WriteOp(op, op_id, data_set, received, tuple(_record(r) for r in rows))
