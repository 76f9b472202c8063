"""KPI maths (``pipeline.kpi``): from literal lists of facts to figures worked out by hand, and
Hypothesis properties of the partial aggregates (any split, any order, merges to the same).

Duplicates are not this module's job (ingest and the processors drop repeated event ids before
facts get here): a fact given twice is counted twice, and one test says so.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import operator
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.kpi import (
    ABSENT,
    CHANNELS,
    HISTOGRAM_EDGES_MS,
    JOURNEY_KINDS,
    KPI_NAMES,
    MEDIAN,
    OUTCOMES,
    P95,
    Change,
    Counts,
    CrossServiceFigures,
    Histogram,
    JourneyAgg,
    JourneyFact,
    PeriodCost,
    ProbeAgg,
    ProbeFact,
    RatingAgg,
    ServiceFigures,
    TxAgg,
    TxFact,
    WindowAggs,
    aggregate_by_window,
    attributed_cost_e4,
    bucket_edge_ms,
    change,
    completion_rate,
    cost_per_transaction_e4,
    cross_service,
    digital_takeup,
    journey_agg_of,
    journey_completion_rate,
    kpi_summary,
    pounds,
    probe_agg_of,
    prorate_cost,
    rating_agg_of,
    response_time_mean_ms,
    response_time_p95_ms,
    round_to_fixed,
    satisfaction_mean,
    satisfaction_score,
    service_figures,
    time_to_complete_mean_ms,
    time_to_complete_median_ms,
    time_to_complete_p95_ms,
    to_e4,
    total_cost_e4,
    tx_agg_of,
    uptime,
    volume_weighted_mean,
)
from pipeline.windows import previous_so_far_window, so_far_window

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(*args: int) -> int:
    """UTC epoch milliseconds of a literal date, exactly (no float seconds)."""
    return (datetime(*args, tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)


def completed(channel: Any = "digital", cost_e4: int = ABSENT, ttc_ms: int = ABSENT) -> TxFact:
    return TxFact(channel, "completed", cost_e4, ttc_ms)


def started(channel: Any = "digital") -> TxFact:
    return TxFact(channel, "started")


def is_finite_or_none(value: object) -> bool:
    return value is None or (isinstance(value, int | float | Fraction) and math.isfinite(value))


# --- counts and the duration histogram ------------------------------------------------------------


def test_counts_drop_zeros_so_equal_tallies_are_equal_and_hash_alike() -> None:
    a: Counts[str] = Counts({"x": 2, "y": 0})
    b: Counts[str] = Counts({"x": 2})
    assert a == b
    assert hash(a) == hash(b)
    assert len(a) == 1
    assert a.count("y") == 0
    assert a.count("x") == 2
    assert a + Counts({"x": 1, "z": 4}) == Counts({"x": 3, "z": 4})
    assert a + Counts({"x": -2}) == Counts()  # a cancelled count disappears


def test_histogram_edges_are_whole_milliseconds_log_linear_up_to_2_to_the_40() -> None:
    assert HISTOGRAM_EDGES_MS[:17] == tuple(range(17))
    assert HISTOGRAM_EDGES_MS[17:26] == (18, 20, 22, 24, 26, 28, 30, 32, 36)
    assert HISTOGRAM_EDGES_MS[-1] == 2**40
    assert len(HISTOGRAM_EDGES_MS) == 17 + 8 * 36
    for lower, upper in itertools.pairwise(HISTOGRAM_EDGES_MS):
        assert lower < upper
        if lower >= 16:
            assert upper * 8 <= lower * 9  # each step at most 12.5%


@pytest.mark.parametrize(
    ("duration_ms", "edge"),
    [
        (0, 0),
        (1, 1),
        (16, 16),
        (17, 18),
        (18, 18),
        (19, 20),
        (33, 36),
        (1000, 1024),  # (960, 1024]
        (1024, 1024),
        (1025, 1152),
        (-5, 0),  # never happens (negative means absent) but lands somewhere defined
        (2**40, 2**40),
        (2**41, 2**40),  # beyond the last edge: counted in the last bucket
    ],
)
def test_bucket_edge_table(duration_ms: int, edge: int) -> None:
    assert bucket_edge_ms(duration_ms) == edge


def test_histogram_quantile_is_the_upper_edge_of_the_bucket_holding_the_nearest_rank() -> None:
    h = Histogram.of([10, 20, 30, 40])
    assert h.total == 4
    assert h.quantile(MEDIAN) == 20  # rank ceil(0.5 * 4) = 2
    assert h.quantile(P95) == 40  # rank ceil(3.8) = 4
    assert h.quantile(Fraction(1, 100)) == 10  # rank at least 1
    skewed = Histogram.of([1000] * 19 + [5000])
    assert skewed.quantile(P95) == 1024  # rank 19 of 20, in (960, 1024]
    assert skewed.quantile(Fraction(1)) == 5120  # 5000 is in (4608, 5120]


def test_empty_histogram_has_no_quantile() -> None:
    assert Histogram.empty().quantile(P95) is None
    assert Histogram.of([]) == Histogram.empty()


@pytest.mark.parametrize("q", [Fraction(0), Fraction(-1, 2), Fraction(3, 2)])
def test_quantile_outside_zero_to_one_is_refused(q: Fraction) -> None:
    with pytest.raises(ValueError, match="quantile"):
        Histogram.of([1]).quantile(q)


@given(
    values=st.lists(st.integers(min_value=0, max_value=2**40), min_size=1, max_size=60),
    q=st.fractions(min_value=Fraction(1, 1000), max_value=1),
)
def test_histogram_quantile_is_at_most_an_eighth_above_the_exact_nearest_rank(
    values: list[int], q: Fraction
) -> None:
    exact = sorted(values)[max(1, math.ceil(q * len(values))) - 1]
    got = Histogram.of(values).quantile(q)
    assert got is not None
    assert exact <= got
    assert got * 8 <= exact * 9 or got <= 16


# --- transactions -------------------------------------------------------------------------------------


def test_three_digital_of_four_completed_is_a_digital_takeup_of_three_quarters() -> None:
    tx = tx_agg_of([completed(), completed(), completed(), completed("phone"), started(), started("paper")])
    assert tx.completed == 4
    assert tx.started == 2
    assert tx.count("digital") == 4
    assert tx.count("digital", "completed") == 3
    assert tx.count(outcome="failed") == 0
    assert tx.count() == 6
    assert digital_takeup(tx) == 0.75


def test_digital_takeup_counts_only_the_digital_channel() -> None:
    tx = tx_agg_of([completed("digital"), completed("assisted_digital")])
    assert digital_takeup(tx) == 0.5


def test_digital_takeup_is_none_when_the_digital_volume_is_zero_as_in_the_original() -> None:
    assert digital_takeup(tx_agg_of([completed("phone"), completed("paper")])) is None
    assert digital_takeup(tx_agg_of([started("digital")])) is None  # started is not volume
    assert digital_takeup(TxAgg.empty()) is None


def test_completion_rate_is_completed_over_started() -> None:
    tx = tx_agg_of([started(), started("phone"), started(), completed(), completed("phone")])
    assert completion_rate(tx) == 2 / 3
    assert completion_rate(tx_agg_of([started(), started()])) == 0.0


def test_completion_rate_exceeds_one_when_earlier_starts_complete_and_is_not_clamped() -> None:
    # Two completions this window belong to transactions started last window.
    assert completion_rate(tx_agg_of([started(), completed(), completed(), completed()])) == 3.0


def test_completion_rate_is_none_without_starts() -> None:
    assert completion_rate(tx_agg_of([completed(), completed()])) is None
    assert completion_rate(TxAgg.empty()) is None


def test_failed_and_abandoned_are_counted_but_are_neither_start_nor_completion() -> None:
    tx = tx_agg_of([TxFact("digital", "failed"), TxFact("phone", "abandoned"), started()])
    assert (tx.started, tx.completed, tx.count()) == (1, 0, 3)
    assert completion_rate(tx) == 0.0


def test_time_to_complete_from_completions_that_carry_one() -> None:
    tx = tx_agg_of(
        [
            completed(ttc_ms=1000),
            completed(ttc_ms=3000),
            completed(),  # no start time known
            TxFact("digital", "started", ABSENT, 500),  # only completions carry a time to complete
        ]
    )
    assert (tx.ttc_count, tx.ttc_sum_ms) == (2, 4000)
    assert time_to_complete_mean_ms(tx) == 2000.0
    assert time_to_complete_median_ms(tx) == 1024  # rank 1: 1000 in (960, 1024]
    assert time_to_complete_p95_ms(tx) == 3072  # rank 2: 3000 in (2816, 3072]


def test_time_to_complete_is_none_without_any() -> None:
    tx = tx_agg_of([completed(), started()])
    assert time_to_complete_mean_ms(tx) is None
    assert time_to_complete_median_ms(tx) is None
    assert time_to_complete_p95_ms(tx) is None


@pytest.mark.parametrize(
    ("fact", "message"),
    [(TxFact("web", "completed"), "channel"), (TxFact("digital", "done"), "outcome")],  # type: ignore[arg-type]
)
def test_unknown_channel_or_outcome_is_refused(fact: TxFact, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tx_agg_of([fact])


def test_duplicates_are_not_this_modules_job_a_fact_given_twice_counts_twice() -> None:
    fact = completed(cost_e4=10_000)
    tx = tx_agg_of([fact, fact])
    assert tx.completed == 2
    assert tx.cost_e4 == 20_000


# --- costs --------------------------------------------------------------------------------------------


def test_cost_per_transaction_from_per_transaction_costs() -> None:
    # £2.50 on each of two completions, four completions in all: £5.00 / 4 = £1.25.
    tx = tx_agg_of([completed(cost_e4=25_000), completed("phone", cost_e4=25_000), completed(), completed()])
    assert (tx.cost_e4, tx.costed) == (50_000, 2)
    assert total_cost_e4(tx) == 50_000
    assert cost_per_transaction_e4(tx) == 12_500
    assert pounds(12_500) == 1.25


def test_cost_per_transaction_adds_the_period_cost_attributed_to_the_window() -> None:
    tx = tx_agg_of([completed(cost_e4=25_000), completed(cost_e4=25_000), completed(), completed()])
    # £10 of running cost falls in the window: (£5 + £10) / 4 = £3.75.
    assert total_cost_e4(tx, 100_000) == 150_000
    assert cost_per_transaction_e4(tx, 100_000) == 37_500
    # A period cost alone is enough; a fractional share stays exact.
    only_period = tx_agg_of([completed(), completed(), completed()])
    assert cost_per_transaction_e4(only_period, Fraction(100, 3)) == Fraction(100, 9)


def test_cost_per_transaction_is_none_without_completions_or_without_any_cost() -> None:
    assert cost_per_transaction_e4(tx_agg_of([started(), TxFact("digital", "failed", 40_000)])) is None
    assert cost_per_transaction_e4(tx_agg_of([completed(), completed()])) is None
    assert total_cost_e4(tx_agg_of([completed()])) is None
    assert cost_per_transaction_e4(TxAgg.empty(), 100_000) is None


def test_a_known_cost_of_zero_is_a_cost() -> None:
    assert cost_per_transaction_e4(tx_agg_of([completed(cost_e4=0)])) == 0
    assert cost_per_transaction_e4(tx_agg_of([completed()]), 0) == 0


Q1_2024 = (ms(2024, 1, 1), ms(2024, 4, 1))  # 91 days (a leap year)


@pytest.mark.parametrize(
    ("window", "share_e4"),
    [
        ((ms(2024, 1, 1), ms(2024, 1, 8)), 7_000_000),  # the first Monday week: 7/91 of £9,100
        ((ms(2024, 3, 25), ms(2024, 4, 1)), 7_000_000),  # the last week of the quarter
        ((ms(2024, 3, 28), ms(2024, 4, 4)), 4_000_000),  # straddles the end: 28-31 March only
        ((ms(2023, 12, 29), ms(2024, 1, 2)), 1_000_000),  # straddles the start: 1 January only
        ((ms(2024, 4, 1), ms(2024, 4, 8)), 0),  # after: end is exclusive
        ((ms(2023, 10, 1), ms(2025, 1, 1)), 91_000_000),  # holds the whole cost period
        ((ms(2024, 2, 1), ms(2024, 2, 1)), 0),  # an empty window
    ],
)
def test_prorate_a_quarters_cost_by_time(window: tuple[int, int], share_e4: int) -> None:
    assert prorate_cost(91_000_000, *Q1_2024, *window) == share_e4


def test_prorated_shares_are_exact_fractions_and_add_up() -> None:
    thirds = [prorate_cost(100, 0, 3, i, i + 1) for i in range(3)]
    assert thirds == [Fraction(100, 3)] * 3
    assert sum(thirds) == 100
    assert to_e4(thirds[0]) == 33


@pytest.mark.parametrize(
    ("value", "rounded"),
    [(Fraction(5, 2), 2), (Fraction(7, 2), 4), (Fraction(-5, 2), -2), (Fraction(101, 4), 25), (7, 7)],
)
def test_to_e4_rounds_half_to_even(value: Fraction | int, rounded: int) -> None:
    assert to_e4(value) == rounded


def test_a_point_cost_lands_whole_in_the_window_holding_its_instant() -> None:
    assert prorate_cost(500, 10, 10, 0, 11) == 500
    assert prorate_cost(500, 10, 10, 10, 11) == 500
    assert prorate_cost(500, 10, 10, 0, 10) == 0


@pytest.mark.parametrize(("cost", "window"), [((10, 5), (0, 20)), ((0, 20), (10, 5))])
def test_prorate_refuses_a_range_that_ends_before_it_starts(
    cost: tuple[int, int], window: tuple[int, int]
) -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        prorate_cost(100, *cost, *window)


def test_attributed_cost_sums_the_overlapping_costs_and_is_none_when_none_overlaps() -> None:
    costs = [
        PeriodCost(91_000_000, *Q1_2024),
        PeriodCost(700, ms(2024, 1, 3), ms(2024, 1, 10)),  # a week's cost, 5 of its 7 days inside
        PeriodCost(999, ms(2024, 5, 1), ms(2024, 6, 1)),  # elsewhere
    ]
    assert attributed_cost_e4(costs, ms(2024, 1, 1), ms(2024, 1, 8)) == 7_000_000 + 500
    assert attributed_cost_e4(costs, ms(2024, 4, 1), ms(2024, 4, 8)) is None
    assert attributed_cost_e4([], ms(2024, 1, 1), ms(2024, 1, 8)) is None


@given(
    amount=st.integers(min_value=0, max_value=10**12),
    start=st.integers(min_value=-(10**12), max_value=10**12),
    length=st.integers(min_value=1, max_value=10**11),
    cuts=st.lists(st.integers(min_value=-(10**11), max_value=2 * 10**11), max_size=8),
)
def test_shares_over_windows_that_partition_time_add_up_to_the_amount(
    amount: int, start: int, length: int, cuts: list[int]
) -> None:
    bounds = sorted({start - 10**11, *(start + c for c in cuts), start + length + 10**11})
    shares = [prorate_cost(amount, start, start + length, a, b) for a, b in itertools.pairwise(bounds)]
    assert sum(shares) == amount


# --- user satisfaction ---------------------------------------------------------------------------------


def test_satisfaction_of_the_brief_example_counts() -> None:
    # Ratings [1, 0, 0, 0, 3]: (1*1 + 5*3) / 4 = 4.0, so (4.0 - 1) / 4 = 0.75. (Mean 4.2 and score
    # 0.8 belong to [1, 0, 0, 0, 4]: see the next test.)
    r = RatingAgg((1, 0, 0, 0, 3))
    assert satisfaction_mean(r) == 4.0
    assert satisfaction_score(r) == 0.75


def test_satisfaction_mean_four_point_two_is_a_score_of_point_eight() -> None:
    # (1*1 + 5*4) / 5 = 21/5 = 4.2, (4.2 - 1) / 4 = 0.8. The original on Python 2 truncated
    # 21/5 to 4 (and then (4 - 1)/4 to 0); perfplat computes exactly.
    r = rating_agg_of([5, 1, 5, 5, 5])
    assert r == RatingAgg((1, 0, 0, 0, 4))
    assert r.total == 5
    assert satisfaction_mean(r) == 4.2
    assert satisfaction_score(r) == 0.8


@pytest.mark.parametrize(
    ("counts", "score"),
    [((0, 0, 0, 0, 7), 1.0), ((3, 0, 0, 0, 0), 0.0), ((0, 0, 2, 0, 0), 0.5), ((0, 1, 0, 1, 0), 0.5)],
)
def test_satisfaction_score_bounds(counts: tuple[int, int, int, int, int], score: float) -> None:
    assert satisfaction_score(RatingAgg(counts)) == score


def test_satisfaction_is_none_without_ratings() -> None:
    assert satisfaction_mean(RatingAgg.empty()) is None
    assert satisfaction_score(rating_agg_of([])) is None


@pytest.mark.parametrize("rating", [0, 6, -1])
def test_a_rating_outside_one_to_five_is_refused(rating: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.5"):
        rating_agg_of([3, rating])


# --- availability ---------------------------------------------------------------------------------------


def test_availability_uptime_and_response_times() -> None:
    p = probe_agg_of([ProbeFact(True, 100), ProbeFact(True, 200), ProbeFact(True, 300), ProbeFact(False)])
    assert (p.probes, p.up, p.rt_count, p.rt_sum_ms) == (4, 3, 3, 600)
    assert uptime(p) == 0.75
    assert response_time_mean_ms(p) == 200.0
    assert response_time_p95_ms(p) == 320  # rank 3: 300 in (288, 320]


def test_availability_with_no_responses() -> None:
    p = probe_agg_of([ProbeFact(False), ProbeFact(False, ABSENT)])
    assert uptime(p) == 0.0
    assert response_time_mean_ms(p) is None
    assert response_time_p95_ms(p) is None


def test_a_down_probe_that_got_a_response_counts_its_response_time() -> None:
    p = probe_agg_of([ProbeFact(False, 30), ProbeFact(True, 10)])
    assert uptime(p) == 0.5
    assert response_time_mean_ms(p) == 20.0


def test_availability_is_none_without_probes() -> None:
    p = ProbeAgg.empty()
    assert (uptime(p), response_time_mean_ms(p), response_time_p95_ms(p)) == (None, None, None)


# --- journeys ------------------------------------------------------------------------------------------


def test_journey_counts_and_completion_rate() -> None:
    j = journey_agg_of(
        [
            JourneyFact("start"),
            JourneyFact("start"),
            JourneyFact("start"),
            JourneyFact("start"),
            JourneyFact("done"),
            JourneyFact("done"),
            JourneyFact("done"),
            JourneyFact("help", "info"),
            JourneyFact("help", "info"),
            JourneyFact("help", "contact"),
            JourneyFact("error", "postcode"),
        ]
    )
    assert (j.starts, j.dones) == (4, 3)
    assert j.clicks == Counts({("help", "info"): 2, ("help", "contact"): 1, ("error", "postcode"): 1})
    assert journey_completion_rate(j) == 0.75


def test_journey_completion_rate_is_none_without_starts_and_not_clamped() -> None:
    assert journey_completion_rate(JourneyAgg.empty()) is None
    assert journey_completion_rate(journey_agg_of([JourneyFact("done")])) is None
    assert journey_completion_rate(journey_agg_of([JourneyFact("start"), *[JourneyFact("done")] * 2])) == 2.0


def test_unknown_journey_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="journey kind"):
        journey_agg_of([JourneyFact("page")])  # type: ignore[arg-type]


# --- windows: each event in the window of its own timestamp --------------------------------------------


SUNDAY_LAST_MS = ms(2024, 3, 10, 23, 59, 59, 999_000)
MONDAY_FIRST_MS = ms(2024, 3, 11)


def test_sunday_23_59_59_999_is_last_week_and_monday_midnight_is_this_week() -> None:
    got = aggregate_by_window(
        [(SUNDAY_LAST_MS, completed()), (MONDAY_FIRST_MS, completed("phone"))], "week", tx_agg_of
    )
    assert got == {
        ms(2024, 3, 4): tx_agg_of([completed()]),
        ms(2024, 3, 11): tx_agg_of([completed("phone")]),
    }


def test_a_late_event_lands_in_the_window_of_its_own_timestamp() -> None:
    # Arrival order: two events this week, then one stamped last Friday arriving late.
    arrivals = [
        (ms(2024, 3, 12, 9), completed()),
        (ms(2024, 3, 12, 10), started()),
        (ms(2024, 3, 8, 17), completed("paper")),
    ]
    got = aggregate_by_window(arrivals, "week", tx_agg_of)
    assert list(got) == [ms(2024, 3, 4), ms(2024, 3, 11)]
    assert digital_takeup(got[ms(2024, 3, 4)]) is None  # only the late paper completion
    assert got[ms(2024, 3, 4)].count("paper", "completed") == 1
    assert completion_rate(got[ms(2024, 3, 11)]) == 1.0
    # Folding the late event into last week's stored aggregate is the same as having had it on time.
    stored = tx_agg_of([completed(), completed()])
    assert stored + got[ms(2024, 3, 4)] == tx_agg_of([completed(), completed(), completed("paper")])
    assert digital_takeup(stored + got[ms(2024, 3, 4)]) == 2 / 3


def test_quarters_start_on_january_april_july_october_first() -> None:
    stamped = [
        (ms(2024, 3, 31, 23, 59, 59, 999_000), 5),
        (ms(2024, 4, 1), 1),
        (ms(2024, 6, 30, 12), 1),
        (ms(2024, 7, 1), 4),
        (ms(2024, 12, 31, 23, 59, 59, 999_000), 3),
        (ms(2025, 1, 1), 2),
    ]
    got = aggregate_by_window(stamped, "quarter", rating_agg_of)
    assert got == {
        ms(2024, 1, 1): RatingAgg((0, 0, 0, 0, 1)),
        ms(2024, 4, 1): RatingAgg((2, 0, 0, 0, 0)),
        ms(2024, 7, 1): RatingAgg((0, 0, 0, 1, 0)),
        ms(2024, 10, 1): RatingAgg((0, 0, 1, 0, 0)),
        ms(2025, 1, 1): RatingAgg((0, 1, 0, 0, 0)),
    }


def test_no_events_no_windows() -> None:
    assert aggregate_by_window([], "day", tx_agg_of) == {}


# --- change against the previous period ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "previous", "expected"),
    [
        (0.75, 0.5, Change(0.25, 0.5)),
        (3, 4, Change(-1, -0.25)),
        (4, 4, Change(0, 0.0)),
        (1, 0, Change(1, None)),
        (0.0, 0.0, Change(0.0, None)),
        (None, 0.5, Change(None, None)),
        (0.5, None, Change(None, None)),
        (None, None, Change(None, None)),
        (Fraction(3, 2), Fraction(1, 2), Change(1.0, 2.0)),
        (-1, -2, Change(1, 0.5)),  # a rise is positive even from a negative value
        (math.nan, 1.0, Change(None, None)),
    ],
)
def test_change(current: Any, previous: Any, expected: Change) -> None:
    got = change(current, previous)
    assert got == expected
    assert type(got.absolute) is type(expected.absolute)


# --- cross-service aggregates ------------------------------------------------------------------------------


A = ServiceFigures(1000, 2_000_000, 20_000, 0.8, 0.9, 0.7)  # £200 total, £2.00 per transaction
B = ServiceFigures(3000, None, 40_000, 0.4, None, 0.5)  # £4.00 per transaction
C = ServiceFigures(0, 500_000, 1_000_000, 1.0, 1.0, 1.0)  # no transactions: no weight


def test_cross_service_sums_and_volume_weighted_means() -> None:
    got = cross_service([A, B, C])
    assert got == CrossServiceFigures(
        number_of_transactions=4000,
        total_cost_gbp=250.0,  # £200 + £50; C's cost counts although it has no transactions
        cost_per_transaction_gbp=3.5,  # (2 * 1000 + 4 * 3000) / 4000
        digital_takeup=0.5,  # (0.8 * 1000 + 0.4 * 3000) / 4000
        completion_rate=0.9,  # only A has one
        user_satisfaction_score=0.55,  # (0.7 * 1000 + 0.5 * 3000) / 4000
    )


def test_cross_service_rounds_rates_to_3_dp_and_cost_to_1_dp_as_to_fixed() -> None:
    got = cross_service(
        [
            ServiceFigures(1, None, 32_500, Fraction(5375, 10000), Fraction(1, 3), None),
            ServiceFigures(2, None, 32_500, Fraction(5375, 10000), Fraction(1, 3), None),
        ]
    )
    assert got.cost_per_transaction_gbp == 3.3  # 3.25 → 3.3, as toFixed(1)
    assert got.digital_takeup == 0.538  # 0.5375 → 0.538 (a tie goes up, not to even)
    assert got.completion_rate == 0.333
    assert got.user_satisfaction_score is None


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [
        (Fraction(5375, 10000), 3, 0.538),
        (Fraction(5365, 10000), 3, 0.537),
        (Fraction(5364999, 10**7), 3, 0.536),
        (Fraction(25, 100), 1, 0.3),
        (Fraction(-25, 100), 1, -0.3),  # toFixed rounds the magnitude: a tie goes away from zero
        (2, 3, 2.0),
        (0.125, 2, 0.13),
    ],
)
def test_round_to_fixed_like_javascript(value: Fraction | float, places: int, expected: float) -> None:
    assert round_to_fixed(value, places) == expected


def test_a_known_zero_counts_in_the_weighted_mean() -> None:
    # The original dropped a 0 from any service but the first; perfplat keeps it.
    zero = ServiceFigures(1000, None, None, 0.0)
    half = ServiceFigures(1000, None, None, 0.5)
    assert cross_service([half, zero]).digital_takeup == 0.25
    assert cross_service([zero, half]).digital_takeup == 0.25


def test_cross_service_of_nothing() -> None:
    assert cross_service([]) == CrossServiceFigures(0, None, None, None, None, None)
    assert cross_service([C]).digital_takeup is None  # weight 0 only
    assert volume_weighted_mean([(None, 10), (0.5, 0)], 3) is None


def test_service_figures_from_aggregates() -> None:
    tx = tx_agg_of([completed(cost_e4=30_000), completed(), completed("phone"), started(), started()])
    s = service_figures(tx, RatingAgg((0, 0, 0, 0, 2)), period_cost_e4=Fraction(30_000))
    assert s == ServiceFigures(3, 60_000, 20_000, 2 / 3, 1.5, 1.0)
    assert service_figures(TxAgg.empty()) == ServiceFigures(0)


services = st.builds(
    ServiceFigures,
    number_of_transactions=st.integers(min_value=0, max_value=10**7),
    total_cost_e4=st.none() | st.integers(min_value=0, max_value=10**12),
    cost_per_transaction_e4=st.none() | st.fractions(min_value=0, max_value=10**8, max_denominator=10**6),
    digital_takeup=st.none() | st.floats(min_value=0, max_value=1),
    completion_rate=st.none() | st.floats(min_value=0, max_value=3),
    user_satisfaction_score=st.none() | st.fractions(min_value=0, max_value=1, max_denominator=1000),
)


@given(data=st.data(), rows=st.lists(services, max_size=8))
def test_cross_service_is_invariant_under_service_order(
    data: st.DataObject, rows: list[ServiceFigures]
) -> None:
    shuffled = data.draw(st.permutations(rows))
    assert cross_service(shuffled) == cross_service(rows)


@given(rows=st.lists(services, min_size=1, max_size=8))
def test_cross_service_mean_lies_between_the_services_values(rows: list[ServiceFigures]) -> None:
    got = cross_service(rows).digital_takeup
    counted = [s.digital_takeup for s in rows if s.digital_takeup is not None and s.number_of_transactions]
    if not counted:
        assert got is None
    else:
        assert got is not None
        assert round_to_fixed(min(counted), 3) <= got <= round_to_fixed(max(counted), 3)


# --- KPI summary ------------------------------------------------------------------------------------------


NOW_MS = ms(2024, 3, 13, 12)  # a Wednesday noon


def _current() -> WindowAggs:
    start, end = so_far_window(NOW_MS, "week")
    return WindowAggs(
        start,
        end,
        tx=tx_agg_of(
            [
                completed(cost_e4=25_000, ttc_ms=60_000),
                completed(cost_e4=25_000, ttc_ms=120_000),
                completed(cost_e4=25_000, ttc_ms=600_000),
                completed("phone", cost_e4=25_000),
                *[started()] * 4,
                started("phone"),
            ]
        ),
        ratings=RatingAgg((0, 0, 1, 1, 2)),
        probes=probe_agg_of([ProbeFact(True, 100)] * 3 + [ProbeFact(True, 300)]),
        journey=journey_agg_of([JourneyFact("start")] * 10 + [JourneyFact("done")] * 6),
        period_cost_e4=700_000,  # £70 of running cost attributed to the window
    )


def _previous() -> WindowAggs:
    start, end = previous_so_far_window(NOW_MS, "week")
    return WindowAggs(
        start,
        end,
        tx=tx_agg_of([completed(), completed(), completed("phone"), completed("phone"), *[started()] * 8]),
        ratings=RatingAgg((0, 0, 0, 2, 2)),
        probes=probe_agg_of([ProbeFact(True, 200)] * 3 + [ProbeFact(False, 200)]),
        journey=journey_agg_of([JourneyFact("start")] * 8 + [JourneyFact("done")] * 4),
    )


def test_kpi_summary_windows() -> None:
    got = kpi_summary("week", _current(), _previous())
    assert got["period"] == "week"
    assert got["window"] == {"start": "2024-03-11T00:00:00+00:00", "end": "2024-03-13T12:00:00+00:00"}
    assert got["previous_window"] == {
        "start": "2024-03-04T00:00:00+00:00",
        "end": "2024-03-06T12:00:00+00:00",
    }
    assert tuple(got["kpis"]) == KPI_NAMES
    for kpi in got["kpis"].values():
        assert kpi["window"] == got["window"]


def test_kpi_summary_entry_shape() -> None:
    got = kpi_summary("week", _current(), _previous())
    assert got["kpis"]["digital_takeup"] == {
        "value": 0.75,
        "unit": "ratio",
        "window": {"start": "2024-03-11T00:00:00+00:00", "end": "2024-03-13T12:00:00+00:00"},
        "previous": 0.5,
        "change": {"absolute": 0.25, "relative": 0.5},
    }


# name: (value, previous, absolute change, relative change), all worked out by hand.
EXPECTED_SUMMARY: dict[str, tuple[Any, Any, Any, Any]] = {
    "transactions_started": (5, 8, -3, -0.375),
    "transactions_completed": (4, 4, 0, 0.0),
    "digital_takeup": (0.75, 0.5, 0.25, 0.5),
    "completion_rate": (0.8, 0.5, pytest.approx(0.3), pytest.approx(0.6)),
    "total_cost": (80.0, None, None, None),  # £10 per transaction + £70 of period cost; nothing known before
    "cost_per_transaction": (20.0, None, None, None),  # £80 / 4
    "time_to_complete_mean": (260_000.0, None, None, None),  # (60 + 120 + 600) s / 3
    "time_to_complete_median": (122_880, None, None, None),  # rank 2: 120 000 in (114 688, 122 880]
    "time_to_complete_p95": (655_360, None, None, None),  # rank 3: 600 000 in (589 824, 655 360]
    "satisfaction_responses": (4, 4, 0, 0.0),
    "user_satisfaction_score": (0.8125, 0.875, -0.0625, pytest.approx(-1 / 14)),  # means 4.25, 4.5
    "availability": (1.0, 0.75, 0.25, pytest.approx(1 / 3)),
    "response_time_mean": (150.0, 200.0, -50.0, -0.25),
    "response_time_p95": (320, 208, 112, pytest.approx(112 / 208)),  # (288, 320] and (192, 208]
    "journey_starts": (10, 8, 2, 0.25),
    "journey_completion_rate": (0.6, 0.5, pytest.approx(0.1), pytest.approx(0.2)),
}


@pytest.mark.parametrize("name", list(EXPECTED_SUMMARY))
def test_kpi_summary_values_and_changes(name: str) -> None:
    kpi = kpi_summary("week", _current(), _previous())["kpis"][name]
    value, previous, absolute, relative = EXPECTED_SUMMARY[name]
    assert (kpi["value"], kpi["previous"]) == (value, previous)
    assert kpi["change"] == {"absolute": absolute, "relative": relative}


def test_kpi_summary_units() -> None:
    units = {name: kpi["unit"] for name, kpi in kpi_summary("week", _current(), _previous())["kpis"].items()}
    assert units["total_cost"] == units["cost_per_transaction"] == "GBP"
    assert units["transactions_started"] == "count"
    assert units["response_time_p95"] == "ms"
    assert units["digital_takeup"] == units["user_satisfaction_score"] == "ratio"


def test_kpi_summary_of_empty_windows_is_zero_counts_and_no_rates() -> None:
    start, end = so_far_window(ms(2024, 3, 11), "week")  # the first millisecond: empty
    assert start == end
    got = kpi_summary("week", WindowAggs(start, end), WindowAggs(*previous_so_far_window(start, "week")))
    for name, kpi in got["kpis"].items():
        if kpi["unit"] == "count":
            assert kpi["value"] == 0, name
            assert kpi["change"] == {"absolute": 0, "relative": None}
        else:
            assert kpi["value"] is None, name
            assert kpi["change"] == {"absolute": None, "relative": None}
    json.dumps(got, allow_nan=False)


def test_kpi_summary_is_pure_json() -> None:
    got = kpi_summary("week", _current(), _previous())
    assert json.loads(json.dumps(got, allow_nan=False)) == got


# --- properties of the partial aggregates ---------------------------------------------------------------


costs = st.just(ABSENT) | st.integers(min_value=0, max_value=10**9)
durations = st.just(ABSENT) | st.integers(min_value=0, max_value=2**42)
tx_facts = st.builds(TxFact, st.sampled_from(CHANNELS), st.sampled_from(OUTCOMES), costs, durations)
probe_facts = st.builds(ProbeFact, st.booleans(), durations)
journey_facts = st.builds(
    JourneyFact, st.sampled_from(JOURNEY_KINDS), st.sampled_from(["", "info", "postcode"])
)

AggCase = tuple[st.SearchStrategy[Any], Callable[[list[Any]], Any], Any]
CASES: dict[str, AggCase] = {
    "tx": (tx_facts, tx_agg_of, TxAgg.empty()),
    "ratings": (st.integers(min_value=1, max_value=5), rating_agg_of, RatingAgg.empty()),
    "probes": (probe_facts, probe_agg_of, ProbeAgg.empty()),
    "journey": (journey_facts, journey_agg_of, JourneyAgg.empty()),
    "histogram": (durations, Histogram.of, Histogram.empty()),
}


@pytest.mark.parametrize("name", list(CASES))
@given(data=st.data())
def test_aggregating_in_one_go_equals_merging_any_split_in_any_order(name: str, data: st.DataObject) -> None:
    facts, agg_of, empty = CASES[name]
    xs = data.draw(st.lists(facts, max_size=40), label="facts")
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(xs)), max_size=6), label="cuts"))
    parts = [xs[a:b] for a, b in itertools.pairwise([0, *cuts, len(xs)])]
    order = data.draw(st.permutations(parts), label="order")
    whole = agg_of(xs)
    assert functools.reduce(operator.add, (agg_of(p) for p in order), empty) == whole
    assert sum((agg_of(p) for p in order), empty) == whole


@pytest.mark.parametrize("name", list(CASES))
@given(data=st.data())
@settings(max_examples=60)
def test_merge_is_associative_and_commutative_with_empty_as_identity(name: str, data: st.DataObject) -> None:
    facts, agg_of, empty = CASES[name]
    a, b, c = (agg_of(data.draw(st.lists(facts, max_size=12))) for _ in range(3))
    assert a.merge(b.merge(c)) == (a + b) + c
    assert a + b == b + a
    assert a + empty == a == empty + a
    assert agg_of([]) == empty
    assert hash(a + b) == hash(b + a)


@given(
    facts=st.lists(tx_facts, max_size=30), period_cost=st.none() | st.integers(min_value=0, max_value=10**9)
)
def test_transaction_formulas_never_raise_and_never_return_nan(
    facts: list[TxFact], period_cost: int | None
) -> None:
    tx = tx_agg_of(facts)
    values = [
        digital_takeup(tx),
        completion_rate(tx),
        total_cost_e4(tx, period_cost),
        cost_per_transaction_e4(tx, period_cost),
        time_to_complete_mean_ms(tx),
        time_to_complete_median_ms(tx),
        time_to_complete_p95_ms(tx),
    ]
    assert all(is_finite_or_none(v) for v in values)
    takeup = digital_takeup(tx)
    assert takeup is None or 0 < takeup <= 1


@given(
    ratings=st.lists(st.integers(min_value=1, max_value=5), max_size=30),
    probes=st.lists(probe_facts, max_size=30),
    journey=st.lists(journey_facts, max_size=30),
)
def test_other_formulas_never_raise_and_stay_in_range(
    ratings: list[int], probes: list[ProbeFact], journey: list[JourneyFact]
) -> None:
    score = satisfaction_score(rating_agg_of(ratings))
    mean = satisfaction_mean(rating_agg_of(ratings))
    assert score is None or 0 <= score <= 1
    assert mean is None or 1 <= mean <= 5
    p = probe_agg_of(probes)
    share = uptime(p)
    assert share is None or 0 <= share <= 1
    assert is_finite_or_none(response_time_mean_ms(p))
    assert is_finite_or_none(journey_completion_rate(journey_agg_of(journey)))


@given(
    current=st.lists(tx_facts, max_size=20),
    previous=st.lists(tx_facts, max_size=20),
    ratings=st.lists(st.integers(min_value=1, max_value=5), max_size=10),
    probes=st.lists(probe_facts, max_size=10),
)
@settings(max_examples=50)
def test_kpi_summary_is_always_json_without_nan(
    current: list[TxFact], previous: list[TxFact], ratings: list[int], probes: list[ProbeFact]
) -> None:
    got = kpi_summary(
        "day",
        WindowAggs(ms(2024, 3, 13), ms(2024, 3, 13, 12), tx_agg_of(current), rating_agg_of(ratings)),
        WindowAggs(ms(2024, 3, 12), ms(2024, 3, 12, 12), tx_agg_of(previous), probes=probe_agg_of(probes)),
    )
    json.dumps(got, allow_nan=False)
