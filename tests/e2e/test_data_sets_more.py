"""More of the backdrop-compatible data-set API over real HTTP, on both running stacks: the
distributed one (api + worker, real broker, ClickHouse 18.16) and ``perfplat up`` (chdb).

- spreadsheet upload (``POST /upload/{group}/{type}``, CSV and .xlsx) read back value by value,
  and refused uploads that store nothing;
- PATCH and DELETE by ``_id``;
- the read parameters as tables: literal fixture records, query string → the ``data`` worked
  out by hand from those records (never by the code under test), and bad queries → the
  original's 400 message;
- a data set made with ``perfplat datasets create`` next to a running ``perfplat up``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

import httpx
import pytest
from openpyxl import Workbook

from tests.conftest import unique
from tests.e2e.conftest import wait_for_worker
from tests.support.stack import ADMIN_TOKEN, EmbeddedStack, ServerStack, wait_until

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PERIOD_KEYS = tuple(f"_{p}_start_at" for p in ("hour", "day", "week", "month", "quarter", "year"))
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")


# -- the two stacks --------------------------------------------------------------------------


class Backend(NamedTuple):
    name: str
    base_url: str


@pytest.fixture(scope="module")
def embedded_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    stack = EmbeddedStack(tmp_path_factory.mktemp("up"), {"PERFPLAT_ADMIN_TOKEN": ADMIN_TOKEN})
    stack.start()
    try:
        wait_for_worker(stack.base_url)
        yield stack
    except BaseException:
        print("perfplat up log:\n" + stack.up.log_tail())
        raise
    finally:
        stack.stop()


@pytest.fixture(scope="module", params=["server", "embedded"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each running stack in turn; both stay up until the module ends."""
    stack: ServerStack | EmbeddedStack = request.getfixturevalue(
        "server_stack" if request.param == "server" else "embedded_stack"
    )
    return Backend(request.param, stack.base_url)


@dataclass(frozen=True)
class DataSet:
    base_url: str
    group: str
    data_type: str
    token: str

    @property
    def url(self) -> str:
        return f"{self.base_url}/data/{self.group}/{self.data_type}"

    @property
    def name(self) -> str:
        return f"{self.group}_{self.data_type}".replace("-", "_")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def post(self, records: list[dict[str, Any]]) -> None:
        """POST and wait until every record is queryable."""
        r = httpx.post(self.url, params={"wait": "queryable"}, json=records, headers=self.auth, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "ok", "queryable": True}

    def read(self, query: str = "") -> Any:
        r = httpx.get(f"{self.url}?{query}", timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["data"]


def create_set(base_url: str, **settings: Any) -> DataSet:
    """A new data set made through the admin API, once every process of the stack knows it
    (they re-read the registry file at most a second after it changes)."""
    group = unique("grp")
    r = httpx.post(
        base_url + "/_admin/data-sets",
        json={"data_group": group, "data_type": "tx", **settings},
        headers=ADMIN,
    )
    assert r.status_code == 201, r.text
    ds = DataSet(base_url, group, "tx", r.json()["bearer_token"])
    wait_until(lambda: httpx.get(ds.url).status_code != 404, 10)
    return ds


def without_updated_at(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Raw rows less ``_updated_at`` (the time of the write), which is checked for its form."""
    for row in rows:
        assert ISO_UTC.fullmatch(row["_updated_at"]), row
    return [{k: v for k, v in row.items() if k != "_updated_at"} for row in rows]


def user_view(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Raw rows less what the platform adds (``_id`` when generated, ``_updated_at``, the six
    period starts): what a spreadsheet's cells became."""
    for row in rows:
        assert re.fullmatch(r"[0-9a-f]{32}", row["_id"]), row
    return [
        {k: v for k, v in row.items() if k not in PERIOD_KEYS and k != "_id"}
        for row in without_updated_at(rows)
    ]


def upload(ds: DataSet, filename: str, content: bytes, token: str | None = None) -> httpx.Response:
    auth = {"Authorization": f"Bearer {token}"} if token is not None else ds.auth
    return httpx.post(
        f"{ds.base_url}/upload/{ds.group}/{ds.data_type}",
        params={"wait": "queryable"},
        files={"file": (filename, content)},
        headers=auth,
        timeout=30,
    )


# -- 1. spreadsheet upload -------------------------------------------------------------------


CSV_UPLOAD = (
    b"\xef\xbb\xbf# exported 2014-04-02 by the service team\r\n"
    b"_timestamp,channel,count,rate,note,comment\r\n"
    b"2014-03-03T00:00:00Z,digital,12,0.5,first,ignore me\r\n"
    b"# a comment line between two records\r\n"
    b'2014-03-10T00:00:00+01:00,phone,007,1e3,"quoted, with comma",x\r\n'
    b",,,,,\r\n"
    b"2014-03-17T00:00:00Z,paper,-3,-2.25,1_000,\r\n"
)


def test_csv_upload_is_stored_as_records(backend: Backend) -> None:
    ds = create_set(backend.base_url, upload_format="csv")
    r = upload(ds, "transactions.csv", CSV_UPLOAD)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok", "records": 3}
    rows = ds.read("sort_by=_timestamp:ascending")
    assert user_view(rows) == [
        {
            "_timestamp": "2014-03-03T00:00:00+00:00",
            "channel": "digital",
            "count": 12,
            "rate": 0.5,
            "note": "first",
        },
        {
            "_timestamp": "2014-03-09T23:00:00+00:00",
            "channel": "phone",
            "count": 7,
            "rate": 1000.0,
            "note": "quoted, with comma",
        },
        {
            "_timestamp": "2014-03-17T00:00:00+00:00",
            "channel": "paper",
            "count": -3,
            "rate": -2.25,
            "note": "1_000",
        },
    ]
    assert [type(row["rate"]) for row in rows] == [float, float, float]  # "1e3" is a float, not 1000
    assert [type(row["count"]) for row in rows] == [int, int, int]
    assert rows[1]["_week_start_at"] == "2014-03-03T00:00:00+00:00"  # 23:00 UTC on Sunday the 9th
    assert len({row["_id"] for row in rows}) == 3


def wall(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """A spreadsheet's wall-clock time: Excel cells have no time zone."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).replace(tzinfo=None)


def xlsx(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    book.create_sheet("ignored").append(["_timestamp", "channel"])  # only the first sheet is read
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_excel_upload_is_stored_as_records(backend: Backend) -> None:
    ds = create_set(backend.base_url)  # no upload_format: told by the file's magic bytes
    sheet = xlsx(
        [
            ["# generated by the finance system"],
            ["_timestamp", "channel", "count", "cost", "comment", "opened"],
            [wall(2014, 3, 3, 9, 30), "digital", 12, 2.5, "ignore me", date(2014, 1, 1)],
            [wall(2014, 3, 10), "phone", 3.0, 0.25, None, wall(2014, 2, 28, 23, 59, 59)],
            [None, None, None, None, None, None],
            [wall(2014, 3, 17, 12), "paper", None, 1.0, "dropped"],
        ]
    )
    r = upload(ds, "costs.xlsx", sheet)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok", "records": 3}
    rows = ds.read("sort_by=_timestamp:ascending")
    assert user_view(rows) == [
        {
            "_timestamp": "2014-03-03T09:30:00+00:00",
            "channel": "digital",
            "count": 12,
            "cost": 2.5,
            "opened": "2014-01-01T00:00:00+00:00",
        },
        {
            "_timestamp": "2014-03-10T00:00:00+00:00",
            "channel": "phone",
            "count": 3,
            "cost": 0.25,
            "opened": "2014-02-28T23:59:59+00:00",
        },
        {
            "_timestamp": "2014-03-17T12:00:00+00:00",
            "channel": "paper",
            "count": None,
            "cost": 1,
            "opened": None,
        },
    ]
    assert [type(row["count"]) for row in rows[:2]] == [int, int]  # 3.0 in the sheet is the integer 3
    assert type(rows[2]["cost"]) is int


def test_refused_uploads_store_nothing(backend: Backend) -> None:
    ds = create_set(backend.base_url)  # the format guessed per file: CSV here, Excel below
    exactly_the_limit = b"a,b\n" + b"1,2\n" * 249_999
    assert len(exactly_the_limit) == 1_000_000
    refused: list[tuple[str, bytes, str | None, int, dict[str, Any]]] = [
        (
            "big.csv",
            exactly_the_limit,
            None,
            413,
            {"status": "error", "message": "Invalid file upload big.csv - file too big (1000000)"},
        ),
        (
            "latin1.csv",
            b"name,count\ncaf\xe9,1\n",
            None,
            400,
            {"status": "error", "message": "Non-UTF8 characters found."},
        ),
        (
            "ragged.csv",
            b"name,count\nx,1\ny,2,3\n",
            None,
            400,
            {"status": "error", "message": "Some rows in the CSV file contain more values than columns"},
        ),
        (
            "report.pdf",
            b"",
            None,
            400,
            {
                "status": "error",
                "message": "Invalid file upload report.pdf - file is empty and strange content type of "
                "application/pdf",
            },
        ),
        (
            "good.csv",
            b"name,count\nx,1\n",
            "wrong",
            401,
            {"status": "error", "message": f"Unauthorized: Invalid bearer token 'wrong' for '{ds.name}'"},
        ),
    ]
    for filename, content, token, status, body in refused:
        r = upload(ds, filename, content, token)
        assert (r.status_code, r.json()) == (status, body), filename
    assert r.headers["www-authenticate"] == "bearer"  # on the last one, the 401

    bad_cell = xlsx([["_timestamp", "rate"], [wall(2014, 3, 3), 1], [wall(2014, 3, 4), "#DIV/0!"]])
    r = upload(ds, "sheet.xlsx", bad_cell)  # one bad cell: no record of the sheet is stored
    assert (r.status_code, r.json()) == (400, {"messages": ["rate has an invalid value"]})

    # writes to a data set are applied in order, so once this one is readable any earlier
    # write would be too
    ds.post([{"_id": "sentinel", "seen": 1}])
    assert [row["_id"] for row in ds.read()] == ["sentinel"]


# -- 2. PATCH and DELETE by _id ----------------------------------------------------------------


def test_patch_merges_and_delete_removes(backend: Backend) -> None:
    ds = create_set(backend.base_url)
    ds.post(
        [
            {
                "_id": "p1",
                "_timestamp": "2014-05-01T10:00:00Z",
                "channel": "digital",
                "count": 1,
                "note": "old",
            },
            {"_id": "p2", "_timestamp": "2014-05-02T00:00:00Z", "channel": "phone", "count": 2},
            {"_id": "p3", "count": 3},
        ]
    )
    r = httpx.patch(
        f"{ds.url}/p1", json={"_id": "ignored", "count": 5, "note": None, "extra": "added"}, headers=ds.auth
    )
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    r = httpx.delete(f"{ds.url}/p2", headers=ds.auth)
    assert (r.status_code, r.json()) == (200, {"status": "ok"})

    assert without_updated_at(ds.read("sort_by=_id:ascending")) == [
        {
            "_id": "p1",
            "_timestamp": "2014-05-01T10:00:00+00:00",
            "_hour_start_at": "2014-05-01T10:00:00+00:00",
            "_day_start_at": "2014-05-01T00:00:00+00:00",
            "_week_start_at": "2014-04-28T00:00:00+00:00",
            "_month_start_at": "2014-05-01T00:00:00+00:00",
            "_quarter_start_at": "2014-04-01T00:00:00+00:00",
            "_year_start_at": "2014-01-01T00:00:00+00:00",
            "channel": "digital",
            "count": 5,
            "note": None,
            "extra": "added",
        },
        {"_id": "p3", "count": 3},
    ]
    # aggregates see the patched value once, and not the deleted record
    assert ds.read("group_by=channel&collect=count:sum") == [
        {"channel": "digital", "_count": 1, "count:sum": 5}
    ]

    missing = [("delete", "p2"), ("delete", "nope"), ("patch", "nope")]  # p2: deleted above
    for method, rid in missing:
        r = httpx.request(method, f"{ds.url}/{rid}", json={"count": 9}, headers=ds.auth)
        assert (r.status_code, r.json()) == (400, {"messages": f"No record found with id {rid}"}), method
    r = httpx.patch(f"{ds.url}/p1", json={"count": 9}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    r = httpx.delete(f"{ds.url}/p3")
    assert r.status_code == 401
    assert [(row["_id"], row["count"]) for row in ds.read("sort_by=_id:ascending")] == [("p1", 5), ("p3", 3)]


def test_patch_a_record_posted_without_an_id(backend: Backend) -> None:
    ds = create_set(backend.base_url)
    ds.post([{"kind": "anonymous", "count": 1}])
    (row,) = ds.read()
    r = httpx.patch(f"{ds.url}/{row['_id']}", json={"count": 2}, headers=ds.auth)
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    assert without_updated_at(ds.read()) == [{"_id": row["_id"], "kind": "anonymous", "count": 2}]


# -- 3. read parameters, table-driven ----------------------------------------------------------

# Nine literal records. UTC instants and buckets, worked out by hand:
#   r1 2014-03-03 09:00 Mon   week 03-03  March  Q1
#   r9 2014-03-04 12:00 Tue   week 03-03  March  Q1   (no channel)
#   r2 2014-03-09 23:59:59 Sun week 03-03 March  Q1
#   r3 2014-03-30 20:00 Sun   week 03-24  March  Q1   (posted as Monday 01:00 +05:00)
#   r4 2014-03-31 00:00 Mon   week 03-31  March  Q1
#   r5 2014-03-31 23:00 Mon   week 03-31  March  Q1   (posted as April 1st 02:00 +03:00)
#   r6 2014-04-01 00:00 Tue   week 03-31  April  Q2
#   r7 2014-07-01 00:00 Tue   week 06-30  July   Q3
#   r8 no _timestamp: in no time window and no period bucket, but in plain group_by
RECORDS: list[dict[str, Any]] = [
    {
        "_id": "r1",
        "_timestamp": "2014-03-03T09:00:00Z",
        "channel": "digital",
        "region": "north",
        "service": "tax-return",
        "online": True,
        "count": 3,
        "amount": 1.5,
    },
    {
        "_id": "r2",
        "_timestamp": "2014-03-09T23:59:59Z",
        "channel": "phone",
        "region": "south",
        "service": "tax-credit",
        "online": False,
        "count": 2,
        "amount": 2,
    },
    {
        "_id": "r3",
        "_timestamp": "2014-03-31T01:00:00+05:00",
        "channel": "digital",
        "region": "south",
        "service": "passport",
        "online": True,
        "count": 5,
        "amount": 1,
    },
    {
        "_id": "r4",
        "_timestamp": "2014-03-31T00:00:00Z",
        "channel": "paper",
        "region": "north",
        "service": "tax.return",
        "online": False,
        "count": 1,
        "amount": 4,
    },
    {
        "_id": "r5",
        "_timestamp": "2014-04-01T02:00:00+03:00",
        "channel": "digital",
        "region": "north",
        "service": "Tax-return",
        "online": True,
        "count": 4,
        "amount": 3,
    },
    {
        "_id": "r6",
        "_timestamp": "2014-04-01T00:00:00Z",
        "channel": "phone",
        "region": "north",
        "service": "passport",
        "online": False,
        "count": 6,
        "amount": 2.5,
    },
    {
        "_id": "r7",
        "_timestamp": "2014-07-01T00:00:00Z",
        "channel": "digital",
        "region": "south",
        "service": "tax-return",
        "online": True,
        "count": 7,
        "amount": 3,
    },
    {"_id": "r8", "channel": "phone", "region": "west", "service": "passport", "count": 10, "amount": 5},
    {
        "_id": "r9",
        "_timestamp": "2014-03-04T12:00:00Z",
        "region": "north",
        "service": "visa",
        "online": True,
        "count": 8,
        "amount": 0.25,
    },
]


class Sets(NamedTuple):
    records: DataSet
    locked: DataSet
    """No records, ``raw_queries_allowed`` false: for the extra validators."""


@pytest.fixture(scope="module")
def sets(backend: Backend) -> Sets:
    records = create_set(backend.base_url)
    records.post(RECORDS)
    return Sets(records, create_set(backend.base_url, raw_queries_allowed=False))


def period(start: str, end: str, count: int, **collected: Any) -> dict[str, Any]:
    """One bucket row; ``start``/``end`` are written out in full at the call, only the UTC
    suffix is added here."""
    return {"_start_at": start + "+00:00", "_end_at": end + "+00:00", "_count": count, **collected}


def gap(start: str, end: str, *collect_keys: str) -> dict[str, Any]:
    return period(start, end, 0, **dict.fromkeys(collect_keys))


MONTHLY_BY_CHANNEL = "group_by=channel&period=month&start_at=2014-03-01T00:00:00Z&end_at=2014-05-01T00:00:00Z"
MARCH, APRIL, MAY = "2014-03-01T00:00:00", "2014-04-01T00:00:00", "2014-05-01T00:00:00"

READS = [
    pytest.param(
        "group_by=channel",
        [
            {"channel": "digital", "_count": 4},
            {"channel": "paper", "_count": 1},
            {"channel": "phone", "_count": 3},
        ],
        id="group_by",
    ),
    pytest.param(
        "group_by=channel&group_by=region",
        [
            {"channel": "digital", "region": "north", "_count": 2},
            {"channel": "digital", "region": "south", "_count": 2},
            {"channel": "paper", "region": "north", "_count": 1},
            {"channel": "phone", "region": "north", "_count": 1},
            {"channel": "phone", "region": "south", "_count": 1},
            {"channel": "phone", "region": "west", "_count": 1},
        ],
        id="group_by_twice",
    ),
    pytest.param(
        "group_by=online",
        [{"online": False, "_count": 3}, {"online": True, "_count": 5}],
        id="group_by_boolean",
    ),
    pytest.param(
        "group_by=region&collect=count:sum&collect=amount:mean&collect=channel:set&collect=channel:count",
        [
            {
                "region": "north",
                "_count": 5,
                "count:sum": 22,
                "amount:mean": 2.25,
                "channel:set": ["digital", "paper", "phone"],
                "channel:count": 4,
            },
            {
                "region": "south",
                "_count": 3,
                "count:sum": 14,
                "amount:mean": 2.0,
                "channel:set": ["digital", "phone"],
                "channel:count": 3,
            },
            {
                "region": "west",
                "_count": 1,
                "count:sum": 10,
                "amount:mean": 5.0,
                "channel:set": ["phone"],
                "channel:count": 1,
            },
        ],
        id="collect_sum_mean_set_count",
    ),
    pytest.param(
        "group_by=channel&collect=region",
        [
            {
                "channel": "digital",
                "_count": 4,
                "region:set": ["north", "south"],
                "region": ["north", "south"],
            },
            {"channel": "paper", "_count": 1, "region:set": ["north"], "region": ["north"]},
            {
                "channel": "phone",
                "_count": 3,
                "region:set": ["north", "south", "west"],
                "region": ["north", "south", "west"],
            },
        ],
        id="collect_plain_field_is_set",
    ),
    pytest.param(
        "group_by=channel&collect=amount:sum&sort_by=amount:sum:descending",
        [
            {"channel": "phone", "_count": 3, "amount:sum": 9.5},
            {"channel": "digital", "_count": 4, "amount:sum": 8.5},
            {"channel": "paper", "_count": 1, "amount:sum": 4},
        ],
        id="sort_by_collected",
    ),
    pytest.param(
        "group_by=channel&sort_by=_count:descending&limit=2",
        [{"channel": "digital", "_count": 4}, {"channel": "phone", "_count": 3}],
        id="sort_by_count_and_limit",
    ),
    pytest.param(
        "group_by=channel&filter_by=region:north",
        [
            {"channel": "digital", "_count": 2},
            {"channel": "paper", "_count": 1},
            {"channel": "phone", "_count": 1},
        ],
        id="group_by_filter_by",
    ),
    pytest.param(
        "group_by=region&filter_by=online:false",
        [{"region": "north", "_count": 2}, {"region": "south", "_count": 1}],
        id="filter_by_boolean",
    ),
    pytest.param(
        "group_by=channel&filter_by_prefix=service:tax-",
        [{"channel": "digital", "_count": 2}, {"channel": "phone", "_count": 1}],
        id="group_by_filter_by_prefix",
    ),
    pytest.param(
        "period=week&start_at=2014-03-03T00:00:00Z&end_at=2014-04-07T00:00:00Z&collect=count:sum",
        [
            period("2014-03-03T00:00:00", "2014-03-10T00:00:00", 3, **{"count:sum": 13}),
            gap("2014-03-10T00:00:00", "2014-03-17T00:00:00", "count:sum"),
            gap("2014-03-17T00:00:00", "2014-03-24T00:00:00", "count:sum"),
            period("2014-03-24T00:00:00", "2014-03-31T00:00:00", 1, **{"count:sum": 5}),
            period("2014-03-31T00:00:00", "2014-04-07T00:00:00", 3, **{"count:sum": 11}),
        ],
        id="period_week_sunday_2000_utc",
    ),
    pytest.param(
        "period=month&start_at=2014-03-01T00:00:00Z&end_at=2014-05-01T00:00:00Z&collect=amount:sum",
        [period(MARCH, APRIL, 6, **{"amount:sum": 11.75}), period(APRIL, MAY, 1, **{"amount:sum": 2.5})],
        id="period_month_edges",
    ),
    pytest.param(
        "period=month&start_at=2014-04-01T00:00:00Z&end_at=2014-07-02T00:00:00Z&collect=amount:mean",
        [
            period(APRIL, MAY, 1, **{"amount:mean": 2.5}),
            gap(MAY, "2014-06-01T00:00:00", "amount:mean"),
            gap("2014-06-01T00:00:00", "2014-07-01T00:00:00", "amount:mean"),
            period("2014-07-01T00:00:00", "2014-08-01T00:00:00", 1, **{"amount:mean": 3.0}),
        ],
        id="period_month_end_rounded_up",
    ),
    pytest.param(
        "period=quarter&start_at=2014-01-01T00:00:00Z&end_at=2014-10-01T00:00:00Z",
        [
            period("2014-01-01T00:00:00", "2014-04-01T00:00:00", 6),
            period("2014-04-01T00:00:00", "2014-07-01T00:00:00", 1),
            period("2014-07-01T00:00:00", "2014-10-01T00:00:00", 1),
        ],
        id="period_quarter_edges",
    ),
    pytest.param(
        "period=year&start_at=2014-01-01T00:00:00Z&end_at=2015-01-01T00:00:00Z&collect=count:sum",
        [period("2014-01-01T00:00:00", "2015-01-01T00:00:00", 8, **{"count:sum": 36})],
        id="period_year",
    ),
    pytest.param(
        "period=day&start_at=2014-03-30T00:00:00Z&end_at=2014-04-01T12:00:00Z",
        [
            period("2014-03-30T00:00:00", "2014-03-31T00:00:00", 1),
            period("2014-03-31T00:00:00", "2014-04-01T00:00:00", 2),
            period("2014-04-01T00:00:00", "2014-04-02T00:00:00", 1),
        ],
        id="period_day",
    ),
    pytest.param(
        "period=hour&start_at=2014-03-31T22:00:00Z&end_at=2014-04-01T01:00:00Z",
        [
            period("2014-03-31T22:00:00", "2014-03-31T23:00:00", 0),
            period("2014-03-31T23:00:00", "2014-04-01T00:00:00", 1),
            period("2014-04-01T00:00:00", "2014-04-01T01:00:00", 1),
        ],
        id="period_hour",
    ),
    pytest.param(
        "period=week&start_at=2014-03-24T00:00:00Z&end_at=2014-04-07T00:00:00Z&filter_by=channel:digital",
        [
            period("2014-03-24T00:00:00", "2014-03-31T00:00:00", 1),
            period("2014-03-31T00:00:00", "2014-04-07T00:00:00", 1),
        ],
        id="period_filter_by",
    ),
    pytest.param(
        # [03-17, 04-07) from start_at's week; its first week is empty, so it shifts one on
        "period=week&duration=3&start_at=2014-03-19T12:00:00Z",
        [
            period("2014-03-24T00:00:00", "2014-03-31T00:00:00", 1),
            period("2014-03-31T00:00:00", "2014-04-07T00:00:00", 3),
            period("2014-04-07T00:00:00", "2014-04-14T00:00:00", 0),
        ],
        id="duration_forward_shifted",
    ),
    pytest.param(
        # [04-01, 06-01) back from end_at's month; May is empty, so it shifts one back
        "period=month&duration=2&end_at=2014-06-15T00:00:00Z",
        [period(MARCH, APRIL, 6), period(APRIL, MAY, 1)],
        id="duration_backward_shifted",
    ),
    pytest.param(
        "period=quarter&duration=2&end_at=2014-09-30T00:00:00Z",
        [
            period("2014-01-01T00:00:00", "2014-04-01T00:00:00", 6),
            period("2014-04-01T00:00:00", "2014-07-01T00:00:00", 1),
        ],
        id="duration_backward",
    ),
    pytest.param(
        MONTHLY_BY_CHANNEL + "&collect=count:sum",
        [
            {
                "channel": "digital",
                "_count": 3,
                "_group_count": 1,
                "count:sum": 12,
                "values": [period(MARCH, APRIL, 3, **{"count:sum": 12}), gap(APRIL, MAY, "count:sum")],
            },
            {
                "channel": "paper",
                "_count": 1,
                "_group_count": 1,
                "count:sum": 1,
                "values": [period(MARCH, APRIL, 1, **{"count:sum": 1}), gap(APRIL, MAY, "count:sum")],
            },
            {
                "channel": "phone",
                "_count": 2,
                "_group_count": 2,
                "count:sum": 8,
                "values": [
                    period(MARCH, APRIL, 1, **{"count:sum": 2}),
                    period(APRIL, MAY, 1, **{"count:sum": 6}),
                ],
            },
        ],
        id="group_by_period_nested",
    ),
    pytest.param(
        MONTHLY_BY_CHANNEL + "&sort_by=_count:ascending&limit=1",
        [
            {
                "channel": "paper",
                "_count": 1,
                "_group_count": 1,
                "values": [period(MARCH, APRIL, 1), gap(APRIL, MAY)],
            }
        ],
        id="group_by_period_sort_limit",
    ),
    pytest.param(
        MONTHLY_BY_CHANNEL + "&collect=count:sum&flatten=true",
        [
            {"channel": "digital", **period(MARCH, APRIL, 3, **{"count:sum": 12})},
            {"channel": "paper", **period(MARCH, APRIL, 1, **{"count:sum": 1})},
            {"channel": "phone", **period(MARCH, APRIL, 1, **{"count:sum": 2})},
            {"channel": "digital", **gap(APRIL, MAY, "count:sum")},
            {"channel": "paper", **gap(APRIL, MAY, "count:sum")},
            {"channel": "phone", **period(APRIL, MAY, 1, **{"count:sum": 6})},
        ],
        id="group_by_period_flatten",
    ),
]


@pytest.mark.parametrize(("query", "expected"), READS)
def test_read(sets: Sets, query: str, expected: list[dict[str, Any]]) -> None:
    assert sets.records.read(query) == expected


RAW_READS = [
    pytest.param("start_at=2014-03-09T23:59:59Z&end_at=2014-03-31T00:00:00Z", ["r2", "r3"], id="window"),
    pytest.param(
        "start_at=2014-03-09T23:59:59Z&end_at=2014-03-31T00:00:00Z&inclusive=true",
        ["r2", "r3", "r4"],
        id="window_inclusive",
    ),
    pytest.param(
        "start_at=2014-04-01T02:00:00%2B03:00&end_at=2014-04-01T03:00:00%2B0300", ["r5"], id="window_offsets"
    ),
    pytest.param("start_at=2014-03-31T00:00:00Z&end_at=2014-04-01T00:00:00Z", ["r4", "r5"], id="window_day"),
    pytest.param("filter_by=channel:phone&sort_by=count:descending", ["r8", "r6", "r2"], id="filter_by"),
    pytest.param(
        "filter_by=channel:digital&filter_by=region:south&sort_by=count:ascending",
        ["r3", "r7"],
        id="filter_by_twice",
    ),
    pytest.param(
        "filter_by=online:true&sort_by=amount:ascending", ["r9", "r3", "r1", "r5", "r7"], id="filter_by_true"
    ),
    pytest.param("filter_by=count:3", [], id="filter_by_number_is_text"),
    pytest.param(
        "filter_by_prefix=service:tax&sort_by=_id:ascending",
        ["r1", "r2", "r4", "r7"],
        id="prefix_case_sensitive",
    ),
    pytest.param("filter_by_prefix=service:tax.", ["r4"], id="prefix_is_literal"),
    pytest.param(
        "filter_by_prefix=service:tax-&filter_by_prefix=region:so&sort_by=_id:descending",
        ["r7", "r2"],
        id="prefix_twice",
    ),
    pytest.param(
        "filter_by=service:passport&sort_by=region:ascending", ["r6", "r3", "r8"], id="sort_by_text"
    ),
    pytest.param("sort_by=count:descending&limit=3", ["r8", "r9", "r7"], id="sort_by_limit"),
    pytest.param("sort_by=_timestamp:descending&limit=2", ["r7", "r6"], id="sort_by_timestamp"),
]


@pytest.mark.parametrize(("query", "ids"), RAW_READS)
def test_raw_read(sets: Sets, query: str, ids: list[str]) -> None:
    assert [row["_id"] for row in sets.records.read(query)] == ids


def test_raw_records_are_stored_whole(sets: Sets) -> None:
    assert without_updated_at(sets.records.read("filter_by=_id:r3")) == [
        {
            "_id": "r3",
            "_timestamp": "2014-03-30T20:00:00+00:00",
            "_hour_start_at": "2014-03-30T20:00:00+00:00",
            "_day_start_at": "2014-03-30T00:00:00+00:00",
            "_week_start_at": "2014-03-24T00:00:00+00:00",
            "_month_start_at": "2014-03-01T00:00:00+00:00",
            "_quarter_start_at": "2014-01-01T00:00:00+00:00",
            "_year_start_at": "2014-01-01T00:00:00+00:00",
            "channel": "digital",
            "region": "south",
            "service": "passport",
            "online": True,
            "count": 5,
            "amount": 1,
        }
    ]
    assert without_updated_at(sets.records.read("filter_by=_id:r8")) == [
        {"_id": "r8", "channel": "phone", "region": "west", "service": "passport", "count": 10, "amount": 5}
    ]


@pytest.mark.parametrize(
    ("query", "text"),
    [
        pytest.param(
            "group_by=channel&collect=count:sum&format=csv",
            "_count,channel,count:sum\r\n4,digital,19\r\n1,paper,1\r\n3,phone,18\r\n",
            id="sums",
        ),
        pytest.param(
            "group_by=channel&collect=region:set&format=csv",
            '_count,channel,region:set\r\n4,digital,"[""north"",""south""]"\r\n1,paper,"[""north""]"\r\n'
            '3,phone,"[""north"",""south"",""west""]"\r\n',
            id="sets",
        ),
    ],
)
def test_csv_format(sets: Sets, query: str, text: str) -> None:
    r = httpx.get(f"{sets.records.url}?{query}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == "attachment; filename=export.csv"
    assert r.text == text


START_END = "start_at=2014-03-01T00:00:00Z&end_at=2014-04-01T00:00:00Z"

BAD_QUERIES = [
    ("foo=bar", "An unrecognised parameter was provided"),
    ("period=month", "Either 'duration' or both 'start_at' and 'end_at' are required for a period query"),
    (
        "period=month&duration=2&limit=1",
        "A period query can only be limited if it is grouped - please add 'group_by'",
    ),
    ("start_at=2014-03-01&end_at=2014-04-01T00:00:00Z", "start_at is not a valid datetime"),
    ("start_at=2014-03-01T00:00:00&end_at=2014-04-01T00:00:00Z", "start_at is not a valid datetime"),
    ("start_at=2014-03-01T00:00:00.000Z&end_at=2014-04-01T00:00:00Z", "start_at is not a valid datetime"),
    ("start_at=2014-03-01T00:00:00Z&end_at=2014-02-30T00:00:00Z", "end_at is not a valid datetime"),
    (
        "filter_by=channel:phone&filter_by_prefix=region:n",
        "Cannot use both filter_by and filter_by_prefix in the same query",
    ),
    (
        "filter_by=channel",
        "filter_by must be a field name and value separated by a colon (:) eg. authority:Westminster",
    ),
    ("filter_by=bad-field:x", "Cannot filter by an invalid field name"),
    (
        "period=fortnight&duration=1",
        "'period' must be one of ['hour', 'day', 'week', 'month', 'quarter', 'year']",
    ),
    (
        "period=month&duration=1&sort_by=count:ascending",
        "Cannot sort for period queries without group_by. Period queries are always sorted by time.",
    ),
    (
        "sort_by=count",
        "sort_by must be a field name and sort direction separated by a colon (:) eg. authority:ascending",
    ),
    ("sort_by=count:up", "Unrecognised sort direction. Supported directions include: ascending, descending"),
    ("sort_by=9count:ascending", "Cannot sort by an invalid field name"),
    ("group_by=a", "Cannot group by an invalid field name"),
    ("group_by=_timestamp", "Cannot group by internal fields, internal fields start with an underscore"),
    ("limit=-1", "limit must be a positive integer"),
    ("limit=ten", "limit must be a positive integer"),
    ("period=day&duration=-2", "duration must be a positive integer"),
    ("collect=count", "collect can be used only with either ['group_by', 'period']"),
    (
        START_END + "&duration=2&period=day",
        "Absolute and relative time cannot be requested at the same time - either ask for 'start_at' "
        "and 'end_at', or ask for 'start_at'/'end_at' with 'duration'",
    ),
    ("start_at=2014-03-01T00:00:00Z", "Use of 'start_at' requires 'end_at' or 'duration'"),
    ("end_at=2014-03-01T00:00:00Z", "Use of 'end_at' requires 'start_at' or 'duration'"),
    ("period=day&duration=0", "'duration' must not be zero"),
    (
        "duration=3",
        "If 'duration' is requested (for relative time), 'period' is required - please add a period "
        "(like 'day', 'month' etc)",
    ),
    ("group_by=channel&collect=count:median", "Unknown collection method"),
    ("group_by=channel&collect=bad-name", "Cannot collect an invalid field name"),
    (
        "group_by=channel&collect=_id",
        "Cannot collect internal fields, internal fields start with an underscore",
    ),
    ("group_by=channel&collect=channel", "Cannot collect by a field that is used for group_by"),
    ("group_by=channel&flatten=yes", "flatten must be either 'true' or 'false'"),
    ("inclusive=true", "inclusive can be used only with either ['start_at', 'end_at']"),
    ("group_by=channel&collect=region:sum", "invalid collect function"),
]


@pytest.mark.parametrize(("query", "message"), BAD_QUERIES, ids=[q for q, _ in BAD_QUERIES])
def test_bad_query(sets: Sets, query: str, message: str) -> None:
    r = httpx.get(f"{sets.records.url}?{query}")
    assert (r.status_code, r.json()) == (400, {"status": "error", "message": message})
    assert r.headers["access-control-allow-origin"] == "*"


RAW_NOT_ALLOWED = [
    ("", "querying for raw data is not allowed"),
    ("filter_by=channel:phone", "querying for raw data is not allowed"),
    (
        "period=day&start_at=2014-03-01T00:00:00Z&end_at=2014-03-07T00:00:00Z",
        "The minimum time span for a query is 7 days",
    ),
    ("period=day&start_at=2014-03-01T12:00:00Z&end_at=2014-03-20T00:00:00Z", "start_at must be midnight"),
    ("period=week&start_at=2014-03-04T00:00:00Z&end_at=2014-03-31T00:00:00Z", "start_at must be a monday"),
    (
        "period=month&start_at=2014-03-03T00:00:00Z&end_at=2014-05-01T00:00:00Z",
        "'start_at' must be the first of the month for period=month queries",
    ),
]


@pytest.mark.parametrize(("query", "message"), RAW_NOT_ALLOWED, ids=[q or "raw" for q, _ in RAW_NOT_ALLOWED])
def test_bad_query_when_raw_queries_are_not_allowed(sets: Sets, query: str, message: str) -> None:
    r = httpx.get(f"{sets.locked.url}?{query}")
    assert (r.status_code, r.json()) == (400, {"status": "error", "message": message})


def test_aggregated_query_when_raw_queries_are_not_allowed(sets: Sets) -> None:
    assert sets.locked.read("period=week&start_at=2014-03-03T00:00:00Z&end_at=2014-03-17T00:00:00Z") == [
        period("2014-03-03T00:00:00", "2014-03-10T00:00:00", 0),
        period("2014-03-10T00:00:00", "2014-03-17T00:00:00", 0),
    ]


# -- 4. perfplat up: a data set made with the CLI ------------------------------------------------


def test_embedded_data_set_from_the_cli(embedded_stack: EmbeddedStack) -> None:
    group, token = unique("cli"), "cli-token-0123456789"
    done = embedded_stack.cli(
        "datasets", "create", group, "visits", "--token", token, "--set", "auto_ids=channel,day"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"created {group.replace('-', '_')}_visits; bearer token (shown once): {token}\n"
    assert (embedded_stack.workdir / "var" / "datasets.json").is_file()
    ds = DataSet(embedded_stack.base_url, group, "visits", token)
    wait_until(lambda: httpx.get(ds.url).status_code == 200, 10)
    # the ingest process re-reads the registry on its own clock: until it has, a write is a 404
    wait_until(lambda: httpx.post(ds.url, json=[], headers=ds.auth).status_code == 200, 10)

    ds.post(
        [
            {"_timestamp": "2014-06-02T10:00:00Z", "channel": "web", "day": "mon", "visits": 10},
            {"_timestamp": "2014-06-03T10:00:00Z", "channel": "web", "day": "tue", "visits": 12},
            {"_timestamp": "2014-06-02T11:00:00Z", "channel": "phone", "day": "mon", "visits": 4},
        ]
    )
    # the same auto id (channel.day) again: replaces, never duplicates
    ds.post([{"_timestamp": "2014-06-03T10:00:00Z", "channel": "web", "day": "tue", "visits": 15}])
    assert [(row["_id"], row["visits"]) for row in ds.read("sort_by=_id:ascending")] == [
        ("cGhvbmUubW9u", 4),  # base64 of "phone.mon"
        ("d2ViLm1vbg==", 10),  # "web.mon"
        ("d2ViLnR1ZQ==", 15),  # "web.tue"
    ]
    assert ds.read("group_by=channel&collect=visits:sum") == [
        {"channel": "phone", "_count": 1, "visits:sum": 4},
        {"channel": "web", "_count": 2, "visits:sum": 25},
    ]
    assert ds.read(
        "period=day&start_at=2014-06-02T00:00:00Z&end_at=2014-06-04T00:00:00Z&collect=visits:sum"
    ) == [
        period("2014-06-02T00:00:00", "2014-06-03T00:00:00", 2, **{"visits:sum": 14}),
        period("2014-06-03T00:00:00", "2014-06-04T00:00:00", 1, **{"visits:sum": 15}),
    ]
    listed = embedded_stack.cli("datasets", "list")
    assert listed.returncode == 0 and f'"name":"{ds.name}"' in listed.stdout
    assert token not in listed.stdout
