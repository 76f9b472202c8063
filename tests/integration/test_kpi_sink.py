"""The KPI sinks on both backends: duplicates never reach a figure.

Random batches of transactions and ratings, with repeats inside a batch, client retries (the
same id and timestamp in a later batch), whole batches replayed through a fresh sink (a worker
killed before it committed) and late events, go through the counted sinks. The minute, hour and
day sums must then equal ``pipeline.kpi``'s aggregates of the distinct events, window by window.

Costs go through the kept sink into ``cost_posts`` and are read back with
``pipeline.kpi_sql.cost_sql``: a post is its id, taken at its first arrival, and the post that
first arrived last is the figure, whatever retries, replays and merges come after.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from dataclasses import replace

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
from pipeline.kpi_rows import cost_columns, rating_columns, time_to_complete_ms, tx_columns
from pipeline.kpi_sql import cost_sql
from pipeline.store import Store
from schemas.cost import CostEvent
from schemas.fields import CHANNELS
from schemas.migrations import migrate
from schemas.satisfaction import SatisfactionEvent
from schemas.transaction import OUTCOMES, TransactionEvent
from stream_processors.kpi_sink import CountedSink, KeptSink

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


# --- costs ------------------------------------------------------------------------------------------

DAY = T0 - 22 * 3_600_000  # 2025-11-23T00:00:00Z
MONDAY = DAY - 6 * 86_400_000


def cost(
    id_: str, amount_e4: int, received_ms: int, service: str = "svc-a", start_ms: int = DAY
) -> CostEvent:
    period = "week" if start_ms == MONDAY else "day"
    return CostEvent(id_, service, period, start_ms, "all", amount_e4, received_ms)


def cost_sink(store: Store) -> KeptSink:
    """The costs sink as ``stream_processors.app`` builds it."""
    return KeptSink(store, 50, table="cost_posts", columns=cost_columns)


def figures(store: Store) -> dict[tuple[str, str, int], int]:
    """The channel-``all`` cost of each (service, period, start ms) as the read side finds it."""
    sql, params = cost_sql(store.database, ["svc-a", "svc-b"], DAY // 1000, DAY // 1000 + 86_400)
    return {
        (str(s), str(p), int(start) * 1000): int(amount) for s, p, start, amount in store.query(sql, params)
    }


def write(sink: KeptSink, *events: CostEvent) -> None:
    asyncio.run(sink.write(list(events)))


def test_a_retried_cost_does_not_undo_its_correction(kpi_store: Store) -> None:
    """Post A, its correction B (another id), then the client's retry of A: B stays in force.
    Duplicates of B (a retry, a replay through a fresh sink, repeats in one batch) and merges
    change nothing; a new post still replaces B."""
    key = ("svc-a", "day", DAY)
    sink = cost_sink(kpi_store)
    a, b = cost("a", 15_002_500, T0), cost("b", 17_205_000, T0 + 5)
    write(sink, a)
    assert figures(kpi_store) == {key: a.amount_e4}
    write(sink, b)
    assert figures(kpi_store) == {key: b.amount_e4}
    write(sink, replace(a, received_ms=T0 + 60_000))  # the retry, stamped when it arrived
    assert figures(kpi_store) == {key: b.amount_e4}
    write(sink, replace(b, received_ms=T0 + 120_000))
    write(cost_sink(kpi_store), b)  # a worker killed before it committed: B's message again
    write(sink, b, b, replace(a, received_ms=T0 + 130_000))
    assert figures(kpi_store) == {key: b.amount_e4}
    kpi_store.execute(f"OPTIMIZE TABLE {kpi_store.database}.cost_posts FINAL")
    assert figures(kpi_store) == {key: b.amount_e4}
    write(sink, cost("c", 1, T0 + 180_000))
    assert figures(kpi_store) == {key: 1}


def test_posts_that_first_arrived_together_are_ordered_by_id(kpi_store: Store) -> None:
    """Two posts in one request share a received_ms: the greater id counts, in whatever order
    they were stored. One id carried twice in a request with two amounts: the smaller counts."""
    sink = cost_sink(kpi_store)
    write(sink, cost("p-2", 20, T0), cost("p-1", 10, T0))
    write(sink, cost("p-1", 10, T0 + 1))  # a retry of the lesser id: it does not move
    write(sink, cost("q", 7, T0, "svc-b"), cost("q", 3, T0, "svc-b"), cost("q", 1, T0 + 1, "svc-b"))
    assert figures(kpi_store) == {("svc-a", "day", DAY): 20, ("svc-b", "day", DAY): 3}


def latest_posts(arrivals: list[CostEvent], at_first_arrival: bool) -> dict[tuple[str, str, int], int]:
    """The model: each id at its first (or, the old bug, its last) arrival; per key the post
    that arrived latest, the greater id on a tie."""
    posts: dict[str, CostEvent] = {}
    for e in sorted(arrivals, key=lambda e: e.received_ms, reverse=not at_first_arrival):
        posts.setdefault(e.id, e)
    latest: dict[tuple[str, str, int], CostEvent] = {}
    for e in posts.values():
        k = (e.service, e.period, e.start_ms)
        if k not in latest or (e.received_ms, e.id) > (latest[k].received_ms, latest[k].id):
            latest[k] = e
    return {k: e.amount_e4 for k, e in latest.items()}


def test_costs_are_the_posts_that_first_arrived_last_whatever_the_repeats(kpi_store: Store) -> None:
    """Random posts and retries of earlier posts, stored in random batches in a random order,
    some batches twice: each key's figure is the amount of the post whose first arrival is
    latest (the greater id on a tie), before and after the parts merge."""
    rng = random.Random(1)
    keys = [("svc-a", DAY), ("svc-a", MONDAY), ("svc-b", DAY)]
    arrivals: list[CostEvent] = []
    t = T0
    for i in range(150):
        t += rng.choice([0, 0, 1, 3, 1000])
        if arrivals and rng.random() < 0.4:
            arrivals.append(replace(rng.choice(arrivals), received_ms=t))  # a retry, later
        else:
            service, start = rng.choice(keys)
            arrivals.append(cost(f"p{i}", rng.randrange(10**9), t, service, start))
    expected = latest_posts(arrivals, at_first_arrival=True)
    assert len(expected) == len(keys)
    assert expected != latest_posts(arrivals, at_first_arrival=False)  # the retries matter here
    shuffled = rng.sample(arrivals, len(arrivals))
    chunks: list[list[CostEvent]] = []
    at = 0
    while at < len(shuffled):
        size = rng.randint(1, 20)
        chunks.append(shuffled[at : at + size])
        at += size
    sink = cost_sink(kpi_store)
    for chunk in chunks + rng.sample(chunks, len(chunks) // 3):
        write(sink, *chunk)
    assert figures(kpi_store) == expected
    kpi_store.execute(f"OPTIMIZE TABLE {kpi_store.database}.cost_posts FINAL")
    assert figures(kpi_store) == expected
