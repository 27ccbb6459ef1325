"""The error rate of class predictions: River's ADWIN on the 0/1 error stream.

Of the detectors measured on the 0/1 errors of joined class labels at one
false-alarm budget (``scripts/bench_error_stream.py``: River's binary detectors
DDM, EDDM, HDDM_A, HDDM_W and FHDDM fed label by label, the windowed test of
``performance:accuracy``, and the error stream's block-mean detectors), River's
ADWIN on means of blocks of 50 labels caught a lasting accuracy drop (0.944 to
0.915) soonest, and a temporary rise of the error rate (17.4% to 24.2% for
1,714 labels) in every stream, second only to HDDM_W, which missed most
lasting drops. It runs on every model's class labels, beside the change
detectors the configuration names (which see every error, numbers too).

ADWIN's own bound is far from tight on block means of 0/1 errors: its nominal
``false_alarm_events`` is set from the budget by a factor measured by
simulation on stationary Bernoulli streams at error rates from 1% to 40%
(``scripts/bench_error_stream.py --parts calibration``), so that the labels
between false alarms stay at or above the budget at every one of those rates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.change.adwin import ADWIN
from detectors.change.base import ChangeEvent

DETECTOR = "error_rate"
# Labels between ADWIN's false alarms on stationary 0/1 errors, at the worst error
# rate measured (1%), against its nominal ``false_alarm_events`` n: about
# SCALE * n ** (1 - SHRINK) (364 labels per nominal event at n = 1e4, 267 at 5e4;
# see the module docstring). Its inverse, with a margin, sets n from the budget.
SCALE = 2146.0
SHRINK = 0.193
MARGIN = 1.5
BLOCK = 50  # labels per block mean
WARMUP = 1000  # labels whose mean and spread standardise the blocks


def nominal_events(budget: float) -> float:
    """ADWIN's ``false_alarm_events`` that gives at least ``budget`` labels between
    false alarms on a stationary error rate (measured up to a budget of 1e7;
    beyond it the fitted law is extrapolated)."""
    return float(max((MARGIN * budget / SCALE) ** (1.0 / (1.0 - SHRINK)), 2.0 * BLOCK))


class ErrorRate:
    """River's ADWIN on the 0/1 errors of class labels; findings when errors rise."""

    def __init__(self, budget: float) -> None:
        self.budget = float(budget)
        self.adwin = ADWIN(block=BLOCK, warmup=WARMUP, false_alarm_events=nominal_events(budget))

    def update(self, errors: np.ndarray) -> list[ChangeEvent]:
        """0/1 errors in stream order; the detections of a rising error rate,
        at positions into ``errors``."""
        return [e for e in self.adwin.update(errors) if e.details.get("direction") == "up"]

    def dump(self) -> dict[str, Any]:
        return {"budget": self.budget, "adwin": self.adwin.dump()}

    @classmethod
    def load(cls, state: dict[str, Any]) -> ErrorRate:
        rate = cls(float(state["budget"]))
        rate.adwin = ADWIN.load(state["adwin"])
        return rate
