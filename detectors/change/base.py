"""Base of the sequential change detectors on a numeric stream.

They run on standardised means of ``block`` consecutive finite values. Block
means are near-normal whatever the raw shape (a skewed score, a discrete
output), so a threshold calibrated for normal increments holds its false alarm
rate; they also cut per-event Python work by ``block``. Blocks close by value
count, never by batch boundary, and each block mean is computed from exactly
its own values, so any split of the stream gives the same detections.

Calibration is to the reference (``calibrate``) or, when none is given, to the
first ``warmup`` finite values of the stream itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

from detectors.base import DetectorBase, Finding, Severity
from detectors.codec import decode_array, decode_float, encode_array, encode_float
from detectors.reference import finite_moment

# Block z-scores are capped here: far beyond any threshold, and finite.
Z_CAP = 1e3


@dataclass(frozen=True)
class ChangeEvent:
    """A detection at ``index``, a position in the values passed to ``update``."""

    index: int
    statistic: float
    threshold: float
    effect_size: float  # estimated shift, in reference standard deviations of raw values
    severity: Severity
    details: dict[str, Any] = field(default_factory=dict)

    def finding(self, detector: str, signal: str, ts: float, extra: dict[str, Any]) -> Finding:
        """This detection as a finding, ``extra`` (state, position) first in its details."""
        return Finding(
            detector=detector,
            signal=signal,
            event_ts=ts,
            severity=self.severity,
            statistic=self.statistic,
            threshold=self.threshold,
            effect_size=self.effect_size,
            details={**extra, **self.details},
        )


class BlockChangeDetector(DetectorBase):
    """Base of the change detectors: warm-up, block means, standardisation, state.

    A subclass sets its thresholds in ``_configure`` and judges one
    standardised block mean at a time in ``_step``."""

    def __init__(
        self,
        block: int = 50,
        warmup: int = 1000,
        false_alarm_events: float = 1e7,
        critical_effect: float = 1.0,
    ) -> None:
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block!r}; pass e.g. 50")
        if warmup < 2 * block:
            raise ValueError(f"warmup must be >= 2 * block, got {warmup!r}; pass e.g. 1000")
        if not false_alarm_events > block:
            raise ValueError(
                f"false_alarm_events must exceed block, got {false_alarm_events!r}; pass e.g. 1e7"
            )
        if not critical_effect > 0:
            raise ValueError(f"critical_effect must be > 0, got {critical_effect!r}")
        self.block = block
        self.warmup = warmup
        self.false_alarm_events = false_alarm_events
        self.critical_effect = critical_effect
        self._mean: float | None = None
        self._std = 1.0
        self._ref_n = warmup
        self._carry = np.zeros(0)
        self._warm = np.zeros(0)

    # -- subclass hooks -------------------------------------------------
    def _configure(self) -> None:
        """Set thresholds from ``self.false_alarm_events`` (called at calibration)."""

    def _step(self, z: float) -> tuple[float, float, float, dict[str, Any]] | None:
        """One standardised block mean in; (statistic, threshold, shift_z, details) on alarm."""
        raise NotImplementedError

    def _dump_extra(self) -> dict[str, Any]:
        return {}

    def _load_extra(self, state: dict[str, Any]) -> None:
        pass

    def reference_error(self) -> float:
        """Standard error of the reference mean, in block-mean std units.

        A threshold that ignores it fires early on the side the estimate
        erred towards, so calibrations widen by twice this much.
        """
        return math.sqrt(self.block / max(self._ref_n, 1))

    # -- public API -----------------------------------------------------
    @property
    def calibrated(self) -> bool:
        return self._mean is not None

    def calibrate(
        self,
        mean: float,
        std: float,
        false_alarm_events: float | None = None,
        reference_size: int | None = None,
    ) -> None:
        """Standardise against a reference (mean, std of ``reference_size`` values)
        and restart detection."""
        self._ref_n = reference_size if reference_size is not None else self.warmup
        self._mean = float(mean) if math.isfinite(mean) else 0.0
        self._std = float(std) if std > 0 and math.isfinite(std) else 1.0
        if false_alarm_events is not None:
            self.false_alarm_events = float(false_alarm_events)
        self._carry = np.zeros(0)
        self._warm = np.zeros(0)
        self._configure()

    def update(self, values: np.ndarray) -> list[ChangeEvent]:
        """Feed consecutive values (NaN/inf skipped); return the detections."""
        x = np.asarray(values, dtype=np.float64)
        positions = np.flatnonzero(np.isfinite(x))
        finite = x[positions]
        start = 0
        if self._mean is None:
            take = min(self.warmup - self._warm.shape[0], finite.shape[0])
            self._warm = np.concatenate([self._warm, finite[:take]])
            start = take
            if self._warm.shape[0] < self.warmup:
                return []
            mean, std = finite_moment(np.mean, self._warm), finite_moment(np.std, self._warm)
            self.calibrate(mean, std, None, self.warmup)
        pending = np.concatenate([self._carry, finite[start:]])
        full = pending.shape[0] // self.block
        self._carry = pending[full * self.block :].copy()
        if full == 0:
            return []
        assert self._mean is not None
        with np.errstate(over="ignore", invalid="ignore"):
            means = pending[: full * self.block].reshape(full, self.block).mean(axis=1)
            zs = (means - self._mean) / (self._std / math.sqrt(self.block))
        # Values near the float limit overflow a block's sum; such a block is as far
        # out as the cap, and one mixing +1e308 with -1e308 says nothing (NaN -> 0).
        # (np.where, not np.nan_to_num: the same values once clipped, at a fraction
        # of the cost for a few blocks)
        zs = np.clip(np.where(np.isnan(zs), 0.0, zs), -Z_CAP, Z_CAP)
        # position (in `values`) of the value completing each block
        carried = pending.shape[0] - (finite.shape[0] - start)
        ends = np.arange(1, full + 1) * self.block - 1 - carried + start
        events = []
        for z, end in zip(zs.tolist(), ends.tolist(), strict=True):
            hit = self._step(z)
            if hit is not None:
                stat, threshold, shift_z, details = hit
                effect = shift_z / math.sqrt(self.block)
                severity: Severity = (
                    "critical" if abs(effect) >= self.critical_effect else "warning"
                )
                details = {**details, "block": self.block, "reference_mean": self._mean}
                events.append(
                    ChangeEvent(int(positions[end]), stat, threshold, effect, severity, details)
                )
        return events

    def dump(self) -> dict[str, Any]:
        return {
            "params": self.params(),
            "mean": None if self._mean is None else encode_float(self._mean),
            "std": encode_float(self._std),
            "reference_size": self._ref_n,
            "carry": encode_array(self._carry),
            "warm": encode_array(self._warm),
            "extra": self._dump_extra(),
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> Self:
        det = cls.build(**state["params"])
        if state["mean"] is not None:
            det._mean = decode_float(state["mean"])
            det._std = decode_float(state["std"])
            det._ref_n = int(state["reference_size"])
            det._configure()
        det._carry = decode_array(state["carry"])
        det._warm = decode_array(state["warm"])
        det._load_extra(state["extra"])
        return det
