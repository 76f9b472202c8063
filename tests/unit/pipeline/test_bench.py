"""The benchmark client's pure parts: statistics, payloads, request bytes, response heads, report."""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import time

import orjson
import pytest

from pipeline import bench

EVENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # the beacon contract's id format
SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def split_request(raw: bytes) -> tuple[dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    headers[":request-line"] = lines[0]
    return headers, body


# --- statistics -------------------------------------------------------------------------------


def test_percentile_interpolates_linearly_between_closest_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]  # order does not matter
    assert bench.percentile(values, 0) == 1.0
    assert bench.percentile(values, 100) == 4.0
    assert bench.percentile(values, 50) == 2.5
    assert bench.percentile(values, 25) == pytest.approx(1.75)
    assert bench.percentile(list(map(float, range(1, 101))), 99) == pytest.approx(99.01)
    assert bench.percentile([7.0], 99) == 7.0


def test_percentile_of_nothing_is_nan_and_out_of_range_is_refused() -> None:
    assert math.isnan(bench.percentile([], 50))
    with pytest.raises(ValueError):
        bench.percentile([1.0], 101)
    with pytest.raises(ValueError):
        bench.percentiles([1.0], (50, -1))


def test_percentiles_agree_with_percentile() -> None:
    values = [float(v * 37 % 101) for v in range(500)]
    assert bench.percentiles(values, (50, 99)) == [bench.percentile(values, 50), bench.percentile(values, 99)]


def test_median() -> None:
    assert bench.median([3.0, 1.0, 2.0]) == 2.0
    assert bench.median([1.0, 2.0, 3.0, 10.0]) == 2.5
    assert math.isnan(bench.median([]))


def test_spread_ignores_runs_without_a_sample() -> None:
    assert bench.spread([3.0, math.nan, 1.0, 2.0]) == bench.Spread(2.0, 1.0, 3.0)
    empty = bench.spread([math.nan])
    assert math.isnan(empty.median) and math.isnan(empty.min) and math.isnan(empty.max)


def test_split_evenly() -> None:
    assert bench.split_evenly(64, 3) == [22, 21, 21]
    assert bench.split_evenly(2, 4) == [1, 1, 0, 0]
    assert sum(bench.split_evenly(100, 7)) == 100


# --- results ----------------------------------------------------------------------------------


def load(
    ok: int, events: int, latencies_s: list[float], errors: dict[str, int] | None = None
) -> bench.LoadSample:
    sample = bench.LoadSample(ok=ok, events=events, errors=dict(errors or {}), cpu_s=1.0)
    sample.latencies.extend(latencies_s)
    return sample


def test_run_result_rates_and_latencies() -> None:
    r = bench.run_result("single", 0, 2.0, load(400, 400, [0.001, 0.002, 0.003], {"503": 5}), None)
    assert r.rps == 200 and r.events_per_s == 200
    assert r.p50_ms == pytest.approx(2.0)
    assert r.errors == {"503": 5}
    assert r.client_cpu == 0.5
    assert r.probes is None


def test_run_result_freshness() -> None:
    probe = bench.ProbeSample(seconds=[0.5, 0.7, 0.6], timeouts=1, failures=2)
    r = bench.run_result("batch", 0, 1.0, load(10, 500, [0.01]), probe)
    assert r.probes == 6
    assert r.freshness_p50_s == pytest.approx(0.6)
    assert r.probe_timeouts == 1 and r.probe_failures == 2


def test_load_samples_merge() -> None:
    a = load(1, 50, [0.1], {"conn": 1})
    a.merge(load(2, 100, [0.2, 0.3], {"conn": 2, "503": 1}))
    assert (a.ok, a.events, a.errors, list(a.latencies)) == (3, 150, {"conn": 3, "503": 1}, [0.1, 0.2, 0.3])


def test_summarise_runs_takes_medians_and_sums_counts() -> None:
    probe = bench.ProbeSample(seconds=[0.5])
    runs = [
        bench.run_result("batch", i, 1.0, load(ok, ok * 50, [ok / 1e6], {"503": 1}), probe)
        for i, ok in enumerate((300, 100, 200))
    ]
    s = bench.summarise_runs(runs)
    assert s.rps == bench.Spread(200, 100, 300)
    assert s.events_per_s.median == 10_000
    assert s.p50_ms.median == pytest.approx(0.2)
    assert s.errors == {"503": 3}
    assert s.probes == 3 and s.probe_timeouts == 0
    assert s.freshness_p50_s is not None and s.freshness_p50_s.median == 0.5
    with pytest.raises(ValueError):
        bench.summarise_runs([])


def test_summary_of_a_scenario_without_probes_has_no_freshness() -> None:
    s = bench.summarise_runs([bench.run_result("read", 0, 1.0, load(5, 0, [0.001]), None)])
    assert s.freshness_p50_s is None and s.probes is None


# --- payloads ---------------------------------------------------------------------------------


def test_journey_batch_reads_like_a_journey() -> None:
    now = int(time.time() * 1000)
    events = bench.journey_events("apply-visa", 50, ts_ms=now, id_prefix="run1.7")
    assert len(events) == 50
    assert (events[0]["action"], events[0]["label"]) == ("stage", "start")
    assert (events[-1]["action"], events[-1]["label"]) == ("stage", "done")
    assert {e["label"] for e in events[1:-1] if e["action"] == "stage"} == {"intermediate"}
    helps = [e for e in events if e["action"] == "help"]
    assert helps and all(e["kind"] == "click" for e in helps)
    assert {e["category"] for e in events} == {"apply-visa"}
    assert all(e["kind"] in ("page", "click") and e["path"].startswith("/") for e in events)
    assert len({e["id"] for e in events}) == 50
    assert all(e["ts"] <= now and e["ts"] > now - 7 * 86_400_000 for e in events)


def test_single_events_vary_by_variant() -> None:
    kinds = {
        (e["action"], e["label"])
        for v in range(4)
        for e in bench.journey_events("svc", 1, ts_ms=1, id_prefix="x", variant=v)
    }
    assert ("stage", "start") in kinds and ("stage", "done") in kinds and len(kinds) == 4
    with pytest.raises(ValueError):
        bench.journey_events("svc", 0, ts_ms=1, id_prefix="x")


def test_beacon_body_is_an_object_for_one_event_and_an_array_for_more() -> None:
    one = bench.journey_events("svc", 1, ts_ms=1, id_prefix="a")
    two = bench.journey_events("svc", 2, ts_ms=1, id_prefix="b")
    assert isinstance(orjson.loads(bench.beacon_body(one)), dict)
    assert len(orjson.loads(bench.beacon_body(two))) == 2


@pytest.mark.parametrize("batch_size", [1, 3, 50, 1000])
def test_rendered_bodies_are_valid_with_the_right_size_and_length(batch_size: int) -> None:
    templates = bench.body_templates(
        "svc", batch_size, tag="abc123b0p0", ts_ms=int(time.time() * 1000), pool=4
    )
    assert len(templates) == 4
    for reqno, template in enumerate(templates, start=1):
        assert template.events == batch_size
        headers, body = split_request(b"X\r\n" + template.render(reqno))
        assert int(headers["content-length"]) == len(body)
        doc = orjson.loads(body)
        events = [doc] if batch_size == 1 else doc
        assert len(events) == batch_size
        assert all(EVENT_ID.match(e["id"]) for e in events)


def test_event_ids_are_unique_across_requests_and_bodies() -> None:
    templates = bench.body_templates("svc", 20, tag="abc123b0p0", ts_ms=1_700_000_000_000, pool=8)
    seen: set[str] = set()
    for reqno in range(1, 501):
        for e in orjson.loads(templates[reqno % len(templates)].render(reqno).partition(b"\r\n\r\n")[2]):
            seen.add(e["id"])
    assert len(seen) == 500 * 20


def test_template_refuses_a_tag_that_could_collide_with_the_slot() -> None:
    with pytest.raises(ValueError):
        bench.body_templates("svc", 1, tag="Bad~", ts_ms=1)


def test_feeder_posts_whole_requests_for_distinct_visitors() -> None:
    bodies = bench.body_templates("svc", 5, tag="t1", ts_ms=int(time.time() * 1000), pool=3)
    feeder = bench.Feeder(bodies=bodies, agent_cut=bench.agent_cut("127.0.0.1:8000", "t1"), visitors=7)
    agents, ids = set(), []
    for _ in range(70):
        raw, events = feeder.next()
        assert events == 5
        headers, body = split_request(raw)
        assert headers[":request-line"] == "POST /beacon HTTP/1.1"
        assert headers["host"] == "127.0.0.1:8000"
        assert headers["content-type"] == "text/plain;charset=UTF-8"
        assert int(headers["content-length"]) == len(body)
        agents.add(headers["user-agent"])
        ids += [e["id"] for e in orjson.loads(body)]
    assert agents == {bench.visitor_agent("t1", v) for v in range(7)}
    assert len(set(ids)) == len(ids) == 350
    assert feeder.count_accepted


def test_feeder_reads_the_platform_one_time_in_ten() -> None:
    service = bench.get_request("h", "/services/svc/users-now")
    platform = bench.get_request("h", "/users-now")
    feeder = bench.Feeder(gets=[platform if i == 0 else service for i in range(10)])
    sent = [feeder.next() for _ in range(100)]
    assert sum(raw == platform for raw, _ in sent) == 10
    assert all(events == 0 for _, events in sent) and not feeder.count_accepted
    with pytest.raises(ValueError):
        bench.Feeder()


# --- responses --------------------------------------------------------------------------------


def test_parse_head_content_length_and_keep_alive() -> None:
    head = b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\nContent-Length: 42\r\n\r\n"
    assert bench.parse_head(head) == (202, 42, False)


def test_parse_head_close_chunked_and_http10() -> None:
    assert bench.parse_head(
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
        b"content-length: 2\r\n\r\n"
    ) == (503, 2, True)
    assert bench.parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") == (
        200,
        bench.CHUNKED,
        False,
    )
    assert bench.parse_head(b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n") == (200, 1, True)
    assert (
        bench.parse_head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\ncontent-length: 1\r\n\r\n")[2]
        is False
    )
    assert bench.parse_head(b"HTTP/1.1 200 OK\r\n\r\n") == (200, bench.UNTIL_CLOSE, True)
    assert bench.parse_head(b"HTTP/1.1 204 No Content\r\n\r\n") == (204, 0, False)
    with pytest.raises(ValueError):
        bench.parse_head(b"garbage\r\n\r\n")


def test_accepted_count() -> None:
    assert bench.accepted_count(b'{"status":"ok","accepted":50,"ids":["a"]}', 1) == 50
    assert bench.accepted_count(b'{"status": "ok", "accepted": 7}', 1) == 7
    assert bench.accepted_count(b'{"status":"ok"}', 3) == 3
    assert bench.accepted_count(b'{"accepted":"x"}', 3) == 3


def test_read_chunked() -> None:
    async def go() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(b'4\r\n{"a"\r\n3;ext=1\r\n:1}\r\n0\r\nTrailer: x\r\n\r\nNEXT')
        body = await bench._read_chunked(reader)
        assert await reader.read(4) == b"NEXT"  # stops exactly at the end of the message
        return body

    assert asyncio.run(go()) == b'{"a":1}'


# --- report and options -----------------------------------------------------------------------


def test_options_defaults_and_fresh_service() -> None:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args([])
    assert (args.url, args.scenario, args.duration, args.runs) == ("http://127.0.0.1:8000", "all", 10.0, 3)
    assert (args.concurrency, args.batch_size, args.visitors, args.pollers) == (64, 50, 10_000, 100)
    cfg, other = bench.config_from_args(args), bench.config_from_args(args)
    assert re.fullmatch(r"bench-[0-9a-f]{6}", cfg.service) and cfg.service != other.service
    assert SLUG.match(cfg.probe_service(2))
    assert (cfg.host, cfg.port, cfg.scenarios) == ("127.0.0.1", 8000, ("single", "batch", "read"))
    for bad in (["--service", "Not A Slug"], ["--batch-size", "1001"], ["--duration", "0"], ["--runs", "0"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    with pytest.raises(ValueError):
        bench.config_from_args(parser.parse_args(["--url", "https://example.org"]))


def test_report_lines() -> None:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    cfg = bench.config_from_args(parser.parse_args(["--service", "svc"]))
    probe = bench.ProbeSample(seconds=[0.62])
    single = bench.summarise_runs([bench.run_result("single", 0, 1.0, load(4123, 4123, [0.0031]), None)])
    batch = bench.summarise_runs(
        [bench.run_result("batch", 0, 1.0, load(410, 20_500, [0.02], {"503": 2, "conn": 1}), probe)]
    )
    report = bench.format_report(cfg, [single, batch])
    assert (
        "single   rps median 4123 (min 4123, max 4123)  events/s 4123  p50 3.10 ms  p99 3.10 ms  errors 0"
        in report
    )
    assert "events/s 20500" in report and "errors 3 (503: 2, conn: 1)" in report
    assert "freshness p50 0.62 s  p99 0.62 s  (probes 1, timeouts 0, failed 0)" in report
    doc = orjson.loads(bench.results_json(cfg, [single, batch], []))
    assert doc["scenarios"]["batch"]["summary"]["rps"]["median"] == 410
    assert doc["scenarios"]["single"]["summary"]["freshness_p50_s"] is None


def test_report_shows_probes_cut_off_by_the_end_of_a_run() -> None:
    probe = bench.ProbeSample(unfinished=1)
    s = bench.summarise_runs([bench.run_result("batch", 0, 1.0, load(1, 50, [0.01]), probe)])
    assert (
        "freshness p50 - s  p99 - s  (probes 0, timeouts 0, failed 0, unfinished 1)"
        in bench.format_summary(s)
    )
