"""Inline SVG plots of the HTML report: drawn here, so the file needs nothing else.

Every text that reaches the SVG goes through ``html.escape``: labels and
signal names come from events, and events are untrusted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from monitor.cli.timefmt import moment, out_of_range

SEVERITY_COLOURS = {"info": "#4a78b5", "warning": "#e0a100", "critical": "#c62828"}
REFERENCE_COLOUR = "#5a6b7d"
WINDOW_COLOUR = "#e8590c"
TIME_STEPS = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 14400, 21600, 43200
)  # fmt: skip


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
    return list(_time_axis(lo, hi, count)[0])


def time_labels(lo: float, hi: float, count: int = 6) -> list[tuple[float, str]]:
    """Ticks over [lo, hi] with labels that read at the span: times of day, then dates.

    Steps of under a minute show seconds; under a day, hours and minutes, with
    the date once the ticks cross midnight; a day or more, the date alone. So
    labels differ from each other at any span.
    """
    ticks, step = _time_axis(lo, hi, count)
    days = {_stamp(t, "%Y-%m-%d") for t in ticks}
    if step < 60:
        fmt = "%H:%M:%S"
    elif step < 86400:
        fmt = "%H:%M" if len(days) <= 1 else "%m-%d %H:%M"
    else:
        fmt = "%Y-%m-%d"
    return [(t, _stamp(t, fmt)) for t in ticks]


def span_date(lo: float, hi: float) -> str:
    """The date of a span within one day (said once under the axis), else nothing."""
    first, last = _stamp(lo, "%Y-%m-%d"), _stamp(hi, "%Y-%m-%d")
    return first if first == last and not first.startswith("out of range") else ""


def _stamp(ts: float, fmt: str) -> str:
    when = moment(ts)
    return out_of_range(ts) if when is None else when.strftime(fmt)


def _time_axis(lo: float, hi: float, count: int) -> tuple[list[float], float]:
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(hi - lo)) or hi <= lo:
        return [lo], 1.0
    if (hi - lo) / 86400 > count:  # whole days, 1, 2 or 5 times a power of ten
        days = nice_ticks(lo / 86400, hi / 86400, count)
        step = (days[1] - days[0]) * 86400 if len(days) > 1 else 86400.0
        return [day * 86400 for day in days], step
    step = next((s for s in TIME_STEPS if (hi - lo) / s <= count), 86400)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)], float(step)


def fmt_number(v: float) -> str:
    if v == 0 or 1e-3 <= abs(v) < 1e5:
        return f"{v:.4g}"
    return f"{v:.2e}"


def plot_title(frame: Frame, text: str) -> str:
    """The plot's title, shortened to its width; the full text shows on hover."""
    room = int((frame.width - frame.left) / 7.2)
    shown = text if len(text) <= room else text[: room - 1] + "…"
    return (
        f'<text class="plot-title" x="{frame.left}" y="18"><title>{escape(text)}</title>'
        f"{escape(shown)}</text>"
    )


def svg_document(frame: Frame, label: str, body: list[str]) -> str:
    return (
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="{escape(label)}" viewBox="0 0 {frame.width} {frame.height}" '
        f'width="{frame.width}" height="{frame.height}">' + "".join(body) + "</svg>"
    )


def y_axis(frame: Frame, ticks: Sequence[float], title: str) -> list[str]:
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
        plot_title(frame, title),
    ]
    body += y_axis(frame, [0.0, 0.25, 0.5, 0.75, 1.0], "share of values ≤ x")
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
    return svg_document(frame, title, body)


def shares_svg(
    labels: Sequence[str], reference: Sequence[float], window: Sequence[float], title: str
) -> str:
    """Reference and window shares of each label as paired horizontal bars."""
    row = 26
    height = 28 + 42 + row * max(len(labels), 1)
    top = max([*reference, *window, 0.01])
    frame = Frame(460, height, 110, 56, 28, 42, 0.0, top * 1.05, 0.0, 1.0)
    body = [frame.box(), plot_title(frame, title)]
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
    return svg_document(frame, title, body)


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
table.facts th{color:#5a6b7d;font-weight:600;width:150px}
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
svg .firing-span{fill:#c62828;opacity:.10}svg .reference-span{fill:#5a6b7d;opacity:.12}
svg .change{stroke-width:1.5;stroke-dasharray:2 3}svg .change-fired{stroke:#c62828}
svg .change-resolved{stroke:#2e7d32}svg .statistic.history{stroke:#1d5fa8;stroke-width:1.4}
svg .threshold{fill:none;stroke:#c62828;stroke-width:1.2;stroke-dasharray:6 4}
svg .statistic{fill:none;stroke:#8795a5;stroke-width:1}
svg .marker{stroke:#fff;stroke-width:1.5}svg .cdf{fill:none;stroke-width:2}
"""
