"""A signal's timeline in the HTML report: inline SVG, drawn here.

The line is the signal's every windowed test around the incident (from
``signal_history``, at most ``MAX_POINTS`` of them), the dashed line its
threshold, the shaded stretches where it fired, the grey stretch the model's
reference (where the store knows when it ended), vertical marks its fired and
resolved changes and the dots its alerts. Every text goes through ``escape``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

from monitor.report.plots import (
    SEVERITY_COLOURS,
    Frame,
    nice_ticks,
    plot_title,
    span_date,
    svg_document,
    time_labels,
    y_axis,
)

CHANGE_CLASSES = {
    "fired": "change-fired",
    "escalated": "change-fired",
    "resolved": "change-resolved",
}


@dataclass(frozen=True)
class TimelinePoint:
    """An alert: a marker on top of the line."""

    ts: float
    value: float
    threshold: float | None
    severity: str
    label: str  # hover text
    window_start: float | None = None


@dataclass(frozen=True)
class LinePoint:
    """One windowed test: its value (statistic or −log10 p) and threshold."""

    ts: float
    value: float
    threshold: float | None


@dataclass(frozen=True)
class ChangeMark:
    ts: float
    change: str  # fired, escalated or resolved
    label: str  # hover text


@dataclass(frozen=True)
class Timeline:
    title: str
    y_title: str
    x_range: tuple[float, float]
    line: list[LinePoint] = field(default_factory=list)
    alerts: list[TimelinePoint] = field(default_factory=list)
    firing: list[tuple[float, float]] = field(default_factory=list)
    changes: list[ChangeMark] = field(default_factory=list)
    reference_end: float | None = None


def timeline_svg(plot: Timeline) -> str:
    """The plot of one detector on one signal over event time."""
    frame = _frame(plot)
    body = [frame.box(), plot_title(frame, plot.title)]
    body += _spans(frame, plot)
    body += y_axis(frame, nice_ticks(frame.y0, frame.y1), plot.y_title)
    body += _x_axis(frame)
    body += _threshold(frame, plot)
    body += _statistic(frame, plot)
    body += _change_marks(frame, plot.changes)
    for p in plot.alerts:
        colour = SEVERITY_COLOURS.get(p.severity, "#777")
        body.append(
            f'<circle class="marker sev-{escape(p.severity)}" cx="{frame.x(p.ts):.1f}" '
            f'cy="{frame.y(p.value):.1f}" r="6" fill="{colour}"><title>{escape(p.label)}</title>'
            "</circle>"
        )
    body += _legend(frame, plot)
    return svg_document(frame, plot.title, body)


def _frame(plot: Timeline) -> Frame:
    values = [p.value for p in plot.line] + [p.value for p in plot.alerts]
    values += [p.threshold for p in plot.line if p.threshold is not None]
    values += [p.threshold for p in plot.alerts if p.threshold is not None]
    hi = max(values, default=1.0)
    lo = min(0.0, *values) if values else 0.0
    top = hi + (hi - lo) * 0.15 or 1.0
    return Frame(760, 244, 70, 20, 40, 42, plot.x_range[0], plot.x_range[1], lo, top)


def _clamp_x(frame: Frame, ts: float) -> float:
    return frame.x(min(max(ts, frame.x0), frame.x1))


def _band(frame: Frame, start: float, end: float, css: str, label: str) -> str:
    x0, x1 = _clamp_x(frame, start), _clamp_x(frame, end)
    height = frame.height - frame.top - frame.bottom
    return (
        f'<rect class="{css}" x="{x0:.1f}" y="{frame.top}" width="{max(x1 - x0, 1):.1f}" '
        f'height="{height}"><title>{escape(label)}</title></rect>'
    )


def _spans(frame: Frame, plot: Timeline) -> list[str]:
    out = []
    if plot.reference_end is not None and plot.reference_end > frame.x0:
        out.append(
            _band(
                frame,
                frame.x0,
                plot.reference_end,
                "reference-span",
                "the model's reference (its warm-up events) up to here",
            )
        )
    for start, end in plot.firing:
        out.append(_band(frame, start, end, "firing-span", "the signal fires"))
    for p in plot.alerts:  # the window each windowed alert judged
        if p.window_start is not None and math.isfinite(p.window_start):
            out.append(_band(frame, p.window_start, p.ts, "window-span", "the alert's window"))
    return out


def _x_axis(frame: Frame) -> list[str]:
    out = []
    base = frame.height - frame.bottom
    for t, stamp in time_labels(frame.x0, frame.x1):
        x = frame.x(t)
        out.append(
            f'<line class="tick-mark" x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}"/>'
            f'<text class="tick time-tick" x="{x:.1f}" y="{base + 16}" text-anchor="middle">'
            f"{escape(stamp)}</text>"
        )
    day = span_date(frame.x0, frame.x1)
    title = f"event time (UTC), {day}" if day else "event time (UTC)"
    out.append(
        f'<text class="axis-title" x="{(frame.left + frame.width - frame.right) / 2:.1f}" '
        f'y="{frame.height - 6}" text-anchor="middle">{escape(title)}</text>'
    )
    return out


def _threshold(frame: Frame, plot: Timeline) -> list[str]:
    """The threshold as a step line: it can move between tests (a Benjamini-Hochberg cut-off)."""
    source = plot.line if plot.line else plot.alerts
    steps = [(p.ts, p.threshold) for p in source if p.threshold is not None]
    if not steps:
        return []
    coords = []
    for i, (ts, th) in enumerate(steps):
        end = steps[i + 1][0] if i + 1 < len(steps) else frame.x1
        start = frame.x0 if i == 0 else ts
        y = frame.y(th)
        coords += [f"{frame.x(start):.1f},{y:.1f}", f"{frame.x(end):.1f},{y:.1f}"]
    return [f'<polyline class="threshold" points="{" ".join(coords)}"/>']


def _statistic(frame: Frame, plot: Timeline) -> list[str]:
    if plot.line:
        points = " ".join(f"{frame.x(p.ts):.1f},{frame.y(p.value):.1f}" for p in plot.line)
        return [f'<polyline class="statistic history" points="{points}"/>']
    if len(plot.alerts) > 1:  # no test history: join the alerts, as far as they go
        points = " ".join(f"{frame.x(p.ts):.1f},{frame.y(p.value):.1f}" for p in plot.alerts)
        return [f'<polyline class="statistic" points="{points}"/>']
    return []


def _change_marks(frame: Frame, changes: list[ChangeMark]) -> list[str]:
    out = []
    for c in changes:
        if not frame.x0 <= c.ts <= frame.x1:
            continue
        x = frame.x(c.ts)
        css = CHANGE_CLASSES.get(c.change, "change-fired")
        out.append(
            f'<line class="change {css}" x1="{x:.1f}" x2="{x:.1f}" y1="{frame.top}" '
            f'y2="{frame.height - frame.bottom}"><title>{escape(c.label)}</title></line>'
        )
    return out


def _legend(frame: Frame, plot: Timeline) -> list[str]:
    keys = []
    if plot.line:
        keys.append(("statistic history", "each test"))
    if plot.line or any(p.threshold is not None for p in plot.alerts):
        keys.append(("threshold", "threshold"))
    if plot.firing:
        keys.append(("firing-span", "firing"))
    if plot.reference_end is not None and plot.reference_end > frame.x0:
        keys.append(("reference-span", "reference"))
    out = []
    x = float(frame.width - frame.right)
    for css, text in reversed(keys):
        x -= 8 * len(text) + 26
        if css.endswith("span"):
            swatch = f'<rect class="swatch {css}" x="{x:.0f}" y="24" width="14" height="9"/>'
        else:
            swatch = f'<line class="swatch {css}" x1="{x:.0f}" x2="{x + 14:.0f}" y1="29" y2="29"/>'
        out.append(f'{swatch}<text class="tick" x="{x + 18:.0f}" y="33">{text}</text>')
    return out
