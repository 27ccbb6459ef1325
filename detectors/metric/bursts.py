"""The excursions a metric series makes and comes back from: how high a
normal one goes.

Cloud CPU jumps for a few points at each cron job, tweet volumes burst for a
while at each piece of news: excursions far beyond the point threshold that
return to the level, and recur. Points beyond the threshold never teach the
scores' own tail (:mod:`detectors.metric.tail`), so such a series would page
at every burst. Each excursion that ended (its peak score and its length in
points; those that start once the probation is over, when the noise scale
is learnt) is kept, the last :data:`KEEP`; from :data:`MIN_BURSTS` of them on:

- a new excursion alerts only when its peak is beyond the one that normal
  excursions exceed once in the detector's budget: peaks over the point
  threshold, their excesses fitted by a generalised Pareto distribution
  (method of moments, Hosking & Wallis 1987; the shape bounded to
  [-0.5, 0.5]: bursts of a bounded size give a negative shape, whose end
  point is about one and a half times the largest burst's excess), at the
  probability per excursion that the budget leaves at the excursions' own
  rate;
- a run of outliers no longer than twice the longest recent excursion is
  waited for before it counts as a level shift (it may be one more burst).

A series without excursions (or fewer than :data:`MIN_BURSTS`) is judged as
before: the point threshold, three outliers in a row a shift.
"""

from __future__ import annotations

import math
from typing import Any

KEEP = 16  # excursions kept
MIN_BURSTS = 3  # excursions before they count (two may be anomalies of their own)
MAX_WAIT = 30  # points a run may be waited for (a level shift is not held longer)
MAX_SHAPE = 0.5  # bounds of the fitted shape: a method-of-moments fit of
MIN_SHAPE = -0.5  # 3 to 16 excesses is rough


class Bursts:
    """The last :data:`KEEP` excursions: point count at their start, peak score, length."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.peaks: list[float] = []
        self.lengths: list[int] = []

    def add(self, start: int, peak: float, length: int) -> None:
        self.starts.append(start)
        self.peaks.append(abs(peak))
        self.lengths.append(length)
        if len(self.starts) > KEEP:
            del self.starts[0], self.peaks[0], self.lengths[0]

    def known(self) -> bool:
        return len(self.starts) >= MIN_BURSTS

    def wait(self) -> int:
        """How many outliers in a row may still be an excursion (0: none
        known): twice the longest recent one (of k lengths, a new one
        exceeds their longest with probability 1 / (k + 1))."""
        return min(2 * max(self.lengths), MAX_WAIT) if self.known() else 0

    def bar(self, limit: float, n_checks: float, now: int) -> float:
        """The peak score a normal excursion exceeds once in ``n_checks``
        points (``limit``, the point threshold, while too few are known)."""
        if not self.known():
            return limit
        rate = len(self.starts) / max(now - self.starts[0], 1)
        expected = rate * n_checks  # excursions in the budget's points
        if expected <= 1.0:
            return limit
        excess = [max(p - limit, 0.0) for p in self.peaks]
        mean = sum(excess) / len(excess)
        var = sum((e - mean) ** 2 for e in excess) / (len(excess) - 1)
        if mean <= 0.0:
            return limit
        ratio = mean * mean / max(var, 1e-12 * mean * mean)
        shape = min(max(0.5 * (1.0 - ratio), MIN_SHAPE), MAX_SHAPE)
        scale = mean * (1.0 - shape)  # the fitted mean kept where the shape is bounded
        if abs(shape) < 1e-9:
            return limit + scale * math.log(expected)
        return limit + scale / shape * (math.pow(expected, shape) - 1.0)

    def dump(self) -> list[list[float]]:
        return [[s, p, n] for s, p, n in zip(self.starts, self.peaks, self.lengths, strict=True)]

    @classmethod
    def load(cls, state: list[Any]) -> Bursts:
        out = cls()
        for start, peak, length in state:
            out.add(int(start), float(peak), int(length))
        return out
