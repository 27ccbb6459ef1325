"""Serving-metric series (latency, QPS, ...) and their anomaly detector (kind ``metric``)."""
