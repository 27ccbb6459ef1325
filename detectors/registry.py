"""Detectors by name: the one place a configured name becomes a detector.

Kinds, each with the Protocol of what the suite calls on its detectors:

- ``window`` (:class:`WindowDetector`): a two-sample test run on every full
  event-count window of each signal it fits (numeric/categorical features,
  score, prediction).
- ``change`` (:class:`ChangeDetector`): a sequential change detector on a
  numeric stream (score, numeric prediction, error stream, metric series).
- ``metric`` (:class:`MetricDetector`): an anomaly detector for serving-metric
  series. A change detector can watch a metric series too.
- ``multivariate`` (:class:`MultivariateDetector`): a test on the joint
  distribution of the features, numeric and categorical.
- ``client`` (:class:`ClientDetector`): a test per caller identity (the
  ``client`` field of events).
- ``sequential`` (:class:`SequentialDetector`): evidence accumulated block by
  block over every feature at once.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, Protocol, Self, TypeVar, cast, overload

import numpy as np

from detectors.change.adwin import ADWIN
from detectors.change.base import ChangeEvent
from detectors.change.cusum import CUSUM
from detectors.change.page_hinkley import PageHinkley
from detectors.client.base import ClientOutcome
from detectors.client.boundary import ClientBoundary
from detectors.client.inputs import ClientInputs
from detectors.client.volume import ClientVolume
from detectors.metric.anomaly import MetricAnomaly
from detectors.multivariate.pca_drift import PCADrift
from detectors.reference import CategoricalReference, NumericReference
from detectors.sequential.evidence import FeatureEvidence
from detectors.window.base import CategoricalWindow, NumericWindow, WindowOutcome
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

Kind = Literal["window", "change", "metric", "multivariate", "client", "sequential"]
SERIES_KINDS: tuple[Kind, ...] = ("change", "metric")  # the kinds that can watch a metric series


class Detector(Protocol):
    """What every registered detector offers: a name, its parameters, its state."""

    name: ClassVar[str]

    @classmethod
    def build(cls, **kwargs: Any) -> Self:
        """A detector with these constructor arguments (earlier names accepted)."""
        ...

    def params(self) -> dict[str, Any]: ...

    def dump(self) -> dict[str, Any]: ...

    @classmethod
    def load(cls, state: dict[str, Any]) -> Self: ...


class WindowDetector(Detector, Protocol):
    """Tests one full window of a signal against the signal's reference.

    It is run on signals of ``kinds`` (numeric, categorical) whose role (feature,
    score, prediction, prediction_value) is in ``roles``. An outcome with a
    p-value is judged with the window's other tests (Benjamini-Hochberg); one
    without decides itself (``exceeded``). None: not tested.
    """

    kinds: ClassVar[frozenset[str]]
    roles: ClassVar[frozenset[str]]

    def test_numeric(self, ref: NumericReference, win: NumericWindow) -> WindowOutcome | None: ...

    def test_categorical(
        self, ref: CategoricalReference, win: CategoricalWindow
    ) -> WindowOutcome | None: ...


class MetricDetector(Detector, Protocol):
    """Watches one numeric series, fed in order. ``false_alarm_events`` is the
    number of values expected between false alarms; the suite sets it from its
    budget."""

    false_alarm_events: float

    def update(self, values: np.ndarray) -> list[ChangeEvent]:
        """Consecutive values in (NaN/inf skipped); detections at positions into them."""
        ...


class ChangeDetector(MetricDetector, Protocol):
    """A metric detector that standardises against a reference mean and
    standard deviation, or against its own warm-up when never calibrated."""

    def calibrate(
        self,
        mean: float,
        std: float,
        false_alarm_events: float | None = None,
        reference_size: int | None = None,
    ) -> None: ...


class MultivariateDetector(Detector, Protocol):
    """Learns the joint structure of the reference's features (``fit``: numeric
    values, and categorical ones coded by their signal's reference), then tests
    each window of them (signal ``features``)."""

    def fit(
        self,
        features: dict[str, np.ndarray],
        seed: int,
        categorical: Mapping[str, CategoricalWindow] | None = None,
    ) -> None: ...

    def test_window(
        self,
        windows: dict[str, NumericWindow],
        categorical: Mapping[str, CategoricalWindow] | None = None,
    ) -> WindowOutcome | None: ...

    def dump(self, stored: Container[str] = frozenset()) -> dict[str, Any]:
        """Plain data; fitted tables whose text's digest is in ``stored`` as
        ``{"$blob": digest}`` (see ``ModelDetectors.dump``)."""
        ...


class ClientDetector(Detector, Protocol):
    """Tests callers over windows of ``window`` requests, at the per-window false
    alarm level the suite grants through ``calibrate``."""

    window: int

    def calibrate(self, window_level: float) -> None: ...

    def update(self, clients: np.ndarray, scores: np.ndarray | None = None) -> list[ClientOutcome]:
        """Callers (None where an event has none) and, if given, scores, in stream order."""
        ...


class InputClientDetector(ClientDetector, Protocol):
    """A client detector that reads the events' numeric inputs too."""

    def update(
        self,
        clients: np.ndarray,
        scores: np.ndarray | None = None,
        inputs: dict[str, np.ndarray] | None = None,
    ) -> list[ClientOutcome]:
        """Callers, scores and numeric inputs (feature -> values), in stream order."""
        ...


class SequentialDetector(Detector, Protocol):
    """Watches every feature at once, block by block: ``fit`` lays it out on the
    features' references and calibrates it to ``false_alarm_events``; ``update``
    takes each segment of the stream (numeric values, categorical reference
    codes) and returns (signal, detection) pairs at positions into it."""

    def fit(
        self,
        numeric: dict[str, NumericReference],
        categorical: dict[str, CategoricalReference],
        false_alarm_events: float | None = None,
    ) -> None: ...

    def update(
        self, numeric: dict[str, np.ndarray], categorical: dict[str, np.ndarray], size: int
    ) -> list[tuple[str, ChangeEvent]]: ...

    def dump(self, stored: Container[str] = frozenset()) -> dict[str, Any]:
        """Plain data; fitted tables whose text's digest is in ``stored`` as
        ``{"$blob": digest}`` (see ``ModelDetectors.dump``)."""
        ...


D = TypeVar("D", bound=Detector, covariant=True)


@dataclass(frozen=True)
class DetectorSpec(Generic[D]):
    """A registered detector: ``factory(**options)`` builds one (a renamed argument
    may come under its earlier name too), ``loader`` restores a dump."""

    name: str
    kind: Kind
    factory: Callable[..., D]
    loader: Callable[[dict[str, Any]], D]
    summary: str


_SPECS: dict[str, DetectorSpec[Detector]] = {}


@overload
def register(
    name: str, kind: Literal["window"], cls: type[WindowDetector], summary: str
) -> None: ...
@overload
def register(
    name: str, kind: Literal["change"], cls: type[ChangeDetector], summary: str
) -> None: ...
@overload
def register(
    name: str, kind: Literal["metric"], cls: type[MetricDetector], summary: str
) -> None: ...
@overload
def register(
    name: str, kind: Literal["multivariate"], cls: type[MultivariateDetector], summary: str
) -> None: ...
@overload
def register(
    name: str, kind: Literal["client"], cls: type[ClientDetector], summary: str
) -> None: ...
@overload
def register(
    name: str, kind: Literal["sequential"], cls: type[SequentialDetector], summary: str
) -> None: ...
def register(name: str, kind: Kind, cls: type[Detector], summary: str) -> None:
    """Add a detector class under ``name`` (its constructor builds it with defaults).

    The class must offer what the suite calls on its kind (mypy checks it).
    """
    if name in _SPECS:
        raise ValueError(f"detector {name!r} is already registered; pick another name")
    _SPECS[name] = DetectorSpec(name, kind, cls.build, cls.load, summary)


@overload
def get(name: str) -> DetectorSpec[Detector]: ...
@overload
def get(name: str, kind: Literal["window"]) -> DetectorSpec[WindowDetector]: ...
@overload
def get(name: str, kind: Literal["change"]) -> DetectorSpec[ChangeDetector]: ...
@overload
def get(name: str, kind: Literal["metric"]) -> DetectorSpec[MetricDetector]: ...
@overload
def get(name: str, kind: Literal["multivariate"]) -> DetectorSpec[MultivariateDetector]: ...
@overload
def get(name: str, kind: Literal["client"]) -> DetectorSpec[ClientDetector]: ...
@overload
def get(name: str, kind: Literal["sequential"]) -> DetectorSpec[SequentialDetector]: ...
def get(name: str, kind: Kind | None = None) -> DetectorSpec[Detector]:
    """The spec registered under ``name``; an unknown name lists the choices.

    With ``kind``, the spec is typed by it, and a detector of another kind is an error.
    """
    try:
        spec = _SPECS[name]
    except KeyError:
        raise ValueError(
            f"unknown detector {name!r}; choose from: {', '.join(sorted(_SPECS))}"
        ) from None
    if kind is not None and spec.kind != kind:
        raise ValueError(f"{name!r} is a {spec.kind} detector, not a {kind} one")
    return spec


def series_spec(name: str) -> DetectorSpec[MetricDetector]:
    """The spec of a detector that can watch a metric series (kind change or metric)."""
    spec = get(name)
    if spec.kind not in SERIES_KINDS:
        raise ValueError(f"{name!r} is a {spec.kind} detector; it cannot watch a metric series")
    return cast(DetectorSpec[MetricDetector], spec)


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
register(
    "metric_anomaly",
    "metric",
    MetricAnomaly,
    "spikes, dips, shifts, trends, variance, flat-lines, gaps of a seasonal metric",
)
register(
    "pca_drift",
    "multivariate",
    PCADrift,
    "PCA reconstruction error of all features (one-hot categoricals)",
)
register("input_range", "window", InputRange, "inputs outside the reference's range (exact)")
register("client_volume", "client", ClientVolume, "a caller's share of traffic far above its own")
register("client_boundary", "client", ClientBoundary, "a caller's scores clustered at the boundary")
register("client_inputs", "client", ClientInputs, "a caller's inputs: sweep, outliers, search")
register("evidence", "sequential", FeatureEvidence, "CUSUMs of every feature's block statistics")

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
    "evidence",
    "client_volume",
    "client_boundary",
    "client_inputs",
)
DEFAULT_METRIC_DETECTORS: tuple[str, ...] = ("metric_anomaly",)
