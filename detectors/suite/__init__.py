"""One model's detector suite: settings, signals and their references' windows,
the window round and its false-discovery control, alarm states, and the error
stream from late labels; :mod:`detectors.suite.model_detectors` ties them together.

Findings name the registered detector (``Finding.detector``: "ks", "chi2",
"missing_rate", "cusum", "metric_anomaly", ...) and the signal it watched
(``Finding.signal``):

- ``feature:<name>``: an input feature, numeric or categorical;
- ``score``: the model's score/confidence; ``prediction``: its predicted
  class labels; ``prediction_value``: its numeric (regression) output;
- ``features``: the numeric features jointly (multivariate tests);
- ``error``: the model's error, from labels joined to its predictions;
- ``client:<id>``: one caller (per-client tests);
- ``metric:<name>``: a serving-metric series given to ``observe_metric``.

``details`` always holds ``state`` ("alarm" for a new alarm, "escalated" when
an alarm's severity rose) and ``event_index`` (rows and labels) or
``point_index`` (metrics), the 0-based position of the deciding event in its
stream. Windowed findings add ``window_events``, ``window_start_ts`` and
``fdr_level``; per-client findings ``window_events``, ``requests``, ``share``
and ``baseline_share``; change detectors ``direction`` and ``block``; metric
anomalies ``kind`` ("spike", "dip", "level_shift", "trend_change",
"variance_change", "flat_line", "gap").

Nothing is imported here: the per-kind runners (:mod:`detectors.client.watch`,
:mod:`detectors.metric.series`) use the suite's settings and alarm states, and
the suite uses them, so importing the whole suite on the way would be circular.
"""
