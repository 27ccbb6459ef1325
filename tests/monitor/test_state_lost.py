"""A model whose saved state is lost warms up again, loudly, instead of crashing every start."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from monitor.cli.main import main
from monitor.config import Config
from monitor.pipeline.pipeline import Pipeline
from monitor.store.store import Store
from tests.monitor.test_baseline_reset import KEPT_APART, _audit, _feed
from tests.monitor.test_baseline_reset import _config as _config_of

REFERENCE = KEPT_APART  # references whose text the store keeps apart (blobs to lose)


def _config(path: Path) -> Config:
    return _config_of(path, reference=REFERENCE)


def _with_a_baseline(path: Path) -> None:
    store = Store(path)
    _feed(Pipeline(_config(path), store), REFERENCE + 100, seed=1)
    assert store.db.execute("SELECT count(*) FROM state_blobs").fetchone()[0] > 0
    store.close()


@pytest.mark.parametrize("damage", ["blobs deleted", "state unreadable"])
def test_a_lost_state_starts_the_baseline_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    path = tmp_path / "s.db"
    _with_a_baseline(path)
    store = Store(path)
    with store.transaction() as db:
        if damage == "blobs deleted":
            db.execute("DELETE FROM state_blobs WHERE model = 'm'")
        else:
            db.execute("UPDATE model_state SET state = ? WHERE model = 'm'", [b'{"not": "a st'])

    with caplog.at_level(logging.ERROR, logger="driftwarden.pipeline"):
        pipeline = Pipeline(_config(path), store)
        model = pipeline.model("m")
    assert model is not None and not model.detectors.has_reference and model.events == 0
    [record] = caplog.records
    assert "model m: its saved baseline is lost" in record.getMessage()
    assert "warms up again" in record.getMessage()
    assert store.load_model_state("m") is None, "the unreadable state is dropped, once"
    lost = store.db.execute(
        "SELECT content FROM audit WHERE kind = 'baseline_change' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert orjson.loads(lost[0])["source"] == "state lost"

    _feed(pipeline, REFERENCE + 10, seed=2)  # a new warm-up, saved as usual
    store.close()
    caplog.clear()
    store = Store(path)
    with caplog.at_level(logging.ERROR, logger="driftwarden.pipeline"):
        again = Pipeline(_config(path), store).model("m")
    assert again is not None and again.detectors.has_reference and again.events == REFERENCE + 10
    assert not caplog.records, "the next start loads the new baseline without a word"
    assert _audit(store) == ["warm-up", "state lost", "warm-up"]
    store.close()
    assert main(["audit", "verify", "--store", str(path)]) == 0
