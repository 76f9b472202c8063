"""The backdrop-compatible data-set API end to end: the original Python client posts, empties and
reads through a running stack (api + worker, real broker, ClickHouse 18.16); hostile requests
get the original's 4xx and store nothing."""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import unique
from tests.support.pp_client import fetch_client, run_client
from tests.support.stack import ADMIN_TOKEN, ServerStack, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(server_stack: ServerStack) -> ServerStack:
    """The e2e tier's running api + worker (it carries an admin token and a data directory)."""
    return server_stack


@pytest.fixture(scope="module")
def client_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fetch_client(tmp_path_factory.mktemp("pp-client"))


def create_set(stack: ServerStack, **settings: Any) -> tuple[str, str, str]:
    group, data_type = unique("grp"), "tx"
    r = httpx.post(
        stack.base_url + "/_admin/data-sets",
        json={"data_group": group, "data_type": data_type, **settings},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert r.status_code == 201, r.text
    return group, data_type, r.json()["bearer_token"]


def records(n: int, seed: int = 0) -> list[dict[str, Any]]:
    channels = ["digital", "phone", "paper"]
    return [
        {
            "_id": f"rec-{seed}-{i}",
            "_timestamp": f"2014-01-{1 + i % 28:02d}T{i % 24:02d}:00:00+00:00",
            "channel": channels[i % 3],
            "count": i % 7,
            "note": "x" * 40,
        }
        for i in range(n)
    ]


def test_original_client_posts_gzipped_reads_and_empties(stack: ServerStack, client_dir: Path) -> None:
    group, data_type, token = create_set(stack)
    url = f"{stack.base_url}/data/{group}/{data_type}"
    sent = records(90)
    assert len(json.dumps(sent)) > 2048  # so the client gzips the body
    out = run_client(
        client_dir,
        f"""
        ds = DataSet({url!r}, {token!r})
        ds.post({sent!r})
        print(json.dumps("posted"))
        """,
    )
    assert out == "posted"

    expected_count = Counter(r["channel"] for r in sent)
    expected_sum: dict[str, int] = defaultdict(int)
    for r in sent:
        expected_sum[r["channel"]] += r["count"]

    def grouped() -> Any:
        return run_client(
            client_dir,
            f"""
            ds = DataSet({url!r}, None)
            print(json.dumps(ds.get({{"group_by": "channel", "collect": "count:sum"}})))
            """,
        )

    doc = wait_until(lambda: (d := grouped())["data"] and sum(x["_count"] for x in d["data"]) == 90 and d, 10)
    assert {row["channel"]: row["_count"] for row in doc["data"]} == dict(expected_count)
    assert {row["channel"]: row["count:sum"] for row in doc["data"]} == dict(expected_sum)

    # posting the same _ids again replaces, never duplicates
    run_client(client_dir, f"DataSet({url!r}, {token!r}).post({sent[:10]!r}); print('1')")
    raw = httpx.get(url, params={"filter_by": "channel:phone"}).json()["data"]
    assert len(raw) == expected_count["phone"]

    run_client(client_dir, f"DataSet({url!r}, {token!r}).empty_data_set(); print('1')")
    wait_until(lambda: httpx.get(url).json()["data"] == [], 10)


def test_read_after_write_and_wait_option(stack: ServerStack) -> None:
    group, data_type, token = create_set(stack)
    url = f"{stack.base_url}/data/{group}/{data_type}"
    auth = {"Authorization": f"Bearer {token}"}
    r = httpx.post(url, params={"wait": "queryable"}, json=records(5, seed=1), headers=auth)
    assert r.status_code == 200 and r.json()["queryable"] is True, r.text
    assert len(httpx.get(url).json()["data"]) == 5  # no polling: visible as soon as the write returned

    lags = []
    for i in range(20):
        t0 = time.monotonic()
        one = [{"_id": f"lag-{i}", "_timestamp": "2014-02-01T00:00:00Z", "num": i}]
        assert httpx.post(url, json=one, headers=auth).status_code == 200
        wait_until(lambda i=i: httpx.get(url, params={"filter_by": f"_id:lag-{i}"}).json()["data"], 5, 0.02)
        lags.append(time.monotonic() - t0)
    lags.sort()
    median, worst = lags[len(lags) // 2], lags[-1]
    print(f"read-after-write lag over {len(lags)} writes: median {median:.3f}s max {worst:.3f}s")
    assert max(lags) < 2.0, lags


def test_write_errors_are_the_originals(stack: ServerStack) -> None:
    group, data_type, token = create_set(stack)
    url = f"{stack.base_url}/data/{group}/{data_type}"
    r = httpx.post(url, json=[{"a": 1}])
    assert r.status_code == 401 and r.headers["www-authenticate"] == "bearer"
    assert r.json()["message"] == "Expected header of form: Authorization: Bearer <token>"
    r = httpx.post(url, json=[{"a": 1}], headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    assert (
        r.json()["message"]
        == f"Unauthorized: Invalid bearer token 'wrong' for '{group.replace('-', '_')}_tx'"
    )
    r = httpx.post(
        f"{stack.base_url}/data/{group}/nope", json=[{"a": 1}], headers={"Authorization": "Bearer x"}
    )
    assert r.status_code == 404

    auth = {"Authorization": f"Bearer {token}"}
    bad = [{"ok_key": 1}, {"bad-key": 1, "_id": "has space"}, {"nested": {"a": 1}}, {"_foo": 1}]
    r = httpx.post(url, json=bad, headers=auth)
    assert r.status_code == 400
    assert r.json() == {
        "messages": [
            "bad-key is not a valid key",
            "nested has an invalid value",
            "_foo is not a recognised internal field",
        ]
    }

    bomb = gzip.compress(b"[" + b" " * (11 * 1024 * 1024) + b"]")
    r = httpx.post(
        url, content=bomb, headers=auth | {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    assert r.status_code == 413
    r = httpx.post(url, content=b"[" * 100_000, headers=auth | {"Content-Type": "application/json"})
    assert r.status_code == 400
    r = httpx.put(url, json=[{"a": 1}], headers=auth)
    assert r.status_code == 400
    assert r.json()["message"] == "Not implemented: you can only pass an empty JSON list"
    r = httpx.delete(url + "/no-such-id", headers=auth)
    assert r.status_code == 400 and r.json() == {"messages": "No record found with id no-such-id"}
    # nothing of the above was stored
    time.sleep(1.0)
    assert httpx.get(url).json()["data"] == []


def test_hostile_reads_get_the_originals_400(stack: ServerStack) -> None:
    group, data_type, token = create_set(stack)
    url = f"{stack.base_url}/data/{group}/{data_type}"
    auth = {"Authorization": f"Bearer {token}"}
    hostile = [{"_id": "h1", "name": "x'); DROP TABLE records; --", "quotes": "\\'\"`"}]
    assert httpx.post(url, params={"wait": "queryable"}, json=hostile, headers=auth).status_code == 200
    rows = httpx.get(url, params={"filter_by": "name:x'); DROP TABLE records; --"}).json()["data"]
    assert [r["name"] for r in rows] == [hostile[0]["name"]]
    cases = {
        "filter_by=$where:1": "Cannot filter by an invalid field name",
        "group_by=a;DROP": "Cannot group by an invalid field name",
        "nonsense=1": "An unrecognised parameter was provided",
        "sort_by=a:sideways": (
            "Unrecognised sort direction. Supported directions include: ascending, descending"
        ),
    }
    for query, message in cases.items():
        r = httpx.get(f"{url}?{query}")
        assert r.status_code == 400, query
        assert r.json() == {"status": "error", "message": message}
        assert r.headers["access-control-allow-origin"] == "*"


def test_headers_status_and_legacy_routes(stack: ServerStack) -> None:
    group, data_type, token = create_set(stack, realtime=True)
    name = f"{group.replace('-', '_')}_tx"
    url = f"{stack.base_url}/data/{group}/{data_type}"
    auth = {"Authorization": f"Bearer {token}"}
    r = httpx.post(f"{stack.base_url}/{name}", params={}, json=records(3, seed=2), headers=auth)
    assert r.status_code == 200 and r.json()["message"].startswith("Deprecation Warning")
    wait_until(lambda: len(httpx.get(url).json()["data"]) == 3, 10)
    r = httpx.get(url)
    assert r.headers["cache-control"] == "max-age=120, must-revalidate"
    assert r.headers["access-control-allow-origin"] == "*"
    legacy = httpx.get(f"{stack.base_url}/{name}")
    assert legacy.status_code == 200 and legacy.headers["etag"]
    again = httpx.get(f"{stack.base_url}/{name}", headers={"If-None-Match": legacy.headers["etag"]})
    assert again.status_code == 304
    opt = httpx.options(url)
    assert opt.status_code == 200 and opt.headers["access-control-max-age"] == "86400"
    assert httpx.get(stack.base_url + "/_status").json() == {"status": "ok", "message": "app is up"}
    status = httpx.get(stack.base_url + "/_status/data-sets").json()
    stale = {d["name"] for d in status["data_sets"] or []}
    assert name in stale  # its records are from 2014, far older than max_age_expected
    csv = httpx.get(url, params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv") and csv.text.count("\n") >= 4
    assert httpx.get(f"{stack.base_url}/data/{group}/missing").json() == {
        "status": "error",
        "message": "data_set not found",
    }
