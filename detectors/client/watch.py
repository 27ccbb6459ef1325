"""The per-client detectors of one model (kind ``client``), fed the ``client`` column.

Flagged callers are remembered for two of the flagging detector's windows, so
that a drift finding on the model's inputs or outputs made meanwhile names
those that sent at least ``ATTRIBUTION_MIN_SHARE`` of a window
(``attributed_to``, largest share first, with ``attributed_shares`` and
``attributed_behaviours``): a burst of adversarial search or scraping moves the
feature distributions too, and on-call should see one caller at work, not
drift in every feature. A caller sending less than that (an extraction sweep
at 0.5% of traffic) is named only where the suite finds that the window's test
passes without its requests (:meth:`flagged`, used at a window's close).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from detectors import registry
from detectors.base import Finding
from detectors.client.base import ClientWindowTest
from detectors.client.callers import Callers
from detectors.client.volume import ClientVolume
from detectors.registry import ClientDetector, InputClientDetector
from detectors.suite.alarms import AlarmTracker
from detectors.suite.settings import SuiteSettings

# Client tests get a tenth of the model's false-alarm budget, on top of the
# rest; their minimum-excess gate keeps them far quieter than that in practice.
CLIENT_BUDGET_SHARE = 0.1
ATTRIBUTION_KEY = "$attribution"  # in dump(): never a detector's name
MAX_REMEMBERED = 50  # flagged callers remembered for attribution (hostile: many callers)
MAX_ATTRIBUTED = 5  # callers named in one drift finding
# A caller sending less of a window than this cannot move its distributions.
ATTRIBUTION_MIN_SHARE = 0.01
DRIFT_PREFIXES = ("feature:", "features", "score", "prediction")


def reads_inputs(det: ClientDetector) -> bool:
    return bool(getattr(det, "reads_inputs", False))


class ClientWatch:
    def __init__(self, settings: SuiteSettings) -> None:
        names = [n for n in settings.row_detectors if registry.get(n).kind == "client"]
        self.detectors: dict[str, ClientDetector] = {n: settings.build(n) for n in names}
        for det in self.detectors.values():
            det.calibrate(CLIENT_BUDGET_SHARE * det.window / settings.false_alarm_events)
        # (stream index, client, behaviour, horizon in events, share of its window)
        self._flags: list[tuple[int, str, str, int, float]] = []

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

        def moment(index: int) -> float:
            return float(ts[min(max(index - first_index, 0), len(ts) - 1)])

        coded: Callers | None = None  # coded once for every detector that takes them so
        detected = []
        for order, (name, det) in enumerate(self.detectors.items()):
            if isinstance(det, ClientWindowTest):
                coded = Callers.of(clients) if coded is None else coded
                found = det.feed(coded, scores, inputs)
            elif reads_inputs(det):
                found = cast_inputs(det).update(clients, scores, inputs)
            else:
                found = det.update(clients, scores)
            detected += [(o.index, order, name, det, o) for o in found]
        detected.sort(key=lambda t: t[:2])
        findings = []
        for _, _, name, det, o in detected:
            index = first_index + o.index
            signal = f"client:{o.client}"
            at = float(ts[o.index])
            self._remember(
                (index, o.client, o.behaviour or name, 2 * det.window, o.count / det.window)
            )
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
                **({"behaviour": o.behaviour} if o.behaviour else {}),
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

    def _remember(self, flag: tuple[int, str, str, int, float]) -> None:
        self._flags = [*self._flags[-MAX_REMEMBERED + 1 :], flag]

    def flagged(self, at: int, min_share: float = 0.0) -> dict[str, tuple[float, set[str]]]:
        """Callers flagged at or before stream index ``at`` and within their horizon,
        that sent at least ``min_share`` of a window: their largest share and behaviours."""
        out: dict[str, tuple[float, set[str]]] = {}
        for i, c, b, horizon, share in self._flags:
            if i <= at <= i + horizon and share >= min_share:
                known, behaviours = out.get(c, (0.0, set()))
                out[c] = (max(known, share), behaviours | {b})
        return out

    def attribute(self, findings: list[Finding], upto: int) -> list[Finding]:
        """``findings`` (of the events up to stream index ``upto``) with each
        drift finding naming the callers flagged for their inputs at or before
        it, within their horizon (``attributed_to``)."""
        out = self._attributed(findings)
        self._flags = [f for f in self._flags if f[0] + f[3] > upto]
        return out

    def surging(self, callers: np.ndarray) -> dict[str, float]:
        """Callers sending far more than their share of ``callers`` (the requests so far
        of a window still open), by ``client_volume``'s test; empty without it."""
        volume = self.detectors.get(ClientVolume.name)
        return volume.surging(callers) if isinstance(volume, ClientVolume) else {}

    def _attributed(self, findings: list[Finding]) -> list[Finding]:
        out = []
        for f in findings:
            if (
                f.signal.startswith(DRIFT_PREFIXES)
                and self._flags
                and "attributed_to" not in f.details  # named at its window's close already
            ):
                flagged = self.flagged(int(f.details["event_index"]), ATTRIBUTION_MIN_SHARE)
                if flagged:
                    shares = {c: share for c, (share, _) in flagged.items()}
                    named = sorted(shares, key=lambda c: (-shares[c], c))[:MAX_ATTRIBUTED]
                    f = replace(f, details={**f.details, **attribution(named, shares, flagged)})
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
            (int(i), str(c), str(b), int(h), float(share))
            for i, c, b, h, share in state.get(ATTRIBUTION_KEY, [])
        ]


def attribution(
    named: list[str], shares: dict[str, float], flagged: dict[str, tuple[float, set[str]]]
) -> dict[str, Any]:
    """The details naming callers ``named`` (in that order) in a drift finding."""
    return {
        "attributed_to": [f"client:{c}" for c in named],
        "attributed_shares": [shares[c] for c in named],
        "attributed_behaviours": sorted(set().union(*(flagged[c][1] for c in named))),
    }


def cast_inputs(det: ClientDetector) -> InputClientDetector:
    assert reads_inputs(det)
    return det  # type: ignore[return-value]  # reads_inputs says it takes inputs
