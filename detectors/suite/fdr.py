"""False-alarm control: Benjamini-Hochberg and run-length calibration."""

from __future__ import annotations

import math

import numpy as np


def benjamini_hochberg(p_values: np.ndarray, q: float) -> np.ndarray:
    """Boolean mask of the hypotheses rejected at false discovery rate ``q``.

    Under the global null the chance of any rejection is at most ``q``, which
    is what calibrates a window's false alarms to the events-between-alarms
    budget.
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.shape[0]
    if m == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(p, kind="stable")
    below = p[order] <= q * np.arange(1, m + 1) / m
    reject = np.zeros(m, dtype=bool)
    if below.any():
        last = int(np.nonzero(below)[0].max())
        reject[order[: last + 1]] = True
    return reject


def cusum_threshold(arl: float, k: float) -> float:
    """Decision interval h of a one-sided CUSUM with reference value ``k``
    (standard-normal increments) whose in-control average run length is ``arl``.

    Inverts Siegmund's approximation ARL = (e^{2kb} - 2kb - 1) / (2k^2), with
    b = h + 1.166, by bisection.
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
