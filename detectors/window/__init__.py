"""Windowed two-sample tests: each full event-count window of a signal against
the signal's reference (kind ``window``). Each test is a :class:`WindowTest`
on :class:`NumericWindow` or :class:`CategoricalWindow` values."""

from detectors.window.base import CategoricalWindow, NumericWindow, WindowOutcome, WindowTest
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

__all__ = [
    "CategoricalWindow",
    "ChiSquare",
    "ConfidenceDrop",
    "CramerVonMises",
    "InputRange",
    "JensenShannon",
    "KolmogorovSmirnov",
    "MissingRate",
    "NormalisedWasserstein",
    "NumericWindow",
    "OutputRange",
    "PopulationStability",
    "UnseenShare",
    "WindowOutcome",
    "WindowTest",
]
