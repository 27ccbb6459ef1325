"""The shape shared by threshold tests on binned shares (PSI, Jensen-Shannon).

Numeric signals are binned at the reference's quantiles, categorical ones by
label; a subclass says only how far apart the two share vectors are.
"""

from __future__ import annotations

import numpy as np

from detectors.reference import CategoricalReference, NumericReference
from detectors.window.base import (
    CategoricalWindow,
    NumericWindow,
    WindowOutcome,
    WindowTest,
    enough_numeric,
    threshold_outcome,
)
from detectors.window.binning import categorical_shares, numeric_shares


class ShareDistanceTest(WindowTest):
    threshold: float
    critical_effect: float
    bins: int
    min_values: int

    def distance(self, ref_share: np.ndarray, win_share: np.ndarray) -> float:
        raise NotImplementedError

    def _outcome(self, ref_share: np.ndarray, win_share: np.ndarray) -> WindowOutcome:
        value = self.distance(ref_share, win_share)
        details = {"bins": int(ref_share.shape[0])}
        return threshold_outcome(value, self.threshold, self.critical_effect, details)

    def test_numeric(self, ref: NumericReference, win: NumericWindow) -> WindowOutcome | None:
        if not enough_numeric(ref, win, self.min_values):
            return None
        return self._outcome(*numeric_shares(ref, win, self.bins))

    def test_categorical(
        self, ref: CategoricalReference, win: CategoricalWindow
    ) -> WindowOutcome | None:
        if int(win.counts.sum()) < self.min_values:
            return None
        ref_share, win_share = categorical_shares(ref, win)
        if ref_share.shape[0] < 2:
            return None
        return self._outcome(ref_share, win_share)
