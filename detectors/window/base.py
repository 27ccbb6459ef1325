"""What a windowed two-sample test sees and returns.

The suite fills one event-count window per signal; when it is full every test
attached to that signal compares it with the signal's reference. Tests hold
no state beyond their parameters, so a window's outcome depends only on the
window's values and the reference: that is what makes them batch-invariant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from detectors.base import DetectorBase, Severity
from detectors.reference import MISSING_CODE, CategoricalReference, NumericReference

NUMERIC = "numeric"
CATEGORICAL = "categorical"

# Signal roles a test may attach to.
FEATURE = "feature"
SCORE = "score"
PREDICTION = "prediction"  # class labels
PREDICTION_VALUE = "prediction_value"  # regression outputs


@dataclass
class NumericWindow:
    """One full window of a numeric signal; NaN marks missing/invalid events."""

    values: np.ndarray

    def __post_init__(self) -> None:
        self._finite = np.isfinite(self.values)
        self.n = int(self.values.shape[0])
        self.missing = self.n - int(np.count_nonzero(self._finite))
        self._on_grid: tuple[NumericReference, np.ndarray] | None = None

    @cached_property
    def sorted(self) -> np.ndarray:
        """The finite values, sorted (computed once, on first use)."""
        return np.sort(self.values if self.missing == 0 else self.values[self._finite])

    def on_grid(self, ref: NumericReference) -> np.ndarray:
        """The sorted finite values on ``ref``'s grid (see
        :meth:`NumericReference.project`), computed once for the tests that
        compare them with ``ref.grid``: a raw value would lose its ties with the
        reference's rounded values and gain ranks against them."""
        kept = self._on_grid
        if kept is None or kept[0] is not ref:
            kept = self._on_grid = (ref, ref.project(self.sorted))
        return kept[1]


@dataclass
class CategoricalWindow:
    """One full window of a categorical signal as reference codes."""

    codes: np.ndarray
    reference: CategoricalReference

    def __post_init__(self) -> None:
        present = self.codes[self.codes != MISSING_CODE]
        self.n = int(self.codes.shape[0])
        self.missing = self.n - int(present.shape[0])
        # counts per reference label, then one for labels the reference lacks
        self.counts = np.bincount(present, minlength=self.reference.unknown_code + 1)


@dataclass(frozen=True)
class WindowOutcome:
    """A test's verdict on one window.

    Tests with a p-value leave the decision to the suite (Benjamini-Hochberg
    across every signal of the window); threshold tests set ``exceeded``.
    """

    statistic: float
    effect_size: float
    severity: Severity
    p_value: float | None = None
    threshold: float | None = None
    exceeded: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    # Extra details for reports (the distributions compared), built only when the
    # outcome becomes a finding: most windows raise none, so most never pay for it.
    plot_details: Callable[[], dict[str, Any]] | None = field(
        default=None, compare=False, repr=False
    )


class WindowTest(DetectorBase):
    """Base of the windowed tests: parameters are the whole state."""

    kinds: ClassVar[frozenset[str]] = frozenset()
    roles: ClassVar[frozenset[str]] = frozenset({FEATURE, SCORE, PREDICTION, PREDICTION_VALUE})

    def test_numeric(self, ref: NumericReference, win: NumericWindow) -> WindowOutcome | None:
        raise NotImplementedError(f"{self.name} does not test numeric signals")

    def test_categorical(
        self, ref: CategoricalReference, win: CategoricalWindow
    ) -> WindowOutcome | None:
        raise NotImplementedError(f"{self.name} does not test categorical signals")


def enough_numeric(ref: NumericReference, win: NumericWindow, min_values: int) -> bool:
    """Both the window and the reference hold at least ``min_values`` finite values."""
    return win.sorted.shape[0] >= min_values and ref.size >= min_values


def threshold_outcome(
    value: float, threshold: float, critical_effect: float, details: dict[str, Any]
) -> WindowOutcome:
    """The verdict of a threshold test whose statistic is its effect size."""
    return WindowOutcome(
        statistic=value,
        effect_size=value,
        severity=severity_for(value, critical_effect),
        threshold=threshold,
        exceeded=value >= threshold,
        details=details,
    )


def severity_for(effect: float, critical_effect: float) -> Severity:
    """Critical when the effect size reaches ``critical_effect``, else warning."""
    return "critical" if abs(effect) >= critical_effect else "warning"


def significant(x: float, digits: int = 6) -> float:
    """``x`` rounded to ``digits`` significant digits: compact, and the same on every run."""
    return float(f"{x:.{digits}g}")


def require_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}; pass a positive number")


def require_probability(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}; pass e.g. 0.05")
