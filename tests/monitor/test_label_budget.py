"""One budget for the label index's level 0 across a pipeline's models.

Many models, a small budget and a stream many times longer than it: after every
checkpoint the pairs all the models hold in memory stay under the budget, and
every label's outcome, the joined labels and the label tables (the index's
layout aside) are those of a run whose budget never bites.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detectors.suite.error_stream import JoinedLabels
from monitor.config import Config, parse_config
from monitor.ingest.events import Event
from monitor.pipeline.label_join import ModelLabelJoin
from monitor.pipeline.pipeline import Pipeline
from monitor.store.store import Store

T0 = 1.6e9  # in the past
MODELS = 12
BUDGET = 400  # pairs of level 0 for all the models together
CHECKPOINT = 500  # events


def _config(path: Path) -> Config:
    raw: dict[str, Any] = {
        "store": {"path": str(path)},
        "models": [{"name": f"m{i}"} for i in range(MODELS)],
        "detection": {"reference_size": 300, "window": 200, "detectors": ["cusum"]},
        "labels": {"horizon": "1h", "max_pending": 700},
    }
    return parse_config(raw, "test")


def _stream(n: int, seed: int) -> list[Event]:
    """Predictions one second apart, from a third of the models at a time (the others
    idle while their level 0 counts), labels of recent and old ones (some late, evicted,
    unknown or repeated)."""
    rng = np.random.default_rng(seed)
    events: list[Event] = []
    made: list[tuple[str, str, str]] = []  # (model, id, prediction)
    for k in range(n):
        ts = T0 + k
        phase = k // 2_000
        model = f"m{3 * int(rng.integers(0, MODELS // 3)) + phase % 3}"
        if rng.random() < 0.005:  # a model of another third, now and then
            model = f"m{int(rng.integers(0, MODELS))}"
        predicted = "a" if rng.random() < 0.5 else "b"
        request = f"{model}-{k}" if rng.random() < 0.9 else f"{model}-r{int(rng.integers(0, 50))}"
        features: dict[str, Any] = {"x": float(rng.normal()), "c": "uvw"[k % 3]}
        events.append(
            Event("prediction", model, ts, id=request, prediction=predicted, features=features)
        )
        made.append((model, request, predicted))
        if rng.random() < 0.5:
            back = min(len(made), int(rng.choice([5, 300, 3_000, 9_000]) * rng.random()) + 1)
            target, target_id, target_predicted = made[-back]
            if rng.random() < 0.03:
                target_id = f"{target}-nobody-{k}"
            right = rng.random() < 0.8
            truth = target_predicted if right else "c"
            events.append(Event("label", target, ts, id=target_id, label=truth))
    return events


def _run(events: list[Event], path: Path, budget: int) -> list[int]:
    """Feed ``events`` with a checkpoint every ``CHECKPOINT`` and a restart halfway; the
    pairs the models hold in level 0 after each checkpoint."""
    held = []
    store = Store(path)
    pipeline = Pipeline(_config(path), store)
    pipeline.level0_budget = budget
    for k, event in enumerate(events, start=1):
        pipeline.feed(event)
        if k % CHECKPOINT == 0 or k == len(events):
            pipeline.checkpoint()
            joins = [m.label_join for m in pipeline.models.values() if m.label_join]
            held.append(sum(join.store.pairs for join in joins))
        if k == len(events) // 2 // CHECKPOINT * CHECKPOINT:  # level 0 rebuilt on load
            store.close()
            store = Store(path)
            pipeline = Pipeline(_config(path), store)
            pipeline.level0_budget = budget
    store.close()
    return held


def _tables(path: Path) -> dict[str, list[Any]]:
    """The label tables and what the joined labels made, the index's layout aside (where
    a pair lives: ``label_index``, ``indexed``, ``index_flushes``)."""
    queries = {
        "counts": "SELECT model, inserted, watermark, labels, joined, late, unmatched, "
        "duplicate, evicted, expired, delays, performance, feedback, pending, counted_ins, "
        "counted_ts FROM label_counts ORDER BY model",
        "batches": "SELECT model, first, last, count, gone, min_ts, max_ts, ins, hashes, ts "
        "FROM label_batches ORDER BY model, first",
        "chunks": "SELECT * FROM label_chunks ORDER BY model, first",
        "joined": "SELECT * FROM label_joined ORDER BY model, first",
    }
    with sqlite3.connect(path) as db:
        return {name: db.execute(query).fetchall() for name, query in queries.items()}


def _flushes(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT sum(index_flushes) FROM label_counts").fetchone()[0])


def test_many_models_hold_level_0_within_one_budget_and_join_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    joined: list[tuple[Any, ...]] = []  # the joined labels the detectors get, in order
    take_joined = ModelLabelJoin.take_joined

    def taken(join: ModelLabelJoin) -> JoinedLabels | None:
        labels = take_joined(join)
        if labels is not None:
            joined.extend(
                zip(
                    [join.model] * len(labels.seq),
                    labels.seq.tolist(),
                    labels.truth,
                    labels.predicted,
                    labels.predicted_ts.tolist(),
                    labels.segments,
                    strict=True,
                )
            )
        return labels

    monkeypatch.setattr(ModelLabelJoin, "take_joined", taken)
    events = _stream(24_000, seed=1)
    bounded = _run(events, tmp_path / "bounded.db", BUDGET)
    bounded_joined, joined[:] = list(joined), []
    unbounded = _run(events, tmp_path / "unbounded.db", 10**12)
    assert max(bounded) < BUDGET
    assert max(unbounded) > 10 * BUDGET  # the budget bites: without it level 0 grows
    assert _flushes(tmp_path / "bounded.db") > 2 * MODELS
    assert _flushes(tmp_path / "unbounded.db") == 0
    assert bounded_joined == joined and len(joined) > 3_000
    tables = _tables(tmp_path / "bounded.db")
    assert tables == _tables(tmp_path / "unbounded.db")
    assert len(tables["counts"]) == MODELS
    # Every outcome happened: joined, late, unmatched, duplicate, evicted, expired.
    assert all(sum(row[k] for row in tables["counts"]) > 0 for k in range(4, 10))
