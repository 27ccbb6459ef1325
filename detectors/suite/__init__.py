"""One model's detector suite: settings, signals and their references' windows,
the window round and its false-discovery control, alarm states, and the error
stream from late labels; :mod:`detectors.suite.model_detectors` ties them together.

Nothing is imported here: the per-kind runners (:mod:`detectors.client.watch`,
:mod:`detectors.metric.series`) use the suite's settings and alarm states, and
the suite uses them, so importing the whole suite on the way would be circular.
"""
