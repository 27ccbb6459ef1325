"""Tests on the joint distribution of the numeric features (kind ``multivariate``)."""

from detectors.multivariate.pca_drift import PCADrift

__all__ = ["PCADrift"]
