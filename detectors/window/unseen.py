"""Share of labels the reference never showed (new categories, new classes)."""

from __future__ import annotations

from scipy import stats

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
)


class UnseenShare(WindowTest):
    """Share of labels the reference never showed: new categories, new classes.

    A one-sided binomial test of the window's share of unseen labels against
    the share the reference leads one to expect, its Good-Turing unseen mass
    (labels seen once, plus labels beyond the category cap, over the
    reference's size): a long-tailed feature that always brings new values
    does not alarm. The effect size is the excess share; below ``min_effect``
    the window is not reported. Runs on categorical features and predicted
    classes.

    Parameters
    ----------
    critical_effect
        Excess share at or above which a finding is critical rather than a warning.
    min_effect
        Excess share below which the window is never reported (p-value 1).

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.reference import CategoricalReference
    >>> from detectors.window import CategoricalWindow, UnseenShare
    >>> rng = np.random.default_rng(0)
    >>> devices = np.array([f"dev{i}" for i in range(50)], dtype=object)
    >>> reference = CategoricalReference.build(rng.choice(devices, 5000), max_categories=1000)
    >>> def window(values):
    ...     return CategoricalWindow(reference.encode(values), reference)
    >>> unseen = UnseenShare()
    >>> same = unseen.test_categorical(reference, window(rng.choice(devices, 1000)))
    >>> print(same.details["unseen"], same.p_value)
    0 1.0

    One event in twenty comes from a device never seen before:

    >>> values = rng.choice(devices, 1000)
    >>> values[::20] = [f"new{i}" for i in range(50)]
    >>> fresh = unseen.test_categorical(reference, window(values))
    >>> print(f"{fresh.details['unseen']} unseen, p = {fresh.p_value:.0e}")
    50 unseen, p = 9e-101

    References
    ----------
    .. [1] Good, I. J. (1953). The population frequencies of species and the
       estimation of population parameters. *Biometrika*, 40(3-4), 237-264.
    """

    name = "unseen"
    kinds = frozenset({CATEGORICAL})
    roles = frozenset({FEATURE, PREDICTION})

    def __init__(self, critical_effect: float = 0.2, min_effect: float = 0.01) -> None:
        require_positive("critical_effect", critical_effect)
        require_positive("min_effect", min_effect)
        self.critical_effect = critical_effect
        self.min_effect = min_effect

    def test_categorical(
        self, ref: CategoricalReference, win: CategoricalWindow
    ) -> WindowOutcome | None:
        present = int(win.counts.sum())
        ref_present = int(ref.counts.sum()) + ref.dropped
        if present == 0 or ref_present == 0:
            return None
        unseen = int(win.counts[-1])
        p0 = min(1.0, (ref.singletons + ref.dropped + 1) / (ref_present + 1))
        share = unseen / present
        effect = share - p0
        # below min_effect nothing is reported, so skip the exact tail
        p = 1.0 if effect < self.min_effect else float(stats.binom.sf(unseen - 1, present, p0))
        return WindowOutcome(
            statistic=share,
            effect_size=effect,
            severity=severity_for(effect, self.critical_effect),
            p_value=p,
            details={"unseen": unseen, "present": present, "expected_share": p0},
        )
