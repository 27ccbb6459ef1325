"""A rise of a metric's noise, found by evidence that accumulates.

The detector's forecast rescales its noise within tens of points, and a
noisier stretch of a few times the usual spread then passes with a spike or
none. The log squared forecast error, less its own slow running mean (about
500 points) and in its own running standard deviations, is summed by a
one-sided CUSUM (Page 1954): a rise of the spread adds about
``2 ln(factor) / sd`` per point whatever the forecast's scale does meanwhile.

It is calibrated to the detector's false-alarm budget: the threshold is the
one whose in-control run length (Siegmund's approximation) is that budget,
after the increments are divided by the square root of their long-run
variance (the running variance of disjoint 60-point sums, over 60), so that
errors that follow each other (a season not yet known) make the test slower,
not noisier.
"""

from __future__ import annotations

import functools
import math

DRIFT = 0.5  # CUSUM reference value, in long-run noise units
CLIP = 4.0  # an increment never exceeds this: one wild point is not a change
BLOCK = 60  # points in a block sum of the long-run variance
BLOCK_RATE = 0.05  # weight of a new block in the long-run variance
LOG_SQ_SD = 2.2214  # sd of log Z^2 for a normal Z, a start for the running one
LOG_SQ_RATE = 0.002  # weight of a new log squared error in its running mean and variance
EXACT = 1e-3  # errors below this many noise scales count as this (an exact forecast)
SETTLE = 60  # points that set the running mean and variance before any evidence counts


@functools.lru_cache(maxsize=64)
def cusum_threshold(arl: float) -> float:
    """The threshold of a one-sided CUSUM of N(0, 1) increments with reference
    :data:`DRIFT` whose in-control average run length is ``arl`` (Siegmund:
    ARL = (exp(2kb) - 2kb - 1) / 2k^2 with b = h + 1.166), solved for h."""
    k = DRIFT
    lo, hi = 0.0, 200.0
    for _ in range(60):
        h = 0.5 * (lo + hi)
        b = 2 * k * (h + 1.166)
        if (math.exp(b) - b - 1) / (2 * k * k) < arl:
            lo = h
        else:
            hi = h
    return hi


class VarianceRise:
    """A one-sided CUSUM of log squared forecast errors, less their own slow
    running mean, in their own running standard deviations and long-run
    noise units."""

    def __init__(self) -> None:
        self.mean, self.var = 0.0, LOG_SQ_SD * LOG_SQ_SD
        self.count = 0
        self.up = 0.0  # the CUSUM statistic
        self.block = 0.0  # sum of the current block's increments
        self.filled = 0  # points in the current block
        self.lrv = 1.0  # long-run variance of an increment
        self.blocks = 0

    def add(self, err: float, scale: float, arl: float) -> bool:
        """Whether the spread of recent errors rose beyond what a run length
        of ``arl`` points allows."""
        w = math.log(max(err * err, (EXACT * scale) ** 2, 1e-300))
        if self.count >= SETTLE and self._evidence((w - self.mean) / math.sqrt(self.var), arl):
            return True
        self.count += 1
        rate = max(LOG_SQ_RATE, 1.0 / self.count)
        delta = w - self.mean
        self.mean += rate * delta
        if self.count > 1:
            self.var = (1.0 - rate) * (self.var + rate * delta * delta)
        return False

    def _evidence(self, u: float, arl: float) -> bool:
        u = max(-CLIP, min(CLIP, u))
        self.up = max(0.0, self.up + u / math.sqrt(max(self.lrv, 1.0)) - DRIFT)
        if self.up > cusum_threshold(arl):
            return True
        # never more sensitive than for white noise; learnt only in control
        self.block += u
        self.filled += 1
        if self.filled == BLOCK:
            rate = max(BLOCK_RATE, 1.0 / (self.blocks + 1.0))
            self.lrv += rate * (self.block * self.block / BLOCK - self.lrv)
            self.blocks += 1
            self.block, self.filled = 0.0, 0
        return False

    def reset(self) -> None:
        """After a confirmed change (the caller rescales its forecast's noise)."""
        self.up = 0.0

    def restart(self) -> None:
        """The errors come from another forecast (a season was found or
        lost): their mean and variance are learnt anew."""
        self.up, self.count = 0.0, 0

    def dump(self) -> list[float]:
        return [
            self.mean,
            self.var,
            self.count,
            self.up,
            self.block,
            self.filled,
            self.lrv,
            self.blocks,
        ]

    @classmethod
    def load(cls, state: list[float]) -> VarianceRise:
        out = cls()
        out.mean, out.var, out.count = float(state[0]), float(state[1]), int(state[2])
        out.up, out.block, out.filled = float(state[3]), float(state[4]), int(state[5])
        out.lrv, out.blocks = float(state[6]), int(state[7])
        return out
