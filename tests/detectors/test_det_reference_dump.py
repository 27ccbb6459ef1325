"""A model's dump names its unchanged references by digest for a caller that keeps
their text, and a model keeps no text of its references between dumps."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import numpy as np
import pytest

from detectors.codec import BLOB_KEY, text_digest
from detectors.reference import NumericReference
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings
from tests.detectors.detector_streams import make_stream

SETTINGS = SuiteSettings(reference_size=5000, window=1000)


def _model() -> ModelDetectors:
    md = ModelDetectors(SETTINGS)
    md.observe_rows(make_stream(7000, seed=5))
    assert md.has_reference
    return md


def _reference_texts(state: dict[str, Any]) -> dict[str, Any]:
    return {k: s["reference"]["values"]["b64"] for k, s in state["numeric"].items()}


def test_stored_references_are_named_by_the_digest_of_their_text() -> None:
    md = _model()
    full = md.dump()
    texts = _reference_texts(full)
    digests = {k: text_digest(t) for k, t in texts.items()}
    kept = sorted(digests)[::2]  # the caller keeps half of them
    named = md.dump(frozenset(digests[k] for k in kept))
    for key, value in _reference_texts(named).items():
        if key in kept:
            assert value == {BLOB_KEY: digests[key]}
        else:
            assert value == texts[key]
    # Only the references' texts change; the rest is the plain dump.
    for key in kept:
        named["numeric"][key]["reference"]["values"]["b64"] = texts[key]
    assert named == full
    assert md.dump(frozenset({"not a digest of anything"})) == full


def _long_texts(state: Any, found: dict[str, str]) -> dict[str, str]:
    """Digest -> text of every long string in ``state``."""
    if isinstance(state, dict):
        for value in state.values():
            _long_texts(value, found)
    elif isinstance(state, list):
        for value in state:
            _long_texts(value, found)
    elif isinstance(state, str) and len(state) >= 4096:
        found[text_digest(state)] = state
    return found


def _joined(state: Any, texts: dict[str, str]) -> Any:
    if isinstance(state, dict):
        if set(state) == {BLOB_KEY}:
            return texts[state[BLOB_KEY]]
        return {k: _joined(v, texts) for k, v in state.items()}
    if isinstance(state, list):
        return [_joined(v, texts) for v in state]
    return state


def test_fitted_tables_are_named_too_until_a_refit() -> None:
    md = _model()
    full = md.dump()
    texts = _long_texts(full, {})
    named = md.dump(frozenset(texts))
    pca, table = named["multivariate"]["pca_drift"], named["sequential"]["evidence"]["table"]
    fitted = [pca["errors"], pca["t2"], table["edges"], table["ranks"]]
    assert all(set(part["b64"]) == {BLOB_KEY} for part in fitted)
    assert set(_long_texts(named, {})) < set(texts), "fewer texts: the fitted tables' named"
    assert _joined(named, texts) == full
    pca = md._multi["pca_drift"]
    pca.fit({"a": np.arange(50.0), "b": np.arange(50.0) ** 2}, seed=1)
    refit = pca.dump(frozenset(texts))
    assert isinstance(refit["errors"]["b64"], str), "a refit table goes as text again"


def test_a_reference_is_read_only() -> None:
    ref = NumericReference.build(np.array([3.0, 1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match="read-only"):
        ref.grid[0] = 9.0
    assert NumericReference.load(ref.dump()).float_values().tolist() == [1.0, 2.0, 3.0]


def test_a_model_keeps_no_reference_text_between_dumps() -> None:
    md = _model()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(3):  # the first learns each reference's digest
            md.dump()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    texts = sum(len(t) for t in _reference_texts(md.dump()).values())
    assert texts > 250_000, "the references' text is large enough to tell"
    assert held < texts / 20
