"""Page-Hinkley test (Page 1954; Hinkley 1971) on standardised block means."""

from __future__ import annotations

from typing import Any

from detectors.change.base import BlockChangeDetector
from detectors.change.run_length import cusum_threshold
from detectors.codec import decode_float, encode_float

# running mean; each side's sum, its minimum, and the z values since that minimum
_FIELDS = (
    "mean",
    "up",
    "up_min",
    "up_since_n",
    "up_since_sum",
    "down",
    "down_min",
    "down_since_n",
    "down_since_sum",
)


class PageHinkley(BlockChangeDetector):
    """Two-sided Page-Hinkley test on standardised block means.

    Unlike CUSUM it measures deviations from the running mean since the last
    alarm, not from the reference mean: it flags a change point and then
    settles on the new level, so a lasting shift is reported once. Each
    direction's cumulative deviation beyond ``delta`` is compared with its own
    minimum so far; an alarm comes when the rise exceeds ``lambda_``,
    calibrated to ``false_alarm_events`` like CUSUM's decision interval unless
    given.

    Parameters
    ----------
    delta
        Tolerance: block-mean deviations up to ``delta`` standard deviations
        are absorbed.
    lambda_
        Alarm threshold, in block-mean standard deviations; None calibrates it
        to ``false_alarm_events``.
    min_blocks
        Blocks since the start or the last alarm before another alarm can come.
    block
        Values per block: the detector runs on standardised block means.
    warmup
        Values to calibrate on, when :meth:`calibrate` is never called with a
        reference.
    false_alarm_events
        Values expected between false alarms; the suite sets it from its
        budget when it calibrates.
    critical_effect
        Estimated shift, in reference standard deviations of the raw values,
        at or above which a finding is critical rather than a warning.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.change import PageHinkley
    >>> rng = np.random.default_rng(0)
    >>> detector = PageHinkley()
    >>> detector.calibrate(mean=0.0, std=1.0, reference_size=10_000)
    >>> detector.update(rng.normal(0, 1, 20_000))
    []

    The mean moves up by 0.3 standard deviations:

    >>> events = detector.update(rng.normal(0.3, 1, 5_000))
    >>> [(e.index, e.details["direction"], round(e.effect_size, 2)) for e in events]
    [(349, 'up', 0.34)]

    References
    ----------
    .. [1] Page, E. S. (1954). Continuous inspection schemes. *Biometrika*,
       41(1-2), 100-115.
    .. [2] Hinkley, D. V. (1971). Inference about the change-point from
       cumulative sum tests. *Biometrika*, 58(3), 509-523.
    """

    name = "page_hinkley"

    def __init__(
        self,
        delta: float = 0.5,
        lambda_: float | None = None,
        min_blocks: int = 10,
        block: int = 50,
        warmup: int = 1000,
        false_alarm_events: float = 1e7,
        critical_effect: float = 1.0,
    ) -> None:
        super().__init__(block, warmup, false_alarm_events, critical_effect)
        if not delta > 0:
            raise ValueError(f"delta must be > 0, got {delta!r}; pass e.g. 0.5")
        if lambda_ is not None and not lambda_ > 0:
            raise ValueError(f"lambda_ must be > 0 or None, got {lambda_!r}")
        if min_blocks < 1:
            raise ValueError(f"min_blocks must be >= 1, got {min_blocks!r}")
        self.delta = delta
        self.lambda_ = lambda_
        self.min_blocks = min_blocks
        self._h = lambda_ if lambda_ is not None else 0.0
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._state = dict.fromkeys(_FIELDS, 0.0)

    def _configure(self) -> None:
        if self.lambda_ is None:
            self._h = cusum_threshold(2 * self.false_alarm_events / self.block, self.delta)
        self._reset()

    def _step(self, z: float) -> tuple[float, float, float, dict[str, Any]] | None:
        s = self._state
        self._n += 1
        s["mean"] += (z - s["mean"]) / self._n
        s["up"] += z - s["mean"] - self.delta
        s["down"] += s["mean"] - z - self.delta
        for side in ("up", "down"):
            if s[side] <= s[f"{side}_min"]:
                s[f"{side}_min"] = s[side]
                s[f"{side}_since_n"] = s[f"{side}_since_sum"] = 0.0
            else:
                s[f"{side}_since_n"] += 1
                s[f"{side}_since_sum"] += z
        rise, fall = s["up"] - s["up_min"], s["down"] - s["down_min"]
        if self._n < self.min_blocks or max(rise, fall) <= self._h:
            return None
        up = rise >= fall
        side = "up" if up else "down"
        stat = rise if up else fall
        since_n, since_sum = s[f"{side}_since_n"], s[f"{side}_since_sum"]
        before_n = self._n - since_n
        before = (s["mean"] * self._n - since_sum) / before_n if before_n > 0 else 0.0
        shift = since_sum / max(since_n, 1.0) - before
        blocks = int(since_n)
        self._reset()
        return stat, self._h, shift, {"direction": "up" if up else "down", "blocks": blocks}

    def _dump_extra(self) -> dict[str, Any]:
        return {"n": self._n, **{k: encode_float(v) for k, v in self._state.items()}}

    def _load_extra(self, state: dict[str, Any]) -> None:
        self._n = int(state["n"])
        self._state = {k: decode_float(state[k]) for k in _FIELDS}
