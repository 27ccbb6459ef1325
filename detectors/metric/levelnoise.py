"""How a metric's noise grows with its level, learnt from the series itself.

Counts (requests, mentions, errors per minute) are Poisson-like or
overdispersed: their noise grows as the square root of their level or in
proportion to it; latency is log-normal, its noise proportional to it. One
noise scale for the whole day then sits between the quiet night's noise and
the busy afternoon's: a burst at night is lost in the day's noise, and the
afternoon's ordinary noise makes a heavy tail that raises every threshold.

The log absolute forecast error is regressed on the log expected level
(exponentially weighted, about :data:`MEMORY` points): the slope ``p`` says
that the noise at a level ``L`` is the noise at the series' typical level
times ``(L / typical) ** p``. The exponent used is the slope less
:data:`SURE` of its standard errors, bounded to [0, 1]: a level that barely
moves, or noise that does not follow it, leaves 0 (one noise scale, as
before); only a relation the data show clearly is used. Series that ever go
below zero have no natural zero for their level (a temperature, a
difference, a score): never.
"""

from __future__ import annotations

import math

MEMORY = 2000.0  # points (an exponentially weighted regression's memory)
MIN_POINTS = 300  # points learnt before an exponent is used
SURE = 3.0  # standard errors the slope is lowered by (scores follow each other)
SPAN = math.log(8.0)  # the unit never moves beyond 8 times either way of the typical level
TINY = 0.05  # errors below this share of the noise count as it (log of ~0)


class LevelNoise:
    """An exponentially weighted regression of log |error| on log level."""

    def __init__(self) -> None:
        self.n = 0
        self.mean_l = self.mean_w = 0.0
        self.var_l = self.var_w = self.cov = 0.0
        self.negative = False  # a value below zero was seen
        self.power = 0.0  # the exponent in use (set as points are learnt)

    def see(self, x: float) -> None:
        """Every value (a series that goes negative has no level ratio)."""
        if x < 0.0 and not self.negative:
            self.negative = True
            self.power = 0.0

    def unit(self, expected: float) -> float:
        """The noise at ``expected`` over the noise at the typical level."""
        if self.power == 0.0:
            return 1.0
        d = math.log(expected) - self.mean_l if expected > 0.0 else -SPAN
        return math.exp(self.power * max(-SPAN, min(SPAN, d)))

    def learn(self, expected: float, err: float, noise: float) -> None:
        """One more forecast error ``err`` at the level ``expected``; ``noise``
        the current noise scale there (tiny errors are floored to a share of it)."""
        if self.negative or expected <= 0.0:
            return
        lv = math.log(expected)
        w = math.log(max(abs(err), TINY * noise, 1e-300))
        self.n += 1
        rate = max(1.0 / self.n, 1.0 / MEMORY)
        dl, dw = lv - self.mean_l, w - self.mean_w
        self.mean_l += rate * dl
        self.mean_w += rate * dw
        keep = 1.0 - rate
        self.var_l = keep * (self.var_l + rate * dl * dl)
        self.var_w = keep * (self.var_w + rate * dw * dw)
        self.cov = keep * (self.cov + rate * dl * dw)
        self.power = self._exponent()

    def _exponent(self) -> float:
        if self.negative or self.n < MIN_POINTS or self.var_l <= 1e-12:
            return 0.0
        slope = self.cov / self.var_l
        resid = max(self.var_w - slope * self.cov, 0.0)
        points = min(float(self.n), 2.0 * MEMORY - 1.0)  # effective points of the weights
        se = math.sqrt(resid / (points * self.var_l))
        return max(0.0, min(1.0, slope - SURE * se))

    def dump(self) -> list[float]:
        return [
            self.n,
            self.mean_l,
            self.mean_w,
            self.var_l,
            self.var_w,
            self.cov,
            float(self.negative),
            self.power,
        ]

    @classmethod
    def load(cls, state: list[float]) -> LevelNoise:
        out = cls()
        out.n = int(state[0])
        out.mean_l, out.mean_w = float(state[1]), float(state[2])
        out.var_l, out.var_w, out.cov = float(state[3]), float(state[4]), float(state[5])
        out.negative, out.power = bool(state[6]), float(state[7])
        return out
