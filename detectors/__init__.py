"""Driftwarden's statistics: drift, change and anomaly detectors.

Pure: numpy and scipy only. No Kafka, SQLite, HTTP, clock or config
files. A detector gets values (and event times) and returns findings, and dumps
its state to plain data so that a restart or a replay continues exactly.

One subpackage per kind of detector, one detector per module: :mod:`~detectors.window`
(two-sample tests on event-count windows), :mod:`~detectors.change` (sequential
change detectors), :mod:`~detectors.client` (per-caller tests),
:mod:`~detectors.metric` (serving-metric series), :mod:`~detectors.multivariate`.
:mod:`~detectors.suite` runs them for one model; :mod:`~detectors.registry` names
them and says what each kind offers. Every detector derives from
:class:`detectors.base.DetectorBase`.
"""
