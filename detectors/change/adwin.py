"""ADWIN, adaptive windowing (Bifet & Gavaldà 2007), on standardised block means."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detectors.change.base import BlockChangeDetector
from detectors.codec import decode_array, encode_array


class ADWIN(BlockChangeDetector):
    """ADWIN, adaptive windowing, on standardised block means.

    Keeps a window of recent block means (at most ``max_window``) and drops its
    older part whenever two sub-windows have means too far apart for chance at
    confidence ``delta``; each drop is a detection. Every split is checked,
    with numpy cumulative sums, every ``clock`` blocks.

    Parameters
    ----------
    delta
        Confidence of each check; None derives it from ``false_alarm_events``
        (``clock * block / false_alarm_events``, at most 0.1).
    clock
        Blocks between two checks of the window.
    max_window
        Most block means the window keeps.
    min_side
        Fewest block means on either side of a split.
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
    [(1399, 'up', 0.28)]

    References
    ----------
    .. [1] Bifet, A., & Gavaldà, R. (2007). Learning from time-changing data
       with adaptive windowing. In *Proceedings of the 2007 SIAM International
       Conference on Data Mining* (pp. 443-448). SIAM.
    """

    name = "adwin"

    def __init__(
        self,
        delta: float | None = None,
        clock: int = 4,
        max_window: int = 1000,
        min_side: int = 5,
        block: int = 50,
        warmup: int = 1000,
        false_alarm_events: float = 1e7,
        critical_effect: float = 1.0,
    ) -> None:
        super().__init__(block, warmup, false_alarm_events, critical_effect)
        if delta is not None and not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1) or None, got {delta!r}")
        if clock < 1 or min_side < 1 or max_window < 4 * min_side:
            raise ValueError(
                "need clock >= 1, min_side >= 1 and max_window >= 4 * min_side; "
                f"got clock={clock!r}, min_side={min_side!r}, max_window={max_window!r}"
            )
        self.delta = delta
        self.clock = clock
        self.max_window = max_window
        self.min_side = min_side
        self._window = np.zeros(0)
        self._ticks = 0

    def _confidence(self) -> float:
        if self.delta is not None:
            return self.delta
        return min(0.1, self.clock * self.block / self.false_alarm_events)

    def _configure(self) -> None:
        self._window = np.zeros(0)
        self._ticks = 0

    def _step(self, z: float) -> tuple[float, float, float, dict[str, Any]] | None:
        w = np.append(self._window, z)
        if w.shape[0] > self.max_window:
            w = w[1:]
        self._window = w
        self._ticks += 1
        if self._ticks % self.clock or w.shape[0] < 2 * self.min_side:
            return None
        size = w.shape[0]
        cuts = np.arange(self.min_side, size - self.min_side + 1)
        head = np.cumsum(w)[cuts - 1]
        mean_old = head / cuts
        mean_new = (w.sum() - head) / (size - cuts)
        harmonic = 1.0 / (1.0 / cuts + 1.0 / (size - cuts))
        var = max(float(w.var()), 1e-12)
        log_term = math.log(2.0 * size / self._confidence())
        eps = np.sqrt(2.0 / harmonic * var * log_term) + 2.0 / (3.0 * harmonic) * log_term
        gap = np.abs(mean_new - mean_old)
        ratio = gap / eps
        best = int(np.argmax(ratio))
        if ratio[best] <= 1.0:
            return None
        cut = int(cuts[best])
        shift = float(mean_new[best] - mean_old[best])
        self._window = w[cut:].copy()
        details = {"direction": "up" if shift > 0 else "down", "dropped_blocks": cut}
        return float(gap[best]), float(eps[best]), shift, details

    def _dump_extra(self) -> dict[str, Any]:
        return {"window": encode_array(self._window), "ticks": self._ticks}

    def _load_extra(self, state: dict[str, Any]) -> None:
        self._window = decode_array(state["window"])
        self._ticks = int(state["ticks"])
