"""The dashboards on both backends (ClickHouse 18.16 and chdb): pages rendered on the server from
literal events, their figures against the KPI API's and against an independent count, the CSV
downloads, escaping of hostile names and labels, and clear errors for bad addresses.

The routes run in-process (httpx's ASGI transport) over a store loaded with literal
transactions, ratings and journey events for two services of one department, one of which is
named with HTML and script in it.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI

from api.dashboard import Dashboard, dashboard_router
from api.errors import install_error_handlers
from api.kpi_read import KpiReader, kpi_router
from api.read import LiveReader, read_router
from api.responses import JSONBody
from pipeline.clock import FrozenClock
from pipeline.dashboard_view import gbp, percent
from pipeline.kpi_rows import journey_columns, rating_columns, tx_columns
from pipeline.services import ServiceConfig
from pipeline.store import Store
from schemas.journey import JourneyEvent
from schemas.migrations import migrate
from schemas.satisfaction import SatisfactionEvent
from schemas.transaction import TransactionEvent
from tests.integration.test_kpi_read import Client

pytestmark = pytest.mark.integration

HOSTILE = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'
DAY_MS = 86_400_000
NOW = int(datetime(2026, 12, 3, 12, 30, tzinfo=UTC).timestamp()) * 1000  # a Wednesday
MONDAY = int(datetime(2026, 11, 30, tzinfo=UTC).timestamp()) * 1000
SERVICES = [
    ServiceConfig("svc-a", HOSTILE, group="dept"),
    ServiceConfig("svc-b", "Bee service", group="dept"),
    ServiceConfig("svc-c", "Lonely service"),
]
# (service, day offset from Monday, channel, outcome): the week so far and the week before
TX = [
    *(
        ("svc-a", d, "digital", o)
        for d in (0, 1, 2)
        for o in ("started",) * 3 + ("completed",) * 2 + ("failed",)
    ),
    *(("svc-a", d, "phone", "completed") for d in (1, 2)),
    *(("svc-a", -3, "digital", o) for o in ("completed", "abandoned")),
    *(("svc-b", d, "paper", "completed") for d in (0, 0, 1, 1, 2, 2, 2, 2, 2, 2)),
]
JOURNEY = [
    *(("stage", "start", v) for v in range(10)),
    *(("stage", "details", v) for v in range(8)),
    *(("stage", "done", v) for v in range(6)),
    *(("help", HOSTILE, v) for v in range(3)),
    ("help", "fees", 1),
]


def cost_e4(outcome: str) -> int:
    """£1.50 on each completed transaction, none given on the others."""
    return 15_000 if outcome == "completed" else -1


def tx_events() -> list[TransactionEvent]:
    out = []
    for i, (service, day, channel, outcome) in enumerate(TX):
        ts = MONDAY + day * DAY_MS + 3_600_000 + i * 1000
        out.append(
            TransactionEvent(f"t{i}", service, f"x{i}", outcome, channel, cost_e4(outcome), ts, -1, ts)
        )
    return out


def journey_events() -> list[JourneyEvent]:
    at = NOW - 10_000  # arrived in the last 5 minutes: users now
    return [
        JourneyEvent(
            f"j{i}", "svc-a", action, label, "page" if action == "stage" else "click", "/p", at, at, v
        )
        for i, (action, label, v) in enumerate(JOURNEY)
    ]


@pytest.fixture
def client(store: Store) -> Iterator[Client]:
    migrate(store, store.database)
    store.insert("tx_in", tx_columns(tx_events()))
    ratings = [
        SatisfactionEvent(f"r{i}", "svc-a", r, "", MONDAY + 7_200_000, NOW)
        for i, r in enumerate((5, 4, 4, 1))
    ]
    store.insert("rating_in", rating_columns(ratings))
    store.insert("journey_in", journey_columns(journey_events()))
    clock = FrozenClock(NOW)
    exists = {c.slug for c in SERVICES}.__contains__

    def members(group: str) -> list[str]:
        return [c.slug for c in SERVICES if c.group == group]

    app = FastAPI(default_response_class=JSONBody)
    install_error_handlers(app, retry_after_s=1)
    app.include_router(kpi_router(store, clock, exists, members, 0))
    app.include_router(read_router(LiveReader(store, clock, 0)))
    dashboard = Dashboard(
        KpiReader(store, clock, exists, members, 0), LiveReader(store, clock, 0), lambda: SERVICES, clock, 0
    )
    app.include_router(dashboard_router(dashboard))
    c = Client(app)
    yield c
    c.close()


def tile_values(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-kpi="([a-z_]+)">.*?pp-tile__value">([^<]*)<', html, re.S))


def shown(value: float | None, unit: str) -> str:
    if value is None:
        return "No data"
    return {"ratio": percent, "GBP": gbp}.get(unit, lambda v: f"{round(v):,}")(value)


def test_a_service_page_shows_the_kpi_apis_figures_rendered_on_the_server(client: Client) -> None:
    for period in ("day", "week", "month"):
        r = client.get("/performance/svc-a", params={"period": period})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert float(r.headers["server-timing"].removeprefix("render;dur=")) > 0
        kpis = client.get("/services/svc-a/kpis", params={"period": period}).json()["kpis"]
        tiles = tile_values(r.text)
        for key in ("cost_per_transaction", "user_satisfaction_score", "completion_rate", "digital_takeup"):
            assert tiles[key] == shown(kpis[key]["value"], kpis[key]["unit"]), (period, key)
    week = tile_values(client.get("/performance/svc-a").text)
    # the independent count: Monday to Wednesday, digital 3 started, 2 completed, 1 failed a day;
    # phone 1 completed on Tuesday and Wednesday (started before the window)
    assert week["transactions_completed"] == "8"
    assert week["completion_rate"] == percent(8 / 9)
    assert week["digital_takeup"] == percent(6 / 8)
    assert week["user_satisfaction_score"] == percent(((5 + 4 + 4 + 1) / 4 - 1) / 4)
    assert week["cost_per_transaction"] == "£1.50"


def test_the_live_headline_and_the_funnel_are_on_the_page_without_javascript(client: Client) -> None:
    html = client.get("/performance/svc-a").text
    live = re.search(r"data-live-count[^>]*>([^<]*)<", html)
    assert live is not None and live.group(1) == "10"  # ten visitors in the last 5 minutes
    assert 'data-stream="/services/svc-a/live"' in html and 'data-poll="/services/svc-a/users-now"' in html
    assert "10 users started and 6 reached the end: a completion rate of 60.0% from page events" in html
    funnel = client.get("/performance/svc-a/funnel.csv").text
    assert list(csv.reader(io.StringIO(funnel))) == [
        ["stage", "events", "share_of_starts", "drop_off"],
        ["start", "10", "1", ""],
        ["details", "8", "0.8", "0.2"],
        ["done", "6", "0.6", "0.25"],
    ]


def test_hostile_names_and_labels_are_escaped_everywhere_they_are_shown(client: Client) -> None:
    for path in ("/performance", "/performance/svc-a", "/performance/dept"):
        html = client.get(path).text
        assert "&lt;script&gt;alert(" in html, path
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert re.findall(r"<script[^>]*>", html) == ['<script src="/performance/assets/live.js" defer>'], (
            path
        )
    help_csv = client.get("/performance/svc-a/help.csv").text
    assert list(csv.reader(io.StringIO(help_csv)))[1] == [HOSTILE, "3"]  # data, as sent, in a CSV cell


def test_volume_csv_equals_an_independent_count_by_day_and_channel(client: Client) -> None:
    r = client.get("/performance/svc-a/volumes.csv", params={"period": "week"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="svc-a-volumes-week.csv"'
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 30  # 30 days up to today
    got = {(row["_start_at"][:10], ch): int(row[ch]) for row in rows for ch in ("digital", "phone")}
    want: Counter[tuple[str, str]] = Counter()
    for e in tx_events():
        if e.service == "svc-a" and e.outcome == "completed":
            want[(datetime.fromtimestamp(e.ts_ms / 1000, UTC).date().isoformat(), e.channel)] += 1
    assert {k: v for k, v in got.items() if v} == dict(want)


def test_the_home_page_lists_services_busiest_first_and_a_department_page_its_own(client: Client) -> None:
    home = client.get("/performance")
    assert home.status_code == 200
    order = re.findall(r'data-service="([a-z-]+)"', home.text)
    assert order == ["svc-b", "svc-a", "svc-c"]  # 10 paper, then 8, then none
    assert re.search(r"data-live-count[^>]*>10<", home.text)
    dept = client.get("/performance/dept", params={"period": "week"})
    assert dept.status_code == 200
    assert re.findall(r'data-service="([a-z-]+)"', dept.text) == ["svc-b", "svc-a"]
    assert "18" in re.findall(r'<dd class="govuk-summary-list__value">([^<]*)<', dept.text)


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/performance/nobody", 404, "No service or department named nobody"),
        ("/performance/%3Cscript%3Ealert(1)", 404, "No service or department named &lt;script&gt;alert(1)"),
        ("/performance/svc-a?period=fortnight", 400, "period"),
        ("/performance/svc-a?colour=red", 400, "unknown parameter &#39;colour&#39;: this page takes period"),
        ("/performance?period=day&period=week", 400, "period is given more than once"),
    ],
)
def test_bad_addresses_get_a_page_that_says_what_is_wrong(
    client: Client, path: str, status: int, message: str
) -> None:
    r = client.get(path)
    assert r.status_code == status
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert message in r.text


def test_unknown_charts_and_services_are_404_as_csv_too(client: Client) -> None:
    assert client.get("/performance/svc-a/nothing.csv").text == "No chart named nothing\n"
    assert client.get("/performance/nobody/volumes.csv").status_code == 404
    assert client.get("/performance/svc-a/volumes.csv?period=x").status_code == 400


def test_assets_are_served_with_a_strict_policy_on_the_pages(client: Client) -> None:
    for name, media in (
        ("govuk.css", "text/css"),  # built by `make assets` (a prerequisite of `make test`)
        ("dashboard.css", "text/css"),
        ("live.js", "application/javascript"),
    ):
        r = client.get(f"/performance/assets/{name}")
        assert r.status_code == 200, name
        assert r.headers["content-type"].startswith(media)
        assert client.get(f"/performance/assets/{name}", params=None).headers["etag"] == r.headers["etag"]
    assert client.get("/performance/assets/nothing.css").status_code == 404
    csp = client.get("/performance/svc-a").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp
