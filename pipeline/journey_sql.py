"""Journey KPIs: Stageprompt events counted by stage, read from the ``journey_minute``, ``_hour``
and ``_day`` sums (``pipeline.kpi_sql.journey_window_sql``). Pure.

A page marked up the Stageprompt way sends ``service:stage:start`` on the first page of a
journey, ``service:stage:<name>`` on each later page and ``service:stage:done`` on the last;
help links send ``service:help:<topic>`` and error pages ``service:error:<what>``. The beacon
stores them as category (the service), action and label. So, per service and window:

- **stages**: events per label of action ``stage``, the funnel a dashboard draws, with each
  stage's share of the starts (its drop-off against the journey's start);
- **starts** and **dones**: the ``stage`` events labelled ``start`` and ``done``
  (:data:`START`, :data:`DONE`), and the journey completion rate dones ÷ starts
  (``pipeline.kpi.journey_completion_rate``);
- **help** and **errors**: events per label of actions ``help`` and ``error``: where users get
  stuck.

Events are counted once per event id (the processor stores only events not stored yet,
``stream_processors.kpi_sink.CountedSink``), so a re-sent event never changes a figure.
Which completion rate a dashboard shows: the transactions' (completed ÷ started, reported by
the service) when the service reports transactions, since it counts every channel; the
journey's when it reports none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.clock import iso_utc
from pipeline.kpi import Counts, JourneyAgg, JourneyKind, journey_completion_rate

Rows = Sequence[tuple[Any, ...]]

STAGE = "stage"
START = "start"
DONE = "done"
CLICK_ACTIONS: dict[str, JourneyKind] = {"help": "help", "error": "error"}
ACTIONS = (STAGE, *CLICK_ACTIONS)
"""The actions a journey figure reads."""
"""Actions counted per label as where users get stuck, and the kind ``JourneyAgg`` keeps them as."""
MAX_LABELS = 100
"""Most labels listed per action in a response (the busiest); the rest are summed as ``other``."""


JourneyCounts = dict[tuple[str, str], int]
"""Events per ``(action, label)`` of one service in one window."""


def journey_counts(rows: Rows) -> dict[str, JourneyCounts]:
    """The rows of ``pipeline.kpi_sql.journey_window_sql``, per service (services without rows are absent)."""
    out: dict[str, JourneyCounts] = {}
    for service, action, label, n in rows:
        counts = out.setdefault(str(service), {})
        counts[str(action), str(label)] = counts.get((str(action), str(label)), 0) + int(n)
    return out


def journey_agg(counts: JourneyCounts) -> JourneyAgg:
    """Starts, dones and the help and error clicks by label, as ``pipeline.kpi`` counts them."""
    clicks = {
        (CLICK_ACTIONS[action], label): n
        for (action, label), n in counts.items()
        if action in CLICK_ACTIONS and n
    }
    return JourneyAgg(counts.get((STAGE, START), 0), counts.get((STAGE, DONE), 0), Counts(clicks))


def _by_label(counts: JourneyCounts, action: str) -> tuple[list[dict[str, Any]], int]:
    """The labels of ``action`` with their events, busiest first (ties by label), at most
    :data:`MAX_LABELS`, and the events of the labels left out."""
    rows = sorted(
        ((label, n) for (a, label), n in counts.items() if a == action and n), key=lambda r: (-r[1], r[0])
    )
    return [{"label": label, "events": n} for label, n in rows[:MAX_LABELS]], sum(
        n for _, n in rows[MAX_LABELS:]
    )


def _stages(counts: JourneyCounts) -> list[dict[str, Any]]:
    """The funnel: ``start`` first, ``done`` last, the stages between busiest first; each with
    its share of the starts (``None`` without starts)."""
    starts = counts.get((STAGE, START), 0)
    middle = [r for r in _by_label(counts, STAGE)[0] if r["label"] not in (START, DONE)]
    ends = [{"label": label, "events": counts.get((STAGE, label), 0)} for label in (START, DONE)]
    funnel = [ends[0], *middle, ends[1]]
    for row in funnel:
        row["share_of_starts"] = row["events"] / starts if starts else None
    return funnel


def journey_json(service: str, period: str, window: tuple[int, int], counts: JourneyCounts) -> dict[str, Any]:
    """A service's journey over one window: the funnel, starts, dones, completion rate, and
    where users asked for help or met an error (the busiest :data:`MAX_LABELS` labels of each,
    and the events of the others)."""
    agg = journey_agg(counts)
    help_labels, help_other = _by_label(counts, "help")
    error_labels, errors_other = _by_label(counts, "error")
    return {
        "service": service,
        "period": period,
        "window": {"start": iso_utc(window[0] * 1000), "end": iso_utc(window[1] * 1000)},
        "starts": agg.starts,
        "dones": agg.dones,
        "completion_rate": journey_completion_rate(agg),
        "stages": _stages(counts),
        "help": help_labels,
        "help_other": help_other,
        "errors": error_labels,
        "errors_other": errors_other,
    }
