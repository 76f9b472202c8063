"""Availability end to end (issue 4), on both backends: services registered through the admin API
with health-check URLs on a local HTTP server — one that answers 200, one 500, one that answers
only after the probe's timeout, one whose first answer is 500 and the rest 200 — and one on a
closed port. The prober (``perfplat probe`` beside the server stack; the one ``perfplat up``
starts) checks them every 5 s; ``GET /services/{s}/kpis`` must then show them up, down with an
outage recorded (0, not "no figure"), or exactly the share of answers that were up.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import unique
from tests.support.kpi_events import Target, running_stack, wait_until
from tests.support.stack import Proc, free_port

pytestmark = pytest.mark.e2e

INTERVAL_S = 5
TIMEOUT_S = 1
SLOW_S = 3


@dataclass
class Answers:
    """What the health-check server answered, per path: (status, monotonic time answered)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    by_path: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)

    def statuses(self, path: str) -> list[int]:
        with self.lock:
            return [status for status, _ in self.by_path.get(path, [])]

    def last_at(self, path: str) -> float:
        with self.lock:
            answers = self.by_path.get(path, [])
            return answers[-1][1] if answers else 0.0


class _Handler(BaseHTTPRequestHandler):
    answers: Answers

    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:
        a = self.answers
        with a.lock:
            n = len(a.by_path.get(self.path, [])) + a.in_flight.get(self.path, 0)
            a.in_flight[self.path] = a.in_flight.get(self.path, 0) + 1
        kind = self.path.split("-", 1)[0]  # /ok-…, /error-…, /slow-…, /flaky-…
        status = {"/error": 500, "/flaky": 500 if n == 0 else 200}.get(kind, 200)
        try:
            if kind == "/slow":
                time.sleep(SLOW_S)  # past the probe's timeout
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the prober gave up waiting (the slow one)
        finally:
            with a.lock:
                a.in_flight[self.path] -= 1
                a.by_path.setdefault(self.path, []).append((status, time.monotonic()))


@pytest.fixture(scope="module")
def health_checks() -> Iterator[tuple[str, Answers]]:
    answers = Answers()
    handler = type("Handler", (_Handler,), {"answers": answers})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", answers
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module", params=["server", "embedded"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    if request.param == "server":
        broker, clickhouse = request.getfixturevalue("broker"), request.getfixturevalue("clickhouse_server")
        with running_stack(
            "server", tmp_path_factory.mktemp("probes"), broker.bootstrap, clickhouse.url
        ) as t:
            yield t
    else:
        with running_stack("embedded", tmp_path_factory.mktemp("probes-up")) as t:
            yield t


def figures(target: Target, service: str) -> dict[str, Any]:
    kpis = target.summary(service)["kpis"]
    return {k: kpis[k]["value"] for k in ("availability", "response_time_mean", "response_time_p95")}


def test_probes_record_up_down_and_the_exact_uptime_share(
    target: Target, health_checks: tuple[str, Answers], tmp_path_factory: pytest.TempPathFactory
) -> None:
    base, answers = health_checks
    tag = unique(target.name)  # each stack's checks have paths of their own
    paths = {kind: f"/{kind}-{tag}" for kind in ("ok", "error", "slow", "flaky")}
    urls = {kind: base + path for kind, path in paths.items()}
    urls["refused"] = f"http://127.0.0.1:{free_port()}/health"
    services = {kind: unique(f"svc-{kind}") for kind in urls}
    for kind, slug in services.items():
        target.register(
            slug, health_check_url=urls[kind], probe_interval_s=INTERVAL_S, probe_timeout_s=TIMEOUT_S
        )
    prober = None
    if target.server is not None:  # beside the server stack the prober is a process of its own
        prober = Proc(["probe"], target.env, tmp_path_factory.mktemp("prober") / "probe.log")
        prober.start()
    try:
        wait_until(
            lambda: (
                all(len(answers.statuses(paths[k])) >= 2 for k in ("ok", "error", "slow"))
                and len(answers.statuses(paths["flaky"])) >= 3
                and figures(target, services["refused"])["availability"] is not None
            ),
            60,
            0.2,
        )
        # stop probing just after an answer of /flaky, so no check of it is cut short
        wait_until(lambda: time.monotonic() - answers.last_at(paths["flaky"]) < 1.0, 10, 0.02)
        for slug in services.values():
            target.configure(slug, health_check_url="")
        flaky = answers.statuses(paths["flaky"])
        time.sleep(3)
        assert answers.statuses(paths["flaky"]) == flaky, (
            "a check came after the services stopped being probed"
        )
        if prober is not None:
            assert prober.proc is not None and prober.proc.poll() is None, (
                "the prober died:\n" + prober.log_tail()
            )
            prober.signal(signal.SIGTERM)
            assert prober.stop() == 0, prober.log_tail()
    finally:
        if prober is not None:
            prober.stop()

    # /flaky answered 500 once, then 200: the share up after k results is (k-1)/k, a different
    # value for every k, so it reaches the expected one only once all of them are counted
    assert flaky == [500] + [200] * (len(flaky) - 1)
    share = float(Fraction(len(flaky) - 1, len(flaky)))
    wait_until(lambda: figures(target, services["flaky"])["availability"] == share, 30, 0.2)

    got = {kind: figures(target, slug) for kind, slug in services.items()}
    assert got["ok"]["availability"] == 1.0
    assert got["flaky"]["availability"] == share
    for down in ("error", "slow", "refused"):
        assert got[down]["availability"] == 0.0, (down, got[down])  # an outage, not "no figure"
    for answered in ("ok", "error", "flaky"):  # a response ⇒ its time recorded, within the timeout
        mean, p95 = got[answered]["response_time_mean"], got[answered]["response_time_p95"]
        assert mean is not None and 0 <= mean < TIMEOUT_S * 1000, (answered, got[answered])
        assert p95 is not None and 0 <= p95 <= TIMEOUT_S * 1000 * 1.125, (answered, got[answered])
    for silent in ("slow", "refused"):  # no response, no response time
        assert got[silent]["response_time_mean"] is None and got[silent]["response_time_p95"] is None
    assert target.alive()
