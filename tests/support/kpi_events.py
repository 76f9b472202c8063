"""KPI events for the end-to-end tests: seeded traffic for today, a ledger of what the platform
acknowledged, the figures those events must give, and helpers that drive a running stack.

The expected figures are computed here from the events as they were posted, with the formulas of
the reference (``shared/reference/performance-platform.md`` §5) and the read API's documented
conventions, written out again: no perfplat code computes an expected figure, so a test that
compares them checks the pipeline instead of repeating it. What is taken as documented:

- an event counts in the window of its own timestamp; a window is ``[start, end)`` as the
  response names it; duplicates (same service and id) count once;
- digital take-up = digital completions ÷ completions, none when there is no digital completion;
  completion rate = completions ÷ starts; satisfaction score = (mean rating - 1) ÷ 4;
- total cost = the per-transaction costs given + the period costs of channel ``all`` prorated
  linearly over the window (a later post of the same service, period and start replaces an
  earlier one; "later" is the order of first acknowledgement, so a repeated post changes
  nothing); cost per transaction = total cost ÷ completions;
- time to complete: completions that carry ``started_at``; median and 95th percentile are the
  nearest-rank value reported as the upper edge of its histogram bucket (0..16 ms exact, then
  eight equal steps per doubling, up to 2**40 ms);
- availability = probes that found the service up ÷ probes; response times over the probes
  that got a response (mean, and the 95th percentile as above);
- every value is computed exactly and rounded once (to a float) at the end; a group's means are
  weighted by completions and rounded half away from zero to 3 places (1 for money).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest

from producers.simulate import CostSim, RatingSim, TransactionSim, default_services, simulate
from tests.conftest import unique
from tests.e2e.conftest import wait_for_worker
from tests.support.stack import ADMIN_TOKEN, EmbeddedStack, ServerStack

Payload = dict[str, Any]
Number = int | float | Fraction

DAY_MS = 86_400_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CHANNELS = ("digital", "phone", "paper", "face_to_face", "assisted_digital")
OUTCOMES = ("started", "completed", "failed", "abandoned")
UNITS = {
    "transactions_started": "count",
    "transactions_completed": "count",
    "digital_takeup": "ratio",
    "completion_rate": "ratio",
    "total_cost": "GBP",
    "cost_per_transaction": "GBP",
    "time_to_complete_mean": "ms",
    "time_to_complete_median": "ms",
    "time_to_complete_p95": "ms",
    "satisfaction_responses": "count",
    "user_satisfaction_score": "ratio",
    "availability": "ratio",
    "response_time_mean": "ms",
    "response_time_p95": "ms",
    "journey_starts": "count",
    "journey_completion_rate": "ratio",
}
"""Every KPI of a summary and of a series bucket, with its unit."""
MONEY = frozenset({"total_cost", "cost_per_transaction"})
GROUP_FIGURES = (
    "number_of_transactions",
    "total_cost_gbp",
    "cost_per_transaction_gbp",
    "digital_takeup",
    "completion_rate",
    "user_satisfaction_score",
)


# --- time --------------------------------------------------------------------------------------


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def to_ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def instant_ms(value: int | str) -> int:
    """A posted time (epoch ms, or ISO 8601 with an offset) as epoch ms."""
    if isinstance(value, int):
        return value
    return to_ms(datetime.fromisoformat(value))


def iso_z(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``, the form the series parameters take."""
    return (EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_start_ms(ms: int) -> int:
    return ms - ms % DAY_MS


def _period_end_ms(period: str, start_ms: int) -> int:
    start = EPOCH + timedelta(milliseconds=start_ms)
    if period == "day":
        return start_ms + DAY_MS
    if period == "week":
        return start_ms + 7 * DAY_MS
    months = {"month": 1, "quarter": 3, "year": 12}[period]
    total = start.month - 1 + months
    return to_ms(start.replace(year=start.year + total // 12, month=total % 12 + 1))


# --- seeded traffic for today --------------------------------------------------------------------


@dataclass
class Traffic:
    transactions: list[Payload] = field(default_factory=list)
    ratings: list[Payload] = field(default_factory=list)
    costs: list[Payload] = field(default_factory=list)


def todays_traffic(seed: int, service: str, profile: int, events_per_day: int, now: int) -> Traffic:
    """The simulator's day (``producers.simulate``, in-process and seeded) for ``service`` shaped like
    the ``profile``-th catalogue service, squeezed into the part of today (UTC) before ``now``:
    every time ``t`` of the simulated day becomes ``midnight + (t - midnight) * elapsed / day``
    (integer maths, so a start never moves after its completion). Journeys and probes are left
    out; transactions, ratings and the per-channel day costs are kept as the write API takes them."""
    midnight = day_start_ms(now)
    elapsed = now - 2000 - midnight
    assert elapsed > 0, "too close to midnight UTC"
    shape = replace(default_services(profile + 1)[profile], slug=service)
    today = (EPOCH + timedelta(milliseconds=midnight)).date()

    def squeeze(t: int) -> int:
        return midnight + (t - midnight) * elapsed // DAY_MS

    out = Traffic()
    for event in simulate(seed, today, [shape], events_per_day):
        if isinstance(event, TransactionSim):
            tx: Payload = dict(event.payload)
            tx["timestamp"] = squeeze(tx["timestamp"])
            if "started_at" in tx:
                tx["started_at"] = squeeze(tx["started_at"])
            out.transactions.append(tx)
        elif isinstance(event, RatingSim):
            rating: Payload = dict(event.payload)
            rating["timestamp"] = squeeze(rating["timestamp"])
            out.ratings.append(rating)
        elif isinstance(event, CostSim):
            out.costs.append(dict(event.payload))
    return out


def batches(items: Sequence[Payload], size: int) -> list[list[Payload]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


# --- what the platform acknowledged ----------------------------------------------------------------


@dataclass
class Ledger:
    """Every event the platform acknowledged (a 202, or an SDK delivery report), once per
    (service, id); for costs also the order in which each id was first acknowledged."""

    transactions: dict[tuple[str, str], Payload] = field(default_factory=dict)
    ratings: dict[tuple[str, str], Payload] = field(default_factory=dict)
    costs: dict[tuple[str, str], tuple[int, Payload]] = field(default_factory=dict)
    probes: dict[tuple[str, int], tuple[bool, int]] = field(default_factory=dict)
    """Probe results by (service, ts_ms): (up, response_ms, -1 without a response)."""
    _order: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def acknowledged(self, kind: str, service: str, events: Iterable[Payload]) -> None:
        with self._lock:
            for e in events:
                key = (service, str(e["id"]))
                if kind == "transactions":
                    self.transactions.setdefault(key, e)
                elif kind == "ratings":
                    self.ratings.setdefault(key, e)
                elif key not in self.costs:
                    self.costs[key] = (next(self._order), e)

    def probe(self, service: str, ts_ms: int, up: bool, response_ms: int) -> None:
        with self._lock:
            self.probes[service, ts_ms] = (up, response_ms)

    def copy(self) -> Ledger:
        with self._lock:
            return Ledger(
                dict(self.transactions), dict(self.ratings), dict(self.costs), dict(self.probes), self._order
            )


# --- the independent count --------------------------------------------------------------------------


def channel_of(value: str) -> str:
    """The write API's spelling rule: case-insensitive, ``-`` or a space for ``_``."""
    return value.lower().replace(" ", "_").replace("-", "_")


def e4(pounds: int | float) -> int:
    """Pounds as posted → exact ten-thousandths (the number as written, not its binary float)."""
    return int(Decimal(str(pounds)) * 10_000)


def histogram_edge(duration_ms: int) -> int:
    """The upper edge of the histogram bucket holding a duration: exact up to 16 ms, then eight
    equal steps between successive powers of two, the last edge 2**40 ms."""
    d = max(duration_ms, 0)
    if d <= 16:
        return d
    if d >= 2**40:
        return 2**40
    base = 1 << ((d - 1).bit_length() - 1)  # the largest power of two below d
    step = base // 8
    return base + -(-(d - base) // step) * step


def nearest_rank_edge(values: list[int], q: Fraction) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return histogram_edge(ordered[max(1, math.ceil(q * len(ordered))) - 1])


def _ratio(a: int, b: int) -> Fraction | None:
    return None if b == 0 else Fraction(a, b)


@dataclass(frozen=True)
class WindowCount:
    """One service's events in one window, counted from the ledger."""

    volumes: dict[str, dict[str, int]]
    tx_costs_e4: list[int]
    ttc_ms: list[int]
    ratings: list[int]
    period_cost_e4: Fraction | None
    probes: list[tuple[bool, int]] = field(default_factory=list)

    @property
    def started(self) -> int:
        return sum(v["started"] for v in self.volumes.values())

    @property
    def completed(self) -> int:
        return sum(v["completed"] for v in self.volumes.values())

    @property
    def total_cost_e4(self) -> Fraction | None:
        if not self.tx_costs_e4 and self.period_cost_e4 is None:
            return None
        return sum(self.tx_costs_e4, Fraction(0)) + (self.period_cost_e4 or Fraction(0))

    def exact(self) -> dict[str, Number | None]:
        """Each KPI exactly (Fractions), before the JSON's one rounding."""
        digital = self.volumes["digital"]["completed"]
        total = self.total_cost_e4
        cpt = None if total is None or self.completed == 0 else total / self.completed
        n = len(self.ratings)
        responses = [ms for _, ms in self.probes if ms >= 0]
        return {
            "transactions_started": self.started,
            "transactions_completed": self.completed,
            "digital_takeup": None if digital == 0 else Fraction(digital, self.completed),
            "completion_rate": _ratio(self.completed, self.started),
            "total_cost": None if total is None else total / 10_000,
            "cost_per_transaction": None if cpt is None else cpt / 10_000,
            "time_to_complete_mean": _ratio(sum(self.ttc_ms), len(self.ttc_ms)),
            "time_to_complete_median": nearest_rank_edge(self.ttc_ms, Fraction(1, 2)),
            "time_to_complete_p95": nearest_rank_edge(self.ttc_ms, Fraction(95, 100)),
            "satisfaction_responses": n,
            "user_satisfaction_score": None if n == 0 else (Fraction(sum(self.ratings), n) - 1) / 4,
            "availability": _ratio(sum(up for up, _ in self.probes), len(self.probes)),
            "response_time_mean": _ratio(sum(responses), len(responses)),
            "response_time_p95": nearest_rank_edge(responses, Fraction(95, 100)),
            # these tests send no beacon events
            "journey_starts": 0,
            "journey_completion_rate": None,
        }

    def values(self) -> dict[str, int | float | None]:
        return {k: json_number(v) for k, v in self.exact().items()}


def json_number(value: Number | None) -> int | float | None:
    return float(value) if isinstance(value, Fraction) else value


def effective_costs(ledger: Ledger, service: str) -> list[tuple[int, int, int]]:
    """``(start_ms, end_ms, amount_e4)`` of the channel-``all`` period costs in force: per
    (period, start), the post whose id was acknowledged last."""
    latest: dict[tuple[str, int], tuple[int, Payload]] = {}
    for (svc, _), (order, c) in ledger.costs.items():
        if svc != service or channel_of(c.get("channel", "all")) != "all":
            continue
        key = (c["period"], instant_ms(c["start"]) if "T" in c["start"] else _date_ms(c["start"]))
        if key not in latest or order > latest[key][0]:
            latest[key] = (order, c)
    return [(start, _period_end_ms(p, start), e4(c["amount"])) for (p, start), (_, c) in latest.items()]


def _date_ms(text: str) -> int:
    return to_ms(datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC))


def count_window(ledger: Ledger, service: str, start_ms: int, end_ms: int) -> WindowCount:
    volumes = {c: dict.fromkeys(OUTCOMES, 0) for c in CHANNELS}
    costs: list[int] = []
    ttc: list[int] = []
    for (svc, _), tx in ledger.transactions.items():
        ts = instant_ms(tx["timestamp"])
        if svc != service or not start_ms <= ts < end_ms:
            continue
        volumes[channel_of(tx["channel"])][tx["outcome"]] += 1
        if tx.get("cost") is not None:
            costs.append(e4(tx["cost"]))
        if tx["outcome"] == "completed" and tx.get("started_at") is not None:
            ttc.append(ts - instant_ms(tx["started_at"]))
    ratings = [
        int(r["rating"])
        for (svc, _), r in ledger.ratings.items()
        if svc == service and start_ms <= instant_ms(r["timestamp"]) < end_ms
    ]
    shares = [
        Fraction(amount * (min(end, end_ms) - max(start, start_ms)), end - start)
        for start, end, amount in effective_costs(ledger, service)
        if max(start, start_ms) < min(end, end_ms)
    ]
    probes = [
        result for (svc, ts), result in ledger.probes.items() if svc == service and start_ms <= ts < end_ms
    ]
    return WindowCount(volumes, costs, ttc, ratings, sum(shares, Fraction(0)) if shares else None, probes)


def window_ms(window: dict[str, str]) -> tuple[int, int]:
    return instant_ms(window["start"]), instant_ms(window["end"])


def change(current: Number | None, previous: Number | None) -> dict[str, int | float | None]:
    """Current - previous, and that ÷ |previous| (none when previous is none or 0)."""
    if current is None or previous is None:
        return {"absolute": None, "relative": None}
    diff = Fraction(current) - Fraction(previous)
    both_int = isinstance(current, int) and isinstance(previous, int)
    return {
        "absolute": int(diff) if both_int else float(diff),
        "relative": None if previous == 0 else float(diff / abs(Fraction(previous))),
    }


def expected_summary(ledger: Ledger, service: str, body: dict[str, Any]) -> dict[str, Any]:
    """What ``GET /services/{service}/kpis`` must say for the windows ``body`` names."""
    cur = count_window(ledger, service, *window_ms(body["window"]))
    prev = count_window(ledger, service, *window_ms(body["previous_window"]))
    now_exact, before_exact = cur.exact(), prev.exact()
    kpis = {}
    for name, unit in UNITS.items():
        value, previous = json_number(now_exact[name]), json_number(before_exact[name])
        # money keeps its exact value until the change is taken; other figures are rounded first
        delta = change(now_exact[name], before_exact[name]) if name in MONEY else change(value, previous)
        kpis[name] = {"value": value, "unit": unit, "previous": previous, "change": delta}
    return {"kpis": kpis, "volumes": {"window": cur.volumes, "previous_window": prev.volumes}}


def summary_as_compared(body: dict[str, Any]) -> dict[str, Any]:
    """The parts of a summary that ``expected_summary`` predicts."""
    return {
        "kpis": {
            k: {f: v[f] for f in ("value", "unit", "previous", "change")} for k, v in body["kpis"].items()
        },
        "volumes": body["volumes"],
    }


def expected_series(ledger: Ledger, service: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        count_window(ledger, service, instant_ms(b["_start_at"]), instant_ms(b["_end_at"])).values()
        for b in body["data"]
    ]


def round_half_away(value: Fraction, places: int) -> float:
    scale = 10**places
    n = math.floor(abs(value) * scale + Fraction(1, 2))
    return float(Fraction(n if value >= 0 else -n, scale))


def expected_group(ledger: Ledger, services: Sequence[str], body: dict[str, Any]) -> dict[str, Any]:
    """What ``GET /groups/{group}/kpis`` must say: each service's figures, then sums and means
    weighted by completions across them."""
    start, end = window_ms(body["window"])
    per: dict[str, dict[str, Number | None]] = {}
    for s in sorted(services):
        w = count_window(ledger, s, start, end)
        x = w.exact()
        per[s] = {
            "number_of_transactions": w.completed,
            "total_cost_gbp": x["total_cost"],
            "cost_per_transaction_gbp": x["cost_per_transaction"],
            "digital_takeup": x["digital_takeup"],
            "completion_rate": x["completion_rate"],
            "user_satisfaction_score": x["user_satisfaction_score"],
        }

    def mean(name: str, places: int) -> float | None:
        pairs = [(f[name], f["number_of_transactions"]) for f in per.values()]
        known = [(Fraction(v), int(n)) for v, n in pairs if v is not None and int(n or 0) > 0]  # type: ignore[arg-type]
        volume = sum(n for _, n in known)
        return (
            None
            if volume == 0
            else round_half_away(sum((v * n for v, n in known), Fraction(0)) / volume, places)
        )

    totals = [Fraction(f["total_cost_gbp"]) for f in per.values() if f["total_cost_gbp"] is not None]
    figures = {
        "number_of_transactions": sum(int(f["number_of_transactions"] or 0) for f in per.values()),
        "total_cost_gbp": float(sum(totals, Fraction(0))) if totals else None,
        "cost_per_transaction_gbp": mean("cost_per_transaction_gbp", 1),
        "digital_takeup": mean("digital_takeup", 3),
        "completion_rate": mean("completion_rate", 3),
        "user_satisfaction_score": mean("user_satisfaction_score", 3),
    }
    return {
        "figures": figures,
        "services": [
            {"service": s, "figures": {k: json_number(v) for k, v in f.items()}} for s, f in per.items()
        ],
    }


# --- driving a running stack ---------------------------------------------------------------------

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Target:
    """A running stack as the KPI tests see it: where its API is and where its Kafka is."""

    name: str
    base_url: str
    bootstrap: str
    topic_prefix: str
    env: dict[str, str]
    server: ServerStack | None = None
    alive: Callable[[], bool] = lambda: True
    """Whether the stack's worker process is still running."""

    @classmethod
    def of_server(cls, stack: ServerStack) -> Target:
        env = stack.env
        return cls(
            "server",
            stack.base_url,
            env["PERFPLAT_KAFKA_BOOTSTRAP"],
            env["PERFPLAT_KAFKA__TOPIC_PREFIX"],
            env,
            stack,
            lambda: stack.worker.proc is not None and stack.worker.proc.poll() is None,
        )

    @classmethod
    def of_embedded(cls, stack: EmbeddedStack) -> Target:
        return cls(
            "embedded",
            stack.base_url,
            f"127.0.0.1:{stack.broker_port}",
            "perfplat",
            stack.env,
            None,
            lambda: stack.up.proc is not None and stack.up.proc.poll() is None,
        )

    def topic(self, kind: str) -> str:
        return f"{self.topic_prefix}.{kind}"

    def register(self, slug: str, group: str = "", token: str | None = None, **settings: Any) -> str:
        """Add a service through the admin API and wait until ingest and reads know it; returns
        its bearer token."""
        doc = {"slug": slug, "name": slug.replace("-", " ").title(), "group": group, **settings}
        if token is not None:
            doc["bearer_token"] = token
        r = httpx.post(self.base_url + "/_admin/services", json=doc, headers=ADMIN, timeout=10)
        assert r.status_code == 201, r.text
        bearer = str(r.json()["bearer_token"])

        def known() -> bool:
            read = httpx.get(f"{self.base_url}/services/{slug}/kpis", timeout=10)
            ingest = httpx.post(f"{self.base_url}/services/{slug}/ratings", content=b"[]", timeout=10)
            return read.status_code == 200 and ingest.status_code == 400  # "holds no events", not 404

        wait_until(known, 20, 0.1)
        return bearer

    def configure(self, slug: str, **settings: Any) -> None:
        r = httpx.patch(f"{self.base_url}/_admin/services/{slug}", json=settings, headers=ADMIN, timeout=10)
        assert r.status_code == 200, r.text

    def post(
        self, kind: str, service: str, body: Any, token: str | None = None, **headers: str
    ) -> httpx.Response:
        """``POST /services/{service}/{kind}``; ``body`` is JSON-encoded unless it is bytes."""
        h = dict(headers)
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        content = body if isinstance(body, bytes) else None
        return httpx.post(
            f"{self.base_url}/services/{service}/{kind}",
            content=content,
            json=None if content is not None else body,
            headers=h,
            timeout=30,
        )

    def post_acknowledged(
        self, ledger: Ledger, kind: str, service: str, events: list[Payload], token: str | None
    ) -> None:
        """Post until the platform acknowledges (202), as a client retries a 503 with the same
        ids; then the events go into the ledger."""
        for _ in range(10):
            try:
                r = self.post(kind, service, events, token if kind != "ratings" else None)
            except httpx.TransportError:
                time.sleep(0.5)
                continue
            if r.status_code == 202:
                assert r.json()["ids"] == [e["id"] for e in events], r.text
                ledger.acknowledged(kind, service, events)
                return
            assert r.status_code == 503, r.text
            time.sleep(0.5)
        raise AssertionError(f"{kind} of {service} never acknowledged")

    def get(self, path: str, **params: str) -> dict[str, Any]:
        r = httpx.get(self.base_url + path, params=params, timeout=30)
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json()
        return doc

    def summary(self, service: str) -> dict[str, Any]:
        return self.get(f"/services/{service}/kpis", period="day")


@contextlib.contextmanager
def running_stack(
    kind: str, workdir: Path, bootstrap: str = "", clickhouse_url: str = ""
) -> Iterator[Target]:
    """``server``: ``perfplat api`` + ``perfplat worker`` on the given broker and ClickHouse server;
    ``embedded``: ``perfplat up`` (its own broker, chdb, and the prober it starts). Logs are
    printed when the block ends (pytest shows them for a failed test)."""
    if kind == "server":
        server = ServerStack(workdir, bootstrap, clickhouse_url, unique("kpi"))
        server.start()
        try:
            wait_for_worker(server.base_url)
            yield Target.of_server(server)
        finally:
            print("api log:\n" + server.api.log_tail() + "\nworker log:\n" + server.worker.log_tail())
            server.stop()
    else:
        up = EmbeddedStack(workdir, {"PERFPLAT_ADMIN_TOKEN": ADMIN_TOKEN})
        up.start()
        try:
            wait_for_worker(up.base_url)
            yield Target.of_embedded(up)
        finally:
            print("perfplat up log:\n" + up.up.log_tail())
            up.stop()


def wait_until(predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not met in {timeout_s} s")
        time.sleep(interval_s)


def differences(got: Any, want: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Where two JSON-like values differ, as (path, got, expected)."""
    if isinstance(got, dict) and isinstance(want, dict):
        return [
            d
            for k in sorted(set(got) | set(want), key=str)
            for d in differences(got.get(k), want.get(k), f"{path}/{k}")
        ]
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        return [
            d
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            for d in differences(g, w, f"{path}[{i}]")
        ]
    return [] if got == want else [(path, got, want)]


def settle(
    fetch: Callable[[], dict[str, Any]],
    project: Callable[[dict[str, Any]], Any],
    expect: Callable[[dict[str, Any]], Any],
    timeout_s: float = 60,
) -> dict[str, Any]:
    """Poll ``fetch`` until the projection of its answer equals what ``expect`` says for that same
    answer (its windows); fail with both when it does not within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = fetch()
        got, want = project(body), expect(body)
        if got == want:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(
                f"figures did not settle on the independent count in {timeout_s} s; "
                f"(path, got, expected): {differences(got, want)}"
            )
        time.sleep(0.25)


def settle_summary(target: Target, ledger: Ledger, service: str, timeout_s: float = 60) -> dict[str, Any]:
    """Wait until the service's figures for today equal the count of ``ledger``, in a summary
    whose window reaches the moment of the call; return them. (A summary cached before a minute
    boundary ends at it: an event acknowledged after that boundary is outside its window, so
    figure and count agree without the event, and that summary proves nothing.)"""
    since = now_ms()

    def covered(body: dict[str, Any]) -> dict[str, Any]:
        return {"window reaches the call": window_ms(body["window"])[1] >= since}

    return settle(
        lambda: target.summary(service),
        lambda body: {**summary_as_compared(body), **covered(body)},
        lambda body: {**expected_summary(ledger, service, body), "window reaches the call": True},
        timeout_s,
    )


def settle_group(target: Target, ledger: Ledger, group: str, services: Sequence[str]) -> dict[str, Any]:
    """Wait until the group's figures for today equal the count of ``ledger``; return them."""
    return settle(
        lambda: target.get(f"/groups/{group}/kpis", period="day"),
        lambda body: {"figures": body["figures"], "services": body["services"]},
        lambda body: expected_group(ledger, services, body),
    )


def stack_of(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, name: str
) -> Iterator[Target]:
    """For a module fixture parametrized ``["embedded", "server"]``: that stack, started in a
    directory named after ``name`` (the server one on the session's broker and ClickHouse server),
    and stopped when the module is done, before the next parameter's starts."""
    if request.param == "server":
        broker, clickhouse = request.getfixturevalue("broker"), request.getfixturevalue("clickhouse_server")
        with running_stack("server", tmp_path_factory.mktemp(name), broker.bootstrap, clickhouse.url) as t:
            yield t
    else:
        with running_stack("embedded", tmp_path_factory.mktemp(f"{name}-up")) as t:
            yield t
