"""Charts drawn on the server as SVG, so a dashboard shows them with no JavaScript. Pure: values in,
markup out. Every piece of text is escaped here (names, labels and titles may come from users);
the markup has no ``style`` attributes or scripts, so a strict Content-Security-Policy holds.

Each chart is an ``<svg role="img">`` labelled by its title and described by a summary sentence;
the dashboard puts the same figures in a table beside it (screen readers read the table).
Colours are GOV.UK's palette, in an order that keeps neighbouring lines distinguishable, and
every line also has its own dash pattern so colour is never the only difference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#1d70b8", "#f47738", "#00703c", "#4c2c92", "#d53880", "#28a197", "#505a5f")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4", "4 4")
WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 40
LEGEND_H = 28
Format = Callable[[float], str]


@dataclass(frozen=True, slots=True)
class Line:
    """One series: its name and a value per x label (``None`` where there is no figure)."""

    name: str
    values: Sequence[float | None]


def nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (1 for nothing to show)."""
    if not value > 0 or math.isinf(value):
        return 1.0
    exp = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        top = step * 10.0**exp
        if top >= value * (1 - 1e-12):
            return top
    return 10.0 ** (exp + 1)  # pragma: no cover - the loop always returns


def _num(v: float) -> str:
    return f"{v:.1f}".removesuffix(".0")


def _label_every(count: int, room: int = 8) -> int:
    return max(1, math.ceil(count / room))


def line_chart(
    chart_id: str,
    title: str,
    x_labels: Sequence[str],
    lines: Sequence[Line],
    y_format: Format,
    y_max: float | None = None,
) -> str:
    """A line chart of ``lines`` over ``x_labels``, y from 0 to ``y_max`` (default: a round
    number above the largest value). A gap where a value is ``None``; a lone value is a dot."""
    count = len(x_labels)
    values = [v for line in lines for v in line.values if v is not None]
    top = y_max if y_max is not None else nice_max(max(values, default=0.0))
    legend_h = LEGEND_H if len(lines) > 1 else 0
    height = HEIGHT + legend_h
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * (i + 0.5) / count if count else 0)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - min(max(v / top, 0.0), 1.0))

    out = [
        f'<svg class="pp-chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(describe(x_labels, lines, y_format))}</desc>',
    ]
    for k in range(5):  # grid and y axis labels
        v = top * k / 4
        out.append(
            f'<line class="pp-grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_num(y(v))}" y2="{_num(y(v))}"/>'
        )
        out.append(
            f'<text class="pp-axis" x="{LEFT - 6}" y="{_num(y(v) + 4)}" text-anchor="end">'
            f"{escape(y_format(v))}</text>"
        )
    every = _label_every(count)
    for i, label in enumerate(x_labels):
        if i % every == 0:
            out.append(
                f'<text class="pp-axis" x="{_num(x(i))}" y="{HEIGHT - BOTTOM + 18}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    for n, line in enumerate(lines):
        colour, dash = PALETTE[n % len(PALETTE)], DASHES[n % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        for run in _runs(line.values):
            if len(run) == 1:
                i, v = run[0]
                out.append(f'<circle cx="{_num(x(i))}" cy="{_num(y(v))}" r="3" fill="{colour}"/>')
            else:
                points = " ".join(f"{_num(x(i))},{_num(y(v))}" for i, v in run)
                out.append(
                    f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="3"{dash_attr}/>'
                )
    if legend_h:
        out.append(_legend(lines, HEIGHT))
    out.append("</svg>")
    return "".join(out)


def _legend(lines: Sequence[Line], y0: int) -> str:
    """A key under the plot: each line's colour and dash beside its name, left to right."""
    out, x0 = [], LEFT
    for n, line in enumerate(lines):
        colour, dash = PALETTE[n % len(PALETTE)], DASHES[n % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<line x1="{x0}" x2="{x0 + 24}" y1="{y0 + 8}" y2="{y0 + 8}" stroke="{colour}" '
            f'stroke-width="3"{dash_attr}/>'
        )
        out.append(f'<text class="pp-legend" x="{x0 + 30}" y="{y0 + 13}">{escape(line.name)}</text>')
        x0 += 30 + 8 * len(line.name) + 24
    return "".join(out)


def _runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    runs: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for i, v in enumerate(values):
        if v is None or not math.isfinite(v):
            if current:
                runs.append(current)
            current = []
        else:
            current.append((i, v))
    if current:
        runs.append(current)
    return runs


def describe(x_labels: Sequence[str], lines: Sequence[Line], fmt: Format) -> str:
    """One sentence per line: its latest figure and its range, for the chart's ``<desc>``."""
    if not x_labels:
        return "No figures for this range."
    parts = []
    for line in lines:
        known = [(x_labels[i], v) for i, v in enumerate(line.values) if v is not None and i < len(x_labels)]
        if not known:
            parts.append(f"{line.name}: no figures.")
            continue
        low, high = min(v for _, v in known), max(v for _, v in known)
        label, last = known[-1]
        parts.append(f"{line.name}: {fmt(last)} at {label}; from {fmt(low)} to {fmt(high)}.")
    return f"From {x_labels[0]} to {x_labels[-1]}. " + " ".join(parts)


def bar_chart(chart_id: str, title: str, bars: Sequence[tuple[str, float, str]], fmt: Format) -> str:
    """Horizontal bars, one per ``(label, value, note)``, scaled to the largest; the note (e.g. a
    drop-off) is written after the value."""
    row_h, label_w = 34, 220
    height = TOP + row_h * max(len(bars), 1) + 8
    top = max((v for _, v, _ in bars), default=0.0) or 1.0
    plot_w = WIDTH - label_w - RIGHT - 150
    out = [
        f'<svg class="pp-chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
    ]
    for i, (label, value, note) in enumerate(bars):
        y0 = TOP + i * row_h
        w = plot_w * max(value, 0.0) / top
        shown = label if len(label) <= 30 else label[:29] + "…"
        out.append(
            f'<text class="pp-bar-label" x="{label_w - 8}" y="{y0 + 20}" text-anchor="end">'
            f"{escape(shown)}</text>"
        )
        out.append(
            f'<rect x="{label_w}" y="{y0 + 4}" width="{_num(w)}" height="{row_h - 10}" fill="{PALETTE[0]}"/>'
        )
        text = fmt(value) + (f" ({note})" if note else "")
        out.append(
            f'<text class="pp-bar-value" x="{_num(label_w + w + 6)}" y="{y0 + 20}">{escape(text)}</text>'
        )
    out.append("</svg>")
    return "".join(out)
