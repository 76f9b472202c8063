"""Live journey figures: query objects, SQL builders and response shapers. Pure.

"Users on the service now" is the number of distinct visitors whose events arrived in the last
``WINDOW_S`` seconds, read from the 10-second visitor buckets (``visitors_live``); per-minute
counts come from ``journey_minute``. Neither reads raw events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.clock import iso_utc, ms_to_datetime
from pipeline.errors import BadInput
from pipeline.sql import identifier
from pipeline.windows import live_bucket_range_s, period_starts

WINDOW_S = 300
BUCKET_S = 10  # must match the bucket in schemas/ddl/0001_journey.sql
MAX_RANGE = timedelta(days=7)
DEFAULT_RANGE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class UsersNowQuery:
    service: str | None
    now_ms: int


@dataclass(frozen=True, slots=True)
class MinuteCountsQuery:
    service: str
    start: datetime
    end: datetime


def users_now_sql(q: UsersNowQuery, database: str) -> tuple[str, dict[str, Any]]:
    first, last = live_bucket_range_s(q.now_ms, WINDOW_S, BUCKET_S)
    params: dict[str, Any] = {"first": ms_to_datetime(first * 1000), "last": ms_to_datetime(last * 1000)}
    where = "bucket >= %(first)s AND bucket <= %(last)s"
    if q.service is not None:
        where = "service = %(service)s AND " + where
        params["service"] = q.service
    return f"SELECT uniqExactMerge(visitors) FROM {identifier(database)}.visitors_live WHERE {where}", params


def shape_users_now(q: UsersNowQuery, rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    count = int(rows[0][0]) if rows and rows[0][0] is not None else 0
    return {"service": q.service, "users_now": count, "window_seconds": WINDOW_S, "as_of": iso_utc(q.now_ms)}


def _parse_instant(name: str, value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(f"{name} is not a valid datetime") from None
    if parsed.tzinfo is None:
        raise BadInput(f"{name} is not a valid datetime: it needs a time zone (Z or +hh:mm)")
    return parsed.astimezone(UTC)


def minute_counts_query(
    service: str, start_at: str | None, end_at: str | None, now_ms: int
) -> MinuteCountsQuery:
    end = _parse_instant("end_at", end_at) or ms_to_datetime(now_ms)
    start = _parse_instant("start_at", start_at) or end - DEFAULT_RANGE
    if start >= end:
        raise BadInput("start_at must be before end_at")
    if end - start > MAX_RANGE:
        raise BadInput("the range between start_at and end_at may be at most 7 days")
    return MinuteCountsQuery(service, start, end)


def minute_counts_sql(q: MinuteCountsQuery, database: str) -> tuple[str, dict[str, Any]]:
    sql = (
        "SELECT t, action, label, kind, sum(events) AS n "
        f"FROM {identifier(database)}.journey_minute "
        "WHERE service = %(service)s AND t >= %(start)s AND t < %(end)s "
        "GROUP BY t, action, label, kind ORDER BY t, action, label, kind"
    )
    start = q.start.replace(second=0, microsecond=0)
    return sql, {"service": q.service, "start": start, "end": q.end}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def shape_minute_counts(q: MinuteCountsQuery, rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Breakdown rows as stored, plus a gap-filled total per minute of the range."""
    totals: dict[datetime, int] = {m: 0 for m in period_starts(q.start, q.end, "minute")}
    data = []
    for minute, action, label, kind, n in rows:
        m = _utc(minute)
        totals[m] = totals.get(m, 0) + int(n)
        data.append(
            {"_start_at": m.isoformat(), "action": action, "label": label, "kind": kind, "count": int(n)}
        )
    return {
        "service": q.service,
        "start_at": q.start.isoformat(),
        "end_at": q.end.isoformat(),
        "totals": [{"_start_at": m.isoformat(), "count": c} for m, c in sorted(totals.items())],
        "data": data,
    }
