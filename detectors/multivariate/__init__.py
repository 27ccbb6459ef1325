"""Tests on the joint distribution of the numeric features (kind ``multivariate``)."""
