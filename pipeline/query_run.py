"""Running a backdrop query: compile, run on the store, shape; once more when a relative window
must shift (reference §2.4). Pure: the store's ``query`` is injected as ``run``.

A grouped query over whole days reads the day rollup when its fields allow (one small
extra statement checks, once per query, that the fields it groups and filters on hold no
number). The shift needs the first answer (which bucket is the first with data) before the second
statement can be built, so a nested or period-only ``duration`` query whose first bucket is
empty costs two statements; every other query costs one, plus, for a raw query, the small
statement that fixes its snapshot (``query_sql.snapshot_sql``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipeline.query import Query, Window, shift_window
from pipeline.query_shape import check_span, shape, shift_amount, to_csv
from pipeline.query_sql import Snapshot, build, numeric_check, rollup_slots, snapshot_sql
from pipeline.record_rows import SlotMap

Run = Callable[[str, Mapping[str, Any]], list[tuple[Any, ...]]]

__all__ = ["Run", "execute", "to_csv"]


def execute(
    query: Query, data_set: str, slots: SlotMap, database: str, run: Run, rollup: bool = True
) -> dict[str, Any]:
    """The response document (``{"data": [...]}``) of ``query`` on ``data_set``. With ``rollup``
    (the default) a grouped query whose fields allow it reads the day rollup instead of the
    records (``query_sql.rollup_slots``); the answer is the same either way."""
    numbers_in_dims: dict[tuple[int, ...], bool] = {}

    def use_rollup(window: Window) -> bool:
        dims = rollup_slots(query, window, slots) if rollup else None
        if dims is None:
            return False
        if dims and dims not in numbers_in_dims:
            sql, params = numeric_check(data_set, dims, database)
            numbers_in_dims[dims] = int(run(sql, params)[0][0]) > 0
        return not numbers_in_dims.get(dims, False)

    snapshot = None
    if query.is_raw:
        ((epoch, version),) = run(*snapshot_sql(data_set, database))
        snapshot = Snapshot(int(epoch or 0), int(version or 0))
    result = _once(query, query.window, data_set, slots, database, run, use_rollup, snapshot)
    amount = shift_amount(query, result["data"])
    if amount and query.period is not None:
        window = shift_window(query.window, query.period, amount)
        result = _once(query, window, data_set, slots, database, run, use_rollup, snapshot)
    return result


def _once(
    query: Query,
    window: Window,
    data_set: str,
    slots: SlotMap,
    database: str,
    run: Run,
    use_rollup: Callable[[Window], bool],
    snapshot: Snapshot | None,
) -> dict[str, Any]:
    check_span(query, window)
    compiled = build(query, data_set, slots, database, window, rollup=use_rollup(window), snapshot=snapshot)
    return shape(query, compiled.columns, run(compiled.sql, compiled.params), window)
