"""Backdrop read queries end to end on both backends (ClickHouse 18.16 and chdb): parse, compile,
run, shape, compared with a small reference evaluator written here over the same literal records.

The stored rows carry what the records processor writes: cancel rows (sign -1 copies) and their
replacements, deleted records, an identical re-post, rows of an older epoch and of another data
set (all of which must vanish), records without ``_timestamp`` or without the grouped field,
fields past the 24 slots (read from ``doc``) and hostile values. Every query runs three times: with the
data set's slot map, with it but the day rollup switched off (the rollup answers the grouped
queries over whole days whose fields allow it), and with an empty map (a stale map reads every
field from ``doc``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import orjson
import pytest
from dateutil.relativedelta import relativedelta

from pipeline.errors import BadInput
from pipeline.query import parse_query
from pipeline.query_run import execute
from pipeline.record_rows import ROW_COLUMNS, SlotMap, record_row
from pipeline.store import Store
from schemas.migrations import migrate

pytestmark = pytest.mark.integration

DS = "svc_txn"
EPOCH = 5
NOW = datetime(2013, 4, 10, 9, 30, tzinfo=UTC)
HOSTILE = ['say "hi"', "back\\slash", "'; DROP TABLE records; --", "ünïcødé ✓ 𝄞", "web%", "tab\there\nline"]
CHANNELS = ["web", "phone", "we_b", *HOSTILE]
PERIODS = ("hour", "day", "week", "month", "quarter", "year")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


EDGES = [
    utc(2013, 3, 10, 20),  # Sunday 20:00: the week of Monday 2013-03-04
    utc(2013, 3, 11),
    utc(2013, 3, 31, 23, 59, 59),
    utc(2013, 4, 1),  # an inclusive end_at on a bucket boundary
    utc(2013, 1, 1),
    utc(2012, 12, 31, 23, 59, 59),
    utc(2013, 2, 4),
    utc(2013, 2, 4),
]


@dataclass
class Rec:
    id: str
    ts: datetime | None
    fields: dict[str, Any]
    updated: int = 1_365_000_000


@dataclass
class Data:
    live: list[Rec]
    rows: list[tuple[Any, ...]] = field(default_factory=list)


def make_data(seed: int = 11) -> Data:
    """Live records, and the rows that a history of posts, replacements and deletes left."""
    rnd = random.Random(seed)
    slots = full_slots()
    data = Data([])
    version = iter(range(1, 10_000))

    def row(rec: Rec, sign: int, epoch: int = EPOCH, ds: str = DS, updated: int | None = None) -> None:
        ts_ms = int(rec.ts.timestamp() * 1000) if rec.ts else None
        at = rec.updated if updated is None else updated
        data.rows.append(
            record_row(ds, epoch, rec.id, ts_ms, rec.fields, sign, next(version), "op", at, slots)
        )

    def fields() -> dict[str, Any]:
        out: dict[str, Any] = {}
        if rnd.random() < 0.9:
            out["channel"] = rnd.choice(CHANNELS)
        if rnd.random() < 0.85:
            out["amount"] = rnd.choice([rnd.randint(-5, 40), rnd.randint(0, 80) / 4])
        if rnd.random() < 0.7:
            out["flag"] = rnd.random() < 0.5
        r = rnd.random()
        if r < 0.6:
            out["region"] = rnd.choice(["north", "south", "east"]) if r < 0.5 else None
        if rnd.random() < 0.3:
            out["note"] = rnd.choice(HOSTILE)
        if rnd.random() < 0.4:
            out["mixed"] = rnd.choice([1, 2.5, "two", None, "3"])
        return out

    def when(i: int) -> datetime | None:
        if i < len(EDGES):
            return EDGES[i]
        if i % 6 == 0:
            return utc(2013, 3, 12, rnd.randint(0, 23), rnd.randint(0, 59))  # hours of one day
        if rnd.random() < 0.08:
            return None
        return utc(2012, 11, 20) + timedelta(seconds=rnd.randint(0, 146 * 86400))

    for i in range(110):
        rec = Rec(f"r{i:03d}", when(i), fields(), 1_365_000_000 + i)
        kind = rnd.random()
        if kind < 0.25:  # replaced: the old row, its cancel, the new row
            old = Rec(rec.id, when(rnd.randint(8, 200)), {**fields(), "note": "GHOST"}, rec.updated - 500)
            row(old, 1)
            row(old, -1, updated=rec.updated)
        elif kind < 0.3:  # re-posted unchanged
            row(rec, 1, updated=rec.updated - 900)
            row(rec, -1)
        if kind < 0.35 or rnd.random() < 0.1:
            gone = Rec(f"d{i:03d}", when(i + 3), {"channel": "deleted-channel", "amount": 999}, rec.updated)
            row(gone, 1)
            row(gone, -1)
        row(rec, 1)
        data.live.append(rec)
    # a text amount that a replacement cancelled must not make sum/mean refuse the group
    solo = Rec("solo1", utc(2013, 3, 20, 12), {"channel": "solo", "amount": 3}, 1_365_100_000)
    oops = Rec(solo.id, solo.ts, {"channel": "solo", "amount": "oops"}, solo.updated - 9)
    row(oops, 1)
    row(oops, -1, updated=solo.updated)
    row(solo, 1)
    data.live.append(solo)
    for i in range(15):  # an older epoch of this set, and another data set: both invisible
        old = Rec(f"r{i:03d}", when(i + 20), {"channel": "old-epoch", "note": "OLD", "amount": 5000})
        row(old, 1, epoch=0)
        row(Rec(f"o{i}", when(i + 40), {"channel": "other-set", "amount": 7}), 1, epoch=0, ds="other_set")
    return data


def full_slots() -> SlotMap:
    slots = SlotMap()
    slots.assign(["channel", "amount", "flag", "mixed", *(f"fill{i:02d}" for i in range(20))])
    slots.assign(["region", "note"])  # no slot left: read from doc
    assert "region" not in slots.slots
    return slots


# -- the reference evaluator ---------------------------------------------------------------


class Invalid(Exception):
    pass


def start_of(at: datetime, period: str) -> datetime:
    at = at.astimezone(UTC)
    if period == "hour":
        return at.replace(minute=0, second=0)
    day = at.replace(hour=0, minute=0, second=0)
    return {
        "day": day,
        "week": day - timedelta(days=day.weekday()),
        "month": day.replace(day=1),
        "quarter": day.replace(day=1, month=1 + 3 * ((day.month - 1) // 3)),
        "year": day.replace(day=1, month=1),
    }[period]


def step(period: str, n: int = 1) -> relativedelta:
    unit = {"hour": "hours", "day": "days", "week": "weeks", "month": "months", "year": "years"}
    if period == "quarter":
        return relativedelta(months=3 * n)
    return relativedelta(**{unit[period]: n})


def iso(at: datetime) -> str:
    return at.isoformat()


def py2(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, str):
        return (2, value)
    return (1, value)


def mongo(value: Any, missing: bool) -> tuple[int, float, bytes]:
    if missing or value is None:
        return (0, 0.0, b"")
    if isinstance(value, bool):
        return (3, 0.0, orjson.dumps(value))
    if isinstance(value, str):
        return (2, 0.0, orjson.dumps(value))
    return (1, float(value), orjson.dumps(value))


def reduce(values: list[Any], method: str) -> Any:
    if method == "count":
        return len(values)
    if method == "set":
        return sorted(set(values), key=py2)
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
        raise Invalid
    total = sum(values)
    return total if method == "sum" else (total / len(values) if values else None)


@dataclass
class Ask:
    a: dict[str, list[str]]

    def one(self, name: str) -> str | None:
        return self.a[name][0] if name in self.a else None

    @property
    def period(self) -> str | None:
        return self.one("period")

    @property
    def collect(self) -> list[tuple[str, str, bool]]:
        out = []
        for c in self.a.get("collect", []):
            name, _, method = c.partition(":")
            out.append((name, method or "set", not method))
        return out


def reference(live: list[Rec], params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    ask = Ask({})
    for k, v in params:
        ask.a.setdefault(k, []).append(v)
    start = end = None
    if ask.one("start_at"):
        start = datetime.fromisoformat(str(ask.one("start_at")))
    if ask.one("end_at"):
        end = datetime.fromisoformat(str(ask.one("end_at")))
    delta = 0
    if ask.one("duration") and ask.period:
        n, p = int(str(ask.one("duration"))), ask.period
        if start:
            start = start_of(start, p)
            end, delta = start + step(p, n), n
        else:
            end = start_of(end or NOW, p)
            start, delta = end - step(p, n), -n
    data = evaluate(live, ask, start, end)
    if delta and ask.period and ask.one("flatten") != "true":
        rows = data if "group_by" not in ask.a else None
        firsts = (
            [first(rows, delta < 0)] if rows is not None else [first(g["values"], delta < 0) for g in data]
        )
        shift = min(firsts, key=abs) if firsts else 0
        if shift:
            assert start and end
            data = evaluate(live, ask, start + step(ask.period, shift), end + step(ask.period, shift))
    return data


def first(rows: list[dict[str, Any]], backward: bool) -> int:
    seq = list(reversed(rows)) if backward else rows
    i = next((i for i, r in enumerate(seq) if r["_count"] > 0), 0)
    return -i if backward else i


def evaluate(live: list[Rec], ask: Ask, start: datetime | None, end: datetime | None) -> list[dict[str, Any]]:
    inclusive = ask.one("inclusive") == "true"
    recs = [r for r in live if keep(r, ask, start, end, inclusive)]
    group_by = ask.a.get("group_by", [])
    if not group_by and not ask.period:
        return raw(recs, ask)
    recs = [r for r in recs if all(r.fields.get(g) is not None for g in group_by)]
    period = ask.period
    groups: dict[tuple[Any, ...], list[Rec]] = {}
    for r in recs:
        groups.setdefault(tuple(r.fields[g] for g in group_by), []).append(r)
    keys = sorted(groups, key=lambda k: [py2(v) for v in k])
    buckets: list[datetime] = []
    if period and start and end:
        b = start_of(start, period)
        while b < end:
            buckets.append(b)
            b = b + step(period)

    def summary(rs: list[Rec]) -> dict[str, Any]:
        out: dict[str, Any] = {"_count": len(rs)}
        for name, method, legacy in ask.collect:
            out[f"{name}:{method}"] = reduce([r.fields[name] for r in rs if name in r.fields], method)
            if legacy:
                out[name] = out[f"{name}:{method}"]
        return out

    def series(rs: list[Rec]) -> list[dict[str, Any]]:
        assert period
        by: dict[datetime, list[Rec]] = {}
        for r in rs:
            assert r.ts
            by.setdefault(start_of(r.ts, period), []).append(r)
        out = []
        for b in buckets:
            row = {"_start_at": iso(b), "_end_at": iso(b + step(period))}
            if b in by:
                row.update(summary(by[b]))
            else:
                row.update({"_count": 0, **{f"{n}:{m}": None for n, m, _ in ask.collect}})
            out.append(row)
        return out

    if not period:
        rows = [{**dict(zip(group_by, k, strict=True)), **summary(groups[k])} for k in keys]
    elif not group_by:
        return series(recs)
    elif ask.one("flatten") == "true":
        per_group = {k: series(groups[k]) for k in keys}
        rows = [
            {**dict(zip(group_by, k, strict=True)), **per_group[k][i]}
            for i in range(len(buckets))
            for k in keys
        ]
    else:
        rows = []
        for k in keys:
            row = {**dict(zip(group_by, k, strict=True)), **summary(groups[k])}
            row["_group_count"] = len({start_of(r.ts, period) for r in groups[k] if r.ts})
            row["values"] = series(groups[k])
            rows.append(row)
    sort = ask.one("sort_by")
    if sort:
        name, _, direction = sort.rpartition(":")
        rows.sort(key=lambda r: py2(r.get(name)), reverse=direction == "descending")
    limit = int(ask.one("limit") or 0)
    return rows[:limit] if limit else rows


def keep(r: Rec, ask: Ask, start: datetime | None, end: datetime | None, inclusive: bool) -> bool:
    timed = start or end or ask.period
    if timed and (
        r.ts is None or (start and r.ts < start) or (end and (r.ts > end if inclusive else r.ts >= end))
    ):
        return False
    for f in ask.a.get("filter_by", []):
        name, _, text = f.partition(":")
        want: Any = {"true": True, "false": False}.get(text, text)
        if name == "_id":
            if r.id != want:
                return False
        elif name not in r.fields or type(r.fields[name]) is not type(want) or r.fields[name] != want:
            return False
    for f in ask.a.get("filter_by_prefix", []):
        name, _, prefix = f.partition(":")
        value = r.id if name == "_id" else r.fields.get(name)
        if not (isinstance(value, str) and value.startswith(prefix)):
            return False
    return True


def raw(recs: list[Rec], ask: Ask) -> list[dict[str, Any]]:
    recs = sorted(recs, key=lambda r: (r.ts.timestamp() if r.ts else 0, r.id))
    sort = ask.one("sort_by")
    if sort:
        name, _, direction = sort.rpartition(":")
        if name == "_id":
            recs.sort(key=lambda r: r.id, reverse=direction == "descending")
        elif name == "_timestamp":
            recs.sort(
                key=lambda r: (r.ts is not None, r.ts.timestamp() if r.ts else 0),
                reverse=direction == "descending",
            )
        else:
            recs.sort(
                key=lambda r: mongo(r.fields.get(name), name not in r.fields),
                reverse=direction == "descending",
            )
    limit = int(ask.one("limit") or 0)
    out = []
    for r in recs[:limit] if limit else recs:
        doc = {**r.fields, "_id": r.id, "_updated_at": iso(datetime.fromtimestamp(r.updated, UTC))}
        if r.ts:
            doc["_timestamp"] = iso(r.ts)
            doc.update({f"_{p}_start_at": iso(start_of(r.ts, p)) for p in PERIODS})
        out.append(doc)
    return out


# -- running both ----------------------------------------------------------------------------


@pytest.fixture
def loaded(store: Store) -> Iterator[tuple[Store, Data]]:
    migrate(store, store.database)
    data = make_data()
    store.insert("records", {c: [r[i] for r in data.rows] for i, c in enumerate(ROW_COLUMNS)})
    store.insert(
        "data_set_epochs", {"data_set": [DS], "epoch": [EPOCH], "op": ["empty-op"], "at": [1_364_000_000]}
    )
    yield store, data


def params_of(case: str | list[tuple[str, str]]) -> list[tuple[str, str]]:
    return parse_qsl(case, keep_blank_values=True) if isinstance(case, str) else case


def answer(store: Store, params: list[tuple[str, str]], slots: SlotMap, rollup: bool = True) -> Any:
    try:
        query = parse_query(params, True, NOW)
        return execute(query, DS, slots, store.database, store.query, rollup)["data"]
    except BadInput as exc:
        return exc.message


def expected(data: Data, params: list[tuple[str, str]]) -> Any:
    try:
        return reference(data.live, params)
    except Invalid:
        return "invalid collect function"


def check_all(loaded: tuple[Store, Data], cases: list[str | list[tuple[str, str]]]) -> None:
    store, data = loaded
    failures = []
    for case in cases:
        params = params_of(case)
        want = expected(data, params)
        for slots, rollup in ((full_slots(), True), (full_slots(), False), (SlotMap(), True)):
            got = answer(store, params, slots, rollup)
            if got != want:
                how = f"{len(slots.slots)} slots, rollup {'allowed' if rollup else 'off'}"
                failures.append(f"{params} ({how}):\n  got  {got}\n  want {want}")
    assert not failures, "\n".join(failures)


W_MARCH = "start_at=2013-03-01T00:00:00Z&end_at=2013-04-01T00:00:00Z"
RAW: list[str | list[tuple[str, str]]] = [
    "",
    "limit=7",
    "sort_by=amount:ascending",
    "sort_by=amount:descending&limit=9",
    "sort_by=region:ascending",
    "sort_by=flag:descending",
    "sort_by=_id:descending&limit=5",
    "sort_by=_timestamp:ascending",
    W_MARCH,
    W_MARCH + "&inclusive=true",
    "filter_by=channel:web",
    "filter_by=flag:true",
    "filter_by=flag:false&filter_by=channel:phone",
    "filter_by=_id:r004",
    "filter_by=region:north",
    "filter_by=amount:5",
    "filter_by=mixed:3",
    "filter_by_prefix=channel:we",
    "filter_by_prefix=channel:We",
    "filter_by_prefix=_id:r01",
    "filter_by_prefix=region:no&sort_by=amount:descending&limit=4",
    *([("filter_by", f"channel:{v}")] for v in HOSTILE),
    *([("filter_by", f"note:{v}")] for v in HOSTILE),
    *([("filter_by_prefix", f"channel:{v[:3]}")] for v in HOSTILE),
    [("filter_by_prefix", "note:back\\")],
    [("filter_by_prefix", "channel:")],
]
GROUPED: list[str | list[tuple[str, str]]] = [
    "group_by=channel",
    "group_by=region",
    "group_by=channel&group_by=region",
    "group_by=channel&collect=amount:sum&collect=amount:mean&collect=amount:count&collect=amount",
    "group_by=region&collect=flag:set&collect=mixed:set&collect=mixed:count&collect=note",
    "group_by=flag&collect=region:set&collect=channel:count",
    "group_by=channel&sort_by=_count:descending&limit=3",
    "group_by=channel&collect=amount:sum&sort_by=amount:sum:descending",
    "group_by=region&group_by=channel&sort_by=channel:ascending&limit=4",
    "group_by=channel&filter_by=flag:true&" + W_MARCH,
    "group_by=channel&collect=mixed:sum",
    "group_by=channel&collect=note:mean",
]
PERIOD: list[str | list[tuple[str, str]]] = [
    "period=hour&start_at=2013-03-12T00:00:00Z&end_at=2013-03-13T00:00:00Z&collect=amount:sum",
    "period=day&" + W_MARCH + "&collect=amount:sum&collect=amount:mean",
    "period=week&start_at=2013-02-04T00:00:00Z&end_at=2013-04-08T00:00:00Z&collect=amount:count&collect=channel",
    "period=week&start_at=2013-03-04T12:00:00Z&end_at=2013-04-01T00:00:00Z&inclusive=true",
    "period=month&start_at=2012-11-01T00:00:00Z&end_at=2013-04-02T00:00:00Z&collect=region",
    "period=quarter&start_at=2012-10-01T00:00:00Z&end_at=2013-07-01T00:00:00Z&collect=flag:set",
    "period=year&start_at=2012-01-01T00:00:00Z&end_at=2014-01-01T00:00:00Z&collect=amount:sum",
    "period=day&start_at=2013-03-09T00:00:00%2B05:00&end_at=2013-03-12T00:00:00Z&filter_by=flag:true",
    "period=month&start_at=2012-11-01T00:00:00Z&end_at=2013-05-01T00:00:00Z&collect=mixed:sum",
]
NESTED: list[str | list[tuple[str, str]]] = [
    "period=week&group_by=channel&start_at=2013-02-04T00:00:00Z&end_at=2013-04-08T00:00:00Z",
    "period=week&group_by=channel&" + W_MARCH + "&collect=amount:sum&collect=amount",
    "period=month&group_by=channel&group_by=region&start_at=2012-11-01T00:00:00Z&end_at=2013-05-01T00:00:00Z",
    "period=month&group_by=region&start_at=2012-11-01T00:00:00Z&end_at=2013-05-01T00:00:00Z"
    "&sort_by=_count:descending&limit=2&collect=mixed:set",
    "period=day&group_by=flag&" + W_MARCH + "&collect=amount:mean&sort_by=_group_count:ascending",
    "period=week&group_by=channel&flatten=true&start_at=2013-02-04T00:00:00Z&end_at=2013-04-08T00:00:00Z",
    "period=month&group_by=channel&group_by=region&flatten=true&start_at=2012-11-01T00:00:00Z"
    "&end_at=2013-05-01T00:00:00Z&collect=amount:sum",
    "period=month&group_by=region&flatten=true&start_at=2012-11-01T00:00:00Z&end_at=2013-05-01T00:00:00Z"
    "&sort_by=_count:descending&limit=5",
]
DURATION: list[str | list[tuple[str, str]]] = [
    "period=week&duration=6&start_at=2012-11-05T00:00:00Z",
    "period=week&duration=6&start_at=2012-11-05T00:00:00Z&group_by=channel&collect=amount:sum",
    "period=week&duration=6&start_at=2012-11-05T00:00:00Z&group_by=channel&flatten=true",
    "period=day&duration=8&end_at=2013-04-18T00:00:00Z",
    "period=day&duration=8&end_at=2013-04-18T00:00:00Z&group_by=region",
    "period=week&duration=6&start_at=2012-10-01T00:00:00Z",  # nothing in the window: no shift
    "period=month&duration=3",
    "period=week&duration=3&group_by=channel&collect=amount:sum",
    "period=hour&duration=4&start_at=2013-03-12T00:00:00Z&group_by=channel",
    "period=quarter&duration=2&end_at=2013-01-01T00:00:00Z",
    "period=year&duration=1&start_at=2013-06-01T00:00:00Z&collect=amount:mean",
]


def test_raw_queries(loaded: tuple[Store, Data]) -> None:
    check_all(loaded, RAW)


def test_group_by_queries(loaded: tuple[Store, Data]) -> None:
    check_all(loaded, GROUPED)


def test_period_queries(loaded: tuple[Store, Data]) -> None:
    check_all(loaded, PERIOD)


def test_group_by_and_period_nested_and_flat(loaded: tuple[Store, Data]) -> None:
    check_all(loaded, NESTED)


def test_relative_windows_and_their_shift(loaded: tuple[Store, Data]) -> None:
    check_all(loaded, DURATION)


def test_the_reference_sees_what_the_cases_need(loaded: tuple[Store, Data]) -> None:
    """Guards against cases that pass only because the data happen to make them trivial."""
    _, data = loaded
    forward = reference(data.live, params_of(DURATION[0]))
    assert len(forward) == 6 and forward[0]["_start_at"] > "2012-11-05" and forward[0]["_count"] > 0
    backward = reference(data.live, params_of(DURATION[3]))
    assert len(backward) == 8 and backward[-1]["_end_at"] < "2013-04-18" and backward[-1]["_count"] > 0
    nested = reference(data.live, params_of(DURATION[1]))
    assert nested[0]["values"][0]["_start_at"] > "2012-11-05"
    assert reference(data.live, params_of(DURATION[5]))[0]["_start_at"] == "2012-10-01T00:00:00+00:00"
    assert expected(data, params_of(GROUPED[-1])) == "invalid collect function"
    assert expected(data, params_of(PERIOD[-1])) == "invalid collect function"
    assert all(reference(data.live, [("filter_by", f"channel:{v}")]) for v in HOSTILE)


def test_counts_are_ints_and_integer_sums_stay_integers(loaded: tuple[Store, Data]) -> None:
    store, _ = loaded
    data = answer(
        store, params_of("group_by=channel&collect=amount:sum&filter_by_prefix=channel:ph"), full_slots()
    )
    ints = [r for r in answer(store, params_of("group_by=region&collect=amount:sum"), full_slots())]
    assert ints and all(type(r["_count"]) is int for r in ints + data)
    live = loaded[1].live
    only_int = {r.fields["channel"] for r in live if "channel" in r.fields} - {
        r.fields.get("channel") for r in live if isinstance(r.fields.get("amount"), float)
    }
    rows = answer(store, params_of("group_by=channel&collect=amount:sum"), full_slots())
    for row in rows:
        assert type(row["amount:sum"]) is (int if row["channel"] in only_int else float)


def test_cancelled_older_epoch_and_other_set_values_never_show(loaded: tuple[Store, Data]) -> None:
    store, data = loaded
    for slots in (full_slots(), SlotMap()):
        channels = answer(store, params_of("group_by=channel&collect=note&collect=amount:set"), slots)
        seen = orjson.dumps(channels).decode()
        for ghost in ("GHOST", "OLD", "old-epoch", "other-set", "deleted-channel", "5000", "999", "oops"):
            assert ghost not in seen
        ids = [r["_id"] for r in answer(store, [], slots)]
        assert sorted(ids) == sorted(r.id for r in data.live)


def statements(store: Store, params: list[tuple[str, str]]) -> tuple[Any, list[str]]:
    """The answer of a query and every statement it ran."""
    seen: list[str] = []

    def run(sql: str, p: Any) -> list[tuple[Any, ...]]:
        seen.append(sql)
        return store.query(sql, p)

    query = parse_query(params, True, NOW)
    return execute(query, DS, full_slots(), store.database, run)["data"], seen


@pytest.mark.parametrize(
    "case",
    [
        "group_by=channel&collect=amount:sum&collect=amount:mean",
        f"{W_MARCH}&period=week&group_by=channel&collect=amount:count",
        "period=month&start_at=2012-10-01T00:00:00Z&end_at=2013-04-01T00:00:00Z&filter_by=channel:web",
        "group_by=flag&filter_by_prefix=channel:ph&collect=amount:sum",
    ],
)
def test_whole_day_grouped_queries_are_answered_by_the_rollup(loaded: tuple[Store, Data], case: str) -> None:
    store, data = loaded
    got, sqls = statements(store, params_of(case))
    assert got == expected(data, params_of(case))
    assert "FROM" in sqls[-1] and f"{store.database}.record_days" in sqls[-1], sqls


@pytest.mark.parametrize(
    "case",
    [
        f"{W_MARCH}&period=hour&collect=amount:sum",  # hours are finer than the rollup's days
        "start_at=2013-03-01T12:00:00Z&end_at=2013-04-01T00:00:00Z&period=day",  # not a whole day
        f"{W_MARCH}&period=day&inclusive=true",  # the end's own second would be counted
        "group_by=mixed",  # numbers are summed in the rollup, not kept
        "group_by=region",  # past the 24 slots, read from doc
        "group_by=channel&collect=amount:set",
        "group_by=channel&filter_by=_id:r1",
    ],
)
def test_other_grouped_queries_read_the_records(loaded: tuple[Store, Data], case: str) -> None:
    store, data = loaded
    got, sqls = statements(store, params_of(case))
    assert got == expected(data, params_of(case))
    assert not any("record_days\n" in s for s in sqls[-1:]), sqls
    assert f"FROM {store.database}.records\n" in sqls[-1]
