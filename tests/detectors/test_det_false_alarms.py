"""A quiet stream stays quiet at default settings."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.base import Finding
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings
from tests.detectors.detector_streams import split, stream_chunks


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "batch"), [(7, 500), (8, 1234)])
def test_a_million_stationary_events_raise_at_most_one_finding(seed: int, batch: int) -> None:
    md = ModelDetectors(SuiteSettings(), seed=seed)
    out: list[Finding] = []
    for chunk in stream_chunks(1_000_000, seed=seed):
        for part in split(chunk, batch):
            out += md.observe_rows(part)
    assert len(out) <= 1, [(f.detector, f.signal, f.details["event_index"]) for f in out]


@pytest.mark.slow
def test_quiet_metric_series_stay_quiet() -> None:
    rng = np.random.default_rng(9)
    n = 100_000
    t = np.arange(n, dtype=np.float64)
    day = np.sin(2 * np.pi * t / 1440)
    series = {
        "latency_ms": (60 + 20 * day) * rng.lognormal(0, 0.4, n),
        "qps": rng.poisson(500 + 300 * day).astype(np.float64),
        "error_rate": rng.binomial(2000, 0.002, n) / 2000,
        "gpu_util": np.clip(0.6 + 0.2 * day + rng.normal(0, 0.05, n), 0, 1),
    }
    md = ModelDetectors(SuiteSettings())
    out: list[Finding] = []
    for name, values in series.items():
        for start in range(0, n, 600):
            out += md.observe_metric(
                name, 1.7e9 + 60 * t[start : start + 600], values[start : start + 600]
            )
    assert len(out) <= 1, [(f.signal, f.details) for f in out]
