"""Page-Hinkley test (Page 1954; Hinkley 1971): River's, on standardised block means."""

from __future__ import annotations

from typing import Any

from river import drift

from detectors.change.base import BlockChangeDetector
from detectors.change.river_state import dump_river, load_river
from detectors.change.run_length import cusum_threshold
from detectors.codec import decode_float, encode_float


class PageHinkley(BlockChangeDetector):
    """Two-sided Page-Hinkley test on standardised block means (``river.drift.PageHinkley``).

    Unlike CUSUM it measures deviations from the running mean since the last
    alarm, not from the reference mean: it flags a change point and then
    settles on the new level, so a lasting shift is reported once. Each
    direction's cumulative deviation beyond ``delta`` is compared with its
    extreme so far; an alarm comes when the rise exceeds ``lambda_``,
    calibrated to ``false_alarm_events`` like CUSUM's decision interval unless
    given. River runs the test (without forgetting: ``alpha`` = 1); this class
    only follows how many blocks have passed since the alarming side's extreme,
    to estimate the shift.

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
    .. [3] Montiel, J., et al. (2021). River: machine learning for streaming
       data in Python. *Journal of Machine Learning Research*, 22(110), 1-8.
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
        self._ph = self._fresh()
        self._since = [0, 0]  # blocks since each side's extreme: up, down

    def _fresh(self) -> drift.PageHinkley:
        return drift.PageHinkley(
            min_instances=self.min_blocks,
            delta=self.delta,
            threshold=self._h,
            alpha=1.0,
            mode="both",
        )

    def _configure(self) -> None:
        if self.lambda_ is None:
            self._h = cusum_threshold(2 * self.false_alarm_events / self.block, self.delta)
        self._ph = self._fresh()
        self._since = [0, 0]

    def _step(self, z: float) -> tuple[float, float, float, dict[str, Any]] | None:
        ph = self._ph
        if ph.drift_detected:  # River restarts on the update after an alarm
            self._since = [0, 0]
        ph.update(z)  # type: ignore[no-untyped-call]  # River's update is untyped
        # River's sums: the up side grows with z above the mean, the down side falls.
        rise = ph._sum_increase - ph._min_increase
        fall = ph._max_decrease - ph._sum_decrease
        self._since[0] = 0 if rise <= 0 else self._since[0] + 1
        self._since[1] = 0 if fall <= 0 else self._since[1] + 1
        if not ph.drift_detected:
            return None
        up = rise >= fall
        stat = rise if up else fall
        blocks = max(self._since[0 if up else 1], 1)
        # the rise over `blocks` blocks is their excess over delta, summed
        shift = (self.delta + stat / blocks) * (1 if up else -1)
        return stat, self._h, shift, {"direction": "up" if up else "down", "blocks": blocks}

    def _dump_extra(self) -> dict[str, Any]:
        return {
            "h": encode_float(self._h),
            "since": list(self._since),
            "page_hinkley": dump_river(self._ph),
        }

    def _load_extra(self, state: dict[str, Any]) -> None:
        if "page_hinkley" not in state:  # written before the test ran on River
            self._ph = load_river(None, drift.PageHinkley, self._fresh, self.name)
            return
        self._h = decode_float(state["h"])
        self._since = [int(v) for v in state["since"]]
        self._ph = load_river(state["page_hinkley"], drift.PageHinkley, self._fresh, self.name)
