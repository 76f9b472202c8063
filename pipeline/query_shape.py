"""Result rows of a compiled backdrop query in, the read API's ``{"data": [...]}`` out. Pure.

Owns reference §2.4/§2.5 after the store has answered: merging the per-(group, bucket) cells into
the four shapes (raw; group_by; period; group_by+period nested with ``_group_count`` and
``values``, or flat), the collect reducers (``sum``/``count``/``set``/``mean``, plain ``field`` =
``set`` answered twice), gap filling with empty buckets, sorting, limit, the one-time shift of a
relative window (``shift_amount``), and CSV.

Ordering follows the original: grouped results are sorted in Python 2's order (None, then numbers
and booleans by value, then strings), ``sort_by`` is a stable sort on any result key. A flat
result is ordered by time, then group; its rows are the "groups" that ``sort_by`` and ``limit``
act on (as in the original, where each flat row was one Mongo group); it is filled before
sorting and limiting. Gap rows carry ``<field>:<method>: null`` for every collect, but not the
legacy plain ``field`` key (the original filled only ``collect_key``).

Where the original failed or we differ on purpose: ``sum``/``mean`` over any value that is not a
JSON number (strings, null, and booleans, which Python 2 would have summed as 0/1) is
``invalid collect function``; ``mean`` of a group without values is null (the original divided
by zero, a 500); more than ``MAX_BUCKETS`` periods are refused.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from pipeline.errors import BadInput
from pipeline.query import PERIOD_NAMES, Collect, Query, QueryPeriod, Window, add_periods
from pipeline.windows import period_start, period_starts

MAX_BUCKETS = 100_000
"""More periods than this in one answer is refused (an hourly query over a century would
otherwise build millions of rows); the original had no limit."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SHORTEST = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "month": timedelta(days=28),
    "quarter": timedelta(days=89),
    "year": timedelta(days=365),
}


@dataclass
class Partial:
    """The partial aggregates of one collected field over some rows (sign-weighted)."""

    n: int = 0  # values present
    bad: int = 0  # values that are not numbers
    fl: int = 0  # values that are not integers
    isum: int = 0
    fsum: float = 0.0
    set: set[str] = field(default_factory=set)  # JSON texts of values whose rows are live

    def merge(self, other: Partial) -> None:
        self.n += other.n
        self.bad += other.bad
        self.fl += other.fl
        self.isum += other.isum
        self.fsum += other.fsum
        self.set |= other.set


@dataclass
class Cell:
    """One (group, bucket) of the store's answer."""

    group: tuple[str, ...]  # JSON texts of the group_by values
    start: datetime | None
    count: int
    parts: dict[str, Partial]


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def decode(text: str) -> Any:
    return orjson.loads(text)


def order_key(value: Any) -> tuple[int, float | int, str]:
    """Python 2's ordering of mixed values, which the original sorted with."""
    if value is None:
        return (0, 0, "")
    if isinstance(value, bool | int | float):
        return (1, value, "")
    if isinstance(value, str):
        return (2, 0, value)
    return (3, 0, orjson.dumps(value).decode())


def check_span(query: Query, window: Window) -> None:
    if query.period is None or window.start is None or window.end is None:
        return
    if (window.end - window.start) / _SHORTEST[query.period] > MAX_BUCKETS:
        raise BadInput(f"A query can span at most {MAX_BUCKETS} periods")


def shape(
    query: Query, columns: Sequence[str], rows: Iterable[Sequence[Any]], window: Window
) -> dict[str, Any]:
    """The response document for the rows a ``query_sql.build`` statement returned."""
    if query.is_raw:
        return {"data": [raw_record(row) for row in newest_per_id(rows)]}
    check_span(query, window)
    cells = read_cells(query, columns, rows)
    for c in query.collect:
        if c.method in ("sum", "mean") and any(cell.parts[c.field].bad for cell in cells):
            raise BadInput("invalid collect function")
    if query.period is None:
        data = _sort_limit(query, [_group_row(query, group) for group in _by_group(cells)])
    elif not query.group_by:
        data = _series(query, cells, window)
    elif query.flatten:
        data = _sort_limit(query, _flat(query, cells, window))
    else:
        data = _sort_limit(query, [_nested_row(query, group, window) for group in _by_group(cells)])
    return {"data": data}


def newest_per_id(rows: Iterable[Sequence[Any]]) -> list[Sequence[Any]]:
    """Raw rows (``RAW_COLUMNS``) in order, each ``_id`` once: at the place of its highest version
    (two rows of one ``_id`` reach here only when a merge ran between the statement's reads)."""
    rows = list(rows)
    best: dict[str, tuple[int, int]] = {}
    for i, row in enumerate(rows):
        version = int(row[5])
        if row[0] not in best or version > best[row[0]][1]:
            best[row[0]] = (i, version)
    if len(best) == len(rows):
        return rows
    keep = {i for i, _ in best.values()}
    return [row for i, row in enumerate(rows) if i in keep]


def raw_record(row: Sequence[Any]) -> dict[str, Any]:
    """A stored record as the original answered it: user fields, ``_id``, ``_timestamp``
    (seconds: the store keeps no milliseconds), the six period starts, ``_updated_at``."""
    rid, ts, has_ts, updated, doc = row[:5]
    record: dict[str, Any] = decode(doc)
    record["_id"] = str(rid)
    if int(has_ts):
        at = _EPOCH + timedelta(seconds=int(ts))
        record["_timestamp"] = iso(at)
        for p in PERIOD_NAMES:
            record[f"_{p}_start_at"] = iso(period_start(at, p))
    record["_updated_at"] = iso(_EPOCH + timedelta(seconds=int(updated)))
    return record


def read_cells(query: Query, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[Cell]:
    """Typed cells; chdb hands some numbers back as text, so every cell is converted."""
    keys = [i for i, name in enumerate(columns) if name.startswith("key:")]
    bucket = columns.index("bucket") if query.period else -1
    count = columns.index("_count")
    parts = [(i, *_split(name)) for i, name in enumerate(columns) if i > count]
    out = []
    for row in rows:
        cell = Cell(
            tuple(str(row[i]) for i in keys),
            bucket_start(query.period, int(row[bucket])) if query.period else None,
            int(row[count]),
            {c.field: Partial() for c in query.collect},
        )
        for i, fname, part in parts:
            p = cell.parts[fname]
            if part == "set":
                p.set = {v for v in str(row[i]).split("\n") if v}
            elif part == "fsum":
                p.fsum = float(row[i])
            else:
                setattr(p, part, int(row[i]))
        out.append(cell)
    return out


def _split(column: str) -> tuple[str, str]:
    field_name, part = column.rsplit(".", 1)
    return field_name, part


@functools.lru_cache(maxsize=65536)
def bucket_start(period: QueryPeriod, value: int) -> datetime:
    """The start of the bucket ``query_sql.BUCKETS`` numbered ``value``."""
    if period == "hour":
        return _EPOCH + timedelta(seconds=value)
    if period == "week":
        return _EPOCH + timedelta(weeks=value, days=-3)
    return _EPOCH + timedelta(days=value)


@functools.lru_cache(maxsize=65536)
def _limits(start: datetime, period: QueryPeriod) -> tuple[str, str]:
    return iso(start), iso(add_periods(start, period, 1))


def collect_value(partial: Partial, c: Collect) -> Any:
    if c.method == "count":
        return partial.n
    if c.method == "set":
        return sorted({decode(t) for t in partial.set}, key=order_key)
    total = partial.isum if partial.fl == 0 else partial.fsum
    if c.method == "sum":
        return total
    return total / partial.n if partial.n else None


def _collects(query: Query, cells: Sequence[Cell]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in query.collect:
        merged = Partial()
        for cell in cells:
            merged.merge(cell.parts[c.field])
        out[c.key] = collect_value(merged, c)
        if c.legacy:
            out[c.field] = out[c.key]
    return out


def _by_group(cells: Sequence[Cell]) -> list[list[Cell]]:
    groups: dict[tuple[str, ...], list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.group, []).append(cell)
    return [groups[k] for k in sorted(groups, key=lambda g: [order_key(decode(v)) for v in g])]


def _keys(query: Query, group: tuple[str, ...]) -> dict[str, Any]:
    return {name: decode(text) for name, text in zip(query.group_by, group, strict=True)}


def _group_row(query: Query, cells: list[Cell]) -> dict[str, Any]:
    row = _keys(query, cells[0].group)
    row["_count"] = sum(c.count for c in cells)
    row.update(_collects(query, cells))
    return row


def _period_row(query: Query, cell: Cell) -> dict[str, Any]:
    assert query.period is not None and cell.start is not None
    start, end = _limits(cell.start, query.period)
    row: dict[str, Any] = {"_start_at": start, "_end_at": end, "_count": cell.count}
    row.update(_collects(query, [cell]))
    return row


def _gap_row(query: Query, start: datetime) -> dict[str, Any]:
    assert query.period is not None
    first, end = _limits(start, query.period)
    row: dict[str, Any] = {"_start_at": first, "_end_at": end, "_count": 0}
    row.update((c.key, None) for c in query.collect)
    return row


def _buckets(query: Query, window: Window) -> list[datetime] | None:
    """Every bucket from the period of ``start`` to ``end`` rounded up; None without both bounds."""
    if query.period is None or window.start is None or window.end is None:
        return None
    return list(_starts(window.start, window.end, query.period))


@functools.lru_cache(maxsize=64)
def _starts(start: datetime, end: datetime, period: QueryPeriod) -> tuple[datetime, ...]:
    return tuple(period_starts(start, end, period))


def _series(query: Query, cells: Sequence[Cell], window: Window) -> list[dict[str, Any]]:
    """Period rows in time order; with both bounds exactly the window's buckets, gaps filled."""
    by_start = {c.start: c for c in cells}
    buckets = _buckets(query, window)
    if buckets is None:
        return [_period_row(query, by_start[s]) for s in sorted(s for s in by_start if s)]
    return [_period_row(query, by_start[s]) if s in by_start else _gap_row(query, s) for s in buckets]


def _nested_row(query: Query, cells: list[Cell], window: Window) -> dict[str, Any]:
    row = _group_row(query, cells)
    row["_group_count"] = len(cells)
    row["values"] = _series(query, cells, window)
    return row


def _flat(query: Query, cells: Sequence[Cell], window: Window) -> list[dict[str, Any]]:
    """One row per (group, bucket); with both bounds every group and every bucket of the window."""
    by_key = {(c.group, c.start): c for c in cells}
    groups = [g[0].group for g in _by_group(cells)]
    buckets = _buckets(query, window)
    if buckets is None:
        buckets = sorted({c.start for c in cells if c.start})
    out = []
    for start in buckets:
        for group in groups:
            cell = by_key.get((group, start))
            row = _keys(query, group)
            row.update(_period_row(query, cell) if cell else _gap_row(query, start))
            out.append(row)
    return out


def _sort_limit(query: Query, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if query.sort_by is not None:
        name = query.sort_by.field
        rows.sort(key=lambda r: order_key(r.get(name)), reverse=not query.sort_by.ascending)
    return rows[: query.limit] if query.limit else rows


def shift_amount(query: Query, data: Sequence[dict[str, Any]]) -> int:
    """Periods to move a relative window so it starts (forward) or ends (backward) at the first
    bucket with data: nested and period-only results only, never flat ones; 0 when all empty."""
    delta = query.window.delta
    if not delta or query.period is None or query.flatten:
        return 0
    if not query.group_by:
        return _first_nonempty(data, delta < 0)
    if not data:
        return 0
    return min((_first_nonempty(g["values"], delta < 0) for g in data), key=abs)


def _first_nonempty(rows: Sequence[dict[str, Any]], backward: bool) -> int:
    ordered = list(reversed(rows)) if backward else list(rows)
    index = next((i for i, r in enumerate(ordered) if r["_count"] > 0), 0)
    return -index if backward else index


def to_csv(data: Sequence[dict[str, Any]]) -> str:
    """The original's CSV: header = sorted union of keys; lists and objects as JSON text."""
    header = sorted({k for row in data for k in row})
    out = io.StringIO()
    writer = csv.writer(out)
    rows = [row for row in data if row]
    if rows:
        writer.writerow(header)
    for row in rows:
        writer.writerow([_csv_cell(row.get(k, "")) for k in header])
    return out.getvalue()


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return value
