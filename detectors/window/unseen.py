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
    """Binomial test of the window's unseen-label share against Good-Turing.

    The reference's unseen mass is estimated by Good-Turing (labels seen once,
    plus labels beyond the category cap, over the reference size), so a
    long-tailed feature that always brings new values does not alarm. Effect
    size is the excess share; below ``min_effect`` nothing is reported.
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
