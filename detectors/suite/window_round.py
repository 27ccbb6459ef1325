"""One full window: every test on every signal it fits, in a fixed order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from detectors.registry import MultivariateDetector, WindowDetector
from detectors.suite.fdr import benjamini_hochberg
from detectors.suite.signals import CategoricalSignal, NumericSignal
from detectors.window.base import (
    CATEGORICAL,
    FEATURE,
    NUMERIC,
    CategoricalWindow,
    NumericWindow,
    WindowOutcome,
)

Outcomes = list[tuple[str, str, WindowOutcome]]  # (detector, signal, outcome)


Windows = tuple[dict[str, NumericWindow], dict[str, CategoricalWindow]]


def evaluate_window(
    numeric: dict[str, NumericSignal],
    categorical: dict[str, CategoricalSignal],
    tests: Sequence[tuple[str, WindowDetector]],
    multivariate: Mapping[str, MultivariateDetector],
) -> tuple[Outcomes, Windows]:
    """Take each signal's full window and run the tests on it; the outcomes and the windows."""
    windows = (
        {name: sig.take_window() for name, sig in numeric.items()},
        {name: csig.take_window() for name, csig in categorical.items()},
    )
    return test_windows(windows, numeric, categorical, tests, multivariate), windows


def test_windows(
    windows: Windows,
    numeric: dict[str, NumericSignal],
    categorical: dict[str, CategoricalSignal],
    tests: Sequence[tuple[str, WindowDetector]],
    multivariate: Mapping[str, MultivariateDetector],
) -> Outcomes:
    """Run the tests on one window of each signal.

    Order is signals (numeric, then categorical, by name) then tests (as
    configured), then multivariate tests on signal "features" (every numeric
    and categorical feature): the order of the findings of one window.
    """
    outcomes: Outcomes = []
    nwindows, cwindows = windows
    for name, sig in numeric.items():
        for test_name, test in tests:
            if NUMERIC in test.kinds and sig.role in test.roles:
                o = test.test_numeric(sig.reference, nwindows[name])
                if o is not None:
                    outcomes.append((test_name, name, o))
    for name, csig in categorical.items():
        cwin = cwindows[name]
        for test_name, test in tests:
            if CATEGORICAL in test.kinds and csig.role in test.roles:
                o = test.test_categorical(csig.reference, cwin)
                if o is not None:
                    outcomes.append((test_name, name, o))
    features = {k: w for k, w in nwindows.items() if numeric[k].role == FEATURE}
    cfeatures = {k: w for k, w in cwindows.items() if categorical[k].role == FEATURE}
    for multi_name, det in multivariate.items():
        o = det.test_window(features, cfeatures)
        if o is not None:
            outcomes.append((multi_name, "features", o))
    return outcomes


def without_rows(windows: Windows, keep: np.ndarray) -> Windows:
    """The windows with only the rows where ``keep`` is true."""
    nwindows, cwindows = windows
    return (
        {k: NumericWindow(w.values[keep]) for k, w in nwindows.items()},
        {k: CategoricalWindow(w.codes[keep], w.reference) for k, w in cwindows.items()},
    )


def fit_multivariate(
    multivariate: Mapping[str, MultivariateDetector],
    numeric: dict[str, tuple[str, np.ndarray]],
    categorical: dict[str, CategoricalSignal],
    categorical_values: dict[str, tuple[str, np.ndarray]],
    seed: int,
) -> None:
    """Fit the multivariate tests on the reference sample's features (``numeric``
    and ``categorical_values``: signal name -> (role, column)), the categorical
    ones coded by their signal's reference, as their windows will be."""
    num = {k: v for k, (role, v) in numeric.items() if role == FEATURE}
    cat = {
        k: CategoricalWindow(sig.reference.encode(categorical_values[k][1]), sig.reference)
        for k, sig in categorical.items()
        if sig.role == FEATURE
    }
    for det in multivariate.values():
        det.fit(num, seed, cat)


def decide(outcomes: Outcomes, q: float) -> list[tuple[str, str, WindowOutcome, float | None]]:
    """The violated outcomes, in order, each with the threshold it broke.

    P-values are judged together by Benjamini-Hochberg at level ``q`` (their
    threshold is the BH cut-off); threshold tests by their own verdict.
    """
    tested = [i for i, (_, _, o) in enumerate(outcomes) if o.p_value is not None]
    pvals = np.array([outcomes[i][2].p_value for i in tested], dtype=np.float64)
    rejected = benjamini_hochberg(pvals, q)
    cutoff = q * int(rejected.sum()) / max(len(tested), 1)
    violated = {i for i, r in zip(tested, rejected.tolist(), strict=True) if r}
    violated |= {i for i, (_, _, o) in enumerate(outcomes) if o.exceeded}
    out = []
    for i in sorted(violated):
        name, signal, o = outcomes[i]
        out.append((name, signal, o, cutoff if o.p_value is not None else o.threshold))
    return out
