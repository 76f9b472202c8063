"""A backdrop ``Query`` compiled to one SQL statement over ``{db}.records``. Pure.

One dialect for ClickHouse 18.16 and 26.x (reference: infrastructure §E): no CTE, no window
functions, no ``WITH FILL``, no FINAL. User input never becomes SQL text: values are ``%(name)s``
parameters rendered by ``pipeline.sql``, field names reach SQL only through
``SlotMap.slot_expr`` (a slot column, or ``visitParamExtractRaw(doc, '<quoted name>')``).

What the statement reads (``schemas/ddl/0002_records.sql``):

- only the data set's latest epoch, ``epoch = (SELECT max(epoch) …)``; a set never emptied has
  no epoch row and ``max`` over no rows is 0 on both engines;
- records is a CollapsingMergeTree read without FINAL, so every aggregate is weighted by
  ``sign`` and a group exists only when ``sum(sign) > 0``. A cancel row is an exact copy of the
  row it cancels (same ``ts``, ``doc``, slots), so any row-level condition keeps or drops both;
- a grouped query groups by one UInt64, ``cityHash64(slot…) + bucket`` (one key is grouped by
  as it is), reads the key values back with ``any()`` and drops the groups of records that
  lack a grouped field in HAVING: on 18.16 (10M rows, 2 cores, week x one field) 177 ms against
  208 ms for ``cityHash64(bucket, slot)`` with the test in WHERE and 275 ms for a GROUP BY over
  both columns. Adding the bucket (< 2^32) to the fields' hash cannot collide more often than
  the 64-bit hash itself;
- a raw query reads ``records`` several times (the cancelled ids, the newest versions, two
  branches), and each read sees the parts committed when it starts. A write landing between
  them would show an ``_id`` twice (old and new row, its cancel row unseen) or not at all, so
  a raw query is built on a ``Snapshot``: the epoch and highest version read just before
  (``snapshot_sql``), and every read keeps ``version <= `` that. The sink writes a batch's rows
  of one month in one block, so all rows up to a seen version are visible together. A merge
  can still collapse a cancelled pair between two reads, which shows the newer row of that
  ``_id`` beside the older one: ``query_shape`` keeps the highest ``version`` of an ``_id``;
- a raw query keeps the ``sign = 1`` rows that nothing cancelled: an ``_id`` without a cancel
  row in range keeps its row, an ``_id`` with one keeps only its highest ``version`` (every
  later write of an ``_id`` first cancels its live row, so the newest row is the live one when
  it is a +1 row). The two cases are a UNION ALL, the second behind a PREWHERE on the
  (usually few) cancelled ids: 332 ms against 564 ms for one OR-ed WHERE on the same 10M rows.

The result columns are named in ``Compiled.columns``; ``pipeline.query_shape`` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.query import Method, Query, Window
from pipeline.record_rows import SlotMap, json_text
from pipeline.sql import identifier

FIRST_TS = datetime(1970, 1, 1, tzinfo=UTC)
LAST_TS = datetime(2105, 12, 31, 23, 59, 59, tzinfo=UTC)
"""The range a DateTime column holds on 18.16 (records outside it are refused at ingest)."""

BUCKETS = {
    "hour": "toUInt32(toStartOfHour(ts))",
    "day": "toUInt32(toDate(ts))",
    "week": "intDiv(toUInt32(ts) + 259200, 604800)",
    "month": "toUInt32(toStartOfMonth(ts))",
    "quarter": "toUInt32(toStartOfQuarter(ts))",
    "year": "toUInt32(toStartOfYear(ts))",
}
"""The bucket column: hour → epoch seconds, week → weeks since Monday 1969-12-29 (toMonday
wraps or clamps below 1970-01-05 depending on the engine), the others → days since 1970-01-01."""

RAW_COLUMNS = ("id", "ts", "has_ts", "updated", "doc", "version")
_NEEDS: dict[Method, tuple[str, ...]] = {
    "count": ("n",),
    "sum": ("n", "bad", "fl", "isum", "fsum"),
    "mean": ("n", "bad", "fl", "isum", "fsum"),
    "set": ("set",),
}


@dataclass(frozen=True, slots=True)
class Compiled:
    sql: str
    params: dict[str, Any]
    columns: tuple[str, ...]
    """Names of the result columns, in order: ``RAW_COLUMNS`` for a raw query; else ``bucket``
    (period queries), ``key:<field>`` per group_by field (JSON text), ``_count``, then
    ``<field>.<part>`` per collected field (see ``collect_parts``)."""


@dataclass
class _Params:
    values: dict[str, Any] = field(default_factory=dict)

    def add(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"%({name})s"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A data set's latest epoch and highest record version at one moment (``snapshot_sql``)."""

    epoch: int
    version: int


def snapshot_sql(data_set: str, database: str) -> tuple[str, dict[str, Any]]:
    """One row: the data set's latest epoch and its records' highest version (0 when none)."""
    db = identifier(database)
    return (
        "SELECT max(e), max(v) FROM (\n"
        f"SELECT max(epoch) AS e, toUInt64(0) AS v FROM {db}.data_set_epochs WHERE data_set = %(ds)s\n"
        "UNION ALL\n"
        f"SELECT toUInt64(0) AS e, max(version) AS v FROM {db}.records WHERE data_set = %(ds)s\n"
        ")",
        {"ds": data_set},
    )


def build(
    query: Query,
    data_set: str,
    slots: SlotMap,
    database: str,
    window: Window | None = None,
    rollup: bool = False,
    snapshot: Snapshot | None = None,
) -> Compiled:
    """The statement for ``query`` over ``window`` (default: the query's own window); from
    ``record_days`` when ``rollup`` (the caller has checked ``rollup_slots`` and that those
    slots never hold a number). A raw query reads as of ``snapshot`` when given (the caller
    should give one: see the module's notes)."""
    db = identifier(database)
    params = _Params({"ds": data_set})
    src = _ROLLUP if rollup else _RECORDS
    where = _where(query, window or query.window, slots, db, params, src, snapshot if query.is_raw else None)
    if query.is_raw:
        return _raw(query, slots, db, where, params)
    return _grouped(query, slots, db, where, params, src)


def rollup_slots(query: Query, window: Window, slots: SlotMap) -> tuple[int, ...] | None:
    """Whether ``record_days`` can answer ``query`` over ``window``: None when it cannot, else
    the slots it groups or filters on, which must hold no number in the data set (a numeric
    value is summed there, not kept). It can when the query is grouped by whole days or longer
    over a window of whole days (exclusive end), groups and filters on slot fields only and
    collects sums, counts and means of slot fields."""
    if query.is_raw or query.period == "hour":
        return None
    if window.inclusive and window.end is not None:
        return None
    for bound in (window.start, window.end):
        if bound is not None and (bound.hour, bound.minute, bound.second, bound.microsecond) != (0, 0, 0, 0):
            return None
    names = [*query.group_by, *(f.field for f in query.filter_by), *(p.field for p in query.filter_by_prefix)]
    dims = [slots.slots.get(name) for name in names]
    measures = [slots.slots.get(c.field) for c in query.collect if c.method != "set"]
    if any(c.method == "set" for c in query.collect) or None in dims or None in measures:
        return None
    return tuple(sorted({d for d in dims if d is not None}))


def numeric_check(data_set: str, dims: tuple[int, ...], database: str) -> tuple[str, dict[str, Any]]:
    """How many ``record_days`` rows hold a number in any of ``dims`` (0: the rollup may answer)."""
    db = identifier(database)
    test = " OR ".join(f"d{d} = '#'" for d in dims)
    return (
        f"SELECT countIf({test}) FROM {db}.record_days WHERE data_set = %(ds)s "
        f"AND epoch = (SELECT max(epoch) FROM {db}.data_set_epochs WHERE data_set = %(ds)s)",
        {"ds": data_set},
    )


@dataclass(frozen=True, slots=True)
class _Source:
    """Where a grouped query reads: the records, or their day rollup."""

    table: str
    time: str
    weight: str
    rollup: bool

    def field(self, slots: SlotMap, name: str) -> str:
        return f"d{slots.slots[name]}" if self.rollup else slots.slot_expr(name)

    def bucket(self, period: str) -> str:
        return BUCKETS[period].replace("ts)", f"{self.time})")


_RECORDS = _Source("records", "ts", "sign", rollup=False)
_ROLLUP = _Source("record_days", "day", "rows", rollup=True)


def collect_parts(query: Query) -> dict[str, tuple[str, ...]]:
    """Per collected field, the partial aggregates its methods need, in column order."""
    out: dict[str, list[str]] = {}
    for c in query.collect:
        parts = out.setdefault(c.field, [])
        parts.extend(p for p in _NEEDS[c.method] if p not in parts)
    order = ("n", "bad", "fl", "isum", "fsum", "set")
    return {f: tuple(p for p in order if p in parts) for f, parts in out.items()}


def _where(
    query: Query,
    window: Window,
    slots: SlotMap,
    db: str,
    params: _Params,
    src: _Source = _RECORDS,
    snapshot: Snapshot | None = None,
) -> list[str]:
    if snapshot is None:
        out = [
            "data_set = %(ds)s",
            f"epoch = (SELECT max(epoch) FROM {db}.data_set_epochs WHERE data_set = %(ds)s)",
        ]
    else:
        out = [
            "data_set = %(ds)s",
            f"epoch = {params.add(snapshot.epoch)}",
            f"version <= {params.add(snapshot.version)}",
        ]
    if window.start is not None or window.end is not None or query.period is not None:
        out.append("has_ts = 1")
    if window.start is not None:
        out.append(f"{src.time} >= {params.add(max(window.start, FIRST_TS))}")
    if window.end is not None:
        if window.end > LAST_TS:
            out.append(f"{src.time} <= {params.add(LAST_TS)}")
        elif window.end < FIRST_TS:
            out.append("0")
        else:
            out.append(f"{src.time} {'<=' if window.inclusive else '<'} {params.add(window.end)}")
    for f in query.filter_by:
        if f.field == "_id":
            out.append(f"id = {params.add(f.value)}" if isinstance(f.value, str) else "0")
        else:
            out.append(f"{src.field(slots, f.field)} = {params.add(json_text(f.value))}")
    for p in query.filter_by_prefix:
        if p.field == "_id":
            out.append(f"startsWith(id, {params.add(p.prefix)})")
        else:
            # JSON escapes character by character, so the escaped prefix without its closing
            # quote is a prefix of the escaped value exactly when the prefix is one of the value
            out.append(f"startsWith({src.field(slots, p.field)}, {params.add(json_text(p.prefix)[:-1])})")
    return out


def _raw(query: Query, slots: SlotMap, db: str, where: list[str], params: _Params) -> Compiled:
    w = " AND ".join(where)
    cancelled = f"SELECT id FROM {db}.records WHERE {w} AND sign = -1"
    newest = f"SELECT id, max(version) FROM {db}.records WHERE {w} AND id IN ({cancelled}) GROUP BY id"
    order = _raw_order(query, slots)
    cols = ", ".join(
        ["id", "toUInt32(ts) AS t", "has_ts", "toUInt32(updated) AS u", "doc", "version"]
        + [f"{expr} AS o{i}" for i, (expr, _) in enumerate(order)]
    )
    sql = (
        "SELECT id, t, has_ts, u, doc, version\n"
        "FROM (\n"
        f"SELECT {cols}\n"
        f"FROM {db}.records\n"
        f"WHERE {w} AND sign = 1 AND id NOT IN ({cancelled})\n"
        "UNION ALL\n"
        f"SELECT {cols}\n"
        f"FROM {db}.records\n"
        f"PREWHERE id IN ({cancelled})\n"
        f"WHERE {w} AND sign = 1 AND (id, version) IN ({newest})\n"
        ") AS r\n"
        f"ORDER BY {', '.join(f'o{i}{d}' for i, (_, d) in enumerate(order))}"
    )
    if query.limit:
        sql += f"\nLIMIT {params.add(query.limit)}"
    return Compiled(sql, params.values, RAW_COLUMNS)


def _raw_order(query: Query, slots: SlotMap) -> list[tuple[str, str]]:
    """Mongo's order (missing/null, numbers, strings, booleans), ties by ``(ts, id)``: pairs
    of (expression, direction)."""
    tie = [("toUInt32(ts)", ""), ("id", "")]
    if query.sort_by is None:
        return tie
    d = "" if query.sort_by.ascending else " DESC"
    name = query.sort_by.field
    if name == "_id":
        return [("id", d), tie[0]]
    if name == "_timestamp":
        return [("has_ts", d), ("toUInt32(ts)", d), tie[1]]
    if name == "_updated_at":
        return [("toUInt32(updated)", d), *tie]
    e = slots.slot_expr(name)
    rank = f"multiIf({e} IN ('', 'null'), 0, isNotNull(toFloat64OrNull({e})), 1, startsWith({e}, '\"'), 2, 3)"
    return [(rank, d), (f"toFloat64OrNull({e})", d), (f"if({e} = 'null', '', {e})", d), *tie]


def _grouped(
    query: Query, slots: SlotMap, db: str, where: list[str], params: _Params, src: _Source
) -> Compiled:
    keys = ([src.bucket(query.period)] if query.period else []) + [
        src.field(slots, g) for g in query.group_by
    ]
    names = (["bucket"] if query.period else []) + [f"key:{g}" for g in query.group_by]
    if len(keys) == 1:
        select = [f"{keys[0]} AS k0"]
        group = "k0"
    else:
        select = [f"any({k}) AS k{i}" for i, k in enumerate(keys)]
        fields = f"cityHash64({', '.join(keys[1:] if query.period else keys)})"
        group = f"{fields} + {keys[0]}" if query.period else fields
    select.append(f"sum({src.weight}) AS c_count")
    # records without a grouped field fall into a group of their own, dropped here: one test per
    # group instead of one per row
    first_key = 1 if query.period else 0
    having = ["c_count > 0", *(f"k{i} NOT IN ('', 'null')" for i in range(first_key, len(keys)))]
    columns = [*names, "_count"]
    aliases = [f"k{i}" for i in range(len(keys))] + ["c_count"]
    for i, (name, parts) in enumerate(collect_parts(query).items()):
        for part in parts:
            if src.rollup:
                select.append(f"sum({part}{slots.slots[name]}) AS c{i}_{part}")
            else:
                select.extend(_collect_exprs(part, slots.slot_expr(name), f"c{i}"))
            columns.append(f"{name}.{part}")
            aliases.append(f"c{i}_{part}")
    sql = (
        f"SELECT {', '.join(select)}\n"
        f"FROM {db}.{src.table}\n"
        f"WHERE {' AND '.join(where)}\n"
        f"GROUP BY {group}\n"
        f"HAVING {' AND '.join(having)}"
    )
    if len(select) > len(aliases):  # a set's helper columns stay inside
        sql = f"SELECT {', '.join(aliases)}\nFROM (\n{sql}\n) AS g"
    return Compiled(sql, params.values, tuple(columns))


def _collect_exprs(part: str, e: str, alias: str) -> list[str]:
    """SQL for one partial aggregate of the values ``e`` (JSON text, '' when absent)."""
    if part == "n":
        return [f"sumIf(sign, {e} != '') AS {alias}_n"]
    if part == "bad":
        return [f"sumIf(sign, {e} != '' AND isNull(toFloat64OrNull({e}))) AS {alias}_bad"]
    if part == "fl":
        # not an integer literal: compact JSON text of an integer is '-'? digits, so anything
        # that starts below '-' ('"'), at ':' or above (true, false, null) or holds '.', 'e' or
        # 'E' is not one; three memchr scans cost a third of the regular expression per row
        return [
            f"sumIf(sign, {e} != '' AND ({e} < '-' OR {e} >= ':' OR position({e}, '.') > 0 "
            f"OR position({e}, 'e') > 0 OR position({e}, 'E') > 0)) AS {alias}_fl"
        ]
    if part == "isum":
        return [f"sum(sign * toInt64OrZero({e})) AS {alias}_isum"]
    if part == "fsum":
        return [f"sum(sign * toFloat64OrZero({e})) AS {alias}_fsum"]
    # set: the distinct values whose rows' signs sum above 0 (a cancelled value must vanish);
    # 18.16's sumMap takes no String keys, so the values are summed under their hashes (both
    # engines also drop keys that sum to 0; the n > 0 filter does not rely on it). Values are
    # JSON text, which never holds a raw newline, so '\n' joins them into one String.
    return [
        f"arrayStringConcat(arrayFilter(v -> v != '' AND has(arrayFilter((h, n) -> n > 0, "
        f"tupleElement({alias}_m, 1), tupleElement({alias}_m, 2)), cityHash64(v)), {alias}_u), '\\n') "
        f"AS {alias}_set",
        f"groupUniqArray({e}) AS {alias}_u",
        f"sumMap([cityHash64({e})], [toInt64(sign)]) AS {alias}_m",
    ]
