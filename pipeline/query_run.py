"""Running a backdrop query: compile, run on the store, shape; once more when a relative window
must shift (reference §2.4). Pure: the store's ``query`` is injected as ``run``.

The shift needs the first answer (which bucket is the first with data) before the second
statement can be built, so a nested or period-only ``duration`` query whose first bucket is
empty costs two statements; every other query costs one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipeline.query import Query, Window, shift_window
from pipeline.query_shape import check_span, shape, shift_amount, to_csv
from pipeline.query_sql import build
from pipeline.record_rows import SlotMap

Run = Callable[[str, Mapping[str, Any]], list[tuple[Any, ...]]]

__all__ = ["Run", "execute", "to_csv"]


def execute(query: Query, data_set: str, slots: SlotMap, database: str, run: Run) -> dict[str, Any]:
    """The response document (``{"data": [...]}``) of ``query`` on ``data_set``."""
    result = _once(query, query.window, data_set, slots, database, run)
    amount = shift_amount(query, result["data"])
    if amount and query.period is not None:
        result = _once(
            query, shift_window(query.window, query.period, amount), data_set, slots, database, run
        )
    return result


def _once(
    query: Query, window: Window, data_set: str, slots: SlotMap, database: str, run: Run
) -> dict[str, Any]:
    check_span(query, window)
    compiled = build(query, data_set, slots, database, window)
    return shape(query, compiled.columns, run(compiled.sql, compiled.params), window)
