"""Synthetic traffic: a realistic day of a handful of services, and ``perfplat simulate`` to send it.

The generator (``simulate``) is pure and seeded: the same seed, day, profiles and volume give the
same events, in timestamp order, every time. It does no I/O and reads no settings. What it makes,
per service (``ServiceProfile``):

* **Journeys** (Stageprompt, as ``POST /beacon`` takes them, ``pipeline.beacon``): a digital user
  lands on ``start``, walks the service's stages and reaches ``done``, or leaves on the way
  (``stage_drop``: the chance of leaving each page). Users click help now and then, and often at
  the ``stuck_stage``, where they also stay longer and leave more. A payment that fails shows an
  ``error`` page.
* **Transactions** (``schemas.transaction``): every user starts one, through ``digital`` (the
  profile's ``digital_share``) or an offline channel (``offline_channels``). A digital one
  completes when its journey reaches ``done`` (with ``started_at`` and a cost), fails with the
  payment, or is abandoned 30 minutes after the user's last page. Offline ones complete, fail or
  are abandoned after a time typical of the channel (minutes by phone, hours by post).
* **Satisfaction ratings** (``schemas.satisfaction``): some users who reach ``done`` answer the
  survey, rating by the profile's ``rating_weights``, sometimes with a comment.
* **Costs** (``schemas.cost``): the day's running cost of each channel the service offers.
* **Probe results** (``schemas.availability``): the service's health check, at a steady interval,
  mostly up with response times that slow a little at busy hours, and one short outage.

User traffic follows ``DAILY_CURVE`` (UTC hours): quiet at night, peaks mid-morning and mid-afternoon.
``events_per_day`` is the expected total across services: about 5% goes to probes (at most one a
minute per service) and the rest to users, shared by the profiles' ``weight``. Events that would
fall after the day (a transaction completed after midnight) are left out, so the day is the day.

Ids are derived from the seed, day and service, so sending the same simulation twice changes no
figure (the platform drops repeated ids).

The command ``perfplat simulate`` (``add_arguments``, ``main``, below the generator) sends a day
through the Python SDK (transactions, ratings, costs, probes) and journeys to a beacon URL, at
``--rate`` events per second or as fast as possible.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import heapq
import itertools
import math
import random
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from pipeline.beacon import SLUG
from schemas import availability
from schemas.availability import AvailabilityEvent
from schemas.fields import CHANNELS

if TYPE_CHECKING:
    import httpx

    from producers.sdk import Client, DeliveryFailure

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
DAILY_CURVE: tuple[float, ...] = (
    0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.6, 3.0, 5.0, 7.0, 8.0, 8.2,
    7.4, 7.0, 7.8, 8.0, 7.2, 5.8, 4.6, 4.0, 3.6, 3.0, 2.0, 1.1,
)  # fmt: skip
"""Relative traffic in each UTC hour of the day."""
PROBE_SHARE = 0.05
MAX_PROBES_PER_SERVICE = 1440
ABANDON_AFTER_MS = 30 * 60_000
"""A user who leaves is reported abandoned when their session would have expired."""
OFFLINE_MINUTES = {"phone": 12.0, "assisted_digital": 30.0, "face_to_face": 40.0, "paper": 300.0}
"""Median time to complete a transaction by channel."""
COST_PER_COMPLETION = {
    "digital": 2.2,
    "assisted_digital": 9.5,
    "phone": 7.4,
    "face_to_face": 16.0,
    "paper": 12.8,
}
"""Pounds per completed transaction, before a profile's ``cost_scale``."""
BASE_HELP_CHANCE = 0.02
_COMMENTS = {
    1: ("The page kept timing out.", "I could not upload my documents.", "Far too long."),
    2: ("Confusing questions about my address.", "Took me three attempts."),
    3: ("It was fine.", "OK once I found the guidance."),
    4: ("Straightforward.", "Mostly clear, one question was odd."),
    5: ("Quick and clear.", "Much easier than the paper form!", "Done in ten minutes."),
}
_COMMENT_CHANCE = 0.25
_OFFLINE = tuple(c for c in CHANNELS if c != "digital")


# --- what a service looks like --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceProfile:
    """How one simulated service behaves. ``stage_drop[k]`` is the chance a user leaves page
    ``k`` of ``("start", *stages)`` instead of going on; ``stuck_stage`` indexes ``stages``."""

    slug: str
    stages: tuple[str, ...] = ("eligibility", "details", "documents", "payment")
    stage_drop: tuple[float, ...] = (0.08, 0.05, 0.06, 0.18, 0.04)
    stuck_stage: int = 2
    stuck_help_chance: float = 0.3
    help_labels: tuple[str, ...] = ("guidance", "contact-us", "what-counts")
    payment_failure: float = 0.03
    stage_seconds: float = 75.0
    weight: float = 1.0
    digital_share: float = 0.75
    offline_channels: tuple[tuple[str, float], ...] = (("phone", 0.6), ("paper", 0.3), ("face_to_face", 0.1))
    offline_completion: float = 0.85
    offline_failure: float = 0.05
    cost_scale: float = 1.0
    daily_cost: float = 1500.0
    """Running cost of the service per day in pounds, shared among its channels by volume."""
    rating_share: float = 0.3
    rating_weights: tuple[float, float, float, float, float] = (0.04, 0.06, 0.12, 0.38, 0.40)
    response_ms: int = 180
    outage_minutes: float = 20.0

    def __post_init__(self) -> None:
        if not SLUG.fullmatch(self.slug):
            raise ValueError(f"{self.slug!r} is not a service slug")
        if not self.stages or len(self.stage_drop) != len(self.stages) + 1:
            raise ValueError("stage_drop needs one chance for start and one for each stage")
        if len(set(self.pages)) != len(self.pages) or "done" in self.stages or not all(self.stages):
            raise ValueError("stages must be distinct names other than start and done")
        if not 0 <= self.stuck_stage < len(self.stages):
            raise ValueError("stuck_stage must index stages")
        chances = (
            *self.stage_drop,
            self.stuck_help_chance,
            self.payment_failure,
            self.digital_share,
            self.offline_completion,
            self.offline_failure,
            self.offline_completion + self.offline_failure,
            self.rating_share,
        )
        if not all(0 <= p <= 1 for p in chances):
            raise ValueError("chances and shares must be from 0 to 1")
        if not self.help_labels or len(self.rating_weights) != 5 or sum(self.rating_weights) <= 0:
            raise ValueError("a profile needs help labels and five rating weights")
        if any(c not in _OFFLINE or w < 0 for c, w in self.offline_channels):
            raise ValueError(f"offline channels are {', '.join(_OFFLINE)} with weights of 0 or more")
        if self.digital_share < 1 and sum(w for _, w in self.offline_channels) <= 0:
            raise ValueError("a service with offline transactions needs an offline channel")
        if min(self.weight, self.stage_seconds, self.cost_scale, self.daily_cost, self.outage_minutes) < 0:
            raise ValueError("weights, times and costs must not be negative")
        if self.response_ms < 1:
            raise ValueError("response_ms must be at least 1")

    @property
    def pages(self) -> tuple[str, ...]:
        return ("start", *self.stages)

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels this service's transactions go through."""
        offline = tuple(c for c, w in self.offline_channels if w > 0) if self.digital_share < 1 else ()
        return (("digital",) if self.digital_share > 0 else ()) + offline

    def help_chance(self, page: int) -> float:
        return self.stuck_help_chance if page == self.stuck_stage + 1 else BASE_HELP_CHANCE

    def expected_events_per_user(self) -> float:
        """Events one user makes on average (journey, transaction, rating), for sizing a day."""
        reach, journey = 1.0, 0.0
        for page, drop in enumerate(self.stage_drop):
            journey += reach * (1 + self.help_chance(page))
            reach *= 1 - drop
        journey += reach * (1 + (1 - self.payment_failure) * self.rating_share)  # done or error page
        return self.digital_share * journey + 2  # started + its outcome, on any channel


_CATALOGUE: tuple[ServiceProfile, ...] = (
    ServiceProfile(
        "apply-for-a-passport",
        stages=("eligibility", "photo", "personal-details", "countersignatory", "payment"),
        stage_drop=(0.06, 0.04, 0.16, 0.05, 0.07, 0.03),
        stuck_stage=1,
        help_labels=("photo-rules", "contact-us", "urgent-travel"),
        weight=3.0,
        digital_share=0.82,
        offline_channels=(("paper", 0.7), ("face_to_face", 0.3)),
        cost_scale=1.4,
        daily_cost=9000.0,
        rating_weights=(0.03, 0.04, 0.09, 0.34, 0.50),
        response_ms=140,
    ),
    ServiceProfile(
        "carers-allowance",
        stages=("eligibility", "about-you", "about-the-person", "employment", "declaration"),
        stage_drop=(0.12, 0.05, 0.06, 0.08, 0.2, 0.02),
        stuck_stage=3,
        help_labels=("info", "contact-us", "earnings-limit"),
        payment_failure=0.0,
        weight=1.5,
        digital_share=0.55,
        offline_channels=(("paper", 0.6), ("phone", 0.3), ("assisted_digital", 0.1)),
        rating_weights=(0.06, 0.08, 0.16, 0.35, 0.35),
        response_ms=220,
    ),
    ServiceProfile(
        "register-to-vote",
        stages=("nationality", "address", "national-insurance"),
        stage_drop=(0.04, 0.02, 0.05, 0.12),
        stuck_stage=2,
        help_labels=("no-ni-number", "guidance"),
        payment_failure=0.0,
        weight=2.5,
        digital_share=0.93,
        offline_channels=(("paper", 1.0),),
        daily_cost=600.0,
        rating_weights=(0.02, 0.03, 0.07, 0.28, 0.60),
        response_ms=95,
    ),
    ServiceProfile(
        "renew-driving-licence",
        stages=("licence-number", "identity", "medical", "photo", "payment"),
        stage_drop=(0.05, 0.07, 0.04, 0.15, 0.06, 0.02),
        stuck_stage=2,
        help_labels=("medical-conditions", "contact-us"),
        weight=2.0,
        digital_share=0.68,
        offline_channels=(("paper", 0.5), ("face_to_face", 0.5)),
        cost_scale=1.1,
        daily_cost=4200.0,
        rating_weights=(0.05, 0.06, 0.14, 0.37, 0.38),
        response_ms=260,
    ),
    ServiceProfile(
        "book-prison-visit",
        stages=("prisoner-details", "visitors", "choose-time"),
        stage_drop=(0.1, 0.08, 0.06, 0.22),
        stuck_stage=2,
        help_labels=("visiting-rules", "contact-prison"),
        payment_failure=0.0,
        weight=0.6,
        digital_share=0.6,
        offline_channels=(("phone", 1.0),),
        daily_cost=350.0,
        rating_weights=(0.1, 0.1, 0.2, 0.3, 0.3),
        response_ms=310,
    ),
    ServiceProfile(
        "lasting-power-of-attorney",
        stages=("donor", "attorneys", "decisions", "certificate-provider", "payment"),
        stage_drop=(0.15, 0.08, 0.1, 0.12, 0.14, 0.05),
        stuck_stage=3,
        help_labels=("what-is-a-certificate-provider", "guidance", "contact-us"),
        weight=0.9,
        digital_share=0.45,
        offline_channels=(("paper", 0.8), ("phone", 0.2)),
        cost_scale=1.8,
        daily_cost=2500.0,
        rating_weights=(0.05, 0.08, 0.17, 0.4, 0.3),
    ),
    ServiceProfile(
        "vehicle-tax",
        stages=("reference-number", "vehicle-details", "payment"),
        stage_drop=(0.03, 0.04, 0.03, 0.05),
        stuck_stage=0,
        help_labels=("where-is-my-reference", "contact-us"),
        payment_failure=0.05,
        weight=4.0,
        digital_share=0.88,
        offline_channels=(("phone", 0.4), ("face_to_face", 0.6)),
        cost_scale=0.6,
        daily_cost=3000.0,
        rating_weights=(0.02, 0.02, 0.06, 0.3, 0.6),
        response_ms=120,
    ),
    ServiceProfile(
        "student-finance",
        stages=("course", "household-income", "bank-details", "evidence"),
        stage_drop=(0.09, 0.05, 0.2, 0.04, 0.1),
        stuck_stage=1,
        help_labels=("what-counts-as-income", "contact-us"),
        payment_failure=0.0,
        weight=1.2,
        digital_share=0.9,
        offline_channels=(("paper", 0.7), ("phone", 0.3)),
        daily_cost=2100.0,
        rating_weights=(0.07, 0.1, 0.2, 0.33, 0.3),
        response_ms=200,
    ),
)


def default_services(n: int) -> list[ServiceProfile]:
    """``n`` plausible services: a catalogue of real-looking ones, then numbered variants of
    them (``apply-for-a-passport-2`` and so on) when more are asked for."""
    if n < 1:
        raise ValueError("simulate at least one service")
    out: list[ServiceProfile] = []
    for i in range(n):
        base = _CATALOGUE[i % len(_CATALOGUE)]
        round_no = i // len(_CATALOGUE)
        if round_no == 0:
            out.append(base)
            continue
        shift = (round_no * 0.07) % 0.2 - 0.1
        out.append(
            replace(
                base,
                slug=f"{base.slug}-{round_no + 1}",
                digital_share=min(0.98, max(0.05, base.digital_share + shift)),
                weight=base.weight * (0.5 + 0.25 * (round_no % 3)),
            )
        )
    return out


# --- what comes out ------------------------------------------------------------------------------------


class BeaconEvent(TypedDict):
    """One event object of a ``POST /beacon`` body."""

    category: str
    action: str
    label: str
    kind: str
    path: str
    ts: int
    id: str


class TransactionPayload(TypedDict):
    """One transaction event as the write API and ``Client.transaction`` take it."""

    id: str
    service: str
    outcome: str
    channel: str
    timestamp: int
    transaction_id: str
    cost: NotRequired[float]
    started_at: NotRequired[int]


class RatingPayload(TypedDict):
    id: str
    service: str
    rating: int
    timestamp: int
    comment: NotRequired[str]


class CostPayload(TypedDict):
    id: str
    service: str
    period: str
    start: str
    amount: float
    channel: str


@dataclass(frozen=True, slots=True)
class JourneySim:
    ts_ms: int
    service: str
    visitor: str
    """Who sent it: one simulated user. The sender makes it the User-Agent, so each user is a
    visitor of their own to the platform."""
    payload: BeaconEvent
    kind: Literal["journey"] = "journey"


@dataclass(frozen=True, slots=True)
class TransactionSim:
    ts_ms: int
    service: str
    payload: TransactionPayload
    kind: Literal["transaction"] = "transaction"


@dataclass(frozen=True, slots=True)
class RatingSim:
    ts_ms: int
    service: str
    payload: RatingPayload
    kind: Literal["satisfaction"] = "satisfaction"


@dataclass(frozen=True, slots=True)
class CostSim:
    ts_ms: int
    service: str
    payload: CostPayload
    kind: Literal["cost"] = "cost"


@dataclass(frozen=True, slots=True)
class ProbeSim:
    ts_ms: int
    service: str
    payload: AvailabilityEvent
    kind: Literal["availability"] = "availability"


SimEvent = JourneySim | TransactionSim | RatingSim | CostSim | ProbeSim
SIM_KINDS = ("journey", "transaction", "satisfaction", "cost", "availability")


# --- the generator -------------------------------------------------------------------------------------


def simulate(
    seed: int, day: date, services: Sequence[ServiceProfile], events_per_day: int
) -> Iterator[SimEvent]:
    """A day of traffic for ``services``, in timestamp order (ties in a fixed order), every
    timestamp inside ``day`` (UTC). Deterministic in its arguments."""
    if events_per_day < 0:
        raise ValueError("events_per_day must not be negative")
    if not services:
        raise ValueError("simulate at least one service")
    if len({s.slug for s in services}) != len(services):
        raise ValueError("service slugs must differ")
    if events_per_day == 0:
        return
    day_ms = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000
    plans = _plans(seed, day, day_ms, services, events_per_day)
    sources = heapq.merge(*(p.sources() for p in plans))
    later: list[tuple[int, int, SimEvent]] = []
    order = itertools.count()
    for start_ms, _service, _n, make in sources:
        while later and later[0][0] <= start_ms:
            yield heapq.heappop(later)[2]
        for event in make():
            if event.ts_ms < day_ms + DAY_MS:
                heapq.heappush(later, (event.ts_ms, next(order), event))
    while later:
        yield heapq.heappop(later)[2]


def _plans(
    seed: int, day: date, day_ms: int, services: Sequence[ServiceProfile], events_per_day: int
) -> list[_ServiceDay]:
    count = len(services)
    probes = min(MAX_PROBES_PER_SERVICE, round(events_per_day * PROBE_SHARE / count))
    costs = sum(len(s.channels) for s in services)
    users_budget = max(0, events_per_day - probes * count - costs)
    total_weight = sum(s.weight for s in services) or 1.0
    return [
        _ServiceDay(
            profile=s,
            index=i,
            seed=f"{seed}:{day.isoformat()}:{s.slug}",
            day_ms=day_ms,
            users=users_budget * (s.weight / total_weight) / s.expected_events_per_user(),
            probes=probes,
        )
        for i, s in enumerate(services)
    ]


_Source = tuple[int, int, int, Any]
"""(start ms, service index, sequence, a function making that source's events)."""


class _ServiceDay:
    """One service's day: its users' sessions, its probes and its costs, each source yielded at
    the time its first event happens (no event of a source is earlier than its start)."""

    def __init__(
        self, profile: ServiceProfile, index: int, seed: str, day_ms: int, users: float, probes: int
    ) -> None:
        self.p = profile
        self.index = index
        self.day_ms = day_ms
        self.users = users
        self.probes = probes
        self.prefix = hashlib.blake2b(seed.encode(), digest_size=5).hexdigest()
        self.times = random.Random(seed + ":times")
        self.rng = random.Random(seed + ":sessions")
        self.probe_rng = random.Random(seed + ":probes")
        self.day_label = datetime.fromtimestamp(day_ms / 1000, tz=UTC).date().isoformat()

    def sources(self) -> Iterator[_Source]:
        return heapq.merge(self._session_starts(), self._probe_sources(), self._cost_sources())

    # --- users

    def _session_starts(self) -> Iterator[_Source]:
        total = sum(DAILY_CURVE)
        n = 0
        for hour, share in enumerate(DAILY_CURVE):
            expected = self.users * share / total
            count = math.floor(expected) + (self.times.random() < expected - math.floor(expected))
            hour_ms = self.day_ms + hour * HOUR_MS
            for offset in sorted(self.times.randrange(HOUR_MS) for _ in range(count)):
                yield (hour_ms + offset, self.index, n, _Call(self._session, hour_ms + offset, n))
                n += 1

    def _session(self, start_ms: int, n: int) -> list[SimEvent]:
        p, rng = self.p, self.rng
        digital = rng.random() < p.digital_share
        channel = "digital" if digital else _weighted(rng, p.offline_channels)
        ref = f"{self.prefix}.{n:x}"
        tx_ref = f"{self.prefix.upper()}-{n:06d}"
        started: TransactionPayload = {
            "id": f"{ref}.t0",
            "service": p.slug,
            "outcome": "started",
            "channel": channel,
            "timestamp": start_ms,
            "transaction_id": tx_ref,
        }
        events: list[SimEvent] = [TransactionSim(start_ms, p.slug, started)]
        if digital:
            events.extend(self._journey(start_ms, ref, tx_ref))
        else:
            events.append(self._offline_outcome(start_ms, ref, tx_ref, channel))
        return events

    def _journey(self, start_ms: int, ref: str, tx_ref: str) -> list[SimEvent]:
        p, rng = self.p, self.rng
        out: list[SimEvent] = []
        k = itertools.count()

        def page(ts: int, action: str, label: str, kind: str = "page", path_tail: str = "") -> None:
            tail = path_tail or label
            hit: BeaconEvent = {
                "category": p.slug,
                "action": action,
                "label": label,
                "kind": kind,
                "path": f"/{p.slug}/{tail}",
                "ts": ts,
                "id": f"{ref}.j{next(k)}",
            }
            out.append(JourneySim(ts, p.slug, ref, hit))

        t = start_ms
        for index, name in enumerate(p.pages):
            page(t, "stage", name)
            stuck = index == p.stuck_stage + 1
            dwell = _dwell_ms(rng, p.stage_seconds * (2.5 if stuck else 1.0))
            if rng.random() < p.help_chance(index):
                page(t + rng.randrange(dwell + 1), "help", rng.choice(p.help_labels), "click", name)
            t += dwell
            if rng.random() < p.stage_drop[index]:
                out.append(self._tx(ref, "a", "abandoned", t + ABANDON_AFTER_MS, tx_ref))
                return out
        if rng.random() < p.payment_failure:
            page(t, "error", "payment-failed", "page", "payment-failed")
            out.append(self._tx(ref, "f", "failed", t, tx_ref))
            return out
        page(t, "stage", "done")
        cost = _pounds(rng, COST_PER_COMPLETION["digital"] * p.cost_scale)
        out.append(self._tx(ref, "c", "completed", t, tx_ref, cost=cost, started_at=start_ms))
        if rng.random() < p.rating_share:
            rating = _weighted(rng, tuple(zip(range(1, 6), p.rating_weights, strict=True)))
            at = t + 5_000 + rng.randrange(120_000)
            answer: RatingPayload = {"id": f"{ref}.r", "service": p.slug, "rating": rating, "timestamp": at}
            if rng.random() < _COMMENT_CHANCE:
                answer["comment"] = rng.choice(_COMMENTS[rating])
            out.append(RatingSim(at, p.slug, answer))
        return out

    def _offline_outcome(self, start_ms: int, ref: str, tx_ref: str, channel: str) -> TransactionSim:
        p, rng = self.p, self.rng
        took = _dwell_ms(rng, OFFLINE_MINUTES[channel] * 60, sigma=0.7)
        roll = rng.random()
        if roll < p.offline_completion:
            cost = _pounds(rng, COST_PER_COMPLETION[channel] * p.cost_scale)
            return self._tx(
                ref, "c", "completed", start_ms + took, tx_ref, channel, cost=cost, started_at=start_ms
            )
        if roll < p.offline_completion + p.offline_failure:
            return self._tx(ref, "f", "failed", start_ms + took // 2, tx_ref, channel)
        return self._tx(ref, "a", "abandoned", start_ms + took + ABANDON_AFTER_MS, tx_ref, channel)

    def _tx(
        self,
        ref: str,
        suffix: str,
        outcome: str,
        ts: int,
        tx_ref: str,
        channel: str = "digital",
        cost: float | None = None,
        started_at: int | None = None,
    ) -> TransactionSim:
        payload: TransactionPayload = {
            "id": f"{ref}.t{suffix}",
            "service": self.p.slug,
            "outcome": outcome,
            "channel": channel,
            "timestamp": ts,
            "transaction_id": tx_ref,
        }
        if cost is not None:
            payload["cost"] = cost
        if started_at is not None:
            payload["started_at"] = started_at
        return TransactionSim(ts, self.p.slug, payload)

    # --- the platform's view

    def _probe_sources(self) -> Iterator[_Source]:
        if self.probes == 0:
            return
        rng = self.probe_rng
        interval = DAY_MS // self.probes
        phase = rng.randrange(interval)
        run = round(self.p.outage_minutes * 60_000 / interval)
        run = min(max(1, run), max(1, self.probes // 10))
        first_down = rng.randrange(self.probes - run + 1)
        for i in range(self.probes):
            ts = self.day_ms + phase + i * interval
            down = first_down <= i < first_down + run
            yield (ts, self.index, -1 - i, _Call(self._probe, ts, down))

    def _probe(self, ts: int, down: bool) -> list[SimEvent]:
        rng = self.probe_rng
        if down:
            if rng.random() < 0.5:
                event = availability.probe_result(
                    self.p.slug, ts, False, 20 + rng.randrange(80), 503, "HTTP 503 Service Unavailable"
                )
            else:
                event = availability.probe_result(
                    self.p.slug, ts, False, availability.NO_RESPONSE, 0, "timed out after 10000 ms"
                )
        else:
            hour = (ts - self.day_ms) // HOUR_MS
            load = 1 + 0.5 * DAILY_CURVE[hour] / max(DAILY_CURVE)
            response = max(1, round(self.p.response_ms * load * rng.lognormvariate(0, 0.3)))
            event = availability.probe_result(self.p.slug, ts, True, response, 200)
        return [ProbeSim(ts, self.p.slug, event)]

    def _cost_sources(self) -> Iterator[_Source]:
        ts = self.day_ms + 30 * 60_000 + self.index * 60_000 % HOUR_MS
        yield (ts, self.index, -1_000_000_000, _Call(self._costs, ts))

    def _costs(self, ts: int) -> list[SimEvent]:
        p = self.p
        shares = dict(_channel_shares(p))
        out: list[SimEvent] = []
        for channel in p.channels:
            amount = round(p.daily_cost * shares.get(channel, 0.0), 2)
            payload: CostPayload = {
                "id": f"{self.prefix}.cost.{channel}",
                "service": p.slug,
                "period": "day",
                "start": self.day_label,
                "amount": amount,
                "channel": channel,
            }
            out.append(CostSim(ts, p.slug, payload))
        return out


class _Call:
    """A deferred call that sorts after nothing: ``heapq.merge`` never compares two of them,
    because the sequence numbers before them in a source tuple differ."""

    __slots__ = ("args", "fn")

    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn, self.args = fn, args

    def __call__(self) -> list[SimEvent]:
        result: list[SimEvent] = self.fn(*self.args)
        return result


def _channel_shares(p: ServiceProfile) -> list[tuple[str, float]]:
    offline_total = sum(w for _, w in p.offline_channels) or 1.0
    shares = [("digital", p.digital_share)]
    shares += [(c, (1 - p.digital_share) * w / offline_total) for c, w in p.offline_channels]
    return shares


def _weighted(rng: random.Random, options: Iterable[tuple[Any, float]]) -> Any:
    pairs = list(options)
    cumulative = list(itertools.accumulate(w for _, w in pairs))
    pick = rng.random() * cumulative[-1]
    return pairs[min(bisect.bisect_right(cumulative, pick), len(pairs) - 1)][0]


def _dwell_ms(rng: random.Random, median_s: float, sigma: float = 0.6) -> int:
    """A time spent, log-normal around ``median_s``, at least a second and at most a day."""
    return min(DAY_MS, max(1000, round(median_s * 1000 * rng.lognormvariate(0, sigma))))


def _pounds(rng: random.Random, around: float) -> float:
    """A cost near ``around``, in whole pence (so it has at most two decimal places)."""
    return max(1, round(around * 100 * rng.uniform(0.85, 1.15))) / 100


# --- the command: ``perfplat simulate`` ------------------------------------------------------------
# Everything below does I/O, and imports the SDK and httpx only when it runs, so importing the
# generator above stays pure.

BEACON_MAX_EVENTS = 1000
"""The beacon's default batch limit (``pipeline.beacon.Limits``)."""
MAX_JOURNEY_AGE_DAYS = 6
"""The beacon refuses events more than 7 days old; a day this far back still fits whole."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``perfplat simulate`` options."""
    parser.add_argument("--bootstrap", required=True, metavar="HOST:PORT", help="Kafka bootstrap servers")
    parser.add_argument("--topic-prefix", default="perfplat", help="the platform's topic prefix")
    parser.add_argument("--services", type=_positive_int, default=5, help="how many services")
    parser.add_argument("--events", type=_positive_int, default=100_000, help="events in the day, about")
    parser.add_argument(
        "--day", type=date.fromisoformat, default=None, help="YYYY-MM-DD (UTC); default today, up to now"
    )
    parser.add_argument("--seed", type=int, default=1)
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=_positive_float, default=1000.0, help="events per second (default 1000)")
    pace.add_argument("--as-fast-as-possible", action="store_true", help="no pacing")
    parser.add_argument(
        "--beacon-url",
        default=None,
        help="where journeys go, e.g. http://127.0.0.1:8000/beacon; none: skip them",
    )
    parser.add_argument(
        "--partitions", type=_positive_int, default=None, help="topic partitions (default: from the broker)"
    )
    parser.add_argument("--batch-events", type=_positive_int, default=500, help="journey events per flush")
    parser.add_argument(
        "--delivery-timeout-ms",
        type=_positive_int,
        default=30_000,
        help="how long Kafka may take to acknowledge an event before it counts as failed",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def main(args: argparse.Namespace) -> int:
    """Send the day; print a JSON summary. 0 when every event was accepted, 1 otherwise, 2 for a
    day that cannot be sent."""
    import httpx
    import orjson

    from producers.sdk import Client

    now_ms = time.time_ns() // 1_000_000
    today = datetime.fromtimestamp(now_ms / 1000, tz=UTC).date()
    day: date = args.day or today
    if day > today:
        sys.stderr.write("perfplat simulate: --day is in the future; the platform refuses future events\n")
        return 2
    if args.beacon_url and (today - day).days > MAX_JOURNEY_AGE_DAYS:
        sys.stderr.write(
            f"perfplat simulate: the beacon takes journeys up to 7 days old; pick a --day within "
            f"{MAX_JOURNEY_AGE_DAYS} days of today, or leave out --beacon-url\n"
        )
        return 2
    failures: list[DeliveryFailure] = []
    client = Client(
        args.bootstrap,
        args.topic_prefix,
        partitions=args.partitions,
        on_error=failures.append,
        **{"message.timeout.ms": args.delivery_timeout_ms},
    )
    sent = dict.fromkeys(SIM_KINDS, 0)
    skipped_journeys = 0
    stopped_at_now = False
    stopped_early = False
    beacon: _BeaconSender | None = None
    started = time.monotonic()
    try:
        with httpx.Client(timeout=10.0) as http:
            beacon = _BeaconSender(http, args.beacon_url, args.batch_events) if args.beacon_url else None
            pace = _Pacer(None if args.as_fast_as_possible else args.rate)
            for event in simulate(args.seed, day, default_services(args.services), args.events):
                if event.ts_ms > now_ms:  # today: only what has happened so far
                    stopped_at_now = True
                    break
                if isinstance(event, JourneySim):
                    if beacon is None:
                        skipped_journeys += 1
                        continue
                    pace()
                    beacon.add(event)
                else:
                    pace()
                    _send(client, event)
                sent[event.kind] += 1
            if beacon is not None:
                beacon.flush()
    except BufferError as exc:  # the SDK's backpressure outlasted its max_block_ms: Kafka is away
        stopped_early = True
        sys.stderr.write(f"perfplat simulate: stopped: {exc}\n")
    finally:
        undelivered = client.flush(args.delivery_timeout_ms / 1000 + 5)
        client.close(1.0)
    summary = {
        "day": day.isoformat(),
        "seed": args.seed,
        "sent": sent,
        "skipped_journeys": skipped_journeys,
        "stopped_at_now": stopped_at_now,
        "kafka": {"delivered": client.delivered, "failed": client.failed, "undelivered": undelivered},
        "beacon": beacon.counts() if beacon is not None else None,
        "seconds": round(time.monotonic() - started, 3),
    }
    sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    for failure in failures[:5]:
        sys.stderr.write(
            f"perfplat simulate: {len(failure.event_ids)} {failure.kind} events: {failure.reason}\n"
        )
    beacon_ok = beacon is None or beacon.dropped + beacon.failed == 0
    kafka_ok = client.failed == 0 and client.delivered == sum(sent.values()) - sent["journey"]
    return 0 if beacon_ok and kafka_ok and not stopped_early else 1


class _Pacer:
    """Called before each send: sleeps so that sends keep to ``rate`` per second on average."""

    def __init__(self, rate: float | None) -> None:
        self.rate, self.count, self.start = rate, 0, time.monotonic()

    def __call__(self) -> None:
        if self.rate is not None:
            ahead = self.start + self.count / self.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        self.count += 1


def _send(client: Client, event: TransactionSim | RatingSim | CostSim | ProbeSim) -> None:
    if isinstance(event, TransactionSim):
        client.transaction(**event.payload)
    elif isinstance(event, RatingSim):
        client.rating(**event.payload)
    elif isinstance(event, CostSim):
        client.cost(**event.payload)
    else:
        client.probe(event.payload)


class _BeaconSender:
    """Journey events to ``POST /beacon``: queued per visitor and sent, when ``batch_events`` are
    queued, as one POST per visitor (as that visitor's page would queue them for ``sendBeacon``)
    with the visitor as User-Agent, so each simulated user counts as a visitor of their own.
    Refused connections and 503 are retried (honouring Retry-After); what is still refused counts
    as failed, and events the beacon drops (its 400 answer) as dropped."""

    ATTEMPTS = 5
    MAX_WAIT_S = 1.0
    """At a slow ``--rate`` a queue is sent after this long even when it is not full."""

    def __init__(self, http: httpx.Client, url: str, batch_events: int) -> None:
        self.http, self.url, self.batch_events = http, url, batch_events
        self.queued: dict[str, list[BeaconEvent]] = {}
        self.size = 0
        self.first_s = 0.0
        self.accepted = self.dropped = self.failed = self.requests = 0

    def add(self, event: JourneySim) -> None:
        if self.size == 0:
            self.first_s = time.monotonic()
        self.queued.setdefault(event.visitor, []).append(event.payload)
        self.size += 1
        if self.size >= self.batch_events or time.monotonic() - self.first_s >= self.MAX_WAIT_S:
            self.flush()

    def flush(self) -> None:
        queued, self.queued, self.size = self.queued, {}, 0
        for visitor, events in queued.items():
            for start in range(0, len(events), BEACON_MAX_EVENTS):
                self._post(visitor, events[start : start + BEACON_MAX_EVENTS])

    def counts(self) -> dict[str, int]:
        return {
            "accepted": self.accepted,
            "dropped": self.dropped,
            "failed": self.failed,
            "requests": self.requests,
        }

    def _post(self, visitor: str, events: list[BeaconEvent]) -> None:
        import httpx
        import orjson

        body = orjson.dumps(events)
        headers = {"content-type": "application/json", "user-agent": f"perfplat-simulate/1 (user {visitor})"}
        wait_s = 0.2
        for attempt in range(self.ATTEMPTS):
            self.requests += 1
            try:
                response = self.http.post(self.url, content=body, headers=headers)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 202:
                self.accepted += len(events)
                return
            if response is not None and response.status_code == 400:
                doc = response.json()
                accepted = doc.get("accepted", 0) if isinstance(doc, dict) else 0
                self.accepted += accepted
                self.dropped += len(events) - accepted
                return
            if response is not None and response.status_code != 503:
                break
            if attempt + 1 < self.ATTEMPTS:
                retry_after = response.headers.get("retry-after", "") if response is not None else ""
                time.sleep(min(5.0, float(retry_after)) if retry_after.isdigit() else wait_s)
                wait_s *= 2
        self.failed += len(events)
