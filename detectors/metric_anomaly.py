"""Anomalies of a serving-metric series: spikes, level shifts and flat-lines.

No per-series tuning: each point is judged against the robust level (median)
and scale (max of 1.4826 MAD and standard deviation) of the ``history``
points before it, so slow seasonality moves the baseline along with it.
Strictly positive series (latency, QPS) are judged on a log scale, where their
skew disappears. Thresholds come from the normal tail for ``arl_events``
points between false alarms.

- spike: a point beyond ``z`` robust deviations and beyond the history's range;
- level shift: the median of the last ``recent`` points moved beyond what the
  median's own noise allows;
- flat-line: ``flat_run`` identical values in a row from a series whose
  history varied (a stuck exporter, a dead dependency).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import special

from detectors.base import Severity
from detectors.codec import decode_array, decode_float, encode_array, encode_float
from detectors.stream import ChangeEvent


class MetricAnomaly:
    name = "metric_anomaly"

    def __init__(
        self,
        history: int = 120,
        recent: int = 10,
        flat_run: int = 30,
        arl_events: float = 1e7,
    ) -> None:
        if history < 20:
            raise ValueError(f"history must be >= 20, got {history!r}; pass e.g. 120")
        if not 2 <= recent < history:
            raise ValueError(f"recent must be in [2, history), got {recent!r}; pass e.g. 10")
        if flat_run < 3:
            raise ValueError(f"flat_run must be >= 3, got {flat_run!r}; pass e.g. 30")
        if not arl_events > 10:
            raise ValueError(f"arl_events must be > 10, got {arl_events!r}; pass e.g. 1e7")
        self.history = history
        self.recent = recent
        self.flat_run = flat_run
        self.arl_events = arl_events
        self._past = np.zeros(0)  # the last `history + recent` finite values
        self._run = 0
        self._last = math.nan

    def params(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "recent": self.recent,
            "flat_run": self.flat_run,
            "arl_events": self.arl_events,
        }

    def _z(self) -> float:
        """Two-sided normal quantile for a per-point false alarm rate of 1/(2 arl)."""
        return float(-special.ndtri(1.0 / (4.0 * self.arl_events)))

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

    def _judge(
        self, joined: np.ndarray, first: int, positions: np.ndarray, offset: int
    ) -> list[ChangeEvent]:
        h, r = self.history, self.recent
        # for joined index t: history = joined[t-h-r+1 : t-r+1], recent = joined[t-r+1 : t+1]
        windows = sliding_window_view(joined, h + r)[first - (h + r) + 1 :]
        hist = windows[:, :h]
        positive = (hist > 0).all(axis=1, keepdims=True)
        scaled = np.where(positive, np.log(np.where(positive, windows, 1.0)), windows)
        hist, recent = scaled[:, :h], scaled[:, h:]
        level = np.median(hist, axis=1)
        mad = 1.4826 * np.median(np.abs(hist - level[:, None]), axis=1)
        scale = np.maximum(np.maximum(mad, hist.std(axis=1)), 1e-9 * (1 + np.abs(level)))
        z = self._z()
        point = recent[:, -1]
        dev = (point - level) / scale
        beyond = (point > hist.max(axis=1)) | (point < hist.min(axis=1))
        spikes = (np.abs(dev) > z) & beyond
        shift_noise = 1.2533 * scale * math.sqrt(1.0 / r + 1.0 / h)
        shift = (np.median(recent, axis=1) - level) / shift_noise
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
        det = cls(**state["params"])
        det._past = decode_array(state["past"])
        det._run = int(state["run"])
        det._last = decode_float(state["last"])
        return det
