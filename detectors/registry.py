"""Detectors by name: the one place a configured name becomes a detector.

Kinds:
- ``window``: a two-sample test run on every full event-count window of each
  signal it fits (numeric/categorical features, score, prediction).
- ``change``: a sequential change detector on a numeric stream (score,
  numeric prediction, metric series).
- ``metric``: an anomaly detector for serving-metric series.
- ``multivariate``: a test on the joint distribution of the numeric features.
- ``client``: a test per caller identity (the ``client`` field of events).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from detectors.change.adwin import ADWIN
from detectors.change.cusum import CUSUM
from detectors.change.page_hinkley import PageHinkley
from detectors.client.boundary import ClientBoundary
from detectors.client.volume import ClientVolume
from detectors.metric.anomaly import MetricAnomaly
from detectors.multivariate.pca_drift import PCADrift
from detectors.window.chi2 import ChiSquare
from detectors.window.confidence import ConfidenceDrop
from detectors.window.cramer_von_mises import CramerVonMises
from detectors.window.input_range import InputRange
from detectors.window.jensen_shannon import JensenShannon
from detectors.window.ks import KolmogorovSmirnov
from detectors.window.missing_rate import MissingRate
from detectors.window.output_range import OutputRange
from detectors.window.psi import PopulationStability
from detectors.window.unseen import UnseenShare
from detectors.window.wasserstein import NormalisedWasserstein

Kind = Literal["window", "change", "metric", "multivariate", "client"]


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    kind: Kind
    factory: Callable[..., Any]
    loader: Callable[[dict[str, Any]], Any]
    summary: str


_SPECS: dict[str, DetectorSpec] = {}


def register(name: str, kind: Kind, cls: Any, summary: str) -> None:
    """Add a detector class under ``name`` (its constructor builds it with defaults)."""
    if name in _SPECS:
        raise ValueError(f"detector {name!r} is already registered; pick another name")
    _SPECS[name] = DetectorSpec(name, kind, cls, cls.load, summary)


def get(name: str) -> DetectorSpec:
    """The spec registered under ``name``; an unknown name lists the choices."""
    try:
        return _SPECS[name]
    except KeyError:
        raise ValueError(
            f"unknown detector {name!r}; choose from: {', '.join(sorted(_SPECS))}"
        ) from None


def names(kind: Kind | None = None) -> tuple[str, ...]:
    """Registered names (of one kind), in registration order."""
    return tuple(n for n, s in _SPECS.items() if kind is None or s.kind == kind)


register("ks", "window", KolmogorovSmirnov, "Kolmogorov-Smirnov two-sample test (numeric)")
register("chi2", "window", ChiSquare, "chi-square homogeneity of label counts (categorical)")
register("missing_rate", "window", MissingRate, "missing/invalid share vs reference (any)")
register("unseen", "window", UnseenShare, "share of labels the reference never showed")
register("output_range", "window", OutputRange, "outputs outside the valid range (score, value)")
register("confidence", "window", ConfidenceDrop, "drop of the mean score (confidence collapse)")
register("psi", "window", PopulationStability, "population stability index (threshold)")
register("jensen_shannon", "window", JensenShannon, "Jensen-Shannon distance (threshold)")
register("wasserstein", "window", NormalisedWasserstein, "W1 in reference std units (threshold)")
register("cramer_von_mises", "window", CramerVonMises, "Cramér-von Mises two-sample test")
register("cusum", "change", CUSUM, "two-sided CUSUM on standardised block means")
register("page_hinkley", "change", PageHinkley, "Page-Hinkley change points on block means")
register("adwin", "change", ADWIN, "ADWIN adaptive windowing on block means")
register("metric_anomaly", "metric", MetricAnomaly, "spikes, level shifts, flat-lines of a metric")
register("pca_drift", "multivariate", PCADrift, "PCA reconstruction error of numeric features")
register("input_range", "window", InputRange, "inputs outside the reference's range (exact)")
register("client_volume", "client", ClientVolume, "a caller's share of traffic far above its own")
register("client_boundary", "client", ClientBoundary, "a caller's scores clustered at the boundary")

DEFAULT_DETECTORS: tuple[str, ...] = (
    "ks",
    "chi2",
    "missing_rate",
    "unseen",
    "output_range",
    "input_range",
    "confidence",
    "pca_drift",
    "cusum",
    "client_volume",
    "client_boundary",
)
DEFAULT_METRIC_DETECTORS: tuple[str, ...] = ("metric_anomaly",)
