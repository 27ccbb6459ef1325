"""The season of a metric series, found from the series itself in event time.

Points are summed into half-hour buckets of event time (any cadence: a bucket
holds thousands of points at a seconds cadence, or one at an hourly one) over
the last 15 days. Every six hours of event time (every hour in the first
four days while none is found) the daily (48 buckets) and the weekly (336)
lags are tested by autocorrelation of the linearly detrended bucket means;
empty buckets are interpolated. A period counts only when its
autocorrelation is high and clearly above the one at half the period: a
random walk or a trend correlates at every lag, a season at its period only.
A period is looked for from a quarter of it past the first (a day and six
hours for the day), with a bar that starts high and falls to its floor as
pairs accrue (three standard errors of a correlation of unrelated pairs), so
a strong season is found early and a weak one, or none, is not made up from
a few pairs. When a straight line shows no period after three days, the day
is looked for again less a moving mean over a day, at a high bar: a trend
that bends hides a season from a straight line.

The seasonal forecast of a point is the slow level (about a day's memory)
plus how far the series stood above that level in the point's bucket one period back (or in that
bucket's neighbours, or interpolated between them): a robust seasonal-naive
forecast from bucket means over many points, which follows level shifts and
trends because it is relative to the level.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

BUCKET_SECONDS = 1800.0
DAY = 48  # buckets
WEEK = 7 * DAY
SLOTS = 15 * DAY  # history kept: two weeks and a day
RECHECK = 12  # buckets between period tests (six hours)
RECHECK_EARLY = 2  # the same in the first four days while no period is found (an hour)
MIN_ACF = 0.5
MIN_ACF_LEAD = 0.3  # over the autocorrelation at half the period
MIN_ACF_BENT = 0.8  # the same after a moving mean, when a straight line showed none


def autocorrelation(x: np.ndarray, lag: int) -> float:
    """Pearson correlation of ``x`` with itself ``lag`` steps later."""
    a, b = x[:-lag], x[lag:]
    sa, sb = a.std(), b.std()
    if sa == 0 or sb == 0:
        return 0.0
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


def _moving_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Means of ``window + 1`` points (a centred window, even periods included
    once with half weight at either end), one per centre."""
    c = np.concatenate([[0.0], np.cumsum(x)])
    inner = (c[window:] - c[:-window])[: x.shape[0] - window]  # x[i .. i+window-1]
    ends = 0.5 * (x[window:] - x[: x.shape[0] - window])
    out: np.ndarray = (inner + ends) / window
    return out


def seasonal_lag(means: np.ndarray) -> int:
    """The period (in buckets) the bucket means follow: WEEK, DAY or 0 (none).

    ``means`` holds NaN for empty buckets, oldest first."""
    filled = np.isfinite(means)
    n = means.shape[0]
    if n < DAY or filled.sum() < 0.4 * n:  # an hourly cadence fills half the buckets
        return 0
    idx = np.arange(n)
    filled_in = np.interp(idx, idx[filled], means[filled])
    linear = filled_in - np.polyval(np.polyfit(idx, filled_in, 1), idx)
    best = _best_lag(linear, (DAY, WEEK))
    if best == 0 and n >= 3 * DAY:
        # less a moving mean over a day: a trend that bends (a new slope, a
        # level shift) leaves a residual after a straight line is taken away
        # that correlates at every lag and hides the day
        # (a high bar: a random walk less its moving mean is wavy too)
        x = filled_in[DAY // 2 : n - DAY // 2] - _moving_mean(filled_in, DAY)
        if autocorrelation(x, DAY) >= MIN_ACF_BENT:
            best = _best_lag(x, (DAY,))
    return best


def _best_lag(x: np.ndarray, lags: tuple[int, ...]) -> int:
    best, best_acf = 0, -1.0
    for lag in lags:
        pairs = x.shape[0] - lag
        if pairs < lag // 4:
            continue
        acf = autocorrelation(x, lag)
        lead = acf - autocorrelation(x, lag // 2)
        bar = max(MIN_ACF, 3.0 / math.sqrt(pairs))
        if acf >= bar and lead >= MIN_ACF_LEAD and acf > best_acf + 0.1:
            best, best_acf = lag, acf
    return best


class SeasonBuckets:
    """Bucket sums of the last :data:`SLOTS` half-hours and the period they show."""

    def __init__(self) -> None:
        self.ids = [-1] * SLOTS  # absolute bucket number held by each slot
        self.sums = [0.0] * SLOTS
        self.levels = [0.0] * SLOTS  # sums of the slow level at each point
        self.counts = [0] * SLOTS
        self.first = -1  # first bucket seen
        self.current = -1  # bucket of the newest point
        self.checked = -1  # bucket at the last period test
        self.lag = 0

    def add(self, t: float, x: float, level: float) -> None:
        b = max(math.floor(t / BUCKET_SECONDS), 0)  # times before 1970 share bucket 0
        if self.first < 0:
            self.first = b
        if b != self.current:
            self.current = b
            early = self.lag == 0 and b - self.first < 4 * DAY
            if b - self.checked >= (RECHECK_EARLY if early else RECHECK):
                self.checked = b
                self.lag = seasonal_lag(self.means(b))
        slot = b % SLOTS
        if self.ids[slot] != b:
            self.ids[slot], self.sums[slot], self.counts[slot] = b, 0.0, 0
            self.levels[slot] = 0.0
        self.sums[slot] += x
        self.levels[slot] += level
        self.counts[slot] += 1

    def means(self, upto: int) -> np.ndarray:
        """Means of the closed buckets before ``upto`` (NaN where empty), oldest first."""
        start = max(self.first, upto - SLOTS + 1)
        wanted = np.arange(start, upto)
        slots = wanted % SLOTS
        counts = np.asarray(self.counts, dtype=np.float64)[slots]
        held = (np.asarray(self.ids)[slots] == wanted) & (counts > 0)
        out = np.full(wanted.shape[0], np.nan)
        out[held] = np.asarray(self.sums)[slots][held] / counts[held]
        return out

    def offsets(self, t: float) -> list[float]:
        """How far the series stood above its forecast level one period back:
        in the current bucket's twin, in the twin's two neighbours (a season's
        edge may fall inside a bucket, or come a little early or late), and
        interpolated between twin centres at ``t`` (a smooth season); none
        without a period or data."""
        if self.lag == 0:
            return []
        twin = self.current - self.lag
        near = [self._offset(b) for b in (twin - 1, twin, twin + 1)]
        out = [v for v in near if v is not None]
        f = t / BUCKET_SECONDS - self.current - 0.5  # -0.5 .. 0.5 from the centre
        side = near[0] if f < 0 else near[2]
        if near[1] is not None and side is not None:
            out.append(near[1] + abs(f) * (side - near[1]))
        return out

    def swing(self) -> float:
        """The range of the offsets over the last day's closed buckets (0
        without two of them): how far the day itself moves the series."""
        held = [self._offset(b) for b in range(self.current - DAY, self.current)]
        offsets = [v for v in held if v is not None]
        return max(offsets) - min(offsets) if len(offsets) >= 2 else 0.0

    def _offset(self, b: int) -> float | None:
        slot = b % SLOTS
        if self.ids[slot] != b or self.counts[slot] == 0:
            return None
        return (self.sums[slot] - self.levels[slot]) / self.counts[slot]

    def dump(self) -> dict[str, Any]:
        used = [s for s in range(SLOTS) if self.ids[s] >= 0]
        return {
            "buckets": [[self.ids[s], self.sums[s], self.levels[s], self.counts[s]] for s in used],
            "first": self.first,
            "current": self.current,
            "checked": self.checked,
            "lag": self.lag,
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> SeasonBuckets:
        out = cls()
        for b, total, levels, count in state["buckets"]:
            slot = int(b) % SLOTS
            out.ids[slot], out.sums[slot], out.counts[slot] = int(b), float(total), int(count)
            out.levels[slot] = float(levels)
        out.first, out.current = int(state["first"]), int(state["current"])
        out.checked, out.lag = int(state["checked"]), int(state["lag"])
        return out
