"""ADWIN, adaptive windowing (Bifet & Gavaldà 2007): River's, on standardised block means."""

from __future__ import annotations

import math
from typing import Any, Self

from river import drift

from detectors.change.base import BlockChangeDetector
from detectors.change.river_state import dump_river, load_river
from detectors.codec import decode_float, encode_float

# Parameters of the hand-written ADWIN that River's has no use for: River keeps
# its window as an exponential histogram whose memory is logarithmic in its length.
_DROPPED_PARAMS = ("max_window",)
# River drops a window's oldest buckets, not all that came before a change: the
# shift is estimated from the newest blocks (at most this many) against the rest.
RECENT_BLOCKS = 16


class ADWIN(BlockChangeDetector):
    """ADWIN, adaptive windowing, on standardised block means (``river.drift.ADWIN``).

    River's ADWIN keeps a window of recent block means (an exponential
    histogram) and detects a change whenever two sub-windows have means too far
    apart for chance at confidence ``delta``, checking every ``clock`` blocks.
    After a detection River starts a new window. Running on block means keeps
    it cheap and its bound honest: block means are near-normal whatever the
    raw values' shape.

    Parameters
    ----------
    delta
        Confidence of each check; None derives it from ``false_alarm_events``
        (``clock * block / false_alarm_events``, at most 0.1).
    clock
        Blocks between two checks of the window.
    min_side
        Fewest block means on either side of a split (River's
        ``min_window_length``); no check before ``2 * min_side`` blocks.
    max_buckets
        Buckets per row of River's exponential histogram (its resolution).
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
    >>> from detectors.change import ADWIN
    >>> rng = np.random.default_rng(0)
    >>> detector = ADWIN()
    >>> detector.calibrate(mean=0.0, std=1.0, reference_size=10_000)
    >>> detector.update(rng.normal(0, 1, 20_000))
    []

    The mean moves up by 0.3 standard deviations:

    >>> events = detector.update(rng.normal(0.3, 1, 5_000))
    >>> [(e.index, e.details["direction"], round(e.effect_size, 2)) for e in events]
    [(1199, 'up', 0.23)]

    References
    ----------
    .. [1] Bifet, A., & Gavaldà, R. (2007). Learning from time-changing data
       with adaptive windowing. In *Proceedings of the 2007 SIAM International
       Conference on Data Mining* (pp. 443-448). SIAM.
    .. [2] Montiel, J., et al. (2021). River: machine learning for streaming
       data in Python. *Journal of Machine Learning Research*, 22(110), 1-8.
    """

    name = "adwin"

    def __init__(
        self,
        delta: float | None = None,
        clock: int = 4,
        min_side: int = 5,
        max_buckets: int = 5,
        block: int = 50,
        warmup: int = 1000,
        false_alarm_events: float = 1e7,
        critical_effect: float = 1.0,
    ) -> None:
        super().__init__(block, warmup, false_alarm_events, critical_effect)
        if delta is not None and not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1) or None, got {delta!r}")
        if clock < 1 or min_side < 1 or max_buckets < 2:
            raise ValueError(
                "need clock >= 1, min_side >= 1 and max_buckets >= 2; "
                f"got clock={clock!r}, min_side={min_side!r}, max_buckets={max_buckets!r}"
            )
        self.delta = delta
        self.clock = clock
        self.min_side = min_side
        self.max_buckets = max_buckets
        self._adwin = self._fresh()
        self._recent: list[float] = []

    @classmethod
    def build(cls, **kwargs: Any) -> Self:
        for old in _DROPPED_PARAMS:
            kwargs.pop(old, None)
        return super().build(**kwargs)

    def _confidence(self) -> float:
        if self.delta is not None:
            return self.delta
        return min(0.1, self.clock * self.block / self.false_alarm_events)

    def _fresh(self) -> drift.ADWIN:
        return drift.ADWIN(  # type: ignore[no-untyped-call]  # River's constructor is untyped
            delta=self._confidence(),
            clock=self.clock,
            max_buckets=self.max_buckets,
            min_window_length=self.min_side,
            grace_period=2 * self.min_side,
        )

    def _configure(self) -> None:
        self._adwin = self._fresh()
        self._recent = []

    def _step(self, z: float) -> tuple[float, float, float, dict[str, Any]] | None:
        adwin = self._adwin
        if adwin.drift_detected:  # River starts a new window on the update after a detection
            self._recent = []
        width, total, variance = adwin.width, adwin.total, adwin.variance
        adwin.update(z)  # type: ignore[no-untyped-call]  # River's update is untyped
        self._recent = [*self._recent[1 - RECENT_BLOCKS :], z]
        if not adwin.drift_detected:
            return None
        n_new = min(len(self._recent), int(width) // 2 + 1)
        n_old = int(width) + 1 - n_new
        new_sum = sum(self._recent[-n_new:])
        old_mean = (total + z - new_sum) / n_old if n_old > 0 else 0.0
        shift = new_sum / n_new - old_mean
        # ADWIN's cut bound at that split (Bifet & Gavaldà 2007, Theorem 3.1).
        harmonic = 1.0 / (1.0 / max(n_old, 1) + 1.0 / n_new)
        log_term = math.log(2.0 * math.log(max(width + 1, 3)) / self._confidence())
        var = max(variance / max(width, 1.0), 1e-12)  # River's `variance` is a sum of squares
        eps = math.sqrt(2.0 / harmonic * var * log_term) + 2.0 / (3.0 * harmonic) * log_term
        details = {
            "direction": "up" if shift > 0 else "down",
            "dropped_blocks": int(width) + 1 - int(adwin.width),
        }
        return abs(shift), eps, shift, details

    def _dump_extra(self) -> dict[str, Any]:
        return {"recent": [encode_float(v) for v in self._recent], "adwin": dump_river(self._adwin)}

    def _load_extra(self, state: dict[str, Any]) -> None:
        self._recent = [decode_float(v) for v in state.get("recent", [])]
        self._adwin = load_river(state.get("adwin"), drift.ADWIN, self._fresh, self.name)
