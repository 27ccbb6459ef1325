"""The per-client detectors of one model (kind ``client``), fed the ``client`` column.

Callers flagged for their inputs (``client_inputs``) are remembered for two of
that detector's windows, so that a drift finding on the model's inputs or
outputs made meanwhile names them (``attributed_to``): a burst of adversarial
search or a sweep moves the feature distributions too, and on-call should see
one caller at work, not drift in every feature.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from detectors import registry
from detectors.base import Finding
from detectors.registry import ClientDetector, InputClientDetector
from detectors.suite.alarms import AlarmTracker
from detectors.suite.settings import SuiteSettings

# Client tests get a tenth of the model's false-alarm budget, on top of the
# rest; their minimum-excess gate keeps them far quieter than that in practice.
CLIENT_BUDGET_SHARE = 0.1
ATTRIBUTION_KEY = "$attribution"  # in dump(): never a detector's name
MAX_REMEMBERED = 50  # flagged callers remembered for attribution (hostile: many callers)
MAX_ATTRIBUTED = 5  # callers named in one drift finding
DRIFT_PREFIXES = ("feature:", "features", "score", "prediction")


def reads_inputs(det: ClientDetector) -> bool:
    return bool(getattr(det, "reads_inputs", False))


class ClientWatch:
    def __init__(self, settings: SuiteSettings) -> None:
        names = [n for n in settings.row_detectors if registry.get(n).kind == "client"]
        self.detectors: dict[str, ClientDetector] = {n: settings.build(n) for n in names}
        for det in self.detectors.values():
            det.calibrate(CLIENT_BUDGET_SHARE * det.window / settings.false_alarm_events)
        # (stream index, client, behaviour, horizon in events) of recent input flags
        self._flags: list[tuple[int, str, str, int]] = []

    def observe(
        self,
        clients: np.ndarray,
        scores: np.ndarray | None,
        ts: np.ndarray,
        first_index: int,
        alarms: AlarmTracker,
        inputs: dict[str, np.ndarray] | None = None,
    ) -> list[Finding]:
        """Findings for the events of a batch; ``first_index`` is the stream index of its first."""
        findings = []
        for name, det in self.detectors.items():
            if reads_inputs(det):
                outcomes = cast_inputs(det).update(clients, scores, inputs)
            else:
                outcomes = det.update(clients, scores)
            for o in outcomes:
                index = first_index + o.index
                signal = f"client:{o.client}"
                if o.behaviour:
                    self._remember(index, o.client, o.behaviour, 2 * det.window)
                state = alarms.report(f"{name}|{signal}", o.severity, index)
                if state is None:
                    continue
                details = {
                    "state": state,
                    "event_index": index,
                    "window_events": det.window,
                    "requests": o.count,
                    "share": o.share,
                    "baseline_share": o.baseline,
                    **({"behaviour": o.behaviour} if o.behaviour else {}),
                }
                findings.append(
                    Finding(
                        detector=name,
                        signal=signal,
                        event_ts=float(ts[o.index]),
                        severity=o.severity,
                        statistic=o.share,
                        threshold=o.level,
                        p_value=o.p_value,
                        effect_size=o.share - o.baseline,
                        details=details,
                    )
                )
        return findings

    def _remember(self, index: int, client: str, behaviour: str, horizon: int) -> None:
        self._flags = [*self._flags[-MAX_REMEMBERED + 1 :], (index, client, behaviour, horizon)]

    def attribute(self, findings: list[Finding], upto: int) -> list[Finding]:
        """``findings`` (of the events up to stream index ``upto``) with each
        drift finding naming the callers flagged for their inputs at or before
        it, within their horizon (``attributed_to``)."""
        out = self._attributed(findings)
        self._flags = [f for f in self._flags if f[0] + f[3] > upto]
        return out

    def _attributed(self, findings: list[Finding]) -> list[Finding]:
        out = []
        for f in findings:
            if f.signal.startswith(DRIFT_PREFIXES) and self._flags:
                at = int(f.details["event_index"])
                named = {(c, b) for i, c, b, horizon in self._flags if i <= at <= i + horizon}
                if named:
                    callers = sorted({c for c, _ in named})[:MAX_ATTRIBUTED]
                    behaviours = sorted({b for c, b in named if c in callers})
                    extra = {
                        "attributed_to": [f"client:{c}" for c in callers],
                        "attributed_behaviours": behaviours,
                    }
                    f = replace(f, details={**f.details, **extra})
            out.append(f)
        return out

    def dump(self) -> dict[str, Any]:
        state: dict[str, Any] = {name: det.dump() for name, det in self.detectors.items()}
        if self._flags:
            state[ATTRIBUTION_KEY] = [list(f) for f in self._flags]
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Detectors from ``state``; one the state lacks (enabled since) starts afresh."""
        loaded = {
            name: registry.get(name, "client").loader(d)
            for name, d in state.items()
            if name != ATTRIBUTION_KEY
        }
        fresh = self.detectors
        self.detectors = {**{n: loaded.pop(n, det) for n, det in fresh.items()}, **loaded}
        self._flags = [
            (int(i), str(c), str(b), int(h)) for i, c, b, h in state.get(ATTRIBUTION_KEY, [])
        ]


def cast_inputs(det: ClientDetector) -> InputClientDetector:
    assert reads_inputs(det)
    return det  # type: ignore[return-value]  # reads_inputs says it takes inputs
