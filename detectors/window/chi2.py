"""Chi-square test of homogeneity between window and reference label counts."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from detectors.reference import CategoricalReference
from detectors.window.base import (
    CATEGORICAL,
    FEATURE,
    PREDICTION,
    CategoricalWindow,
    WindowOutcome,
    WindowTest,
    require_positive,
    severity_for,
    significant,
)

PLOT_LABELS = 12


def pooled_bins(
    ref: CategoricalReference, win: CategoricalWindow, min_expected: float
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Reference and window counts over labels frequent enough for the test.

    A label whose reference share would give the window fewer than
    ``min_expected`` events joins one "other" bin with unseen labels: the
    chi-square approximation is poor for small expected counts, and rare
    labels are what the ``unseen`` test is for.
    """
    ref_counts, win_counts, index = pooled_counts(ref, win, min_expected)
    return ref_counts, win_counts, [bin_label(ref, i) for i in index.tolist()]


def pooled_counts(
    ref: CategoricalReference, win: CategoricalWindow, min_expected: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`pooled_bins` with each bin's reference label index (-1: the pooled
    bin) instead of its name: no list of a thousand labels built per window."""
    ref_present = int(ref.counts.sum()) + ref.dropped
    win_present = int(win.counts.sum())
    if ref_present == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.intp)
    keep = ref.counts * (win_present / ref_present) >= min_expected
    ref_counts = np.append(ref.counts[keep], ref.counts[~keep].sum() + ref.dropped)
    win_known = win.counts[:-1]
    win_counts = np.append(win_known[keep], win_known[~keep].sum() + win.counts[-1])
    index = np.append(np.flatnonzero(keep), -1)
    nonempty = (ref_counts + win_counts) > 0
    return (
        ref_counts[nonempty].astype(np.float64),
        win_counts[nonempty].astype(np.float64),
        index[nonempty],
    )


def bin_label(ref: CategoricalReference, index: int) -> str:
    """The label of a bin of :func:`pooled_counts`."""
    return ref.labels[index] if index >= 0 else "(other)"


def homogeneity_chi2(ref_counts: np.ndarray, win_counts: np.ndarray) -> tuple[float, int]:
    """Pearson statistic and degrees of freedom of the 2 x k table (no continuity correction)."""
    table = np.vstack([ref_counts, win_counts])
    total = table.sum()
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / total
    stat = float(((table - expected) ** 2 / expected).sum())
    return stat, int(table.shape[1] - 1)


def share_summary(
    ref: CategoricalReference, win: CategoricalWindow, k: int = PLOT_LABELS
) -> dict[str, Any]:
    """Reference and window shares of at most ``k`` labels, for drawing the two mixes.

    The ``k - 1`` labels with the largest share on either side, in reference
    order (ties by that order too), then "(other)" for the rest: labels beyond
    them, beyond the reference's cap, or new in the window.
    """
    ref_total = int(ref.counts.sum()) + ref.dropped
    win_total = int(win.counts.sum())
    ref_share = ref.counts / max(ref_total, 1)
    win_share = win.counts[:-1] / max(win_total, 1)
    largest = np.maximum(ref_share, win_share)
    top = np.sort(np.argsort(-largest, kind="stable")[: k - 1])
    labels = [ref.labels[i] for i in top.tolist()]
    ref_kept = [float(ref_share[i]) for i in top.tolist()]
    win_kept = [float(win_share[i]) for i in top.tolist()]
    ref_other = 1.0 - sum(ref_kept) if ref_total else 0.0
    win_other = 1.0 - sum(win_kept) if win_total else 0.0
    if len(labels) < len(ref.labels) or ref.dropped or int(win.counts[-1]):
        labels.append("(other)")
        ref_kept.append(max(ref_other, 0.0))
        win_kept.append(max(win_other, 0.0))
    return {
        "share_labels": labels,
        "reference_shares": [significant(v) for v in ref_kept],
        "window_shares": [significant(v) for v in win_kept],
    }


class ChiSquare(WindowTest):
    """Chi-square test of homogeneity: has the label mix of a categorical signal
    (a feature, the predicted classes) changed from its reference?

    Pearson's statistic on the 2 x k table of reference and window counts;
    labels too rare for the window to expect ``min_expected`` of them, and
    labels the reference never showed, share one bin. The p-value is judged by
    the suite with the window's other p-values. The effect size is the total
    variation distance between the two label mixes (0..1).

    Parameters
    ----------
    critical_effect
        Total variation distance at or above which a finding is critical rather
        than a warning.
    min_expected
        Fewest window events a label's reference share must promise for the
        label to keep a bin of its own.
    min_values
        Fewest present (not missing) labels the window needs to be tested.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.reference import CategoricalReference
    >>> from detectors.window import CategoricalWindow, ChiSquare
    >>> rng = np.random.default_rng(0)
    >>> colours = np.array(["red", "green", "blue"], dtype=object)
    >>> reference = CategoricalReference.build(
    ...     rng.choice(colours, 5000, p=[0.5, 0.3, 0.2]), max_categories=100
    ... )
    >>> def window(p):
    ...     values = rng.choice(colours, 1000, p=p)
    ...     return CategoricalWindow(reference.encode(values), reference)
    >>> chi2 = ChiSquare()
    >>> same = chi2.test_categorical(reference, window([0.5, 0.3, 0.2]))
    >>> print(f"p = {same.p_value:.2f}")
    p = 0.68

    A tenth of the traffic moves from red to blue:

    >>> mixed = chi2.test_categorical(reference, window([0.4, 0.3, 0.3]))
    >>> print(f"p = {mixed.p_value:.0e}, most changed: {mixed.details['most_changed']}")
    p = 3e-09, most changed: blue

    References
    ----------
    .. [1] Pearson, K. (1900). On the criterion that a given system of deviations
       from the probable in the case of a correlated system of variables is such
       that it can be reasonably supposed to have arisen from random sampling.
       *The London, Edinburgh, and Dublin Philosophical Magazine and Journal of
       Science*, 50(302), 157-175.
    """

    name = "chi2"
    kinds = frozenset({CATEGORICAL})
    roles = frozenset({FEATURE, PREDICTION})

    def __init__(
        self, critical_effect: float = 0.2, min_expected: float = 5.0, min_values: int = 30
    ) -> None:
        require_positive("critical_effect", critical_effect)
        require_positive("min_expected", min_expected)
        if min_values < 1:
            raise ValueError(f"min_values must be >= 1, got {min_values!r}")
        self.critical_effect = critical_effect
        self.min_expected = min_expected
        self.min_values = min_values

    def test_categorical(
        self, ref: CategoricalReference, win: CategoricalWindow
    ) -> WindowOutcome | None:
        if int(win.counts.sum()) < self.min_values:
            return None
        ref_counts, win_counts, index = pooled_counts(ref, win, self.min_expected)
        if ref_counts.shape[0] < 2:
            return None
        stat, dof = homogeneity_chi2(ref_counts, win_counts)
        p = float(special.chdtrc(dof, stat))
        ref_share = ref_counts / ref_counts.sum()
        win_share = win_counts / win_counts.sum()
        moved = np.abs(win_share - ref_share)
        tv = float(0.5 * moved.sum())
        top = int(np.argmax(moved))
        return WindowOutcome(
            statistic=stat,
            effect_size=tv,
            severity=severity_for(tv, self.critical_effect),
            p_value=p,
            details={
                "dof": dof,
                "most_changed": bin_label(ref, int(index[top])),
                "share_reference": float(ref_share[top]),
                "share_window": float(win_share[top]),
            },
            plot_details=lambda: share_summary(ref, win),
        )
