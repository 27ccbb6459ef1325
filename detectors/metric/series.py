"""One serving-metric series (latency_ms, qps, ...) and the detectors watching it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from detectors import registry
from detectors.base import Finding
from detectors.registry import MetricDetector
from detectors.suite.alarms import AlarmTracker

if TYPE_CHECKING:
    from detectors.suite.settings import SuiteSettings


class MetricSeries:
    """Detectors of one metric series, its point count and its alarm states."""

    def __init__(
        self, detectors: dict[str, MetricDetector], alarms: AlarmTracker, points: int = 0
    ) -> None:
        self.detectors = detectors
        self.alarms = alarms
        self.points = points

    @classmethod
    def create(cls, settings: SuiteSettings) -> MetricSeries:
        names = settings.series_detectors
        dets: dict[str, MetricDetector] = {}
        for name in names:
            det = settings.build(name)
            det.false_alarm_events = settings.false_alarm_events / max(len(names), 1)
            dets[name] = det
        return cls(dets, AlarmTracker(recover_after=settings.metric_recover_points, kinded=True))

    def observe(self, signal: str, ts: np.ndarray, values: np.ndarray) -> list[Finding]:
        keyed: list[tuple[int, int, Finding]] = []
        for order, (name, det) in enumerate(self.detectors.items()):
            for ev in det.update(values):
                index = self.points + ev.index
                kind = ev.details.get("kind", "")
                at = float(ts[ev.index])
                state = self.alarms.report(f"{name}|{signal}|{kind}", ev.severity, index, at)
                if state is None:
                    continue
                extra = {"state": state, "point_index": index}
                finding = ev.finding(name, signal, at, extra)
                keyed.append((ev.index, order, finding))
        self.points += int(values.shape[0])
        if values.shape[0]:
            self.alarms.expire(self.points - 1, float(ts[-1]))
        keyed.sort(key=lambda t: t[:2])
        return [f for *_, f in keyed]

    def dump(self) -> dict[str, Any]:
        return {
            "points": self.points,
            "alarms": self.alarms.dump(),
            "detectors": {k: d.dump() for k, d in self.detectors.items()},
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> MetricSeries:
        dets = {k: registry.series_spec(k).loader(d) for k, d in state["detectors"].items()}
        alarms = AlarmTracker.load(state["alarms"], kinded=True)
        return cls(dets, alarms, state["points"])
