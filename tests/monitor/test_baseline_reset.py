"""`driftwarden baseline reset`: state dropped where it lives, then a new warm-up."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import orjson
import pytest

from monitor.cli.main import main
from monitor.config import Config, parse_config
from monitor.ingest.events import Event
from monitor.pipeline.pipeline import Pipeline
from monitor.store.store import Store

REFERENCE = 500  # a small reference, so a baseline forms in a few hundred events
# One whose values' text (float32, base64) is long enough for the store to keep apart.
KEPT_APART = 1000


def _config(store: Path, false_alarm_events: float = 1e7, reference: int = REFERENCE) -> Config:
    detection = {
        "reference_size": reference,
        "window": 200,
        "false_alarm_events": false_alarm_events,
    }
    return parse_config(
        {"store": {"path": str(store)}, "models": [{"name": "m"}], "detection": detection}, "test"
    )


def _feed(pipeline: Pipeline, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for i, x in enumerate(rng.normal(size=n)):
        pipeline.feed(Event("prediction", "m", 1e9 + i, features={"x": float(x)}, score=0.3))
    pipeline.checkpoint()


def _audit(store: Store) -> list[str]:
    rows = store.db.execute(
        "SELECT content FROM audit WHERE kind = 'baseline_change' AND subject = 'model:m' "
        "ORDER BY id"
    ).fetchall()
    return [orjson.loads(row[0])["source"] for row in rows]


def test_a_running_pipeline_drops_the_model_at_its_next_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store(path)
    pipeline = Pipeline(_config(path), store)
    _feed(pipeline, REFERENCE + 100, seed=1)
    assert pipeline.models["m"].detectors.has_reference
    assert store.load_model_state("m") is not None

    assert main(["baseline", "reset", "--model", "m", "--store", str(path), "--by", "ops"]) == 0
    _feed(pipeline, 50, seed=2)  # the checkpoint after the request carries it out
    assert "m" not in pipeline.models and store.load_model_state("m") is None
    done = store.db.execute("SELECT requested_by, done_at FROM baseline_resets").fetchall()
    assert [(who, at is not None) for who, at in done] == [("ops", True)]

    _feed(pipeline, 100, seed=3)
    fresh = pipeline.models["m"]
    assert not fresh.detectors.has_reference and fresh.events == 100
    _feed(pipeline, REFERENCE, seed=4)
    assert pipeline.models["m"].detectors.has_reference
    assert _audit(store) == ["warm-up", "reset requested", "reset carried out", "warm-up"]
    assert main(["audit", "verify", "--store", str(path)]) == 0
    store.close()


def test_a_stopped_daemon_carries_out_the_request_when_it_loads_the_model(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store(path)
    _feed(Pipeline(_config(path), store), REFERENCE + 100, seed=1)
    store.close()
    assert main(["baseline", "reset", "--model", "m", "--store", str(path)]) == 0

    store = Store(path)
    restarted = Pipeline(_config(path), store)
    model = restarted.model("m")
    assert model is not None and not model.detectors.has_reference and model.events == 0
    assert store.load_model_state("m") is None
    assert _audit(store)[-2:] == ["reset requested", "reset carried out"]
    store.close()


def test_changed_detection_settings_are_named_when_a_saved_model_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.db"
    store = Store(path)
    _feed(Pipeline(_config(path), store), REFERENCE + 100, seed=1)
    with caplog.at_level(logging.WARNING, logger="driftwarden.pipeline"):
        same = Pipeline(_config(path), store).model("m")
        assert same is not None and not caplog.records
        changed = Pipeline(_config(path, false_alarm_events=1e5), store).model("m")
    assert changed is not None and changed.detectors.settings.false_alarm_events == 1e7
    [record] = caplog.records
    assert "baseline reset --model m" in record.getMessage()
    assert record.changed == ["false_alarm_events"]  # type: ignore[attr-defined]
    store.close()
