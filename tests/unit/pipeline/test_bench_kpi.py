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
