"""A change of slope: the series leaves a slow reference level for good.

The detector's Holt forecast follows a new slope within tens of points: its
errors at the start of a gentle ramp (a few hundredths of a noise unit per
point) stay within the noise, and the ramp is learnt, never told. A
reference level with about a day's memory (moving at most two noise scales
per day's points, so a ramp outruns it; re-based at each confirmed shift)
does not follow it: the mean of the last 60 deviations from it (plus the
season's offset where one is known), in noise units, grows as the ramp
goes on. After a shift the reference restarts as the running mean of the
points since (for four windows' points: a fitted level from a few points is
off by about a noise unit, which a window's mean would soon show, and a
mean of one window's points as much as the window it is judged against),
then moves slowly again.

That mean is judged against its own running mean and variance, learnt from
disjoint 60-point windows while nothing is found (a wandering level or a
season's residue makes it vary, and then it needs more): a level that
wanders as a matter of course is not a change, a slope that takes it
beyond what it has done is. A window is learnt only :data:`LAG` windows
after it closed (dropped if a shift is confirmed first), and deviations are
judged in the largest noise scale of those windows, not the current one: in
a seasonal series the forecast's noise scale and the window sums' variance
learn from a ramp's own build-up (on daily Poisson counts the scale grew
fourfold in the 200 points after a gentle ramp began) and would hide it.
"""

from __future__ import annotations

import math
from typing import Any

WINDOW = 60  # points whose mean deviation is judged
RATE = 0.05  # weight of a new window in the running mean and variance
MIN_WINDOWS = 5  # windows learnt before any is judged
CLIP = 6.0  # a deviation counts at most this many noise units (one wild point)
ANCHOR = 4 * WINDOW  # points whose running mean a restarted reference is
LAG = 4  # windows a window waits before it is learnt (a change's build-up is not)


class Drift:
    """The reference level, the last deviations from it and their windows' statistics."""

    def __init__(self, level: float = 0.0) -> None:
        self.level = level
        self.devs: list[float] = []  # last WINDOW deviations, in noise units
        self.mean = self.var = 0.0
        self.windows = 0
        self.filled = 0  # points since the last window closed
        self.pending: list[float] = []  # the last LAG windows' means, not learnt yet
        self.scales: list[float] = []  # the noise scale when each of them closed
        self.since = 0  # points since the reference restarted

    def follow(self, err: float, clip: float, rate: float) -> None:
        """Move the reference by ``rate`` of the error, clipped at ``clip``."""
        err = max(-clip, min(clip, err))
        if self.since < ANCHOR:  # anchoring: the mean of the points since the restart
            self.since += 1
            rate = max(rate, 1.0 / self.since)
        self.level += rate * err

    def add(self, dev: float, scale: float, bar: float) -> float | None:
        """One more deviation (in the units of the noise ``scale``); how far
        the last window's mean is beyond its usual, in its standard
        deviations, when beyond ``bar`` and kept to one side. The deviation
        is judged in the noise scale of :data:`LAG` windows before (a ramp
        widens the scale it is judged in as it builds up), and a window is
        learnt only :data:`LAG` windows after it closed."""
        frozen = self.frozen(scale)
        self.devs.append(max(-CLIP, min(CLIP, dev / max(frozen, 1e-300))))
        if len(self.devs) > WINDOW:
            del self.devs[0]
        if len(self.devs) < WINDOW:
            return None
        m = sum(self.devs) / WINDOW
        if self.windows >= MIN_WINDOWS:
            # (never below the sampling error of a mean of white noise)
            sd = max(math.sqrt(self.var), 1.0 / math.sqrt(WINDOW))
            d = (m - self.mean) / sd
            if abs(d) > bar and self._one_sided(m):
                return d
        self.filled += 1
        if self.filled >= WINDOW:  # disjoint windows: overlapping ones agree
            self.filled = 0
            self.pending.append(m)
            self.scales.append(scale)
            if len(self.pending) > LAG:
                self._learn(self.pending.pop(0))
                del self.scales[0]
        return None

    def frozen(self, scale: float) -> float:
        """The noise scale deviations are judged in: the largest of those
        when the windows not learnt yet closed (a seasonal forecast's noise
        moves with the phase of the day, and one window's may be the day's
        least); ``scale`` (the noise now) before any closed."""
        return max(self.scales) if self.scales else scale

    def _learn(self, m: float) -> None:
        rate = max(RATE, 1.0 / (self.windows + 1.0))
        delta = m - self.mean if self.windows else 0.0
        self.mean = m if not self.windows else self.mean + rate * delta
        self.var = (1.0 - rate) * (self.var + rate * delta * delta)
        self.windows += 1

    def degrees(self) -> float:
        """The degrees of freedom of the windows' variance (exponentially
        weighted: never more than about ``2 / RATE``)."""
        return float(max(1, min(self.windows, round(2.0 / RATE) - 1)))

    def _one_sided(self, m: float) -> bool:
        n = len(self.devs)
        var = sum((v - m) ** 2 for v in self.devs) / (n - 1)
        return abs(m - self.mean) * math.sqrt(n) / max(math.sqrt(var), 1e-9) > 4.0

    def rebase(self, level: float) -> None:
        """After a confirmed shift: the reference restarts from ``level``."""
        self.level = level
        self.devs = []
        self.filled = self.since = 0
        # (the windows not learnt yet may hold the change's build-up)
        self.pending, self.scales = [], []

    def restart(self, level: float) -> None:
        """The deviations are from another forecast (a season was found or
        lost): the reference restarts from ``level`` (a reference kept
        through a square wave's edges before its season was known sits on
        one of its sides) and their windows' mean and variance are learnt anew."""
        self.rebase(level)
        self.filled = self.windows = 0
        self.mean = self.var = 0.0
        self.pending, self.scales = [], []

    def dump(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "devs": self.devs,
            "stats": [self.mean, self.var, self.windows, self.filled, self.since],
            "pending": [self.pending, self.scales],
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> Drift:
        out = cls(float(state["level"]))
        out.devs = [float(v) for v in state["devs"]]
        mean, var, windows, filled, since = state["stats"]
        out.mean, out.var = float(mean), float(var)
        out.windows, out.filled, out.since = int(windows), int(filled), int(since)
        if "pending" in state:  # absent from states saved before windows waited
            means, scales = state["pending"]
            kept = min(len(means), len(scales), LAG)  # (one scale per window)
            out.pending = [float(v) for v in means[len(means) - kept :]]
            out.scales = [float(v) for v in scales[len(scales) - kept :]]
        return out
