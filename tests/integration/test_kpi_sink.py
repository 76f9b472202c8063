"""The counted KPI sinks on both backends: duplicates never reach a sum.

Random batches of transactions and ratings, with repeats inside a batch, client retries (the
same id and timestamp in a later batch), whole batches replayed through a fresh sink (a worker
killed before it committed) and late events, go through the sinks. The minute, hour and day
sums must then equal ``pipeline.kpi``'s aggregates of the distinct events, window by window.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

import pytest

from pipeline.kpi import (
    HISTOGRAM_EDGES_MS,
    Counts,
    Histogram,
    RatingAgg,
    TxAgg,
    TxFact,
    rating_agg_of,
    tx_agg_of,
)
from pipeline.kpi_rows import rating_columns, time_to_complete_ms, tx_columns
from pipeline.store import Store
from schemas.fields import CHANNELS
from schemas.migrations import migrate
from schemas.satisfaction import SatisfactionEvent
from schemas.transaction import OUTCOMES, TransactionEvent
from stream_processors.kpi_sink import CountedSink

pytestmark = pytest.mark.integration

T0 = 1_763_935_200_000  # 2025-11-23T22:00:00Z, a Sunday: the day and week edges are near
GRAINS = {"minute": 60, "hour": 3600, "day": 86400}


def tx_events(rng: random.Random, n: int) -> list[TransactionEvent]:
    out = []
    for i in range(n):
        ts = T0 + rng.randrange(-3 * 3_600_000, 5 * 3_600_000)
        outcome = rng.choice(OUTCOMES)
        started = ts - rng.randrange(0, 900_000) if outcome == "completed" and rng.random() < 0.7 else -1
        cost = rng.choice([-1, 0, 12_345, 250_000]) if outcome == "completed" else -1
        svc = rng.choice(["svc-a", "svc-b"])
        out.append(
            TransactionEvent(f"t{i}", svc, f"x{i}", outcome, rng.choice(CHANNELS), cost, ts, started, ts + 5)
        )
    return out


def rating_events(rng: random.Random, n: int) -> list[SatisfactionEvent]:
    return [
        SatisfactionEvent(
            f"r{i}", "svc-a", rng.randint(1, 5), "<b>ok</b>", T0 + rng.randrange(-7_200_000, 7_200_000), T0
        )
        for i in range(n)
    ]


def batches(rng: random.Random, events: list[object]) -> list[list[object]]:
    """The events in random batches, with repeats inside batches and retries in later ones."""
    out: list[list[object]] = []
    i = 0
    while i < len(events):
        size = rng.randint(1, 60)
        batch = events[i : i + size]
        batch += rng.sample(batch, min(len(batch), rng.randint(0, 5)))  # repeats in the batch
        if out and rng.random() < 0.5:
            batch += rng.sample(out[-1], min(len(out[-1]), 5))  # a client's retry
        rng.shuffle(batch)
        out.append(batch)
        i += size
    return out


def stored_tx(store: Store, grain: str) -> dict[tuple[str, int], TxAgg]:
    rows = store.query(
        f"SELECT service, toUInt32(t), channel, outcome, ttc_edge_ms, sum(events), sum(cost_sum_e4), "
        f"sum(costed), sum(ttc_n), sum(ttc_sum_ms) FROM {store.database}.tx_{grain} "
        "GROUP BY service, t, channel, outcome, ttc_edge_ms"
    )
    parts: dict[tuple[str, int], list[TxAgg]] = defaultdict(list)
    for svc, t, channel, outcome, edge, events, cost, costed, ttc_n, ttc_sum in rows:
        hist = Histogram(Counts({int(edge): int(ttc_n)})) if int(edge) >= 0 else Histogram()
        parts[str(svc), int(t)].append(
            TxAgg(
                Counts({(channel, outcome): int(events)}),
                int(cost),
                int(costed),
                int(ttc_n),
                int(ttc_sum),
                hist,
            )
        )
    return {k: sum(v, TxAgg.empty()) for k, v in parts.items()}


def expected_tx(events: list[TransactionEvent], grain_s: int) -> dict[tuple[str, int], TxAgg]:
    by_window: dict[tuple[str, int], list[TxFact]] = defaultdict(list)
    for e in events:
        ts_s = e.ts_ms // 1000
        ttc = time_to_complete_ms(e)
        by_window[e.service, ts_s - ts_s % grain_s].append(TxFact(e.channel, e.outcome, e.cost_e4, ttc))  # type: ignore[arg-type]
    return {k: tx_agg_of(v) for k, v in by_window.items()}


@pytest.fixture
def kpi_store(store: Store) -> Store:
    migrate(store, store.database)
    return store


def test_transactions_count_each_event_once_whatever_the_repeats_and_replays(kpi_store: Store) -> None:
    rng = random.Random(7)
    events = tx_events(rng, 700)
    chunks = batches(rng, list(events))
    sink: CountedSink[TransactionEvent] = CountedSink(
        kpi_store, 50, events_table="tx_events", in_table="tx_in", columns=tx_columns
    )
    for batch in chunks:
        asyncio.run(sink.write(batch))  # type: ignore[arg-type]
    # a worker killed before it committed: a fresh sink gets some batches again
    fresh: CountedSink[TransactionEvent] = CountedSink(
        kpi_store, 50, events_table="tx_events", in_table="tx_in", columns=tx_columns
    )
    for batch in rng.sample(chunks, len(chunks) // 3):
        asyncio.run(fresh.write(batch))  # type: ignore[arg-type]
    for grain, size in GRAINS.items():
        assert stored_tx(kpi_store, grain) == expected_tx(events, size), grain
    (n,) = kpi_store.query(f"SELECT count() FROM {kpi_store.database}.tx_events")[0]
    assert n == len(events)
    assert max(HISTOGRAM_EDGES_MS) > 900_000  # every duration above has a bucket of its own


def test_ratings_count_each_event_once(kpi_store: Store) -> None:
    rng = random.Random(11)
    events = rating_events(rng, 300)
    sink: CountedSink[SatisfactionEvent] = CountedSink(
        kpi_store, 50, events_table="rating_events", in_table="rating_in", columns=rating_columns
    )
    for batch in batches(rng, list(events)) * 2:  # everything delivered twice
        asyncio.run(sink.write(batch))  # type: ignore[arg-type]
    for grain, size in GRAINS.items():
        rows = kpi_store.query(
            f"SELECT service, toUInt32(t), rating, sum(responses) FROM {kpi_store.database}.rating_{grain} "
            "GROUP BY service, t, rating"
        )
        got: dict[tuple[str, int], RatingAgg] = defaultdict(RatingAgg.empty)
        for svc, t, rating, n in rows:
            got[str(svc), int(t)] += rating_agg_of([int(rating)] * int(n))
        want: dict[tuple[str, int], list[int]] = defaultdict(list)
        for e in events:
            ts_s = e.ts_ms // 1000
            want[e.service, ts_s - ts_s % size].append(e.rating)
        assert dict(got) == {k: rating_agg_of(v) for k, v in want.items()}, grain
    comments = kpi_store.query(f"SELECT DISTINCT comment FROM {kpi_store.database}.rating_events")
    assert comments == [("<b>ok</b>",)]
