"""Late labels joined to their predictions: the model's error as a stream.

Ground truth (or feedback) arrives after the prediction it judges, carrying the
prediction's request id. A label joins the latest earlier prediction with that
id, if that prediction is at most ``horizon`` events older; its error is 0/1
for a class label and the absolute difference for a number. Positions are the
model's stream sequence numbers, so the join is the same however the stream is
cut into batches, as long as one call's events span fewer than ``horizon``
events of the model's stream (predictions of a batch are remembered before its
labels are joined, and a label joins only predictions that came before it).

Rising error means decay, or feedback that disagrees with the model on purpose
(poisoned labels): the change detectors watch the error stream like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors import registry
from detectors.base import Finding, RowBatch
from detectors.codec import decode_float, encode_float
from detectors.registry import ChangeDetector
from detectors.suite.alarms import AlarmTracker
from detectors.suite.settings import SuiteSettings

Prediction = tuple[int, str | float]  # (sequence number, predicted label or value)


class OutcomeJoin:
    def __init__(self, horizon: int = 10_000) -> None:
        if horizon < 100:
            raise ValueError(f"horizon must be at least 100 events, got {horizon}")
        self.horizon = horizon
        self._pending: dict[str, list[Prediction]] = {}
        self._evicted_below = 0

    def add_predictions(
        self, seq: np.ndarray, ids: np.ndarray, labels: np.ndarray | None, values: np.ndarray | None
    ) -> None:
        """Remember predictions (label or value) under their request ids."""
        for i, request in enumerate(ids.tolist()):
            if request is None:
                continue
            predicted: str | float | None = None
            if labels is not None and labels[i] is not None:
                predicted = str(labels[i])
            elif values is not None and np.isfinite(values[i]):
                predicted = float(values[i])
            if predicted is not None:
                self._pending.setdefault(request, []).append((int(seq[i]), predicted))
        if len(seq):
            # A label of this batch or a later one is at most `horizon` events before
            # this batch's first event, so it can join nothing older than this.
            self._evict(int(seq[0]) - 2 * self.horizon)

    def join(
        self, seq: np.ndarray, ids: np.ndarray, truths: Sequence[object]
    ) -> tuple[list[int], list[float]]:
        """Positions (into the labels given) that joined a prediction, and their errors."""
        positions: list[int] = []
        errors: list[float] = []
        for i, (request, truth) in enumerate(zip(ids.tolist(), truths, strict=True)):
            at = int(seq[i])
            entries = self._pending.get(request)
            if not entries:
                continue
            earlier = [k for k, (s, _) in enumerate(entries) if s < at and at - s <= self.horizon]
            if not earlier:
                continue
            k = earlier[-1]
            _, predicted = entries.pop(k)
            if not entries:
                del self._pending[request]
            error = _error(predicted, truth)
            if error is not None:
                positions.append(i)
                errors.append(error)
        if len(seq):
            self._evict(int(seq[-1]) - self.horizon)
        return positions, errors

    def _evict(self, below: int) -> None:
        """Forget predictions no later label can join: memory stays bounded by the horizon."""
        if below <= self._evicted_below:
            return
        self._evicted_below = below
        for request in list(self._pending):
            kept = [e for e in self._pending[request] if e[0] >= below]
            if kept:
                self._pending[request] = kept
            else:
                del self._pending[request]

    def dump(self) -> dict[str, Any]:
        return {
            "horizon": self.horizon,
            "evicted_below": self._evicted_below,
            "pending": [
                [request, [[s, p if isinstance(p, str) else {"v": encode_float(p)}] for s, p in e]]
                for request, e in sorted(self._pending.items())
            ],
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> OutcomeJoin:
        join = cls(horizon=state["horizon"])
        join._evicted_below = int(state["evicted_below"])
        join._pending = {
            request: [(int(s), p if isinstance(p, str) else decode_float(p["v"])) for s, p in e]
            for request, e in state["pending"]
        }
        return join


def _error(predicted: str | float, truth: object) -> float | None:
    if isinstance(predicted, str):
        if isinstance(truth, bool):
            truth = "true" if truth else "false"
        return 0.0 if str(truth) == predicted else 1.0
    if isinstance(truth, bool) or not isinstance(truth, int | float):
        return None
    return abs(float(truth) - predicted)


class ErrorWatch:
    """The join and the change detectors on the error stream of one model (signal ``error``).

    The detectors calibrate on the first errors they see; they get the model's
    whole false-alarm budget counted in labels, since labels are usually far
    fewer than predictions.
    """

    def __init__(self, settings: SuiteSettings, change_names: list[str]) -> None:
        self.join = OutcomeJoin()
        self.detectors: dict[str, ChangeDetector] = {
            name: settings.build(name) for name in change_names
        }
        # Its own alarm states: labels count in the stream's sequence numbers
        # (every event), not in the model's rows, and are evaluated as they come.
        self.alarms = AlarmTracker(recover_after=settings.recover_windows * settings.window)

    def remember(self, batch: RowBatch) -> None:
        if batch.ids is not None and batch.seq is not None:
            self.join.add_predictions(
                batch.seq, batch.ids, batch.prediction, batch.prediction_value
            )

    def observe(
        self,
        seq: np.ndarray,
        ids: np.ndarray,
        labels: Sequence[object],
        ts: np.ndarray,
    ) -> list[Finding]:
        positions, errors = self.join.join(seq, ids, labels)
        if not len(seq):
            return []
        seqs = np.asarray(seq, dtype=np.int64)

        def moment(point: int) -> float:
            """The time of the first label at or after stream position ``point``."""
            return float(ts[min(int(np.searchsorted(seqs, point)), len(seqs) - 1)])

        values = np.array(errors, dtype=np.float64)
        detected = [
            (ev.index, order, name, ev)
            for order, (name, det) in enumerate(self.detectors.items())
            for ev in det.update(values)
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
            "join": self.join.dump(),
            "detectors": {name: det.dump() for name, det in self.detectors.items()},
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
        self.join = OutcomeJoin.load(state["join"])
        self.detectors = {
            name: registry.get(name, "change").loader(d) for name, d in state["detectors"].items()
        }
