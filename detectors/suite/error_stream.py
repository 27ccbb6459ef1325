"""Labels joined to their predictions: the model's error as a stream.

Ground truth (or feedback) arrives after the prediction it judges, carrying the
prediction's request id. The service joins them (``monitor.pipeline.label_join``,
durably, in stream order) and hands over the joined pairs as
:class:`JoinedLabels`; the error is 0/1 for a class label and the absolute
difference for a number. Positions are the model's stream sequence numbers of
the labels, so the findings are the same however the stream is cut into batches.

Rising error means decay, or feedback that disagrees with the model on purpose
(poisoned labels): the change detectors watch the error stream like any other,
and River's ADWIN, calibrated for it, watches the 0/1 errors of class labels
(detector ``error_rate``, :mod:`detectors.suite.error_rate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from detectors import registry
from detectors.base import Finding
from detectors.registry import ChangeDetector
from detectors.suite.alarms import AlarmTracker
from detectors.suite.error_rate import DETECTOR as RATE_DETECTOR
from detectors.suite.error_rate import ErrorRate
from detectors.suite.settings import SuiteSettings


@dataclass
class JoinedLabels:
    """Labels joined to their predictions, in stream order (one entry per label).

    - ``seq``: the label's position in the model's stream (int64);
    - ``ts``: the label's event time; ``predicted_ts``: its prediction's;
    - ``predicted``: the predicted class (str) or value (float);
    - ``truth``: the label as it came;
    - ``score``: the prediction's score, NaN where it had none;
    - ``segments``: its prediction's segment key
      (:mod:`detectors.performance.segments`), None where it has none; empty: none has.
    """

    seq: np.ndarray
    ts: np.ndarray
    predicted: Sequence[str | float]
    truth: Sequence[object]
    predicted_ts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    segments: Sequence[bytes | None] = ()

    def errors(self) -> tuple[list[int], list[float]]:
        """Positions of the labels that have an error (a comparable truth), and the errors."""
        positions: list[int] = []
        errors: list[float] = []
        for i, (predicted, truth) in enumerate(zip(self.predicted, self.truth, strict=True)):
            error = label_error(predicted, truth)
            if error is not None:
                positions.append(i)
                errors.append(error)
        return positions, errors


def label_error(predicted: str | float, truth: object) -> float | None:
    if isinstance(predicted, str):
        if isinstance(truth, bool):
            truth = "true" if truth else "false"
        return 0.0 if str(truth) == predicted else 1.0
    error = value_error(predicted, truth)
    return None if error is None else abs(error)


def value_error(predicted: float, truth: object) -> float | None:
    """A numeric label minus its value prediction; None when the label is no number."""
    if isinstance(truth, bool) or not isinstance(truth, int | float):
        return None
    try:
        return float(truth) - predicted
    except OverflowError:  # an integer label beyond any float (10**400): not comparable
        return None


class ErrorWatch:
    """The change detectors on the error stream of one model (signal ``error``).

    The detectors calibrate on the first errors they see; they get the model's
    whole false-alarm budget counted in labels, since labels are usually far
    fewer than predictions. ``error_rate`` gets that budget too, on the errors
    of class labels only.
    """

    def __init__(self, settings: SuiteSettings, change_names: list[str]) -> None:
        self.detectors: dict[str, ChangeDetector] = {
            name: settings.build(name) for name in change_names
        }
        self.rate = ErrorRate(settings.false_alarm_events)
        # Its own alarm states: labels count in the stream's sequence numbers
        # (every event), not in the model's rows, and are evaluated as they come.
        self.alarms = AlarmTracker(recover_after=settings.recover_windows * settings.window)

    def observe(self, joined: JoinedLabels) -> list[Finding]:
        positions, errors = joined.errors()
        if not len(joined.seq):
            return []
        seqs = np.asarray(joined.seq, dtype=np.int64)
        ts = joined.ts

        def moment(point: int) -> float:
            """The time of the first label at or after stream position ``point``."""
            return float(ts[min(int(np.searchsorted(seqs, point)), len(seqs) - 1)])

        values = np.array(errors, dtype=np.float64)
        detected = [
            (ev.index, order, name, ev)
            for order, (name, det) in enumerate(self.detectors.items())
            for ev in det.update(values)
        ]
        # the errors of class labels (0/1), by their position in ``values``
        classes = [k for k, at in enumerate(positions) if isinstance(joined.predicted[at], str)]
        detected += [
            (
                classes[ev.index],
                len(self.detectors),
                RATE_DETECTOR,
                replace(ev, index=classes[ev.index]),
            )
            for ev in self.rate.update(values[classes])
        ]
        detected.sort(key=lambda t: t[:2])
        found: list[Finding] = []
        for _, _, name, ev in detected:
            at = positions[ev.index]
            index = int(seqs[at])
            self.alarms.resolve_due(index - 1, moment)
            state = self.alarms.report(f"{name}|error", ev.severity, index, float(ts[at]))
            if state is not None:
                extra = {"state": state, "event_index": index}
                found.append(ev.finding(name, "error", float(ts[at]), extra))
        self.alarms.resolve_due(int(seqs[-1]), moment)
        return found

    def dump(self) -> dict[str, Any]:
        return {
            "detectors": {name: det.dump() for name, det in self.detectors.items()},
            "error_rate": self.rate.dump(),
            "alarms": self.alarms.dump(),
        }

    def restore(self, state: dict[str, Any] | None, model_alarms: AlarmTracker) -> None:
        """Load :meth:`dump` output. A state saved before the error stream had its
        own alarm states has them among the model's: they move here."""
        if state is None:
            return
        if "alarms" in state:
            self.alarms = AlarmTracker.load(state["alarms"])
        else:
            for key in [k for k in model_alarms.firing_keys() if k.endswith("|error")]:
                self.alarms.adopt(key, model_alarms.release(key))
        self.detectors = {
            name: registry.get(name, "change").loader(d) for name, d in state["detectors"].items()
        }
        if "error_rate" in state:  # else a state saved before it ran: it starts afresh
            self.rate = ErrorRate.load(state["error_rate"])
