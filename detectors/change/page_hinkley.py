"""Page-Hinkley test (Page 1954; Hinkley 1971) on standardised block means.

Unlike CUSUM it measures deviations from the running mean since the last
alarm, not from the reference mean: it flags change points and then settles
on the new level, so a drift is reported once.
"""

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
    """Two-sided Page-Hinkley with tolerance ``delta`` (block-mean std units).

    The threshold ``lambda_`` is calibrated to ``false_alarm_events`` like CUSUM's
    decision interval unless given. No alarm before ``min_blocks`` blocks.
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
