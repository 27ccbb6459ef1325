"""Inline SVG plots of the HTML report: drawn here, so the file needs nothing else.

Every text that reaches the SVG goes through ``html.escape``: labels and
signal names come from events, and events are untrusted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from monitor.cli.timefmt import clock

SEVERITY_COLOURS = {"info": "#4a78b5", "warning": "#e0a100", "critical": "#c62828"}
REFERENCE_COLOUR = "#5a6b7d"
WINDOW_COLOUR = "#e8590c"
TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)


@dataclass(frozen=True)
class TimelinePoint:
    ts: float
    value: float
    threshold: float | None
    severity: str
    label: str  # hover text
    window_start: float | None = None


@dataclass(frozen=True)
class Frame:
    """A plot area: pixel box and the data ranges mapped onto it."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    x0: float
    x1: float
    y0: float
    y1: float

    def x(self, v: float) -> float:
        span = self.x1 - self.x0 or 1.0
        return self.left + (v - self.x0) / span * (self.width - self.left - self.right)

    def y(self, v: float) -> float:
        span = self.y1 - self.y0 or 1.0
        return (
            self.height
            - self.bottom
            - (v - self.y0) / span * (self.height - self.top - self.bottom)
        )

    def box(self) -> str:
        w = self.width - self.left - self.right
        h = self.height - self.top - self.bottom
        return f'<rect class="plot-area" x="{self.left}" y="{self.top}" width="{w}" height="{h}"/>'


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 times a power of ten) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(hi - lo)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def time_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round times (seconds to hours, then days) covering [lo, hi]: at most ``count`` + 1."""
    if not (hi - lo) / 86400 <= count:  # whole days, 1, 2 or 5 times a power of ten
        return [day * 86400 for day in nice_ticks(lo / 86400, hi / 86400, count)]
    step = next((s for s in TIME_STEPS if (hi - lo) / s <= count), 86400)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def fmt_number(v: float) -> str:
    if v == 0 or 1e-3 <= abs(v) < 1e5:
        return f"{v:.4g}"
    return f"{v:.2e}"


def _title(frame: Frame, text: str) -> str:
    """The plot's title, shortened to its width; the full text shows on hover."""
    room = int((frame.width - frame.left) / 7.2)
    shown = text if len(text) <= room else text[: room - 1] + "…"
    return (
        f'<text class="plot-title" x="{frame.left}" y="18"><title>{escape(text)}</title>'
        f"{escape(shown)}</text>"
    )


def _svg(frame: Frame, label: str, body: list[str]) -> str:
    return (
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="{escape(label)}" viewBox="0 0 {frame.width} {frame.height}" '
        f'width="{frame.width}" height="{frame.height}">' + "".join(body) + "</svg>"
    )


def _y_axis(frame: Frame, ticks: Sequence[float], title: str) -> list[str]:
    out = []
    for t in ticks:
        y = frame.y(t)
        out.append(
            f'<line class="grid" x1="{frame.left}" x2="{frame.width - frame.right}" '
            f'y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(fmt_number(t))}</text>"
        )
    mid = (frame.top + frame.height - frame.bottom) / 2
    out.append(
        f'<text class="axis-title" transform="translate(14 {mid:.1f}) rotate(-90)" '
        f'text-anchor="middle">{escape(title)}</text>'
    )
    return out


def timeline_svg(
    points: Sequence[TimelinePoint], x_range: tuple[float, float], y_title: str, title: str
) -> str:
    """A detector's statistic at each of its alerts over event time, with its threshold."""
    values = [p.value for p in points] + [p.threshold for p in points if p.threshold is not None]
    hi = max(values, default=1.0)
    lo = min(0.0, *values) if values else 0.0
    top = hi + (hi - lo) * 0.15 or 1.0
    frame = Frame(760, 230, 70, 20, 28, 42, x_range[0], x_range[1], lo, top)
    body = [frame.box(), _title(frame, title)]
    for p in points:  # the window each windowed alert judged
        if p.window_start is not None and math.isfinite(p.window_start):
            x0, x1 = frame.x(max(p.window_start, frame.x0)), frame.x(p.ts)
            height = frame.height - frame.top - frame.bottom
            body.append(
                f'<rect class="window-span" x="{x0:.1f}" y="{frame.top}" '
                f'width="{max(x1 - x0, 1):.1f}" height="{height}"/>'
            )
    body += _y_axis(frame, nice_ticks(frame.y0, frame.y1), y_title)
    for t in time_ticks(frame.x0, frame.x1):
        x = frame.x(t)
        stamp = escape(clock(t))
        body.append(
            f'<line class="tick-mark" x1="{x:.1f}" x2="{x:.1f}" y1="{frame.height - frame.bottom}" '
            f'y2="{frame.height - frame.bottom + 4}"/>'
            f'<text class="tick" x="{x:.1f}" y="{frame.height - frame.bottom + 16}" '
            f'text-anchor="middle">{stamp}</text>'
        )
    body.append(
        f'<text class="axis-title" x="{(frame.left + frame.width - frame.right) / 2:.1f}" '
        f'y="{frame.height - 6}" text-anchor="middle">event time (UTC)</text>'
    )
    thresholds = [(p.ts, p.threshold) for p in points if p.threshold is not None]
    if thresholds:
        # The threshold can move between windows (a Benjamini-Hochberg cut-off):
        # a step line holds each value until the next alert.
        coords = []
        for i, (ts, th) in enumerate(thresholds):
            end = thresholds[i + 1][0] if i + 1 < len(thresholds) else frame.x1
            start = frame.x0 if i == 0 else ts
            coords += [
                f"{frame.x(start):.1f},{frame.y(th):.1f}",
                f"{frame.x(end):.1f},{frame.y(th):.1f}",
            ]
        body.append(f'<polyline class="threshold" points="{" ".join(coords)}"/>')
    if len(points) > 1:
        line = " ".join(f"{frame.x(p.ts):.1f},{frame.y(p.value):.1f}" for p in points)
        body.append(f'<polyline class="statistic" points="{line}"/>')
    for p in points:
        colour = SEVERITY_COLOURS.get(p.severity, "#777")
        body.append(
            f'<circle class="marker sev-{escape(p.severity)}" cx="{frame.x(p.ts):.1f}" '
            f'cy="{frame.y(p.value):.1f}" r="6" fill="{colour}"><title>{escape(p.label)}</title>'
            "</circle>"
        )
    return _svg(frame, title, body)


def cdf_svg(reference: Sequence[float], window: Sequence[float], title: str, plot_id: str) -> str:
    """Reference and window CDFs drawn through their quantiles (0, 5, ..., 100 %).

    The x axis spans the 5-95 % quantiles of both, widened a little: long tails
    would squeeze the part where the distributions differ into a few pixels.
    """
    k = len(reference)
    probs = [i / (k - 1) for i in range(k)] if k > 1 else [0.5]
    inner = [*reference[1:-1], *window[1:-1]] or [*reference, *window]
    lo, hi = min(inner), max(inner)
    pad = (hi - lo) * 0.08 or abs(lo) * 0.1 or 1.0
    frame = Frame(460, 250, 56, 16, 28, 42, lo - pad, hi + pad, 0.0, 1.0)
    clip = f"clip-{plot_id}"  # unique within the document
    w, h = frame.width - frame.left - frame.right, frame.height - frame.top - frame.bottom
    body = [
        f'<clipPath id="{clip}"><rect x="{frame.left}" y="{frame.top - 4}" width="{w}" '
        f'height="{h + 8}"/></clipPath>',
        frame.box(),
        _title(frame, title),
    ]
    body += _y_axis(frame, [0.0, 0.25, 0.5, 0.75, 1.0], "share of values ≤ x")
    for t in nice_ticks(frame.x0, frame.x1):
        x = frame.x(t)
        body.append(
            f'<text class="tick" x="{x:.1f}" y="{frame.height - frame.bottom + 16}" '
            f'text-anchor="middle">{escape(fmt_number(t))}</text>'
        )
    for name, quantiles, colour in (
        ("reference", reference, REFERENCE_COLOUR),
        ("window", window, WINDOW_COLOUR),
    ):
        pts = " ".join(
            f"{frame.x(q):.1f},{frame.y(p):.1f}" for q, p in zip(quantiles, probs, strict=False)
        )
        body.append(
            f'<polyline class="cdf cdf-{name}" clip-path="url(#{clip})" points="{pts}" '
            f'stroke="{colour}"/>'
        )
    body += _legend(frame, "x (5–95 % range shown)")
    return _svg(frame, title, body)


def shares_svg(
    labels: Sequence[str], reference: Sequence[float], window: Sequence[float], title: str
) -> str:
    """Reference and window shares of each label as paired horizontal bars."""
    row = 26
    height = 28 + 42 + row * max(len(labels), 1)
    top = max([*reference, *window, 0.01])
    frame = Frame(460, height, 110, 56, 28, 42, 0.0, top * 1.05, 0.0, 1.0)
    body = [frame.box(), _title(frame, title)]
    for i, (label, r, wv) in enumerate(zip(labels, reference, window, strict=False)):
        y = frame.top + i * row + 3
        shown = label if len(label) <= 14 else label[:13] + "…"
        body.append(
            f'<text class="tick" x="{frame.left - 6}" y="{y + 14}" text-anchor="end">'
            f"<title>{escape(label)}</title>{escape(shown)}</text>"
        )
        for j, (value, colour, name) in enumerate(
            ((r, REFERENCE_COLOUR, "reference"), (wv, WINDOW_COLOUR, "window"))
        ):
            width = frame.x(value) - frame.left
            body.append(
                f'<rect class="bar bar-{name}" x="{frame.left}" y="{y + j * 10}" '
                f'width="{max(width, 0.5):.1f}" height="9" fill="{colour}">'
                f"<title>{escape(label)}: {name} {value:.1%}</title></rect>"
                f'<text class="bar-value" x="{frame.left + width + 4:.1f}" y="{y + j * 10 + 8}">'
                f"{value:.1%}</text>"
            )
    body += _legend(frame, "share of events")
    return _svg(frame, title, body)


def _legend(frame: Frame, x_title: str) -> list[str]:
    y = frame.height - 8
    return [
        f'<text class="axis-title" x="{frame.left}" y="{y}">{escape(x_title)}</text>',
        f'<rect x="{frame.width - 190}" y="{y - 9}" width="12" height="10" '
        f'fill="{REFERENCE_COLOUR}"/>',
        f'<text class="tick" x="{frame.width - 174}" y="{y}">reference</text>',
        f'<rect x="{frame.width - 100}" y="{y - 9}" width="12" height="10" '
        f'fill="{WINDOW_COLOUR}"/>',
        f'<text class="tick" x="{frame.width - 84}" y="{y}">window</text>',
    ]


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2733;
margin:0 auto;max-width:1180px;padding:16px 24px;background:#fafbfc}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:0 0 10px}
h3{font-size:15px;margin:18px 0 6px;border-bottom:1px solid #dde3ea;padding-bottom:3px}
h4{font-size:13px;margin:10px 0 2px;font-family:ui-monospace,monospace}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
pre{background:#eef2f6;padding:8px 10px;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
.incident{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:14px 18px;
margin:18px 0}
table{border-collapse:collapse}th,td{padding:3px 10px 3px 0;text-align:left;vertical-align:top}
table.stats{width:100%;font-size:12px}table.stats th{border-bottom:1px solid #bfc8d2}
table.stats td{border-bottom:1px solid #eef1f4;font-variant-numeric:tabular-nums}
table.facts th{color:#5a6b7d;font-weight:600;width:110px}
.badge{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:11px;
font-weight:600}
.badge.sev-info{background:#4a78b5}.badge.sev-warning{background:#b88400}
.badge.sev-critical{background:#c62828}
.plots{display:flex;flex-wrap:wrap;gap:12px}.note{color:#5a6b7d;font-size:12px}
svg.plot{display:block;max-width:100%;height:auto;margin:4px 0}
svg .plot-area{fill:#fff;stroke:#bfc8d2}svg .grid{stroke:#eef1f4}
svg .tick,svg .bar-value{font-size:11px;fill:#5a6b7d}svg .tick-mark{stroke:#bfc8d2}
svg .axis-title{font-size:11px;fill:#5a6b7d}svg .plot-title{font-size:13px;font-weight:600;
fill:#1d2733}
svg .window-span{fill:#e8590c;opacity:.07}
svg .threshold{fill:none;stroke:#c62828;stroke-width:1.2;stroke-dasharray:6 4}
svg .statistic{fill:none;stroke:#8795a5;stroke-width:1}
svg .marker{stroke:#fff;stroke-width:1.5}svg .cdf{fill:none;stroke-width:2}
"""
