"""KPI maths: mergeable partial aggregates and the KPI formulas over them. Pure, stdlib only.

Stream processors fold facts into partial aggregates (``TxAgg``, ``RatingAgg``, ``ProbeAgg``,
``JourneyAgg``), merge them with what is stored, and the read side computes KPIs from the merged
aggregate of a window. The formulas are those of the original platform (reference
``performance-platform.md`` §5); where perfplat departs from it the function says so.

Conventions:

- Money is integer ten-thousandths of a pound (``*_e4``), so sums are exact; ratios of money are
  exact ``Fraction``s of e4 and become pounds (``pounds``) only at the JSON edge.
- Times are UTC epoch milliseconds; durations are milliseconds (ints).
- In a fact, a negative number (``ABSENT`` = -1 by convention) means "not given".
- A KPI that is undefined (empty window, division by zero) is ``None``. Formulas never raise on
  data and never return NaN: they compute with ``Fraction`` and convert to ``float`` once, at the
  return (a single correct rounding). Builders of aggregates refuse unknown channels, outcomes,
  ratings and journey kinds with ``ValueError``: those are caught by the event schemas upstream.
- Duplicates are not this module's job: ingest and the processors drop repeated event ids before
  facts reach it. A fact given twice is counted twice.
- Merging is associative and commutative with ``empty()`` as identity, so any split of a stream
  into batches, in any order, gives the same aggregate as the whole stream in one go.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, NamedTuple, TypedDict, TypeVar

from pipeline.clock import iso_utc
from pipeline.windows import Period, window_of

K = TypeVar("K", bound=Hashable)
F = TypeVar("F")
A = TypeVar("A")

ABSENT = -1
"""What a fact carries for a cost or duration it does not know (any negative value counts)."""

Channel = Literal["digital", "phone", "paper", "face_to_face", "assisted_digital"]
Outcome = Literal["started", "completed", "failed", "abandoned"]
JourneyKind = Literal["start", "done", "help", "error"]
CHANNELS: tuple[Channel, ...] = ("digital", "phone", "paper", "face_to_face", "assisted_digital")
OUTCOMES: tuple[Outcome, ...] = ("started", "completed", "failed", "abandoned")
JOURNEY_KINDS: tuple[JourneyKind, ...] = ("start", "done", "help", "error")
_CHANNELS = frozenset(CHANNELS)
_OUTCOMES = frozenset(OUTCOMES)

Number = int | float | Fraction

MEDIAN = Fraction(1, 2)
P95 = Fraction(95, 100)
E4_PER_POUND = 10_000


# --- building blocks --------------------------------------------------------------------------------


class Counts(Mapping[K, int]):
    """An immutable, hashable count per key. Zero counts are dropped, so equal tallies are equal
    however they were reached; a missing key reads as 0 through :meth:`count`."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[K, int] | None = None) -> None:
        self._data: dict[K, int] = {k: n for k, n in (data or {}).items() if n}

    def __getitem__(self, key: K) -> int:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"Counts({self._data!r})"

    def count(self, key: K) -> int:
        return self._data.get(key, 0)

    def merge(self, other: Counts[K]) -> Counts[K]:
        out = dict(self._data)
        for k, n in other._data.items():
            out[k] = out.get(k, 0) + n
        return Counts(out)

    def __add__(self, other: Counts[K]) -> Counts[K]:
        return self.merge(other)


def _histogram_edges() -> tuple[int, ...]:
    edges = list(range(17))  # 0..16 ms: one bucket per millisecond, exact
    base = 16
    while base < 2**40:  # then 8 equal steps per doubling, up to 2**40 ms (about 35 years)
        edges.extend(base + base // 8 * j for j in range(1, 9))
        base *= 2
    return tuple(edges)


HISTOGRAM_EDGES_MS: tuple[int, ...] = _histogram_edges()
"""Upper edges of the duration histogram's buckets, in ms: 0, 1, …, 16, then eight equal steps per
power of two (18, 20, …, 32, 36, …, 64, …) up to 2**40. A bucket holds the durations ``d`` with
``previous edge < d <= edge``, so its upper edge is at most 12.5% above any duration in it (and
exact up to 16 ms). Log-linear (HDR-style) rather than strictly geometric so every edge is a whole
millisecond computed by integer arithmetic. Durations above 2**40 ms count in the last bucket."""

_MAX_EDGE_MS = HISTOGRAM_EDGES_MS[-1]
_NO_COUNTS: Counts[Any] = Counts()


def bucket_edge_ms(duration_ms: int) -> int:
    """The upper edge of the histogram bucket that holds a (non-negative) duration."""
    return HISTOGRAM_EDGES_MS[bisect.bisect_left(HISTOGRAM_EDGES_MS, min(max(duration_ms, 0), _MAX_EDGE_MS))]


@dataclass(frozen=True, slots=True)
class Histogram:
    """A mergeable histogram of durations: count per bucket, keyed by the bucket's upper edge in ms
    (:data:`HISTOGRAM_EDGES_MS`)."""

    counts: Counts[int] = _NO_COUNTS

    @classmethod
    def empty(cls) -> Histogram:
        return cls()

    @classmethod
    def of(cls, durations_ms: Iterable[int]) -> Histogram:
        counts: dict[int, int] = {}
        for d in durations_ms:
            edge = bucket_edge_ms(d)
            counts[edge] = counts.get(edge, 0) + 1
        return cls(Counts(counts))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: Histogram) -> Histogram:
        return Histogram(self.counts.merge(other.counts))

    def __add__(self, other: Histogram) -> Histogram:
        return self.merge(other)

    def quantile(self, q: Fraction) -> int | None:
        """The ``q`` quantile (0 < q <= 1, exact) by nearest rank: the value of rank
        ``ceil(q * n)`` (at least 1) in ascending order, reported as the **upper edge of the bucket
        holding that rank**. It is never below the true nearest-rank value and at most 12.5% above
        it. ``None`` when the histogram is empty."""
        if not 0 < q <= 1:
            raise ValueError("quantile must be in (0, 1]")
        n = self.total
        if n == 0:
            return None
        rank = max(1, math.ceil(q * n))
        seen = 0
        for edge in sorted(self.counts):
            seen += self.counts[edge]
            if seen >= rank:
                return edge
        raise AssertionError("unreachable: the ranks add up to the total")


_NO_HISTOGRAM = Histogram()


def _ratio(numerator: Number, denominator: Number) -> float | None:
    if denominator == 0:
        return None
    return float(Fraction(numerator) / Fraction(denominator))


# --- transactions -------------------------------------------------------------------------------------


class TxFact(NamedTuple):
    """One transaction event: its channel and outcome, the cost it carries (``cost_e4``, ABSENT if
    none) and, for a completion whose start is known, its time to complete (``ttc_ms``)."""

    channel: Channel
    outcome: Outcome
    cost_e4: int = ABSENT
    ttc_ms: int = ABSENT


@dataclass(frozen=True, slots=True)
class TxAgg:
    """Transactions in a window: counts by ``(channel, outcome)``; the sum of the per-transaction
    costs given (``cost_e4``) and how many events carried one (``costed``; put a transaction's cost
    on one of its events, conventionally the completion); time to complete over completions that
    carry one (count, sum and histogram)."""

    counts: Counts[tuple[Channel, Outcome]] = _NO_COUNTS
    cost_e4: int = 0
    costed: int = 0
    ttc_count: int = 0
    ttc_sum_ms: int = 0
    ttc_hist: Histogram = _NO_HISTOGRAM

    @classmethod
    def empty(cls) -> TxAgg:
        return cls()

    def merge(self, other: TxAgg) -> TxAgg:
        return TxAgg(
            self.counts.merge(other.counts),
            self.cost_e4 + other.cost_e4,
            self.costed + other.costed,
            self.ttc_count + other.ttc_count,
            self.ttc_sum_ms + other.ttc_sum_ms,
            self.ttc_hist.merge(other.ttc_hist),
        )

    def __add__(self, other: TxAgg) -> TxAgg:
        return self.merge(other)

    def count(self, channel: Channel | None = None, outcome: Outcome | None = None) -> int:
        """Events of that channel and outcome; ``None`` means any."""
        return sum(
            n
            for (c, o), n in self.counts.items()
            if (channel is None or c == channel) and (outcome is None or o == outcome)
        )

    @property
    def started(self) -> int:
        return self.count(outcome="started")

    @property
    def completed(self) -> int:
        return self.count(outcome="completed")


def tx_agg_of(facts: Iterable[TxFact]) -> TxAgg:
    """The aggregate of some transaction facts. A ``ttc_ms`` on anything but a completion is
    ignored; a negative cost or duration means "not given"."""
    counts: dict[tuple[Channel, Outcome], int] = {}
    cost_e4 = costed = ttc_count = ttc_sum_ms = 0
    ttcs: list[int] = []
    for channel, outcome, cost, ttc in facts:
        if channel not in _CHANNELS:
            raise ValueError(f"unknown channel {channel!r}")
        if outcome not in _OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        counts[channel, outcome] = counts.get((channel, outcome), 0) + 1
        if cost >= 0:
            cost_e4 += cost
            costed += 1
        if outcome == "completed" and ttc >= 0:
            ttc_count += 1
            ttc_sum_ms += ttc
            ttcs.append(ttc)
    return TxAgg(Counts(counts), cost_e4, costed, ttc_count, ttc_sum_ms, Histogram.of(ttcs))


def digital_takeup(tx: TxAgg) -> float | None:
    """Completed digital transactions ÷ completed transactions on all channels.

    ``None`` when there are no completions, and — as the original (transactions-explorer) did —
    also when the digital volume is 0: a service with no digital completions shows no take-up
    rather than 0%. Only the ``digital`` channel counts as digital; ``assisted_digital`` does not.
    """
    digital = tx.count("digital", "completed")
    if digital == 0:
        return None
    return _ratio(digital, tx.completed)


def completion_rate(tx: TxAgg) -> float | None:
    """Completed ÷ started transactions in the window (all channels); ``None`` if none started.

    Not clamped: it can exceed 1 when completions in a window belong to transactions started in an
    earlier window. The original (spotlight) computed it the same way, Σend ÷ Σstart per bucket.
    """
    return _ratio(tx.completed, tx.started)


def total_cost_e4(tx: TxAgg, period_cost_e4: Fraction | int | None = None) -> Fraction | None:
    """Total cost of the window: the period costs attributed to it (``period_cost_e4``, from
    :func:`attributed_cost_e4`; ``None`` if none known) plus the per-transaction costs given.
    ``None`` when no cost is known at all."""
    if tx.costed == 0 and period_cost_e4 is None:
        return None
    return Fraction(tx.cost_e4) + Fraction(period_cost_e4 or 0)


def cost_per_transaction_e4(tx: TxAgg, period_cost_e4: Fraction | int | None = None) -> Fraction | None:
    """Total cost (:func:`total_cost_e4`) ÷ completed transactions, exact, in e4 per transaction.
    ``None`` when nothing completed or no cost is known."""
    total = total_cost_e4(tx, period_cost_e4)
    if total is None or tx.completed == 0:
        return None
    return total / tx.completed


def time_to_complete_mean_ms(tx: TxAgg) -> float | None:
    """Mean time to complete over completions that carry one; ``None`` if none does."""
    return _ratio(tx.ttc_sum_ms, tx.ttc_count)


def time_to_complete_median_ms(tx: TxAgg) -> int | None:
    """Median time to complete from the histogram (upper bucket edge, see :meth:`Histogram.quantile`)."""
    return tx.ttc_hist.quantile(MEDIAN)


def time_to_complete_p95_ms(tx: TxAgg) -> int | None:
    """95th percentile time to complete from the histogram (upper bucket edge)."""
    return tx.ttc_hist.quantile(P95)


# --- costs ------------------------------------------------------------------------------------------


class PeriodCost(NamedTuple):
    """A cost incurred over ``[start_ms, end_ms)`` (a quarter's running cost, say)."""

    amount_e4: int
    start_ms: int
    end_ms: int


def prorate_cost(
    amount_e4: int, cost_start_ms: int, cost_end_ms: int, window_start_ms: int, window_end_ms: int
) -> Fraction:
    """The share of a cost over ``[cost_start, cost_end)`` that falls in the window
    ``[window_start, window_end)``, linear in time and exact: amount * overlap / cost period.

    The shares of a cost over windows that partition its period add up to the amount exactly. A
    zero-length cost is a point cost: all of it lands in the window that holds its instant. Keep
    the ``Fraction`` while summing; :func:`to_e4` rounds to a whole e4 at the edge.
    """
    if cost_end_ms < cost_start_ms or window_end_ms < window_start_ms:
        raise ValueError("a range ends before it starts")
    if cost_end_ms == cost_start_ms:
        inside = window_start_ms <= cost_start_ms < window_end_ms
        return Fraction(amount_e4) if inside else Fraction(0)
    overlap = max(0, min(cost_end_ms, window_end_ms) - max(cost_start_ms, window_start_ms))
    return Fraction(amount_e4 * overlap, cost_end_ms - cost_start_ms)


def _overlaps(cost: PeriodCost, window_start_ms: int, window_end_ms: int) -> bool:
    if cost.end_ms == cost.start_ms:
        return window_start_ms <= cost.start_ms < window_end_ms
    return max(cost.start_ms, window_start_ms) < min(cost.end_ms, window_end_ms)


def attributed_cost_e4(
    costs: Iterable[PeriodCost], window_start_ms: int, window_end_ms: int
) -> Fraction | None:
    """The sum of the period costs' shares in the window (:func:`prorate_cost`); ``None`` when no
    cost overlaps the window, so that an unknown cost stays unknown rather than £0."""
    shares = [
        prorate_cost(c.amount_e4, c.start_ms, c.end_ms, window_start_ms, window_end_ms)
        for c in costs
        if _overlaps(c, window_start_ms, window_end_ms)
    ]
    return sum(shares, Fraction(0)) if shares else None


def to_e4(value: Fraction | int) -> int:
    """A whole number of e4, rounding half to even (exact, no float): sums of many prorated
    shares do not drift one way. Rounding each share loses up to half an e4 per share, so round
    once, after summing."""
    return round(Fraction(value))


def pounds(value_e4: Fraction | int) -> float:
    """Pounds from e4, for the JSON edge (one correct rounding to float)."""
    return float(Fraction(value_e4) / E4_PER_POUND)


# --- user satisfaction ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RatingAgg:
    """Counts of ratings 1 (very dissatisfied) … 5 (very satisfied)."""

    counts: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)

    @classmethod
    def empty(cls) -> RatingAgg:
        return cls()

    def merge(self, other: RatingAgg) -> RatingAgg:
        a, b = self.counts, other.counts
        return RatingAgg((a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4]))

    def __add__(self, other: RatingAgg) -> RatingAgg:
        return self.merge(other)

    @property
    def total(self) -> int:
        return sum(self.counts)


def rating_agg_of(ratings: Iterable[int]) -> RatingAgg:
    counts = [0, 0, 0, 0, 0]
    for r in ratings:
        if not 1 <= r <= 5:
            raise ValueError(f"rating {r!r} is not 1..5")
        counts[r - 1] += 1
    return RatingAgg((counts[0], counts[1], counts[2], counts[3], counts[4]))


def _satisfaction_mean(r: RatingAgg) -> Fraction | None:
    if r.total == 0:
        return None
    return Fraction(sum(i * n for i, n in enumerate(r.counts, start=1)), r.total)


def satisfaction_mean(r: RatingAgg) -> float | None:
    """Mean rating, Σ i·nᵢ ÷ Σ nᵢ (1..5); ``None`` with no ratings."""
    mean = _satisfaction_mean(r)
    return None if mean is None else float(mean)


def satisfaction_score(r: RatingAgg) -> float | None:
    """(mean - 1) / 4, in [0, 1] (shown as a percentage); ``None`` with no ratings. Across buckets
    the original weighted by response counts, which is what merging the counts does.

    Computed exactly. The original transform (backdrop ``user_satisfaction.py``) ran on Python 2:
    with integer sums ``score / total`` truncated the mean (ratings [1,0,0,0,4] gave 4, not 4.2)
    and ``(mean - 1) / 4`` truncated again, so such a score could only be 0 or 1. perfplat does not
    reproduce that; it agrees with spotlight, which computed in floating point.
    """
    mean = _satisfaction_mean(r)
    return None if mean is None else float((mean - 1) / 4)


# --- availability -----------------------------------------------------------------------------------


class ProbeFact(NamedTuple):
    """One health-check probe: was the service up, and its response time (ABSENT if no response)."""

    up: bool
    response_ms: int = ABSENT


@dataclass(frozen=True, slots=True)
class ProbeAgg:
    """Probes in a window: how many, how many found the service up, and response times over the
    probes that got a response (count, sum, histogram)."""

    probes: int = 0
    up: int = 0
    rt_count: int = 0
    rt_sum_ms: int = 0
    rt_hist: Histogram = _NO_HISTOGRAM

    @classmethod
    def empty(cls) -> ProbeAgg:
        return cls()

    def merge(self, other: ProbeAgg) -> ProbeAgg:
        return ProbeAgg(
            self.probes + other.probes,
            self.up + other.up,
            self.rt_count + other.rt_count,
            self.rt_sum_ms + other.rt_sum_ms,
            self.rt_hist.merge(other.rt_hist),
        )

    def __add__(self, other: ProbeAgg) -> ProbeAgg:
        return self.merge(other)


def probe_agg_of(facts: Iterable[ProbeFact]) -> ProbeAgg:
    probes = up = rt_count = rt_sum_ms = 0
    rts: list[int] = []
    for is_up, response_ms in facts:
        probes += 1
        up += bool(is_up)
        if response_ms >= 0:
            rt_count += 1
            rt_sum_ms += response_ms
            rts.append(response_ms)
    return ProbeAgg(probes, up, rt_count, rt_sum_ms, Histogram.of(rts))


def uptime(p: ProbeAgg) -> float | None:
    """Share of probes that found the service up; ``None`` with no probes.

    The original took Pingdom's hourly uptime and downtime seconds, Σuptime ÷ Σ(uptime + downtime)
    (unmonitored time left out); with probes at a steady interval the share of probes is the same.
    """
    return _ratio(p.up, p.probes)


def response_time_mean_ms(p: ProbeAgg) -> float | None:
    """Mean response time over probes that got a response; ``None`` if none did.

    The original averaged the hourly means without weights; with a steady prober every hour holds
    the same number of responses and the two agree.
    """
    return _ratio(p.rt_sum_ms, p.rt_count)


def response_time_p95_ms(p: ProbeAgg) -> int | None:
    """95th percentile response time from the histogram (upper bucket edge); ``None`` if no response."""
    return p.rt_hist.quantile(P95)


# --- journeys ---------------------------------------------------------------------------------------


class JourneyFact(NamedTuple):
    """One journey event, already classified by the service's journey configuration: a start, a
    done, or a help/error click with its label (Stageprompt ``carers-allowance:help:info`` is
    ``JourneyFact("help", "info")``)."""

    kind: JourneyKind
    label: str = ""


@dataclass(frozen=True, slots=True)
class JourneyAgg:
    """A journey in a window: starts, dones, and help/error clicks counted by ``(kind, label)``."""

    starts: int = 0
    dones: int = 0
    clicks: Counts[tuple[JourneyKind, str]] = _NO_COUNTS

    @classmethod
    def empty(cls) -> JourneyAgg:
        return cls()

    def merge(self, other: JourneyAgg) -> JourneyAgg:
        return JourneyAgg(
            self.starts + other.starts, self.dones + other.dones, self.clicks.merge(other.clicks)
        )

    def __add__(self, other: JourneyAgg) -> JourneyAgg:
        return self.merge(other)


def journey_agg_of(facts: Iterable[JourneyFact]) -> JourneyAgg:
    starts = dones = 0
    clicks: dict[tuple[JourneyKind, str], int] = {}
    for kind, label in facts:
        if kind == "start":
            starts += 1
        elif kind == "done":
            dones += 1
        elif kind in ("help", "error"):
            clicks[kind, label] = clicks.get((kind, label), 0) + 1
        else:
            raise ValueError(f"unknown journey kind {kind!r}")
    return JourneyAgg(starts, dones, Counts(clicks))


def journey_completion_rate(j: JourneyAgg) -> float | None:
    """Dones ÷ starts; ``None`` if nothing started. Not clamped: it can exceed 1 when journeys
    done in the window started in an earlier one."""
    return _ratio(j.dones, j.starts)


# --- windows ----------------------------------------------------------------------------------------


def aggregate_by_window(
    stamped: Iterable[tuple[int, F]], period: Period, agg_of: Callable[[list[F]], A]
) -> dict[int, A]:
    """Aggregates per window start (ms), each fact in the window of **its own timestamp**: a late
    event lands in its past window, never in the one it arrived in. Sorted by window start."""
    groups: dict[int, list[F]] = {}
    for ts_ms, fact in stamped:
        groups.setdefault(window_of(ts_ms, period)[0], []).append(fact)
    return {start: agg_of(groups[start]) for start in sorted(groups)}


# --- change against the previous period -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """``absolute`` = current - previous (an int when both are ints); ``relative`` = that ÷
    |previous| (so a rise is positive), ``None`` when previous is ``None`` or 0. Both ``None``
    when either value is ``None``."""

    absolute: int | float | None
    relative: float | None


def _finite(x: Number) -> bool:
    return not isinstance(x, float) or math.isfinite(x)


def change(current: Number | None, previous: Number | None) -> Change:
    if current is None or previous is None or not (_finite(current) and _finite(previous)):
        return Change(None, None)
    diff = Fraction(current) - Fraction(previous)
    absolute: int | float = (
        int(diff) if isinstance(current, int) and isinstance(previous, int) else float(diff)
    )
    relative = None if previous == 0 else float(diff / abs(Fraction(previous)))
    return Change(absolute, relative)


# --- cross-service aggregates ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceFigures:
    """One service's figures for a period, as the cross-service aggregate takes them.
    ``number_of_transactions`` (completed transactions) is the weight."""

    number_of_transactions: int
    total_cost_e4: Fraction | int | None = None
    cost_per_transaction_e4: Fraction | int | None = None
    digital_takeup: Number | None = None
    completion_rate: Number | None = None
    user_satisfaction_score: Number | None = None


def service_figures(
    tx: TxAgg, ratings: RatingAgg | None = None, period_cost_e4: Fraction | int | None = None
) -> ServiceFigures:
    """A service's figures from its aggregates for the period."""
    return ServiceFigures(
        number_of_transactions=tx.completed,
        total_cost_e4=total_cost_e4(tx, period_cost_e4),
        cost_per_transaction_e4=cost_per_transaction_e4(tx, period_cost_e4),
        digital_takeup=digital_takeup(tx),
        completion_rate=completion_rate(tx),
        user_satisfaction_score=None if ratings is None else satisfaction_score(ratings),
    )


@dataclass(frozen=True, slots=True)
class CrossServiceFigures:
    """The figures across services (the original's services list, spotlight ``services.js``)."""

    number_of_transactions: int
    total_cost_gbp: float | None
    cost_per_transaction_gbp: float | None
    """Volume-weighted mean, pounds, 1 dp."""
    digital_takeup: float | None
    """Volume-weighted mean of the 0..1 ratio, 3 dp; likewise the two below."""
    completion_rate: float | None
    user_satisfaction_score: float | None


def round_to_fixed(value: Number, places: int) -> float:
    """``value`` rounded to ``places`` decimals as JavaScript's ``toFixed`` (then ``parseFloat``)
    rounds: to nearest, a tie away from zero. Rounds the exact value, so it agrees with ``toFixed``
    except where the original's own floating-point arithmetic had drifted across a tie."""
    x = Fraction(value)
    scale = 10**places
    n = math.floor(abs(x) * scale + Fraction(1, 2))
    return float(Fraction(n if x >= 0 else -n, scale))


def volume_weighted_mean(values: Iterable[tuple[Number | None, int]], places: int) -> float | None:
    """Σ value·volume ÷ Σ volume over the ``(value, volume)`` pairs whose value is known and whose
    volume is positive (the others count in neither sum), exact, then :func:`round_to_fixed`.
    ``None`` when no pair counts. Independent of the pairs' order."""
    weighted = Fraction(0)
    volume = 0
    for value, n in values:
        if value is not None and _finite(value) and n > 0:
            weighted += Fraction(value) * n
            volume += n
    if volume == 0:
        return None
    return round_to_fixed(weighted / volume, places)


def cross_service(services: Iterable[ServiceFigures]) -> CrossServiceFigures:
    """Figures across services as the original computed them (reference §5): sums for the number
    of transactions and the total cost; means weighted by number of transactions for cost per
    transaction (pounds, 1 dp), digital take-up, completion rate and satisfaction score (0..1
    ratios shown as percentages, 3 dp). A service whose value is ``None`` or whose number of
    transactions is 0 is left out of that mean's numerator and weights.

    The original also left out a 0 value from any service but the first it met (``if (val && …)``);
    perfplat counts a known 0 like any other value.
    """
    rows = list(services)
    costs = [Fraction(s.total_cost_e4) for s in rows if s.total_cost_e4 is not None]

    def mean(value: Callable[[ServiceFigures], Number | None], places: int) -> float | None:
        return volume_weighted_mean([(value(s), s.number_of_transactions) for s in rows], places)

    def cpt_gbp(s: ServiceFigures) -> Fraction | None:
        cpt = s.cost_per_transaction_e4
        return None if cpt is None else Fraction(cpt, E4_PER_POUND)

    return CrossServiceFigures(
        number_of_transactions=sum(s.number_of_transactions for s in rows),
        total_cost_gbp=pounds(sum(costs, Fraction(0))) if costs else None,
        cost_per_transaction_gbp=mean(cpt_gbp, 1),
        digital_takeup=mean(lambda s: s.digital_takeup, 3),
        completion_rate=mean(lambda s: s.completion_rate, 3),
        user_satisfaction_score=mean(lambda s: s.user_satisfaction_score, 3),
    )


# --- KPI summary ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowAggs:
    """Everything known about one service (or journey) in one window ``[start_ms, end_ms)``."""

    start_ms: int
    end_ms: int
    tx: TxAgg = TxAgg()
    ratings: RatingAgg = RatingAgg()
    probes: ProbeAgg = ProbeAgg()
    journey: JourneyAgg = JourneyAgg()
    period_cost_e4: Fraction | int | None = None
    """Period costs attributed to the window (:func:`attributed_cost_e4`), ``None`` if none known."""


class WindowJson(TypedDict):
    start: str
    end: str


class ChangeJson(TypedDict):
    absolute: int | float | None
    relative: float | None


class KpiJson(TypedDict):
    value: int | float | None
    unit: str
    window: WindowJson
    previous: int | float | None
    change: ChangeJson


class KpiSummary(TypedDict):
    """The summary as JSON: the period, both windows, and per KPI its value, unit, window, the
    previous window's value and the change. Units: ``count``, ``ratio`` (0..1, shown as a
    percentage), ``GBP`` (pounds), ``ms``."""

    period: str
    window: WindowJson
    previous_window: WindowJson
    kpis: dict[str, KpiJson]


def _gbp(value_e4: Fraction | None) -> Fraction | None:
    return None if value_e4 is None else value_e4 / E4_PER_POUND


# Each KPI: name, unit, value from a window's aggregates. Money stays an exact Fraction (pounds)
# until the change is taken; everything becomes int or float only in the JSON.
_KPIS: tuple[tuple[str, str, Callable[[WindowAggs], Number | None]], ...] = (
    ("transactions_started", "count", lambda w: w.tx.started),
    ("transactions_completed", "count", lambda w: w.tx.completed),
    ("digital_takeup", "ratio", lambda w: digital_takeup(w.tx)),
    ("completion_rate", "ratio", lambda w: completion_rate(w.tx)),
    ("total_cost", "GBP", lambda w: _gbp(total_cost_e4(w.tx, w.period_cost_e4))),
    ("cost_per_transaction", "GBP", lambda w: _gbp(cost_per_transaction_e4(w.tx, w.period_cost_e4))),
    ("time_to_complete_mean", "ms", lambda w: time_to_complete_mean_ms(w.tx)),
    ("time_to_complete_median", "ms", lambda w: time_to_complete_median_ms(w.tx)),
    ("time_to_complete_p95", "ms", lambda w: time_to_complete_p95_ms(w.tx)),
    ("satisfaction_responses", "count", lambda w: w.ratings.total),
    ("user_satisfaction_score", "ratio", lambda w: satisfaction_score(w.ratings)),
    ("availability", "ratio", lambda w: uptime(w.probes)),
    ("response_time_mean", "ms", lambda w: response_time_mean_ms(w.probes)),
    ("response_time_p95", "ms", lambda w: response_time_p95_ms(w.probes)),
    ("journey_starts", "count", lambda w: w.journey.starts),
    ("journey_completion_rate", "ratio", lambda w: journey_completion_rate(w.journey)),
)
KPI_NAMES: tuple[str, ...] = tuple(name for name, _, _ in _KPIS)


def _json_number(value: Number | None) -> int | float | None:
    return float(value) if isinstance(value, Fraction) else value


def _window_json(w: WindowAggs) -> WindowJson:
    return {"start": iso_utc(w.start_ms), "end": iso_utc(w.end_ms)}


def kpi_summary(period: Period, current: WindowAggs, previous: WindowAggs) -> KpiSummary:
    """Every KPI (:data:`KPI_NAMES`) for the current window, with the previous window's value and
    the change against it (:func:`change`). A plain dict of str, int, float and None, ready for
    JSON; windows as ISO 8601 UTC to the second (``iso_utc``). Which windows to compare is the
    caller's choice (``pipeline.windows.so_far_window`` and ``previous_so_far_window`` for a
    current value)."""
    kpis: dict[str, KpiJson] = {}
    for name, unit, compute in _KPIS:
        now, before = compute(current), compute(previous)
        delta = change(now, before)
        kpis[name] = {
            "value": _json_number(now),
            "unit": unit,
            "window": _window_json(current),
            "previous": _json_number(before),
            "change": {"absolute": delta.absolute, "relative": delta.relative},
        }
    return {
        "period": period,
        "window": _window_json(current),
        "previous_window": _window_json(previous),
        "kpis": kpis,
    }
