"""``/_status/data-sets``: which data sets have not been updated within ``max_age_expected``. Pure.

A data set is stale when ``now - newest _timestamp >= max_age_expected`` (the original's batch
check), or when it holds no records at all; a null ``max_age_expected`` is never checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pipeline.clock import iso_utc
from pipeline.datasets import DataSetConfig


def newest_sql(database: str) -> str:
    """Newest ``_timestamp`` per data set and epoch; the caller keeps each set's latest epoch."""
    return (
        f"SELECT data_set, epoch, max(toUInt32(ts)) FROM {database}.records "
        "WHERE has_ts = 1 AND sign = 1 GROUP BY data_set, epoch"
    )


def epochs_sql(database: str) -> str:
    return f"SELECT data_set, max(epoch) FROM {database}.data_set_epochs GROUP BY data_set"


def newest_by_set(
    newest_rows: Iterable[tuple[Any, ...]], epoch_rows: Iterable[tuple[Any, ...]]
) -> dict[str, int]:
    """Seconds of the newest record of each data set's current epoch."""
    epochs = {str(ds): int(e) for ds, e in epoch_rows}
    return {str(ds): int(newest) for ds, epoch, newest in newest_rows if int(epoch) == epochs.get(str(ds), 0)}


def status(configs: Iterable[DataSetConfig], newest_s: Mapping[str, int], now_ms: int) -> dict[str, Any]:
    now_s = now_ms // 1000
    stale = []
    for config in sorted(configs, key=lambda c: c.name):
        if config.max_age_expected is None:
            continue
        newest = newest_s.get(config.name)
        if newest is not None and now_s - newest < config.max_age_expected:
            continue
        stale.append(
            {
                "name": config.name,
                "seconds-out-of-date": None if newest is None else now_s - newest - config.max_age_expected,
                "last-updated": None if newest is None else iso_utc(newest * 1000),
                "max-age-expected": config.max_age_expected,
            }
        )
    if not stale:
        return {"status": "ok", "data_sets": None, "message": "All data_sets are in date"}
    return {"status": "not okay", "data_sets": stale, "message": f"{len(stale)} data-sets are out of date"}
