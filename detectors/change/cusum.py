"""Two-sided CUSUM (Page 1954) on standardised block means."""

from __future__ import annotations

from typing import Any

from detectors.change.base import BlockChangeDetector
from detectors.change.run_length import cusum_threshold
from detectors.codec import decode_float, encode_float


class CUSUM(BlockChangeDetector):
    """Two-sided CUSUM on standardised block means.

    Two cumulative sums, one per direction, add up the block means' deviations
    from the reference mean beyond ``k`` (in block-mean standard deviations)
    and alarm when either exceeds the decision interval. That interval is
    calibrated so that the in-control average run length is
    ``false_alarm_events`` values (Siegmund's approximation, the reference's
    own estimation error allowed for), unless ``threshold`` fixes it. After an
    alarm both sums restart, so a shift that persists alarms again.

    Parameters
    ----------
    k
        Reference value: block-mean deviations up to ``k`` standard deviations
        are absorbed. A shift of about ``2 k`` block-mean standard deviations
        is detected fastest.
    threshold
        Decision interval, in block-mean standard deviations; None calibrates
        it to ``false_alarm_events``.
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
    >>> from detectors.change import CUSUM
    >>> rng = np.random.default_rng(0)
    >>> detector = CUSUM()
    >>> detector.calibrate(mean=0.0, std=1.0, reference_size=10_000)
    >>> detector.update(rng.normal(0, 1, 20_000))
    []

    The mean moves up by 0.3 standard deviations:

    >>> events = detector.update(rng.normal(0.3, 1, 5_000))
    >>> first = events[0]
    >>> print(first.index, first.details["direction"], f"{first.effect_size:.2f}")
    399 up 0.17

    References
    ----------
    .. [1] Page, E. S. (1954). Continuous inspection schemes. *Biometrika*,
       41(1-2), 100-115.
    .. [2] Siegmund, D. (1985). *Sequential Analysis: Tests and Confidence
       Intervals*. Springer, New York.
    """

    name = "cusum"

    def __init__(
        self,
        k: float = 0.5,
        threshold: float | None = None,
        block: int = 50,
        warmup: int = 1000,
        false_alarm_events: float = 1e7,
        critical_effect: float = 1.0,
    ) -> None:
        super().__init__(block, warmup, false_alarm_events, critical_effect)
        if not k > 0:
            raise ValueError(f"k must be > 0, got {k!r}; pass e.g. 0.5")
        if threshold is not None and not threshold > 0:
            raise ValueError(f"threshold must be > 0 or None, got {threshold!r}")
        self.k = k
        self.threshold = threshold
        self._h = threshold if threshold is not None else 0.0
        self._up = 0.0
        self._down = 0.0
        self._run = 0

    def _configure(self) -> None:
        if self.threshold is None:
            # two one-sided charts: each gets twice the run length
            k_eff = max(self.k - 2 * self.reference_error(), 0.25 * self.k)
            self._h = cusum_threshold(2 * self.false_alarm_events / self.block, k_eff)
        self._up = self._down = 0.0
        self._run = 0

    def _step(self, z: float) -> tuple[float, float, float, dict[str, Any]] | None:
        self._up = max(0.0, self._up + z - self.k)
        self._down = max(0.0, self._down - z - self.k)
        self._run = self._run + 1 if (self._up > 0 or self._down > 0) else 0
        if self._up <= self._h and self._down <= self._h:
            return None
        up = self._up > self._h
        stat = self._up if up else self._down
        run = max(self._run, 1)
        shift = (self.k + stat / run) * (1 if up else -1)
        self._up = self._down = 0.0
        self._run = 0
        return stat, self._h, shift, {"direction": "up" if up else "down", "blocks": run}

    def _dump_extra(self) -> dict[str, Any]:
        return {"up": encode_float(self._up), "down": encode_float(self._down), "run": self._run}

    def _load_extra(self, state: dict[str, Any]) -> None:
        self._up = decode_float(state["up"])
        self._down = decode_float(state["down"])
        self._run = int(state["run"])
