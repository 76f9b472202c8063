"""The caches in front of live figures: single flight, and stale-while-revalidate for KPIs."""

from __future__ import annotations

import asyncio

from api.read import StaleWhileRevalidate
from pipeline.clock import FrozenClock


def test_after_the_first_answer_no_reader_waits_and_one_refresh_runs() -> None:
    async def scenario() -> list[object]:
        clock = FrozenClock(1_000)
        cache = StaleWhileRevalidate(clock, ttl_ms=500)
        calls = 0
        release = asyncio.Event()

        async def compute() -> int:
            nonlocal calls
            calls += 1
            if calls > 1:
                await release.wait()  # a slow refresh
            return calls

        out: list[object] = [await cache.get("k", compute)]  # the first reader computes: 1
        out.append(await cache.get("k", compute))  # fresh: 1, no computation
        clock.advance(600)
        out += await asyncio.gather(*(cache.get("k", compute) for _ in range(5)))  # stale: served at once
        await asyncio.sleep(0)
        out.append(calls)  # one refresh started for five readers
        release.set()
        await asyncio.sleep(0.01)
        out.append(await cache.get("k", compute))  # the refreshed answer
        return out

    assert asyncio.run(scenario()) == [1, 1, 1, 1, 1, 1, 1, 2, 2]


def test_a_failed_refresh_keeps_serving_the_last_answer() -> None:
    async def scenario() -> list[object]:
        clock = FrozenClock(0)
        cache = StaleWhileRevalidate(clock, ttl_ms=100)
        calls = 0

        async def compute() -> int:
            nonlocal calls
            calls += 1
            if calls > 1:
                raise RuntimeError("store down")
            return 7

        first = await cache.get("k", compute)
        clock.advance(500)
        stale = await cache.get("k", compute)  # starts a refresh, which fails
        await asyncio.sleep(0.01)
        again = await cache.get("k", compute)  # the last answer, and another try
        await asyncio.sleep(0.01)
        return [first, stale, again, calls]

    assert asyncio.run(scenario()) == [7, 7, 7, 3]  # each stale read retries the refresh
