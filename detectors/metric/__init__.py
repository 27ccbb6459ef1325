"""Serving-metric series (latency, QPS, ...) and their anomaly detector (kind ``metric``).

:mod:`detectors.metric.series` runs the detectors of one series for a model's suite."""

from detectors.metric.anomaly import MetricAnomaly

__all__ = ["MetricAnomaly"]
