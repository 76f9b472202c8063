"""Alerts on both backends (ClickHouse 18.16 and chdb), with a real HTTP server on loopback
receiving the webhooks: a breach fires once, recovery resolves once, a restarted evaluator sends
nothing twice, failing and unreachable webhooks are retried, a failing store is survived, the
read app's lifespan runs the evaluator, and ``GET /services/{service}/alerts`` and
``perfplat alerts list`` show it all. Bad rules are refused by the admin API, the services file
and the CLI.

KPI data goes where the processors put it (transactions into ``tx_in``, whose views fill the
sums; records into ``records``), with events outside the rule's window and of another service
that must not count."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from pydantic import SecretStr

from api.alerts import AlertRunner, Report
from api.app import ingest_app, read_app
from pipeline import cli
from pipeline.clock import FrozenClock, iso_utc
from pipeline.datasets import DataSetConfig, RegistryFile
from pipeline.kpi_rows import tx_columns
from pipeline.services import ServiceConfig, ServiceRegistryFile
from pipeline.settings import AlertSettings, Settings
from pipeline.store import Store
from schemas.migrations import migrate
from schemas.transaction import TransactionEvent
from tests.support.stack import free_port

pytestmark = pytest.mark.integration

MINUTE = 60_000
NOW = 1_712_139_330_250  # 2024-04-03T10:15:30.250Z, a Wednesday
SERVICE = "passport"


# --- the webhook receiver ------------------------------------------------------------------------


@dataclass
class Hooks:
    """Records every POST; answers each path with the status set for it (200 by default)."""

    base: str = ""
    status: dict[str, int] = field(default_factory=dict)
    received: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    posted: threading.Event = field(default_factory=threading.Event)

    def bodies(self, path: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [body for p, body, _ in self.received if path is None or p == path]


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    found = Hooks()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_POST(self) -> None:
            body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with found.lock:
                found.received.append((self.path, body, self.headers["Content-Type"]))
                status = found.status.get(self.path, 200)
                found.posted.set()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    found.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield found
    httpd.shutdown()
    httpd.server_close()


# --- the world: a store, registries, a frozen clock ----------------------------------------------


def completion_rule(webhook: str, rule_id: str = "low-completion") -> dict[str, Any]:
    return {
        "id": rule_id,
        "kpi": "completion_rate",
        "op": "below",
        "threshold": 0.5,
        "period": "hour",
        "min_volume": 10,
        "webhook": webhook,
    }


@dataclass
class World:
    store: Store
    tmp: Path
    clock: FrozenClock
    settings: AlertSettings
    n: int = 0

    @property
    def services(self) -> ServiceRegistryFile:
        return ServiceRegistryFile(self.tmp / "services.json")

    def add_service(self, slug: str, rules: list[dict[str, Any]]) -> None:
        self.services.create(ServiceConfig.from_doc({"slug": slug, "name": slug.title(), "alerts": rules}))

    def runner(self) -> AlertRunner:
        """A fresh evaluator, as a restarted process makes: nothing kept but the store."""
        return AlertRunner(
            self.store,
            self.clock,
            ServiceRegistryFile(self.tmp / "services.json"),
            RegistryFile(self.tmp / "datasets.json"),
            self.settings,
        )

    def transactions(self, outcome: str, count: int, ts_ms: int, service: str = SERVICE) -> None:
        events = []
        for _ in range(count):
            self.n += 1
            events.append(
                TransactionEvent(
                    f"e{self.n}", service, f"t{self.n}", outcome, "digital", -1, ts_ms, -1, ts_ms
                )
            )
        self.store.insert("tx_in", tx_columns(events))

    def app_settings(self, **alerts: Any) -> Settings:
        return Settings(
            data_dir=self.tmp,
            services_file=self.tmp / "services.json",
            datasets_file=self.tmp / "datasets.json",
            alerts=self.settings.model_copy(update=alerts),
        )


def evaluate(runner: AlertRunner) -> Report:
    return asyncio.run(runner.evaluate_once())


@pytest.fixture
def world(store: Store, tmp_path: Path) -> World:
    migrate(store, store.database)
    settings = AlertSettings(enabled=False, webhook_attempts=2, webhook_backoff_ms=10, webhook_timeout_s=2)
    return World(store, tmp_path, FrozenClock(NOW), settings)


def breach(w: World) -> None:
    """Completion 4 of 10 started in the last hour (0.4 < 0.5); outside the hour, and for another
    service, enough completions to lift it over 0.5 if they were counted."""
    for k in range(10):
        w.transactions("started", 1, NOW - (k + 1) * 3 * MINUTE)
    w.transactions("completed", 4, NOW - 20 * MINUTE)
    w.transactions("completed", 20, NOW - 2 * 60 * MINUTE)  # before the window
    w.transactions("completed", 30, NOW - 10 * MINUTE, service="other")


def get(app: Any, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://perfplat") as client:
            return await client.get(path)

    return asyncio.run(go())


# --- fire once, resolve once, survive a restart --------------------------------------------------


def test_a_breach_fires_once_recovers_once_and_a_restart_sends_nothing_twice(
    world: World, hooks: Hooks
) -> None:
    world.add_service(SERVICE, [completion_rule(hooks.base + "/hook")])
    world.add_service("other", [])
    breach(world)
    runner = world.runner()

    report = evaluate(runner)
    assert report.errors == [] and (report.rules, report.unknown) == (1, 0)
    assert hooks.bodies() == [
        {
            "id": "passport:low-completion:1",
            "service": "passport",
            "rule": "low-completion",
            "status": "firing",
            "kpi": "completion_rate",
            "value": 0.4,
            "threshold": 0.5,
            "period": "hour",
            "at": "2024-04-03T10:15:30+00:00",
            "op": "below",
            "window": {"start": "2024-04-03T09:15:00+00:00", "end": "2024-04-03T10:16:00+00:00"},
        }
    ]
    assert hooks.received[0][2] == "application/json"

    world.clock.advance(30_000)  # still breached: nothing
    report = evaluate(runner)
    assert (report.changes, report.delivered, report.errors) == ([], [], [])
    assert len(hooks.bodies()) == 1

    world.transactions("completed", 2, NOW + 5_000)  # 6 of 10: 0.6, recovered
    world.clock.advance(30_000)
    evaluate(runner)
    assert len(hooks.bodies()) == 2
    resolved = hooks.bodies()[1]
    assert (resolved["id"], resolved["status"], resolved["value"]) == (
        "passport:low-completion:2",
        "resolved",
        0.6,
    )
    assert resolved["at"] == "2024-04-03T10:16:30+00:00"
    evaluate(runner)
    assert len(hooks.bodies()) == 2

    restarted = world.runner()  # a new process on the same store
    world.clock.advance(30_000)
    report = evaluate(restarted)
    assert (report.rules, report.changes, report.delivered, report.errors) == (1, [], [], [])
    assert len(hooks.bodies()) == 2

    world.transactions("started", 10, NOW + 60_000)  # 6 of 20: 0.3, breached again
    world.clock.advance(30_000)
    evaluate(restarted)
    evaluate(world.runner())
    assert [(b["id"], b["status"], b["value"]) for b in hooks.bodies()] == [
        ("passport:low-completion:1", "firing", 0.4),
        ("passport:low-completion:2", "resolved", 0.6),
        ("passport:low-completion:3", "firing", 0.3),
    ]

    app = read_app(world.app_settings(), world.store, world.clock)
    answer = get(app, "/services/passport/alerts")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-cache"
    doc = answer.json()
    at3 = iso_utc(NOW + 120_000)
    assert doc["service"] == "passport"
    assert doc["rules"] == [
        {
            **completion_rule(hooks.base + "/hook"),
            "kind": "kpi",
            "state": {"status": "firing", "since": at3, "value": 0.3},
        }
    ]
    assert [
        {k: n[k] for k in ("id", "status", "delivered", "attempts", "error")} for n in doc["notifications"]
    ] == [
        {
            "id": "passport:low-completion:3",
            "status": "firing",
            "delivered": True,
            "attempts": 1,
            "error": "",
        },
        {
            "id": "passport:low-completion:2",
            "status": "resolved",
            "delivered": True,
            "attempts": 1,
            "error": "",
        },
        {
            "id": "passport:low-completion:1",
            "status": "firing",
            "delivered": True,
            "attempts": 1,
            "error": "",
        },
    ]
    assert doc["notifications"][2] == {**hooks.bodies()[0], "delivered": True, "attempts": 1, "error": ""}
    assert get(app, "/services/other/alerts").json() == {"service": "other", "rules": [], "notifications": []}
    for name in ("nope", "Bad%20Name"):
        missing = get(app, f"/services/{name}/alerts")
        assert missing.status_code == 404
        assert missing.json() == {
            "status": "error",
            "message": f"No service named {name.replace('%20', ' ')}",
        }


def test_an_empty_or_thin_window_fires_nothing(world: World, hooks: Hooks) -> None:
    world.add_service(SERVICE, [completion_rule(hooks.base + "/hook")])
    runner = world.runner()
    report = evaluate(runner)  # no data at all: unknown
    assert (report.rules, report.unknown, report.changes) == (1, 1, [])
    world.transactions("started", 9, NOW - MINUTE)  # 0 of 9: below min_volume 10
    report = evaluate(runner)
    assert (report.unknown, report.changes, hooks.bodies()) == (1, [], [])
    answer = get(read_app(world.app_settings(), world.store, world.clock), "/services/passport/alerts")
    assert answer.json()["rules"][0]["state"] == {"status": "unknown", "since": None, "value": None}
    world.transactions("started", 1, NOW - MINUTE)  # 0 of 10: now it counts
    evaluate(runner)
    assert [b["value"] for b in hooks.bodies()] == [0.0]


# --- webhooks that fail ----------------------------------------------------------------------------


def test_a_webhook_answering_500_is_retried_until_it_takes_the_notification(
    world: World, hooks: Hooks
) -> None:
    world.add_service(SERVICE, [completion_rule(hooks.base + "/flaky")])
    breach(world)
    hooks.status["/flaky"] = 500
    runner = world.runner()

    report = evaluate(runner)
    assert [e.seq for e in report.changes] == [1] and report.delivered == []
    assert [(e.delivered, e.attempts, e.error) for e in report.failed] == [(False, 2, "HTTP 500")]
    assert len(hooks.bodies("/flaky")) == 2  # webhook_attempts, with backoff

    world.clock.advance(30_000)
    report = evaluate(world.runner())  # the next evaluation (here after a restart) tries again
    assert report.changes == [] and [e.attempts for e in report.failed] == [4]
    assert len(hooks.bodies("/flaky")) == 4
    app = read_app(world.app_settings(), world.store, world.clock)
    (shown,) = get(app, "/services/passport/alerts").json()["notifications"]
    assert (shown["delivered"], shown["attempts"], shown["error"]) == (False, 4, "HTTP 500")

    hooks.status["/flaky"] = 204
    world.clock.advance(30_000)
    report = evaluate(runner)
    assert [(e.delivered, e.attempts, e.error) for e in report.delivered] == [(True, 5, "")]
    bodies = hooks.bodies("/flaky")
    assert len(bodies) == 5 and all(b == bodies[0] for b in bodies)  # the same notification, same id
    world.clock.advance(30_000)
    evaluate(runner)
    assert len(hooks.bodies()) == 5
    (shown,) = get(app, "/services/passport/alerts").json()["notifications"]
    assert (shown["delivered"], shown["attempts"], shown["error"]) == (True, 5, "")


def test_an_unreachable_webhook_holds_its_notifications_in_order_until_the_rule_points_elsewhere(
    world: World, hooks: Hooks
) -> None:
    down = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    world.add_service(SERVICE, [completion_rule(down)])
    breach(world)
    runner = world.runner()
    report = evaluate(runner)
    assert [(e.status, e.error) for e in report.failed] == [("firing", "connection refused")]

    world.transactions("completed", 2, NOW + 5_000)  # recovered while the firing is undelivered
    world.clock.advance(30_000)
    report = evaluate(runner)
    assert [e.status for e in report.changes] == ["resolved"]
    assert [e.status for e in report.failed] == ["firing"]  # the resolved waits behind it

    world.services.configure(SERVICE, alerts=[completion_rule(hooks.base + "/fixed")])
    world.clock.advance(30_000)
    report = evaluate(world.runner())
    assert [e.status for e in report.delivered] == ["firing", "resolved"]
    assert [(b["status"], b["value"]) for b in hooks.bodies("/fixed")] == [("firing", 0.4), ("resolved", 0.6)]
    evaluate(runner)
    assert len(hooks.bodies()) == 2


# --- a store that fails ----------------------------------------------------------------------------


def test_a_store_that_cannot_be_read_is_survived_and_the_next_evaluation_catches_up(
    store: Store, tmp_path: Path, hooks: Hooks
) -> None:
    settings = AlertSettings(enabled=False, webhook_attempts=1)
    w = World(store, tmp_path, FrozenClock(NOW), settings)
    w.add_service(SERVICE, [completion_rule(hooks.base + "/hook")])
    runner = w.runner()
    report = evaluate(runner)  # the database does not exist yet: every read fails
    assert report.errors and report.changes == [] and report.unknown == 1
    assert any("reading the hour window" in e for e in report.errors)
    assert any("reading alert states" in e for e in report.errors)
    assert hooks.bodies() == []

    migrate(store, store.database)
    breach(w)
    report = evaluate(runner)
    assert report.errors == [] and [b["status"] for b in hooks.bodies()] == ["firing"]


def test_a_broken_services_file_is_survived(world: World, hooks: Hooks) -> None:
    world.add_service(SERVICE, [completion_rule(hooks.base + "/hook")])
    breach(world)
    runner = world.runner()
    good = (world.tmp / "services.json").read_bytes()
    (world.tmp / "services.json").write_text('{"services": [{"slug": "x"}]}')
    report = evaluate(runner)
    assert report.errors == ["services registry: service #1 in the services file: a service needs name"]
    (world.tmp / "services.json").write_bytes(good)
    time.sleep(1.1)  # the registry re-reads a changed file at most once a second
    evaluate(runner)
    assert [b["status"] for b in hooks.bodies()] == ["firing"]


# --- a data set not updated within max_age_expected ------------------------------------------------


def test_a_stale_data_set_fires_and_resolves_when_a_record_arrives(world: World, hooks: Hooks) -> None:
    RegistryFile(world.tmp / "datasets.json").create(
        DataSetConfig("carers-allowance", "weekly-claims", max_age_expected=3600)
    )
    rules = [
        {"id": "claims", "data_set": "carers-allowance/weekly-claims", "webhook": hooks.base + "/hook"},
        {"id": "ghost", "data_set": "no-such/set", "webhook": hooks.base + "/hook"},
    ]
    world.add_service("carers", rules)
    runner = world.runner()
    report = evaluate(runner)
    assert (report.rules, report.unknown) == (2, 1)  # the unregistered set says nothing
    assert hooks.bodies() == [
        {
            "id": "carers:claims:1",
            "service": "carers",
            "rule": "claims",
            "status": "firing",
            "kpi": None,
            "value": None,
            "threshold": 3600,
            "period": None,
            "at": "2024-04-03T10:15:30+00:00",
            "data_set": "carers-allowance/weekly-claims",
        }
    ]
    ts = NOW // 1000 - 600
    record = {
        "data_set": ["carers_allowance_weekly_claims"],
        "epoch": [0],
        "ts": [ts],
        "has_ts": [1],
        "id": ["r1"],
        "sign": [1],
        "version": [1],
        "op": ["op-1"],
        "updated": [ts],
        "doc": ["{}"],
    }
    world.store.insert("records", record)
    world.clock.advance(30_000)
    evaluate(runner)
    assert [(b["status"], b["value"]) for b in hooks.bodies()] == [("firing", None), ("resolved", 630)]


# --- the evaluator in the read app's lifespan ------------------------------------------------------


@pytest.mark.parametrize("enabled", [True, False])
def test_the_read_app_lifespan_runs_the_evaluator_when_enabled(
    world: World, hooks: Hooks, enabled: bool
) -> None:
    world.add_service(SERVICE, [completion_rule(hooks.base + "/hook")])
    breach(world)
    app = read_app(world.app_settings(enabled=enabled, interval_s=0.1), world.store, world.clock)

    async def serve() -> None:
        async with app.router.lifespan_context(app):
            if enabled:
                assert await asyncio.to_thread(hooks.posted.wait, 10)
            await asyncio.sleep(0.6)  # several more intervals

    asyncio.run(serve())
    assert [b["status"] for b in hooks.bodies()] == (["firing"] if enabled else [])


# --- perfplat alerts list --------------------------------------------------------------------------


def test_the_command_lists_rules_states_and_notifications_from_the_running_api(
    world: World, hooks: Hooks, capsys: pytest.CaptureFixture[str]
) -> None:
    world.add_service(SERVICE, [completion_rule(hooks.base + "/hook")])
    breach(world)
    evaluate(world.runner())
    port = free_port()
    app = read_app(world.app_settings(), world.store, world.clock)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        assert cli.main(["alerts", "list", SERVICE, "--url", base]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out == [
            "low-completion: firing since 2024-04-03T10:15:30+00:00, value 0.4; "
            "completion_rate below 0.5 (hour)",
            "2024-04-03T10:15:30+00:00 low-completion firing value 0.4: delivered",
        ]
        assert cli.main(["alerts", "list", SERVICE, "--url", base, "--json"]) == 0
        assert orjson.loads(capsys.readouterr().out)["rules"][0]["state"]["status"] == "firing"
        assert cli.main(["alerts", "list", "nope", "--url", base]) == 1
        assert capsys.readouterr().err == "No service named nope\n"
    finally:
        server.should_exit = True
        thread.join(10)
    assert cli.main(["alerts", "list", SERVICE, "--url", base]) == 1
    assert capsys.readouterr().err.startswith(f"no answer from the API at {base}")


# --- bad rules are refused wherever they come in ---------------------------------------------------

ADMIN = {"Authorization": "Bearer admin-secret"}
GOOD = completion_rule("https://hooks.example.org/x")


def _admin(tmp_path: Path, calls: list[tuple[str, str, Any]]) -> list[httpx.Response]:
    settings = Settings(
        data_dir=tmp_path, services_file=tmp_path / "services.json", admin_token=SecretStr("admin-secret")
    )
    app = ingest_app(settings)

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://perfplat") as client:
            return [await client.request(m, p, json=body, headers=ADMIN) for m, p, body in calls]

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("method", "path", "alerts", "message"),
    [
        (
            "POST",
            "/_admin/services",
            [{**GOOD, "op": "lt"}],
            'alert rule #1 (low-completion): op must be "below"',
        ),
        ("POST", "/_admin/services", [GOOD, {**GOOD, "threshold": 99.9, "id": "b"}], "alert rule #2 (b): "),
        ("POST", "/_admin/services", [GOOD, GOOD], "another rule of this service has the id low-completion"),
        ("PATCH", "/_admin/services/taken", [{**GOOD, "webhook": "file:///x"}], "webhook must be an http://"),
        ("PATCH", "/_admin/services/taken", [{"id": "s", "data_set": "nope"}], "a stale rule needs webhook"),
        ("PATCH", "/_admin/services/taken", [{**GOOD, "kpi": "uptime"}], "kpi must be one of"),
    ],
)
def test_the_admin_api_refuses_a_bad_rule_with_400_and_changes_nothing(
    tmp_path: Path, method: str, path: str, alerts: list[Any], message: str
) -> None:
    body = {"slug": "x", "name": "X", "alerts": alerts} if method == "POST" else {"alerts": alerts}
    first, answer = _admin(
        tmp_path,
        [
            ("POST", "/_admin/services", {"slug": "taken", "name": "T", "alerts": [GOOD]}),
            (method, path, body),
        ],
    )
    before = (tmp_path / "services.json").read_bytes()
    assert first.status_code == 201 and first.json()["alerts"] == [GOOD]
    assert answer.status_code == 400
    assert message in answer.json()["message"]
    assert (tmp_path / "services.json").read_bytes() == before
    assert set(ServiceRegistryFile(tmp_path / "services.json").reload().services) == {"taken"}


def test_the_services_file_and_the_command_refuse_a_bad_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "services.json"
    path.write_text(
        orjson.dumps(
            {"services": [{"slug": "p", "name": "P", "alerts": [{**GOOD, "period": "year"}]}]}
        ).decode()
    )
    with pytest.raises(
        ValueError, match=r"^service #1 in the services file: alert rule #1 \(low-completion\): period"
    ):
        ServiceRegistryFile(path).current()
    path.unlink()
    monkeypatch.setenv("PERFPLAT_SERVICES_FILE", str(path))
    monkeypatch.setenv("PERFPLAT_DATA_DIR", str(tmp_path))
    bad = orjson.dumps([{**GOOD, "min_volume": -1}]).decode()
    assert cli.main(["services", "add", "p", "--name", "P", "--set", f"alerts={bad}"]) == 1
    assert "alert rule #1 (low-completion): min_volume must be a whole number" in capsys.readouterr().err
    assert not path.exists()
    good = orjson.dumps([GOOD]).decode()
    assert cli.main(["services", "add", "p", "--name", "P", "--set", f"alerts={good}"]) == 0
    assert ServiceRegistryFile(path).current().services["p"].alerts == (GOOD,)
