"""The per-client detectors of one model (kind ``client``), fed the ``client`` column."""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors import registry
from detectors.base import Finding
from detectors.registry import ClientDetector
from detectors.suite.alarms import AlarmTracker
from detectors.suite.settings import SuiteSettings

# Client tests get a tenth of the model's false-alarm budget, on top of the
# rest; their minimum-excess gate keeps them far quieter than that in practice.
CLIENT_BUDGET_SHARE = 0.1


class ClientWatch:
    def __init__(self, settings: SuiteSettings) -> None:
        names = [n for n in settings.row_detectors if registry.get(n).kind == "client"]
        self.detectors: dict[str, ClientDetector] = {n: settings.build(n) for n in names}
        for det in self.detectors.values():
            det.calibrate(CLIENT_BUDGET_SHARE * det.window / settings.false_alarm_events)

    def observe(
        self,
        clients: np.ndarray,
        scores: np.ndarray | None,
        ts: np.ndarray,
        first_index: int,
        alarms: AlarmTracker,
    ) -> list[Finding]:
        """Findings for the events of a batch; ``first_index`` is the stream index of its first."""

        def moment(index: int) -> float:
            return float(ts[min(max(index - first_index, 0), len(ts) - 1)])

        detected = [
            (o.index, order, name, det, o)
            for order, (name, det) in enumerate(self.detectors.items())
            for o in det.update(clients, scores)
        ]
        detected.sort(key=lambda t: t[:2])
        findings = []
        for _, _, name, det, o in detected:
            index = first_index + o.index
            signal = f"client:{o.client}"
            at = float(ts[o.index])
            alarms.resolve_due(index - 1, moment)
            state = alarms.report(f"{name}|{signal}", o.severity, index, at)
            if state is None:
                continue
            details = {
                "state": state,
                "event_index": index,
                "window_events": det.window,
                "requests": o.count,
                "share": o.share,
                "baseline_share": o.baseline,
            }
            findings.append(
                Finding(
                    detector=name,
                    signal=signal,
                    event_ts=at,
                    severity=o.severity,
                    statistic=o.share,
                    threshold=o.level,
                    p_value=o.p_value,
                    effect_size=o.share - o.baseline,
                    details=details,
                )
            )
        return findings

    def dump(self) -> dict[str, Any]:
        return {name: det.dump() for name, det in self.detectors.items()}

    def restore(self, state: dict[str, Any]) -> None:
        self.detectors = {name: registry.get(name, "client").loader(d) for name, d in state.items()}
