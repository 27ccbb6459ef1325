"""The season of a metric series, found from the series itself in event time.

Points are summed into half-hour buckets of event time (any cadence: a bucket
holds thousands of points at a seconds cadence, or one at an hourly one) over
the last 15 days. Every six hours of event time the daily (48 buckets) and the
weekly (336) lags are tested by autocorrelation of the linearly detrended
bucket means; empty buckets are interpolated. A period counts only when its
autocorrelation is high and clearly above the one at half the period: a random
walk or a trend correlates at every lag, a season at its period only.

The seasonal references of a point are the means of its bucket one period
back and of that bucket's neighbours (a robust seasonal-naive forecast: bucket
means over many points).
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
MIN_ACF = 0.5
MIN_ACF_LEAD = 0.3  # over the autocorrelation at half the period


def autocorrelation(x: np.ndarray, lag: int) -> float:
    """Pearson correlation of ``x`` with itself ``lag`` steps later."""
    a, b = x[:-lag], x[lag:]
    sa, sb = a.std(), b.std()
    if sa == 0 or sb == 0:
        return 0.0
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


def seasonal_lag(means: np.ndarray) -> int:
    """The period (in buckets) the bucket means follow: WEEK, DAY or 0 (none).

    ``means`` holds NaN for empty buckets, oldest first."""
    filled = np.isfinite(means)
    n = means.shape[0]
    if n < DAY or filled.sum() < 0.5 * n:
        return 0
    idx = np.arange(n)
    x = np.interp(idx, idx[filled], means[filled])
    x = x - np.polyval(np.polyfit(idx, x, 1), idx)
    best, best_acf = 0, -1.0
    for lag in (DAY, WEEK):
        if n < lag + lag // 2:  # at least half a period of overlap
            continue
        acf = autocorrelation(x, lag)
        lead = acf - autocorrelation(x, lag // 2)
        if acf >= MIN_ACF and lead >= MIN_ACF_LEAD and acf > best_acf + 0.1:
            best, best_acf = lag, acf
    return best


class SeasonBuckets:
    """Bucket sums of the last :data:`SLOTS` half-hours and the period they show."""

    def __init__(self) -> None:
        self.ids = [-1] * SLOTS  # absolute bucket number held by each slot
        self.sums = [0.0] * SLOTS
        self.counts = [0] * SLOTS
        self.first = -1  # first bucket seen
        self.current = -1  # bucket of the newest point
        self.checked = -1  # bucket at the last period test
        self.lag = 0

    def add(self, t: float, x: float) -> None:
        b = max(math.floor(t / BUCKET_SECONDS), 0)  # times before 1970 share bucket 0
        if self.first < 0:
            self.first = b
        if b != self.current:
            self.current = b
            if b - self.checked >= RECHECK:
                self.checked = b
                self.lag = seasonal_lag(self.means(b))
        slot = b % SLOTS
        if self.ids[slot] != b:
            self.ids[slot], self.sums[slot], self.counts[slot] = b, 0.0, 0
        self.sums[slot] += x
        self.counts[slot] += 1

    def means(self, upto: int) -> np.ndarray:
        """Means of the closed buckets before ``upto`` (NaN where empty), oldest first."""
        start = max(self.first, upto - SLOTS + 1)
        out = np.full(max(upto - start, 0), np.nan)
        for i, b in enumerate(range(start, upto)):
            slot = b % SLOTS
            if self.ids[slot] == b and self.counts[slot] > 0:
                out[i] = self.sums[slot] / self.counts[slot]
        return out

    def references(self) -> list[float]:
        """The means of the current bucket one period back and of its two
        neighbours (a season's edge may fall inside a bucket, or come a little
        early or late); none without a period or data."""
        if self.lag == 0:
            return []
        out = []
        for b in range(self.current - self.lag - 1, self.current - self.lag + 2):
            slot = b % SLOTS
            if self.ids[slot] == b and self.counts[slot] > 0:
                out.append(self.sums[slot] / self.counts[slot])
        return out

    def dump(self) -> dict[str, Any]:
        used = [s for s in range(SLOTS) if self.ids[s] >= 0]
        return {
            "buckets": [[self.ids[s], self.sums[s], self.counts[s]] for s in used],
            "first": self.first,
            "current": self.current,
            "checked": self.checked,
            "lag": self.lag,
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> SeasonBuckets:
        out = cls()
        for b, total, count in state["buckets"]:
            slot = int(b) % SLOTS
            out.ids[slot], out.sums[slot], out.counts[slot] = int(b), float(total), int(count)
        out.first, out.current = int(state["first"]), int(state["current"])
        out.checked, out.lag = int(state["checked"]), int(state["lag"])
        return out
