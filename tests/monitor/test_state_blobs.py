"""Checkpoints name the references the store holds instead of carrying their text
again, and the store claims to hold only what a committed transaction left there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detectors.codec import BLOB_KEY
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings
from monitor.ingest.events import Event
from monitor.pipeline.pipeline import Pipeline
from monitor.store.state_blobs import BLOB_MIN_CHARS
from monitor.store.store import CheckpointRows, Store
from tests.detectors.detector_streams import make_stream
from tests.monitor.test_baseline_reset import KEPT_APART, _config

SETTINGS = SuiteSettings(reference_size=2000, window=500)


def _model(seed: int = 1) -> ModelDetectors:
    md = ModelDetectors(SETTINGS)
    md.observe_rows(make_stream(2600, seed=seed))
    assert md.has_reference
    return md


def _checkpoint(store: Store, md: ModelDetectors) -> dict[str, Any]:
    state = md.dump(store.stored_blobs("m"))
    with store.transaction() as db:
        store.write_checkpoint(db, CheckpointRows(model_states={"m": (state, md.rows_observed)}))
    return state


def _named(state: dict[str, Any]) -> int:
    values = [s["reference"]["values"]["b64"] for s in state["numeric"].values()]
    return sum(isinstance(v, dict) and BLOB_KEY in v for v in values)


def _blob_rows(store: Store) -> int:
    return int(store.db.execute("SELECT count(*) FROM state_blobs").fetchone()[0])


def test_a_pipeline_checkpoint_names_stored_references_and_loads_exactly(tmp_path: Path) -> None:
    assert (4 * KEPT_APART + 2) // 3 * 4 >= BLOB_MIN_CHARS, "a reference's text is kept apart"
    path = tmp_path / "s.db"
    store = Store(path)
    pipeline = Pipeline(_config(path, reference=KEPT_APART), store)
    rng = np.random.default_rng(4)
    for i in range(3 * KEPT_APART):
        x = rng.normal(size=8)
        features: dict[str, str | int | float | bool | None] = {
            f"x{j}": float(v) for j, v in enumerate(x)
        }
        pipeline.feed(Event("prediction", "m", 1e9 + i, features=features, score=0.3))
        if i % KEPT_APART == KEPT_APART - 1:
            pipeline.checkpoint()
    detectors = pipeline.models["m"].detectors
    assert len(store.stored_blobs("m")) == _blob_rows(store) > 0
    assert _named(detectors.dump(store.stored_blobs("m"))) == 9, "every feature's and the score's"
    saved = store.load_model_state("m")
    assert saved is not None and saved[0] == detectors.dump()


def test_a_rolled_back_checkpoint_claims_no_blob(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    md = _model()
    with pytest.raises(RuntimeError), store.transaction() as db:
        state = md.dump(store.stored_blobs("m"))
        store.write_checkpoint(db, CheckpointRows(model_states={"m": (state, 1)}))
        raise RuntimeError("the checkpoint fails before it commits")
    assert store.stored_blobs("m") == frozenset() and _blob_rows(store) == 0
    assert _named(_checkpoint(store, md)) == 0, "the texts go again"
    assert _named(_checkpoint(store, md)) > 0, "then by digest"
    saved = store.load_model_state("m")
    assert saved is not None and saved[0] == md.dump()


def test_a_state_another_process_removed_is_not_named(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store(path)
    md = _model()
    _checkpoint(store, md)
    assert store.stored_blobs("m")
    other = Store(path)
    with other.transaction() as db:
        other.delete_model_state(db, "m")
    other.close()
    assert store.load_model_state("m") is None
    assert store.stored_blobs("m") == frozenset()
    assert _named(_checkpoint(store, md)) == 0  # the same reference: its texts go again
    saved = store.load_model_state("m")
    assert saved is not None and saved[0] == md.dump()


def test_a_new_reference_replaces_the_old_blobs(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    _checkpoint(store, _model(seed=1))
    first = store.stored_blobs("m")
    md = _model(seed=2)
    _checkpoint(store, md)
    assert not first & store.stored_blobs("m")
    assert _blob_rows(store) == len(store.stored_blobs("m"))
    saved = store.load_model_state("m")
    assert saved is not None and saved[0] == md.dump()


def test_a_state_naming_a_blob_the_store_lacks_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    rows = CheckpointRows(model_states={"m": ({"values": {BLOB_KEY: "0123"}}, 1)})
    refused = pytest.raises(ValueError, match="blob 0123, which the store lacks")
    with refused, store.transaction() as db:
        store.write_checkpoint(db, rows)
    assert store.load_model_state("m") is None
