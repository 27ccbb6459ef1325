"""ADWIN, adaptive windowing (Bifet & Gavaldà 2007), on standardised block means.

Keeps a window of recent block means (at most ``max_window``) and drops its
older part whenever two sub-windows have means too far apart for chance at
confidence ``delta``. Every split is checked with numpy cumulative sums every
``clock`` blocks. ``delta`` derives from ``false_alarm_events`` unless given.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detectors.change.base import BlockChangeDetector
from detectors.codec import decode_array, encode_array


class ADWIN(BlockChangeDetector):
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
