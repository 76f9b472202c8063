"""Live figures pushed as Server-Sent Events: what a ``figures`` event holds, when one is due,
and how it is written on the wire. Pure: figures and time come in as arguments.

A feed (one per service, one for the whole platform) reads the figures every interval and hands
each reading to :class:`Changes`, which makes a new :class:`Snapshot` only when the figures
differ from the last ones (``at``, the time of the reading, is not a difference). Each subscriber
keeps a :class:`Subscriber`: it writes the newest snapshot it has not written yet (a slow one skips
to the newest: figures are a state, not a log), and a keep-alive comment after
:data:`KEEP_ALIVE_MS` of writing nothing, so proxies do not close an idle stream.

A service's figures are its users now and its UTC day so far: transactions by channel and
outcome, completion rate and digital take-up, computed exactly as the KPI summary
(``GET /services/{service}/kpis?period=day``) computes them, from the same read window
(:func:`day_window`) and the same transaction sums (one query, not the summary's eight).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import orjson

from pipeline.clock import iso_utc
from pipeline.kpi import TxAgg, completion_rate, digital_takeup
from pipeline.kpi_sql import Query, Rows, read_window, tx_aggs, tx_window_sql, volumes
from pipeline.windows import so_far_window

EVENT = "figures"
RETRY_MS = 3000
"""Sent first: how long an ``EventSource`` waits before it reconnects."""
KEEP_ALIVE_MS = 15_000
KEEP_ALIVE = b": keep-alive\n\n"
READ_AT = "at"
"""The one key of the figures that is not a figure: the time they were read."""

Figures = dict[str, Any]


# --- what an event holds ----------------------------------------------------------------------------


def day_window(now_ms: int) -> tuple[int, int]:
    """The UTC day so far at ``now_ms`` in epoch seconds, read as the KPI summary reads it
    (whole minutes, the minute holding now read whole: ``pipeline.kpi_sql.read_window``)."""
    return read_window(*so_far_window(now_ms, "day"))


def day_tx_query(database: str, service: str, now_ms: int) -> Query:
    """The transaction sums of ``service`` over :func:`day_window`; :func:`day_tx` reads them."""
    return tx_window_sql(database, [service], *day_window(now_ms))


def day_tx(service: str, rows: Rows) -> TxAgg:
    """The rows of :func:`day_tx_query` as the service's transactions (empty when none)."""
    return tx_aggs(rows).get(service, TxAgg())


def _number(value: float | Fraction | None) -> float | None:
    return None if value is None else float(value)


def service_figures(service: str, users_now: int, tx: TxAgg, now_ms: int) -> Figures:
    """A service's live figures at ``now_ms``: users now, and the day so far (``day_start``, the
    transaction ``volumes`` by channel then outcome, ``completion_rate`` and ``digital_takeup``
    as 0..1 or ``null``, as the KPI summary gives them)."""
    start_s, _ = day_window(now_ms)
    return {
        "service": service,
        "users_now": users_now,
        "day_start": iso_utc(start_s * 1000),
        "volumes": volumes(tx),
        "completion_rate": _number(completion_rate(tx)),
        "digital_takeup": _number(digital_takeup(tx)),
        READ_AT: iso_utc(now_ms),
    }


def platform_figures(users_now: int, now_ms: int) -> Figures:
    """The platform's live figures at ``now_ms``: users now on every service."""
    return {"users_now": users_now, READ_AT: iso_utc(now_ms)}


def same_figures(a: Figures, b: Figures) -> bool:
    """Whether two readings hold the same figures (when they were read does not count)."""
    return {k: v for k, v in a.items() if k != READ_AT} == {k: v for k, v in b.items() if k != READ_AT}


# --- when an event is due -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    id: int
    """Strictly increasing per feed: the reading's time in epoch ms, or one more than the last id."""
    figures: Figures


class Changes:
    """The snapshots of one feed: a new one for the first reading and for each reading whose
    figures differ from the last snapshot's; ``None`` for a reading that changes nothing."""

    def __init__(self) -> None:
        self._last: Snapshot | None = None

    def observe(self, figures: Figures, now_ms: int) -> Snapshot | None:
        last = self._last
        if last is not None and same_figures(last.figures, figures):
            return None
        self._last = Snapshot(now_ms if last is None else max(now_ms, last.id + 1), figures)
        return self._last


class Subscriber:
    """What one subscriber writes next. Times are any monotonic milliseconds of the caller's."""

    def __init__(self, now_ms: int, keep_alive_ms: int = KEEP_ALIVE_MS) -> None:
        if keep_alive_ms <= 0:
            raise ValueError("keep_alive_ms must be positive")
        self.sent_id: int | None = None
        self._last_write_ms = now_ms
        self._keep_alive_ms = keep_alive_ms

    def next_frame(self, latest: Snapshot | None, now_ms: int) -> bytes:
        """The frame to write now: ``latest`` as an event if it was not written yet, else a
        keep-alive comment if nothing was written for the keep-alive time, else ``b""``."""
        if latest is not None and latest.id != self.sent_id:
            self.sent_id = latest.id
            self._last_write_ms = now_ms
            return event_frame(latest)
        if now_ms - self._last_write_ms >= self._keep_alive_ms:
            self._last_write_ms = now_ms
            return KEEP_ALIVE
        return b""

    def wait_ms(self, now_ms: int) -> int:
        """How long the subscriber may wait for a new snapshot before a keep-alive is due."""
        return max(0, self._last_write_ms + self._keep_alive_ms - now_ms)


# --- how it is written ----------------------------------------------------------------------------------


def retry_frame(retry_ms: int = RETRY_MS) -> bytes:
    """The stream's first frame: the reconnection delay, and no event."""
    return b"retry: %d\n\n" % retry_ms


def event_frame(snapshot: Snapshot) -> bytes:
    """``event: figures``, ``id: <snapshot id>``, ``data: <the figures as one line of JSON>``."""
    data = orjson.dumps(snapshot.figures)  # escapes every line break: one data line
    return b"event: %s\nid: %d\ndata: %s\n\n" % (EVENT.encode(), snapshot.id, data)
