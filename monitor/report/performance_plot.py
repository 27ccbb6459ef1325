"""Estimated and realized performance in the HTML report, one plot per metric.

Each window of predictions the model's CBPE closed in the incident's span
(table ``performance_windows``): the estimate as a line, the band its realized
value should fall in (95% of the time if the probabilities are right) shaded,
the alarm limit dashed, and the realized value, once the window's labels came,
as dots. A realized dot outside its band says the scores stopped telling the
truth (labels that disagree with confident predictions), which the estimate
cannot see; an estimate under its limit says the inputs moved to where the
model is unsure. Every text goes through ``escape``.
"""

from __future__ import annotations

import math
from html import escape

from monitor.cli.timefmt import iso
from monitor.pipeline.performance_windows import WindowRow
from monitor.report.plots import (
    Frame,
    fmt_number,
    nice_ticks,
    plot_title,
    span_date,
    svg_document,
    time_labels,
    y_axis,
)

ESTIMATED_COLOUR = "#1d5fa8"
REALIZED_COLOUR = "#2e7d32"
CSS = (
    "svg .perf-band{fill:#1d5fa8;opacity:.12}"
    "svg .perf-estimated{fill:none;stroke:#1d5fa8;stroke-width:1.6}"
    "svg .perf-realized{fill:none;stroke:#2e7d32;stroke-width:1;stroke-dasharray:3 3}"
)


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def performance_section(
    windows: dict[str, list[WindowRow]], model: str, x_range: tuple[float, float]
) -> str:
    """The report's section for one incident: a plot per metric, or a line saying why none."""
    if not windows:
        return (
            '<p class="note">No performance was estimated for this model in the incident\'s '
            "span (CBPE needs class predictions with a score or probabilities).</p>"
        )
    plots = "".join(
        performance_svg(metric, rows, model, x_range) for metric, rows in sorted(windows.items())
    )
    return (
        '<p class="note">Each window of predictions: the estimate without labels (CBPE), the '
        "band its realized value should fall in, the limit below which it alarms, and the "
        "realized value once the window's labels came (none: no dot).</p>" + plots
    )


def performance_svg(
    metric: str, rows: list[WindowRow], model: str, x_range: tuple[float, float]
) -> str:
    """One metric's windows over the event time ``x_range`` (the timelines')."""
    values = [
        f
        for r in rows
        for v in (r.estimated, r.band_low, r.band_high, r.alarm_below, r.realized)
        if (f := _finite(v)) is not None
    ]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max((hi - lo) * 0.1, 0.01)
    frame = Frame(760, 244, 70, 20, 40, 42, *x_range, lo - pad, hi + pad)
    title = f"{metric} of {model}: estimated without labels and realized"
    body = [frame.box(), plot_title(frame, title)]
    body += y_axis(frame, nice_ticks(frame.y0, frame.y1), metric)
    body += _x_axis(frame)
    body += _band(frame, rows)
    body += _limit(frame, rows)
    body += _line(frame, rows, "estimated", "perf-estimated")
    body += _line(frame, rows, "realized", "perf-realized")
    body += _dots(frame, rows)
    body += _legend(frame)
    return svg_document(frame, title, body)


def _x_axis(frame: Frame) -> list[str]:
    base = frame.height - frame.bottom
    out = [
        f'<text class="tick time-tick" x="{frame.x(t):.1f}" y="{base + 16}" '
        f'text-anchor="middle">{escape(stamp)}</text>'
        for t, stamp in time_labels(frame.x0, frame.x1)
    ]
    day = span_date(frame.x0, frame.x1)
    title = "window closed, event time (UTC)" + (f", {day}" if day else "")
    out.append(
        f'<text class="axis-title" x="{(frame.left + frame.width - frame.right) / 2:.1f}" '
        f'y="{frame.height - 6}" text-anchor="middle">{escape(title)}</text>'
    )
    return out


def _band(frame: Frame, rows: list[WindowRow]) -> list[str]:
    pairs = [
        (r.end_ts, low, high)
        for r in rows
        if (low := _finite(r.band_low)) is not None and (high := _finite(r.band_high)) is not None
    ]
    if not pairs:
        return []
    upper = [f"{frame.x(t):.1f},{frame.y(h):.1f}" for t, _, h in pairs]
    lower = [f"{frame.x(t):.1f},{frame.y(low):.1f}" for t, low, _ in reversed(pairs)]
    return [f'<polygon class="perf-band" points="{" ".join(upper + lower)}"/>']


def _limit(frame: Frame, rows: list[WindowRow]) -> list[str]:
    points = [
        f"{frame.x(r.end_ts):.1f},{frame.y(v):.1f}"
        for r in rows
        if (v := _finite(r.alarm_below)) is not None
    ]
    return [f'<polyline class="threshold" points="{" ".join(points)}"/>'] if points else []


def _line(frame: Frame, rows: list[WindowRow], which: str, css: str) -> list[str]:
    points = [
        f"{frame.x(r.end_ts):.1f},{frame.y(v):.1f}"
        for r in rows
        if (v := _finite(getattr(r, which))) is not None
    ]
    return [f'<polyline class="{css}" points="{" ".join(points)}"/>'] if len(points) > 1 else []


def _dots(frame: Frame, rows: list[WindowRow]) -> list[str]:
    out = []
    for r in rows:
        estimated, realized = _finite(r.estimated), _finite(r.realized)
        label = f"window {r.window} closed {iso(r.end_ts)}: " + (
            f"estimated {fmt_number(estimated)} from {r.rows:,} predictions"
            if estimated is not None
            else "no estimate"
        )
        if realized is not None:
            label += f"; realized {fmt_number(realized)} from {r.labelled or 0:,} labels"
        if estimated is not None:
            out.append(
                f'<circle class="perf-point estimated" cx="{frame.x(r.end_ts):.1f}" '
                f'cy="{frame.y(estimated):.1f}" r="2.5" fill="{ESTIMATED_COLOUR}">'
                f"<title>{escape(label)}</title></circle>"
            )
        if realized is not None:
            out.append(
                f'<circle class="perf-point realized" cx="{frame.x(r.end_ts):.1f}" '
                f'cy="{frame.y(realized):.1f}" r="3.5" fill="{REALIZED_COLOUR}">'
                f"<title>{escape(label)}</title></circle>"
            )
    return out


def _legend(frame: Frame) -> list[str]:
    keys = (
        (ESTIMATED_COLOUR, "estimated"),
        (REALIZED_COLOUR, "realized"),
        ("#c62828", "alarm limit"),
    )
    out = []
    x = float(frame.width - frame.right)
    for colour, text in reversed(keys):
        x -= 8 * len(text) + 26
        out.append(
            f'<rect x="{x:.0f}" y="24" width="14" height="9" fill="{colour}"/>'
            f'<text class="tick" x="{x + 18:.0f}" y="33">{text}</text>'
        )
    return out
