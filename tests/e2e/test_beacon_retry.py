"""A beacon retry counts once, end to end: the script sends ``age_ms`` (how long ago the event
happened, on the browser's monotonic clock) with every attempt, and the server stores arrival
minus age, to the second. The same event id sent twice, seconds apart and across a minute edge
of arrival time, with the second age larger by the time between the sends, lands on one stored
time: it counts once in ``/services/{s}/journey`` and in ``events-per-minute``.

On both stacks: ``perfplat api`` + ``perfplat worker`` on the session's broker and ClickHouse
server, and ``perfplat up`` (embedded broker and chdb).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import unique
from tests.support.kpi_events import Target, stack_of, wait_until

pytestmark = pytest.mark.e2e

FIGURES_WITHIN_S = 30


@pytest.fixture(scope="module", params=["embedded", "server"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """Each stack in turn (the first is stopped before the second starts)."""
    yield from stack_of(request, tmp_path_factory, "retry")


def beacon(target: Target, event: dict[str, Any]) -> None:
    """One attempt, as the script's fetch sends it (text/plain, a JSON array)."""
    r = httpx.post(
        target.base_url + "/beacon",
        content=orjson.dumps([event]),
        headers={"content-type": "text/plain;charset=UTF-8", "user-agent": "retry-test"},
        timeout=10,
    )
    assert r.status_code == 202, r.text
    assert r.json()["ids"] == [event["id"]]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def minute_of(ms: int) -> int:
    return ms // 60_000


def wait_for_second_57() -> None:
    """Until the wall clock is 57.0-57.8 s into a minute that is not the last of the UTC day
    (the journey figure read is today's)."""
    while True:
        ms = now_ms()
        if 57_000 <= ms % 60_000 < 57_800 and ms % 86_400_000 < 86_400_000 - 120_000:
            return
        time.sleep(0.05)


def test_a_retry_with_its_age_grown_counts_once_across_a_minute_edge(target: Target) -> None:
    service = unique("retry")
    target.register(service)
    event = {"category": service, "action": "stage", "label": "start", "kind": "page", "id": unique("evt")}

    # The first attempt at 57.x s, the retry 3.2 s later, in the next minute of arrival (as a
    # retry after a 503 and a few seconds' backoff may be). The event happened 1.5-2.5 s before
    # the first attempt, placed so that arrival minus age falls in the middle of a second: a
    # difference in network delay between the attempts (ms here) cannot move it to another.
    wait_for_second_57()
    first_ms = now_ms()
    age = 1500 + (first_ms - 2000) % 1000
    start = time.monotonic()
    beacon(target, {**event, "age_ms": age})
    time.sleep(3.2)
    waited = round((time.monotonic() - start) * 1000)
    retry_ms = now_ms()
    beacon(target, {**event, "age_ms": age + waited})
    assert minute_of(first_ms) != minute_of(retry_ms), "the attempts did not straddle a minute edge"

    happened = (first_ms - age) // 1000 * 1000
    want_journey = {"starts": 1, "stages": [{"label": "start", "events": 1, "share_of_starts": 1.0}]}
    start_at = datetime.fromtimestamp(minute_of(first_ms) * 60 - 120, UTC).isoformat()
    end_at = datetime.fromtimestamp(minute_of(retry_ms) * 60 + 120, UTC).isoformat()

    def figures() -> tuple[dict[str, Any], list[tuple[str, int]]]:
        doc = target.get(f"/services/{service}/journey", period="day")
        minutes = target.get(f"/services/{service}/events-per-minute", start_at=start_at, end_at=end_at)
        return (
            {"starts": doc["starts"], "stages": doc["stages"][:1]},
            [(row["_start_at"], row["count"]) for row in minutes["totals"] if row["count"]],
        )

    want = (want_journey, [(datetime.fromtimestamp(minute_of(happened) * 60, UTC).isoformat(), 1)])
    last: list[Any] = []

    def reached() -> bool:
        last[:] = [figures()]
        return bool(last[0] == want)

    try:
        wait_until(reached, FIGURES_WITHIN_S, 0.25)
    except AssertionError:
        raise AssertionError(f"figures {last[0] if last else None} never became {want}") from None
    time.sleep(1.5)  # a second copy, if counted, would have arrived by now
    assert figures() == want
