"""Labels joined to predictions: an error stream that is exact whatever the batching."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from detectors.base import Finding, RowBatch
from detectors.suite.error_stream import OutcomeJoin
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


def _run(events: list[tuple[str, Any]], chunk: int, cut: int | None = None) -> list[Finding]:
    md = ModelDetectors(SETTINGS)
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
            seq = np.array([s for s, _ in labels], dtype=np.int64)
            ids = np.array([r for _, (r, _) in labels], dtype=object)
            out += md.observe_labels(seq, ids, [t for _, (_, t) in labels], seq.astype(float))
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


def test_join_rules() -> None:
    join = OutcomeJoin(horizon=100)
    seq = np.array([1, 2, 3], dtype=np.int64)
    join.add_predictions(
        seq, np.array(["a", "b", "a"], dtype=object), np.array(["x", "y", "z"], dtype=object), None
    )
    positions, errors = join.join(
        np.array([5, 6, 7, 300], dtype=np.int64),
        np.array(["a", "a", "a", "b"], dtype=object),
        ["z", "z", "z", "y"],
    )
    # "a" joins its latest prediction (z, correct), then the earlier one (x, wrong);
    # a third label for "a" finds nothing left; "b" is beyond the horizon.
    assert positions == [0, 1] and errors == [0.0, 1.0]
    numeric = OutcomeJoin()
    numeric.add_predictions(np.array([1]), np.array(["q"], dtype=object), None, np.array([2.5]))
    assert numeric.join(np.array([2]), np.array(["q"], dtype=object), [4.0]) == ([0], [1.5])
