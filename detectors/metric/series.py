"""One serving-metric series (latency_ms, qps, ...) and the detectors watching it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from detectors import registry
from detectors.base import Finding
from detectors.change.base import ChangeEvent
from detectors.registry import MetricDetector
from detectors.suite.alarms import AlarmTracker

if TYPE_CHECKING:
    from detectors.suite.settings import SuiteSettings


def _feed(det: MetricDetector, ts: np.ndarray, values: np.ndarray) -> list[ChangeEvent]:
    """A detector that judges in event time (``update_at``) gets the points' times."""
    timed = getattr(det, "update_at", None)
    if timed is not None:
        return timed(ts, values)  # type: ignore[no-any-return]
    return det.update(values)


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
        base = self.points

        def moment(point: int) -> float:
            return float(ts[max(point - base, 0)])

        detected = [
            (ev.index, order, name, ev)
            for order, (name, det) in enumerate(self.detectors.items())
            for ev in _feed(det, ts, values)
        ]
        detected.sort(key=lambda t: t[:2])
        findings: list[Finding] = []
        for at, _, name, ev in detected:
            index = base + at
            self.alarms.resolve_due(index - 1, moment)
            kind = ev.details.get("kind", "")
            state = self.alarms.report(f"{name}|{signal}|{kind}", ev.severity, index, moment(index))
            if state is not None:
                extra = {"state": state, "point_index": index}
                findings.append(ev.finding(name, signal, moment(index), extra))
        self.points += int(values.shape[0])
        self.alarms.resolve_due(self.points - 1, moment)
        return findings

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
