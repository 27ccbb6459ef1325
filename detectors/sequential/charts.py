"""A bank of two-sided CUSUM charts on block z-scores, stepped all at once.

Each statistic (a feature's location, its scale, one category's share) has
two charts with different reference values ``k``: a *fast* one (``k`` large,
threshold small) that catches a large shift within a couple of blocks, and a
*slow* one (``k`` just above what the reference's own estimation error can
fake) that accumulates a small persistent shift until it stands out. Each
chart has an upward and a downward sum.

Sums are capped at ``cap`` times their threshold instead of restarting after
an alarm: a shift that persists keeps its sum above the threshold (a violation
every block), and once the stream is back to the reference the sum falls below
the threshold within ``(cap - 1) h / k`` blocks.

While a sum is positive its *run* accumulates the block's raw sum and count
of the statistic, so an alarm can say how large the shift is (the run's mean
against the reference's).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.change.run_length import cusum_threshold
from detectors.codec import decode_array, encode_array

FAST, SLOW = 0, 1
TIERS = ("fast", "slow")
UP, DOWN = 0, 1


# Nodes and weights of the normal distribution (Gauss-Hermite, probabilists').
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(40)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()
MARGIN = 2.0
# A reference so small that its error rivals k would need a threshold beyond
# this; the chart then stays quiet rather than calibrate to it.
MAX_THRESHOLD = 1e6  # reference standard errors taken off a slow chart's k when calibrating


def _run_length(drift: float, h: float) -> float:
    """Siegmund's approximation of a one-sided CUSUM's average run length with
    normal increments of mean ``drift`` (negative in control), threshold ``h``."""
    b = h + 1.166
    if abs(drift) < 1e-9:
        return b * b
    if -2 * drift * b > 700:  # beyond any budget (and beyond float range)
        return math.inf
    return (math.expm1(-2 * drift * b) + 2 * drift * b) / (2 * drift * drift)


def averaged_threshold(arl: float, k: float, error: float) -> float:
    """Threshold whose false-alarm rate, averaged over the reference's error
    (a drift of ``error`` standard deviations, normal), is ``1 / arl``."""
    # Python floats, not the nodes' numpy scalars (the same doubles, the same operations):
    # a numpy scalar's arithmetic costs ~10 times a float's, over ~5,000 steps a threshold.
    drifts = [x * error - k for x in _NODES.tolist()]
    weights = _WEIGHTS.tolist()

    def rate(h: float) -> float:
        total = 0.0  # added in order, one by one, as sum() added the numpy scalars
        for drift, w in zip(drifts, weights, strict=True):
            total += w / _run_length(drift, h)
        return total

    return threshold_of_rate(rate, arl)


def threshold_of_rate(rate: Callable[[float], float], arl: float) -> float:
    """The threshold ``h`` at which ``rate(h)`` (falling in ``h``) meets ``1 / arl``, by
    bisection, to the last bit of the bracket."""
    lo, hi = 0.0, 1.0
    while rate(hi) > 1 / arl and hi < MAX_THRESHOLD:
        hi *= 2
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if rate(mid) > 1 / arl:
            lo = mid
        else:
            hi = mid
    return hi


def thresholds(k: np.ndarray, error: np.ndarray, arl_blocks: float) -> np.ndarray:
    """Decision intervals of the (tier, chart) one-sided charts, each for an
    in-control run length of ``arl_blocks`` blocks given the reference error
    (block z-units) of its chart: averaged over that error for a fast chart;
    for a slow one, whose ``k`` is a few errors only (the average is dominated
    by references off by more than ``k``), at ``k`` less ``MARGIN`` errors."""
    cache: dict[tuple[int, float, float], float] = {}
    out = np.empty(k.shape)
    for tier in (FAST, SLOW):
        for i, (kk, err) in enumerate(zip(k[tier].tolist(), error.tolist(), strict=True)):
            key = (tier, round(kk, 12), round(err, 12))
            if key not in cache:
                if tier == FAST:
                    cache[key] = averaged_threshold(arl_blocks, kk, err)
                else:
                    cache[key] = cusum_threshold(arl_blocks, max(kk - MARGIN * err, 0.25 * kk))
            out[tier, i] = cache[key]
    return out


@dataclass
class ChartBank:
    """``k`` and ``h`` are (tier, chart); ``sums``, ``run_sum`` and ``run_n`` are
    (side, tier, chart)."""

    k: np.ndarray
    h: np.ndarray
    cap: float
    sums: np.ndarray
    run_sum: np.ndarray
    run_n: np.ndarray

    @classmethod
    def create(cls, k: np.ndarray, h: np.ndarray, cap: float) -> ChartBank:
        shape = (2, *k.shape)
        return cls(k, h, cap, np.zeros(shape), np.zeros(shape), np.zeros(shape))

    @property
    def charts(self) -> int:
        return int(self.k.shape[1])

    def steps(self, z: np.ndarray, raw: np.ndarray, n: np.ndarray) -> Iterator[np.ndarray]:
        """``k`` blocks in turn: z-scores, raw sums and counts per block and chart
        in; yield a block's (side, tier, chart) mask of the sums then above their
        thresholds once the bank has taken that block, and that block only."""
        signed = np.stack([z, -z], axis=1)[:, :, None, :]  # block, side, 1, chart
        capped = self.cap * self.h
        for b in range(z.shape[0]):
            sums = self.sums + signed[b]
            sums -= self.k
            np.maximum(sums, 0.0, out=sums)
            np.minimum(sums, capped, out=sums)
            self.sums = sums
            live = sums > 0
            self.run_sum = np.where(live, self.run_sum + raw[b], 0.0)
            self.run_n = np.where(live, self.run_n + n[b], 0.0)
            over: np.ndarray = sums > self.h
            yield over

    def run_mean(self, side: int, tier: int, chart: int) -> float:
        n = float(self.run_n[side, tier, chart])
        return float(self.run_sum[side, tier, chart]) / n if n > 0 else math.nan

    def dump(self) -> dict[str, Any]:
        return {
            "k": encode_array(self.k),
            "h": encode_array(self.h),
            "cap": self.cap,
            "sums": encode_array(self.sums),
            "run_sum": encode_array(self.run_sum),
            "run_n": encode_array(self.run_n),
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> ChartBank:
        return cls(
            decode_array(state["k"]),
            decode_array(state["h"]),
            float(state["cap"]),
            decode_array(state["sums"]),
            decode_array(state["run_sum"]),
            decode_array(state["run_n"]),
        )
