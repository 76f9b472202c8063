"""Backdrop read-API query strings: parameters in, a typed ``Query`` (with its time window) out. Pure.

Owns reference §2.2 (parameters), §2.3 (validation: the exact messages, validators run in the
original's order and only the first failing one is reported) and the window arithmetic of §2.4
(``duration`` counted forward from ``start_at`` or backward from ``end_at`` / now, and the
one-time shift of a relative window). Compiling (``pipeline.query_sql``), running and shaping
(``pipeline.query_run``, ``pipeline.query_shape``) take the ``Query`` from here.

Parameters arrive as repeated ``(name, value)`` pairs; a single-valued parameter given twice
uses its first value, as werkzeug's ``MultiDict`` did.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Literal, NamedTuple

from pipeline.errors import BadInput
from pipeline.windows import period_start

QueryPeriod = Literal["hour", "day", "week", "month", "quarter", "year"]
PERIOD_NAMES: tuple[QueryPeriod, ...] = ("hour", "day", "week", "month", "quarter", "year")
Method = Literal["sum", "count", "set", "mean"]
METHODS: tuple[Method, ...] = ("sum", "count", "set", "mean")
ALLOWED = frozenset({"start_at", "end_at", "duration", "period", "inclusive", "group_by", "sort_by"}) | {
    *("limit", "filter_by", "filter_by_prefix", "collect", "flatten", "format")
}
VALID_KEY = re.compile(r"[a-z_][a-z0-9_]+")
_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(Z|([+-])([0-9]{2}):?([0-9]{2}))"
)
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")
_SORT = re.compile(r".+:(ascending|descending)", re.DOTALL)
_MONTHS = {"month": 1, "quarter": 3, "year": 12}
_FIXED = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}


class Filter(NamedTuple):
    field: str
    value: str | bool


class Prefix(NamedTuple):
    field: str
    prefix: str


class SortBy(NamedTuple):
    field: str
    ascending: bool


class Collect(NamedTuple):
    field: str
    method: Method
    legacy: bool
    """A plain ``collect=field``: answered as ``field:set`` and again as ``field``."""

    @property
    def key(self) -> str:
        return f"{self.field}:{self.method}"


@dataclass(frozen=True, slots=True)
class Window:
    """The records' time range: ``start <= _timestamp < end`` (``<= end`` when inclusive).

    Both bounds or neither. ``delta`` is the signed ``duration`` of a relative window (+N counted
    forward from ``start_at``, -N backward from ``end_at`` or now), 0 for an absolute one."""

    start: datetime | None = None
    end: datetime | None = None
    inclusive: bool = False
    delta: int = 0


@dataclass(frozen=True, slots=True)
class Query:
    start_at: datetime | None = None
    end_at: datetime | None = None
    inclusive: bool = False
    duration: int | None = None
    period: QueryPeriod | None = None
    group_by: tuple[str, ...] = ()
    filter_by: tuple[Filter, ...] = ()
    filter_by_prefix: tuple[Prefix, ...] = ()
    sort_by: SortBy | None = None
    limit: int | None = None
    collect: tuple[Collect, ...] = ()
    flatten: bool = False
    format: Literal["json", "csv"] = "json"
    window: Window = field(default_factory=Window)

    @property
    def is_raw(self) -> bool:
        return not self.group_by and self.period is None


# -- parsing ---------------------------------------------------------------------------------


def parse_query(params: Sequence[tuple[str, str]], raw_queries_allowed: bool, now: datetime) -> Query:
    """The query the parameters ask for, or BadInput with the first failing validator's message."""
    args = _Args(params)
    for check in _CHECKS + ([] if raw_queries_allowed else _RAW_CHECKS):
        message = check(args)
        if message:
            raise BadInput(message)
    start_at = parse_datetime(args.first("start_at")).astimezone(UTC) if args.has("start_at") else None
    end_at = parse_datetime(args.first("end_at")).astimezone(UTC) if args.has("end_at") else None
    period = next((p for p in PERIOD_NAMES if p == args.first("period")), None)
    duration = int(args.first("duration")) if args.has("duration") else None
    limit = int(args.first("limit")) if args.has("limit") else None
    # the direction is split off the right, so a collect key sorts: ``amount:sum:descending``
    sort = args.first("sort_by").rsplit(":", 1) if args.has("sort_by") else None
    inclusive = args.first("inclusive").lower() == "true"
    return Query(
        start_at=start_at,
        end_at=end_at,
        inclusive=inclusive,
        duration=duration,
        period=period,
        group_by=tuple(args.all("group_by")),
        filter_by=tuple(_filter(v) for v in args.all("filter_by")),
        filter_by_prefix=tuple(Prefix(*v.split(":", 1)) for v in args.all("filter_by_prefix")),
        sort_by=SortBy(sort[0], sort[1] == "ascending") if sort else None,
        limit=limit or None,
        collect=tuple(_collect(v) for v in args.all("collect")),
        flatten=args.first("flatten") == "true",
        format="csv" if args.first("format") == "csv" else "json",
        window=resolve_window(start_at, end_at, inclusive, duration, period, now),
    )


def parse_datetime(value: str) -> datetime:
    """``YYYY-MM-DDTHH:MM:SS`` with ``Z``, ``±HH:MM`` or ``±HHMM``, kept in its own offset."""
    m = _DATETIME.fullmatch(value)
    if not m:
        raise ValueError(f"not a datetime: {value!r}")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    tz = UTC
    if m.group(7) != "Z":
        hours, minutes = int(m.group(9)), int(m.group(10))
        if hours > 23 or minutes > 59:
            raise ValueError(f"bad offset in {value!r}")
        offset = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-offset if m.group(8) == "-" else offset)
    return datetime(y, mo, d, h, mi, s, tzinfo=tz)


def _filter(value: str) -> Filter:
    name, text = value.split(":", 1)
    return Filter(name, {"true": True, "false": False}.get(text, text))


def _collect(value: str) -> Collect:
    if ":" not in value:
        return Collect(value, "set", True)
    name, method = value.split(":", 1)
    return Collect(name, next(m for m in METHODS if m == method), False)


# -- windows ---------------------------------------------------------------------------------


def add_periods(value: datetime, period: QueryPeriod, n: int) -> datetime:
    """``value`` moved by ``n`` whole periods (``value`` is a period start, so days never overflow)."""
    if period in _FIXED:
        return value + _FIXED[period] * n
    total = value.month - 1 + _MONTHS[period] * n
    return value.replace(year=value.year + total // 12, month=total % 12 + 1)


def resolve_window(
    start_at: datetime | None,
    end_at: datetime | None,
    inclusive: bool,
    duration: int | None,
    period: QueryPeriod | None,
    now: datetime,
) -> Window:
    """§2.4: with ``duration``, [period of start_at, +N periods) or [period of end_at (or now) - N,
    that period's start); the current, partial period of ``now`` is never included."""
    if duration is None or period is None:
        return Window(start_at, end_at, inclusive)
    if start_at is not None:
        first = period_start(start_at, period)
        return Window(first, add_periods(first, period, duration), inclusive, duration)
    last = period_start(end_at if end_at is not None else now, period)
    return Window(add_periods(last, period, -duration), last, inclusive, -duration)


def shift_window(window: Window, period: QueryPeriod, n: int) -> Window:
    """The same window moved by ``n`` periods; a shifted window is never shifted again."""
    if window.start is None or window.end is None:
        return window
    return Window(add_periods(window.start, period, n), add_periods(window.end, period, n), window.inclusive)


# -- validation (reference §2.3), in the original's order ------------------------------------


class _Args:
    """The parameters by name, every value kept in order."""

    def __init__(self, params: Sequence[tuple[str, str]]) -> None:
        self.values: dict[str, list[str]] = {}
        for name, value in params:
            self.values.setdefault(name, []).append(value)

    def has(self, name: str) -> bool:
        return name in self.values

    def first(self, name: str) -> str:
        return self.values.get(name, [""])[0]

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])


Check = Callable[[_Args], str | None]


def key_is_valid(key: str) -> bool:
    return key.isascii() and bool(VALID_KEY.fullmatch(key.lower()))


def _is_datetime(value: str) -> bool:
    try:
        parse_datetime(value)
    except ValueError:
        return False
    return True


def _is_int(value: str) -> bool:
    return bool(_INTEGER.fullmatch(value))


def _parameters(a: _Args) -> str | None:
    return "An unrecognised parameter was provided" if set(a.values) - ALLOWED else None


def _period_query(a: _Args) -> str | None:
    if not a.has("period"):
        return None
    if not a.has("duration") and not (a.has("start_at") and a.has("end_at")):
        return "Either 'duration' or both 'start_at' and 'end_at' are required for a period query"
    if a.has("limit") and not a.has("group_by"):
        return "A period query can only be limited if it is grouped - please add 'group_by'"
    return None


def _datetime(name: str) -> Check:
    def check(a: _Args) -> str | None:
        bad = a.has(name) and not _is_datetime(a.first(name))
        return f"{name} is not a valid datetime" if bad else None

    return check


def _filter_value(value: str) -> str | None:
    if ":" not in value:
        return "filter_by must be a field name and value separated by a colon (:) eg. authority:Westminster"
    if not key_is_valid(value.split(":", 1)[0]):
        return "Cannot filter by an invalid field name"
    if value.startswith("$"):
        return "filter_by must not start with a $"
    return None


def _filters(a: _Args) -> str | None:
    if a.has("filter_by") and a.has("filter_by_prefix"):
        return "Cannot use both filter_by and filter_by_prefix in the same query"
    for value in a.all("filter_by") + a.all("filter_by_prefix"):
        message = _filter_value(value)
        if message:
            return message
    return None


def _period_name(a: _Args) -> str | None:
    if a.has("period") and a.first("period") not in PERIOD_NAMES:
        return f"'period' must be one of {list(PERIOD_NAMES)}"
    return None


def _sort_by(a: _Args) -> str | None:
    if not a.has("sort_by"):
        return None
    value = a.first("sort_by")
    if a.has("period") and not a.has("group_by"):
        return "Cannot sort for period queries without group_by. Period queries are always sorted by time."
    if ":" not in value:
        return (
            "sort_by must be a field name and sort direction separated by a colon (:) eg. authority:ascending"
        )
    if not _SORT.fullmatch(value):
        return "Unrecognised sort direction. Supported directions include: ascending, descending"
    if not key_is_valid(value.split(":", 1)[0]):
        return "Cannot sort by an invalid field name"
    return None


def _group_by(a: _Args) -> str | None:
    for value in a.all("group_by"):
        if not key_is_valid(value):
            return "Cannot group by an invalid field name"
        if value.startswith("_"):
            return "Cannot group by internal fields, internal fields start with an underscore"
    return None


def _positive(name: str) -> Check:
    def check(a: _Args) -> str | None:
        bad = a.has(name) and not (_is_int(a.first(name)) and int(a.first(name)) >= 0)
        return f"{name} must be a positive integer" if bad else None

    return check


def _depends(name: str, on: list[str]) -> Check:
    def check(a: _Args) -> str | None:
        bad = a.has(name) and not any(a.has(p) for p in on)
        return f"{name} can be used only with either {on}" if bad else None

    return check


def _relative_time(a: _Args) -> str | None:
    start, end, duration = a.has("start_at"), a.has("end_at"), a.has("duration")
    if start and end and duration:
        return (
            "Absolute and relative time cannot be requested at the same time - either ask for "
            "'start_at' and 'end_at', or ask for 'start_at'/'end_at' with 'duration'"
        )
    if start and not (end or duration):
        return "Use of 'start_at' requires 'end_at' or 'duration'"
    if end and not (start or duration):
        return "Use of 'end_at' requires 'start_at' or 'duration'"
    if duration:
        value = a.first("duration")
        if _is_int(value) and int(value) == 0:
            return "'duration' must not be zero"
        if not a.has("period"):
            return (
                "If 'duration' is requested (for relative time), 'period' is required - "
                "please add a period (like 'day', 'month' etc)"
            )
        if not _is_int(value):
            return "'duration' is not a valid Integer"
    return None


def _collects(a: _Args) -> str | None:
    for value in a.all("collect"):
        name = value
        if ":" in value:
            name, method = value.split(":", 1)
            if method not in METHODS:
                return "Unknown collection method"
        if not key_is_valid(name):
            return "Cannot collect an invalid field name"
        if name.startswith("_"):
            return "Cannot collect internal fields, internal fields start with an underscore"
        if name in a.all("group_by"):
            return "Cannot collect by a field that is used for group_by"
    return None


def _flatten(a: _Args) -> str | None:
    bad = a.has("flatten") and a.first("flatten") not in ("true", "false")
    return "flatten must be either 'true' or 'false'" if bad else None


_CHECKS: list[Check] = [
    _parameters,
    _period_query,
    _datetime("start_at"),
    _datetime("end_at"),
    _filters,
    _period_name,
    _sort_by,
    _group_by,
    _positive("limit"),
    _positive("duration"),
    _depends("collect", ["group_by", "period"]),
    _relative_time,
    _collects,
    _flatten,
    _depends("inclusive", ["start_at", "end_at"]),
]


# -- the extra rules for data sets that do not allow raw queries -----------------------------


def _given(a: _Args, name: str) -> datetime | None:
    value = a.first(name)
    return parse_datetime(value) if value and _is_datetime(value) else None


def _raw(a: _Args) -> str | None:
    is_raw = not a.has("group_by") and not a.has("period")
    return "querying for raw data is not allowed" if is_raw else None


def _time_span(a: _Args) -> str | None:
    start, end = _given(a, "start_at"), _given(a, "end_at")
    if start and end and a.first("period") != "hour" and (end - start).days < 7:
        return "The minimum time span for a query is 7 days"
    return None


def _date_rule(
    name: str, period: Callable[[str], bool], ok: Callable[[datetime], bool], message: str
) -> Check:
    def check(a: _Args) -> str | None:
        value = _given(a, name)
        return message if value is not None and period(a.first("period")) and not ok(value) else None

    return check


def _midnight(name: str) -> Check:
    return _date_rule(
        name, lambda p: p != "hour", lambda v: v.astimezone(UTC).time() == time(0), f"{name} must be midnight"
    )


def _monday(name: str) -> Check:
    # the weekday (and below, the day) in the offset the client gave, as the original did
    return _date_rule(name, lambda p: p == "week", lambda v: v.weekday() == 0, f"{name} must be a monday")


def _first_of_month(name: str) -> Check:
    message = f"'{name}' must be the first of the month for period=month queries"
    return _date_rule(name, lambda p: p == "month", lambda v: v.day == 1, message)


_RAW_CHECKS: list[Check] = [
    _raw,
    _time_span,
    _midnight("start_at"),
    _midnight("end_at"),
    _monday("start_at"),
    _monday("end_at"),
    _first_of_month("start_at"),
    _first_of_month("end_at"),
]
