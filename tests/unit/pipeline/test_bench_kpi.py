"""``perfplat bench kpi``'s wait for a probe to be counted (the warm-up before the first run, and
every probe's freshness), against a stand-in for the KPI API."""

from __future__ import annotations

import httpx
import pytest

from pipeline import bench_kpi


def kpi_api(counts: list[int]) -> httpx.Client:
    """Answers the probe service's KPI summary with the next of ``counts`` (the last one repeats)."""

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/services/{bench_kpi.PROBE}/kpis"
        value = counts.pop(0) if len(counts) > 1 else counts[0]
        return httpx.Response(200, json={"kpis": {"transactions_started": {"value": value}}})

    return httpx.Client(base_url="http://kpi.test", transport=httpx.MockTransport(answer))


def test_waits_until_the_probe_count_reaches_the_probes_sent() -> None:
    counts = [0, 0, 2, 3]
    with kpi_api(counts) as client:
        bench_kpi._wait_counted(client, 3, 5, "a probe")
    assert counts == [3]  # it stopped polling at the first answer that counted them all


def test_a_probe_never_counted_is_an_error_naming_it() -> None:
    with kpi_api([1]) as client, pytest.raises(RuntimeError, match="the warm-up probe was not counted"):
        bench_kpi._wait_counted(client, 2, 0.1, "the warm-up probe")


def test_the_read_report_sets_the_summary_beside_its_control() -> None:
    summary = bench_kpi.ReadRun("/s", 61.5, [float(ms) for ms in range(1, 101)])  # p50 50.5, p99 99.01
    control = bench_kpi.ReadRun("/healthz", 3.25, [2.0] * 99 + [40.0])
    text = bench_kpi.format_read(summary, control, 20, 0.1)
    lines = text.splitlines()
    assert lines[0] == "read: 20 pollers of one service's KPI summary, each every 0.1 s"
    assert lines[1].split(": ", 1)[1] == (
        "100 requests: p50 2.0 ms, p99 2.4 ms, max 40.0 ms (first request alone 3.2 ms)"
    )
    assert lines[2].startswith("  KPI summary:")
    assert (
        "p50 50.5 ms, p99 99.0 ms, max 100.0 ms (first request alone 61.5 ms); target p99 <= 20 ms"
        in lines[2]
    )
