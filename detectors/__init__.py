"""Driftwarden's statistics: drift, change and anomaly detectors.

Pure: numpy and scipy only. No Kafka, SQLite, HTTP, clock or config
files. A detector gets values (and event times) and returns findings, and dumps
its state to plain data so that a restart or a replay continues exactly.
"""
