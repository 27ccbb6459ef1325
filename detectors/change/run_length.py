"""Run-length calibration of the cumulative-sum charts (CUSUM, Page-Hinkley)."""

from __future__ import annotations

import math


def cusum_threshold(arl: float, k: float) -> float:
    """Decision interval h of a one-sided CUSUM with reference value ``k``
    (standard-normal increments) whose in-control average run length is ``arl``.

    Inverts Siegmund's approximation ARL = (e^{2kb} - 2kb - 1) / (2k^2), with
    b = h + 1.166, by bisection (Siegmund, D. (1985). *Sequential Analysis:
    Tests and Confidence Intervals*. Springer, New York).
    """
    if arl <= 1:
        raise ValueError(f"arl must be > 1, got {arl!r}")

    def run_length(h: float) -> float:
        b = 2 * k * (h + 1.166)
        return (math.expm1(b) - b) / (2 * k * k)

    lo, hi = 0.0, 1.0
    while run_length(hi) < arl:
        hi *= 2
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if run_length(mid) < arl:
            lo = mid
        else:
            hi = mid
    return hi
