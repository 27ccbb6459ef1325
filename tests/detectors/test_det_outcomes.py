"""Labels joined to predictions: an error stream that is exact whatever the batching."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from detectors.base import Finding, RowBatch
from detectors.suite.error_stream import JoinedLabels
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings

SETTINGS = SuiteSettings(
    window=500, reference_size=2000, false_alarm_events=1e6, detectors=("cusum",)
)
CLASSES = np.array(["ok", "fraud"], dtype=object)


def _stream(n: int, seed: int, onset: int | None) -> list[tuple[str, object]]:
    """Predictions, and labels for most of them 5..1500 events later; accuracy drops at onset."""
    rng = np.random.default_rng(seed)
    events: list[tuple[str, object]] = []
    due: dict[int, list[tuple[str, str]]] = {}
    for i in range(n):
        for request, truth in due.pop(i, []):
            events.append(("label", (request, truth)))
        request = f"r{i % 5000}"  # ids repeat: the join must take the latest earlier one
        predicted = str(CLASSES[int(rng.random() < 0.3)])
        events.append(("prediction", (request, predicted)))
        accuracy = 0.9 if onset is None or i < onset else 0.6
        correct = rng.random() < accuracy
        truth = predicted if correct else ("ok" if predicted == "fraud" else "fraud")
        if rng.random() < 0.8:
            due.setdefault(i + int(rng.integers(5, 1500)), []).append((request, truth))
    # A label that comes before any prediction with its id, and one for an unknown id.
    events.insert(10, ("label", ("r42", "ok")))
    events.append(("label", ("nobody", "ok")))
    return events


def _join(
    pending: dict[str, tuple[int, str]], part: list[tuple[int, tuple[str, Any]]]
) -> JoinedLabels:
    """The service's join in its simplest form, in stream order: a label takes its id's
    latest earlier prediction."""
    joined = []
    for s, (kind, (r, v)) in part:
        if kind == "prediction":
            pending[r] = (s, v)
        elif r in pending:
            joined.append((s, pending.pop(r), v))
    return JoinedLabels(
        seq=np.array([s for s, _, _ in joined], dtype=np.int64),
        ts=np.array([s for s, _, _ in joined], dtype=np.float64),
        predicted=[p for _, (_, p), _ in joined],
        truth=[t for _, _, t in joined],
        predicted_ts=np.array([ps for _, (ps, _), _ in joined], dtype=np.float64),
    )


def _run(events: list[tuple[str, Any]], chunk: int, cut: int | None = None) -> list[Finding]:
    md = ModelDetectors(SETTINGS)
    pending: dict[str, tuple[int, str]] = {}
    out: list[Finding] = []
    for k, start in enumerate(range(0, len(events), chunk)):
        part = events[start : start + chunk]
        rows = [(start + j, e) for j, (kind, e) in enumerate(part) if kind == "prediction"]
        labels = [(start + j, e) for j, (kind, e) in enumerate(part) if kind == "label"]
        if rows:
            seq = np.array([s for s, _ in rows], dtype=np.int64)
            batch = RowBatch(
                ts=seq.astype(np.float64),
                prediction=np.array([p for _, (_, p) in rows], dtype=object),
                ids=np.array([r for _, (r, _) in rows], dtype=object),
                seq=seq,
            )
            out += md.observe_rows(batch)
        if labels:
            out += md.observe_labels(_join(pending, list(enumerate(part, start))))
        else:
            _join(pending, list(enumerate(part, start)))
        if k == cut:
            md = ModelDetectors.load(json.loads(json.dumps(md.dump(), allow_nan=False)))
    return [f for f in out if f.signal == "error"]


def test_a_drop_in_accuracy_is_caught_and_the_join_ignores_batching() -> None:
    events = _stream(40_000, seed=1, onset=25_000)
    whole = _run(events, 2048)
    assert whole, "accuracy fell from 90% to 60% and nothing was found"
    predictions = [i for i, (kind, _) in enumerate(events) if kind == "prediction"]
    onset_seq = predictions[25_000]  # the stream position of the first worse prediction
    assert all(f.details["event_index"] >= onset_seq for f in whole)
    assert whole[0].details["event_index"] - onset_seq < 5_000  # events, labels included
    assert whole == _run(events, 7)
    assert whole == _run(events, 1999)
    assert whole == _run(events, 500, cut=37)


def test_steady_accuracy_raises_nothing() -> None:
    assert _run(_stream(60_000, seed=2, onset=None), 2048) == []


def test_errors_of_classes_and_values() -> None:
    joined = JoinedLabels(
        np.arange(4), np.arange(4.0), ["x", "true", 2.5, 1.0], ["y", True, 4.0, "text"]
    )
    # A bool label is the class "true"/"false"; a value label that is not a number has no error.
    assert joined.errors() == ([0, 1, 2], [1.0, 0.0, 1.5])
