"""A threshold on scores set by their own recent tail (peaks over threshold).

The ``P0`` upper quantile of the scores is tracked by stochastic approximation
and their excesses over it by an exponentially weighted mean: with an
exponential tail above that quantile (a generalised Pareto tail of shape zero),
a score beyond ``q + beta * ln(P0 * n)`` comes once in ``n`` scores. Heavy
tails (bursty counts, log-normal latency) raise ``q`` and ``beta`` and so the
threshold; a series of any scale or noise then keeps one false alarm in about
``n`` points. Never below ``floor``: a short or very regular history must not
make the threshold tiny.
"""

from __future__ import annotations

import math

P0 = 0.02  # the tracked tail share
STEP = 0.004  # quantile tracker step (scores are in noise units)
EXCESS_RATE = 0.02  # weight of a new excess in their mean


class TailThreshold:
    def __init__(self, q: float = 2.33, beta: float = 0.4) -> None:
        self.q = q  # |N(0, 1)| at P0, a start for the tracker
        self.beta = beta

    def threshold(self, n: float, floor: float) -> float:
        return max(floor, self.q + self.beta * math.log(max(P0 * n, 1.0)))

    def learn(self, score: float) -> None:
        if score > self.q:
            self.beta += EXCESS_RATE * (score - self.q - self.beta)
            self.q += STEP * (1.0 - P0) / P0
        else:
            self.q = max(self.q - STEP, 0.5)

    def dump(self) -> list[float]:
        return [self.q, self.beta]

    @classmethod
    def load(cls, state: list[float]) -> TailThreshold:
        return cls(float(state[0]), float(state[1]))
