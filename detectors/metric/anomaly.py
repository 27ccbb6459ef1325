"""Anomalies of a serving-metric series: spikes, level shifts and flat-lines."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import special

from detectors.base import DetectorBase, Severity
from detectors.change.base import ChangeEvent
from detectors.codec import decode_array, decode_float, encode_array, encode_float


def _weaker(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise the deviation closer to zero; zero where the signs disagree."""
    return np.where(np.sign(a) == np.sign(b), np.where(np.abs(a) < np.abs(b), a, b), 0.0)


class MetricAnomaly(DetectorBase):
    """Anomalies of a serving-metric series (latency, QPS, error rate): spikes,
    level shifts and flat-lines.

    No per-series tuning: each point is judged against the robust scale (the
    larger of 1.4826 MAD and the standard deviation) of the ``history`` points
    before it and the level (median) of their newest quarter, so slow
    seasonality moves the baseline along with it. Strictly positive series
    (latency, QPS) must be extreme on a log scale as well, where their skew
    disappears. The threshold ``z`` is a Student-t quantile set for
    ``false_alarm_events`` points between false alarms.

    - spike: a point beyond ``z`` robust deviations and beyond the history's range;
    - level shift: the median of the last ``recent`` points moved beyond what
      the median's own noise allows;
    - flat-line: ``flat_run`` identical values in a row from a series whose
      history varied (a stuck exporter, a dead dependency).

    Parameters
    ----------
    history
        Points before the judged ones that give the scale and the level.
    recent
        Newest points whose median is compared with the level (level shifts).
    flat_run
        Identical values in a row that make a flat-line.
    false_alarm_events
        Points expected between false alarms; the suite sets it from its budget.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.metric import MetricAnomaly
    >>> rng = np.random.default_rng(0)
    >>> latency = MetricAnomaly()
    >>> latency.update(50 + rng.normal(0, 2, 300))
    []
    >>> events = latency.update(np.array([51.0, 49.5, 400.0, 50.5]))
    >>> [(e.index, e.details["kind"], e.severity) for e in events]
    [(2, 'spike', 'critical')]

    References
    ----------
    .. [1] Hampel, F. R. (1974). The influence curve and its role in robust
       estimation. *Journal of the American Statistical Association*, 69(346),
       383-393.
    .. [2] Leys, C., Ley, C., Klein, O., Bernard, P., & Licata, L. (2013).
       Detecting outliers: Do not use standard deviation around the mean, use
       absolute deviation around the median. *Journal of Experimental Social
       Psychology*, 49(4), 764-766.
    """

    name = "metric_anomaly"

    def __init__(
        self,
        history: int = 120,
        recent: int = 10,
        flat_run: int = 30,
        false_alarm_events: float = 1e7,
    ) -> None:
        if history < 20:
            raise ValueError(f"history must be >= 20, got {history!r}; pass e.g. 120")
        if not 2 <= recent < history:
            raise ValueError(f"recent must be in [2, history), got {recent!r}; pass e.g. 10")
        if flat_run < 3:
            raise ValueError(f"flat_run must be >= 3, got {flat_run!r}; pass e.g. 30")
        if not false_alarm_events > 10:
            raise ValueError(
                f"false_alarm_events must be > 10, got {false_alarm_events!r}; pass e.g. 1e7"
            )
        self.history = history
        self.recent = recent
        self.flat_run = flat_run
        self.false_alarm_events = false_alarm_events
        self._past = np.zeros(0)  # the last `history + recent` finite values
        self._run = 0
        self._last = math.nan

    def _z(self) -> float:
        """Two-sided quantile at a per-point rate of 1 / (2 ``false_alarm_events``) for
        each of the two checks (spike, level shift): together at most one false
        alarm in ``false_alarm_events`` points.

        Student's t with ``history - 1`` degrees of freedom, not the normal:
        the scale is estimated from ``history`` points, and far in the tail
        that estimate's noise matters.
        """
        return float(special.stdtrit(self.history - 1, 1.0 - 1.0 / (4.0 * self.false_alarm_events)))

    def update(self, values: np.ndarray) -> list[ChangeEvent]:
        x = np.asarray(values, dtype=np.float64)
        positions = np.flatnonzero(np.isfinite(x))
        new = x[positions]
        span = self.history + self.recent
        joined = np.concatenate([self._past, new])
        events = self._flatlines(joined, positions, self._past.shape[0])
        first = max(span, self._past.shape[0])  # first joined index with a full past
        if joined.shape[0] > first:
            events += self._judge(joined, first, positions, self._past.shape[0])
        self._past = joined[-span:].copy()
        events.sort(key=lambda e: (e.index, e.details["kind"]))
        return events

    def _deviations(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per window: (newest point's deviation, recent median's shift), in noise units."""
        h, r = self.history, self.recent
        hist, recent = windows[:, :h], windows[:, h:]
        center = np.median(hist, axis=1)
        mad = 1.4826 * np.median(np.abs(hist - center[:, None]), axis=1)
        scale = np.maximum(np.maximum(mad, hist.std(axis=1)), 1e-9 * (1 + np.abs(center)))
        # the level is the median of the history's newest quarter: a seasonal
        # trend would offset a level taken over the whole history
        near = max(h // 4, 5)
        level = np.median(hist[:, -near:], axis=1)
        dev = (recent[:, -1] - level) / scale
        shift_noise = 1.2533 * scale * math.sqrt(1.0 / r + 1.0 / near)
        shift = (np.median(recent, axis=1) - level) / shift_noise
        return dev, shift

    def _judge(
        self, joined: np.ndarray, first: int, positions: np.ndarray, offset: int
    ) -> list[ChangeEvent]:
        h, r = self.history, self.recent
        # for joined index t: history = joined[t-h-r+1 : t-r+1], recent = joined[t-r+1 : t+1]
        windows = sliding_window_view(joined, h + r)[first - (h + r) + 1 :]
        hist = windows[:, :h]
        dev, shift = self._deviations(windows)
        # Positive series must also be extreme on a log scale: a latency tail
        # is not a spike, and a near-zero error rate is not a collapse.
        positive = (hist > 0).all(axis=1)
        if positive.any():
            with np.errstate(divide="ignore"):
                log_dev, log_shift = self._deviations(np.log(np.maximum(windows[positive], 0.0)))
            dev[positive] = _weaker(dev[positive], log_dev)
            shift[positive] = _weaker(shift[positive], log_shift)
        z = self._z()
        point = windows[:, -1]
        beyond = (point > hist.max(axis=1)) | (point < hist.min(axis=1))
        spikes = (np.abs(dev) > z) & beyond
        shifts = np.abs(shift) > z
        out = []
        for i in np.flatnonzero(spikes | shifts).tolist():
            index = int(positions[first + i - offset])
            if spikes[i]:
                out.append(self._event(index, float(dev[i]), z, "spike"))
            if shifts[i]:
                out.append(self._event(index, float(shift[i]), z, "level_shift"))
        return out

    def _event(self, index: int, stat: float, z: float, kind: str) -> ChangeEvent:
        severity: Severity = "critical" if abs(stat) >= 2 * z else "warning"
        return ChangeEvent(index, stat, z, stat, severity, {"kind": kind})

    def _flatlines(
        self, joined: np.ndarray, positions: np.ndarray, offset: int
    ) -> list[ChangeEvent]:
        out = []
        span = self.history + self.recent
        for i, v in enumerate(joined[offset:].tolist()):
            self._run = self._run + 1 if v == self._last else 1
            self._last = v
            t = offset + i
            if self._run != self.flat_run or t < self.history:
                continue
            if np.ptp(joined[max(0, t - span + 1) : t + 1]) > 0:
                stat = float(self._run)
                details = {"kind": "flatline", "value": v}
                out.append(ChangeEvent(int(positions[i]), stat, stat, 0.0, "warning", details))
        return out

    def dump(self) -> dict[str, Any]:
        return {
            "params": self.params(),
            "past": encode_array(self._past),
            "run": self._run,
            "last": encode_float(self._last),
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> MetricAnomaly:
        det = cls.build(**state["params"])
        det._past = decode_array(state["past"])
        det._run = int(state["run"])
        det._last = decode_float(state["last"])
        return det
