"""One model's detectors: the integration point of the service.

``ModelDetectors`` takes a model's rows (features, score, prediction, caller),
the labels that come later, and its serving-metric series, and returns
findings (their signals and details: see :mod:`detectors.suite`). Findings
depend only on the stream, never on how it was cut into batches: windows close
by event count, change detectors run on value-count blocks, and every finding
carries the time of the event at which it was made. ``dump``/``load`` capture
the whole state as plain data, so a restart or a replay continues exactly.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Container, Sequence
from typing import Any

import numpy as np

from detectors import registry
from detectors.base import Finding, RowBatch, SignalChange
from detectors.change.base import ChangeEvent
from detectors.client.watch import MAX_ATTRIBUTED, ClientWatch, attribution
from detectors.codec import decode_float, encode_float
from detectors.metric.series import MetricSeries
from detectors.performance.estimated import (
    EstimatedPerformance,
    Scored,
    ScoredRow,
    WindowResult,
)
from detectors.performance.segments import CodedRows
from detectors.reference import CategoricalReference, NumericReference
from detectors.registry import (
    ChangeDetector,
    MultivariateDetector,
    SequentialDetector,
    WindowDetector,
)
from detectors.suite.alarms import AlarmTracker
from detectors.suite.caps import NameCap, StreamCaps, admit_columns
from detectors.suite.error_stream import ErrorWatch, JoinedLabels
from detectors.suite.settings import SuiteSettings
from detectors.suite.signals import (
    CategoricalSignal,
    NumericSignal,
    WarmupRows,
    categorical_columns,
    numeric_columns,
)
from detectors.suite.window_round import (
    Outcomes,
    Windows,
    decide,
    evaluate_window,
    fit_multivariate,
    test_windows,
    without_rows,
)
from detectors.window.base import FEATURE

CHANGE_SERIES = ("score", "prediction_value")
DEFAULT_SETTINGS = SuiteSettings()
_CHANGE, _WINDOW, _CLIENT = 0, 1, 2


class ModelDetectors:
    """Every detector of one model, fed micro-batches of its stream."""

    def __init__(self, settings: SuiteSettings = DEFAULT_SETTINGS, seed: int = 0) -> None:
        self.settings = settings
        self.seed = seed
        names = settings.row_detectors
        self._tests: list[tuple[str, WindowDetector]] = [
            (n, settings.build(n)) for n in names if registry.get(n).kind == "window"
        ]
        self._change_names = [n for n in names if registry.get(n).kind == "change"]
        self._multi_names = [n for n in names if registry.get(n).kind == "multivariate"]
        self._evidence_names = [n for n in names if registry.get(n).kind == "sequential"]
        self._events = 0
        self._warmup: WarmupRows | None = WarmupRows()
        self._numeric: dict[str, NumericSignal] = {}
        self._categorical: dict[str, CategoricalSignal] = {}
        self._change: dict[str, dict[str, ChangeDetector]] = {}
        self._multi: dict[str, MultivariateDetector] = {}
        self._evidence: dict[str, SequentialDetector] = {}
        self._window_start_ts = math.nan
        self._fill = 0
        # The callers of the current window's events (None: no caller), to tell at the
        # window's close whether a flagged caller's requests explain a drift finding.
        self._window_clients = np.full(settings.window, None, dtype=object)
        self._alarms = AlarmTracker(recover_after=settings.recover_windows * settings.window)
        self._tested: list[SignalChange] = []  # the windows' evaluations since take_changes()
        self._metrics: dict[str, MetricSeries] = {}
        self._clients = ClientWatch(settings)
        self._errors = ErrorWatch(settings, self._change_names)
        # At most one window per reference: a small reference makes small windows.
        estimated_window = min(settings.estimated_window, settings.reference_size)
        self._estimated = EstimatedPerformance(
            estimated_window, settings.reference_size, recover_windows=settings.recover_windows
        )
        self.caps = StreamCaps(settings)
        # The last batch given to observe_rows, the first of its rows past the warm-up, and
        # the reference codes of its categorical features from there (a copy per window
        # segment): what ``category_codes`` hands on, so nothing codes them twice.
        self._coded: tuple[RowBatch, int, dict[str, list[np.ndarray]]] | None = None

    # -- reference ------------------------------------------------------
    @property
    def has_reference(self) -> bool:
        return self._warmup is None

    @property
    def rows_observed(self) -> int:
        """Rows (prediction/input events) observed so far, warm-up included."""
        return self._events

    @property
    def feature_filter(self) -> set[str] | frozenset[str]:
        """The feature names worth turning into columns: during the warm-up the
        admitted ones (the same set object, growing as names are admitted), after
        it those of the reference, the only ones the detectors read."""
        if self._warmup is not None:
            return self.caps.features.names
        roles = [(k, s.role) for k, s in self._numeric.items()]
        roles += [(k, s.role) for k, s in self._categorical.items()]
        return frozenset(k.removeprefix("feature:") for k, role in roles if role == FEATURE)

    def feature_references(self) -> dict[str, NumericReference | CategoricalReference]:
        """Each input feature's reference by feature name (none during the warm-up)."""
        refs: dict[str, NumericReference | CategoricalReference] = {}
        for k, s in self._numeric.items():
            if s.role == FEATURE:
                refs[k.removeprefix("feature:")] = s.reference
        for k, c in self._categorical.items():
            if c.role == FEATURE:
                refs[k.removeprefix("feature:")] = c.reference
        return refs

    def set_reference(self, batch: RowBatch) -> None:
        """Use ``batch`` as the baseline (instead of the stream's warm-up) from now on.

        Batches longer than ``reference_size`` are subsampled (seeded). Windows,
        change detectors and alarm states restart.
        """
        if len(batch) < 2:
            raise ValueError("the reference batch needs at least 2 events; pass a larger sample")
        self.caps.features = NameCap(self.settings.max_features)
        batch, _ = admit_columns(batch, self.caps.features, len(batch))
        rows = WarmupRows()
        rows.add(batch, 0, len(batch))
        self._build_reference(*rows.columns(self.settings.reference_size, self.seed))

    def _build_reference(
        self,
        num: dict[str, tuple[str, np.ndarray]],
        cat: dict[str, tuple[str, np.ndarray]],
    ) -> None:
        s = self.settings
        self._warmup = None
        self._numeric = {
            k: NumericSignal(r, NumericReference.build(v), s.window)
            for k, (r, v) in sorted(num.items())
        }
        self._categorical = {
            k: CategoricalSignal(r, CategoricalReference.build(v, s.max_categories), s.window)
            for k, (r, v) in sorted(cat.items())
        }
        series = [
            k for k in CHANGE_SERIES if k in self._numeric and self._numeric[k].reference.size > 1
        ]
        instances = len(series) * len(self._change_names)
        self._evidence = {name: s.build(name) for name in self._evidence_names}
        self._change = {}
        for key in series:
            ref = self._numeric[key].reference
            self._change[key] = {}
            for name in self._change_names:
                det = s.build(name)
                det.calibrate(ref.mean, ref.std, self._change_budget() * instances, ref.size)
                self._change[key][name] = det
        self._multi = {name: s.build(name) for name in self._multi_names}
        fit_multivariate(self._multi, num, self._categorical, cat, self.seed)
        features = {k: s.reference for k, s in self._numeric.items() if s.role == FEATURE}
        categories = {k: s.reference for k, s in self._categorical.items() if s.role == FEATURE}
        for ev_det in self._evidence.values():
            # a share of the false-alarm rate: events between false alarms grow
            share = self._budget_share("sequential") / len(self._evidence)
            ev_det.fit(features, categories, s.false_alarm_events / share)
        self._window_start_ts = math.nan
        self._fill = 0
        self._alarms = AlarmTracker(recover_after=s.recover_windows * s.window)

    def _budget_share(self, kind: str) -> float:
        """The share of the false-alarm budget one kind of row detector gets:
        the windowed tests half (all when alone), the change detectors and the
        sequential evidence the other half, split when both run."""
        sequential = [bool(self._change), bool(self._evidence)]
        if kind == "window":
            return 0.5 if any(sequential) else 1.0
        return 0.5 / sum(sequential) if sequential[kind == "sequential"] else 0.0

    def _change_budget(self) -> float:
        """Events between false alarms granted to all change detectors together:
        their share of the false-alarm rate, so the events grow as the share shrinks."""
        return self.settings.false_alarm_events / self._budget_share("change")

    def _window_level(self) -> float:
        """Benjamini-Hochberg level of one window's tests."""
        return (
            self._budget_share("window") * self.settings.window / self.settings.false_alarm_events
        )

    # -- rows -----------------------------------------------------------
    def observe_rows(self, batch: RowBatch) -> list[Finding]:
        """Feed the next events of the model; return the findings they raise."""
        n = len(batch)
        warmup_rows = 0 if self._warmup is None else self.settings.reference_size - self._warmup.n
        given = batch
        batch, dropped = admit_columns(batch, self.caps.features, warmup_rows)
        self.caps.features_dropped += dropped
        columns = {**batch.numeric, **batch.categorical}
        for name, opt in (
            ("score", batch.score),
            ("prediction", batch.prediction),
            ("prediction_value", batch.prediction_value),
        ):
            if opt is not None:
                columns[name] = opt
        for name, col in columns.items():
            if len(col) != n:
                raise ValueError(
                    f"column {name!r} has {len(col)} values for {n} events; fix the batch"
                )
        out: list[Finding] = []
        self._coded = None
        start = 0
        while start < n:
            if self._warmup is not None:
                take = min(n - start, self.settings.reference_size - self._warmup.n)
                self._warmup.add(batch, start, start + take)
                out += self._observe_clients(batch, start, start + take)
                self._alarms.resolve_due(self._events + take - 1, self._moment(batch, start, take))
                self._events += take
                start += take
                if self._warmup.n >= self.settings.reference_size:
                    self._build_reference(*self._warmup.columns())
                continue
            take = min(n - start, self.settings.window - self._fill)
            if self._coded is None:
                self._coded = (given, start, {})
            out += self._segment(batch, start, start + take, self._fill)
            start += take
        if self._clients.detectors:
            out = self._clients.attribute(out, self._events - 1)
        return out

    def forget_batch(self) -> None:
        """Let go of the last batch observed, once ``category_codes`` is done with it:
        kept until the next one, its columns would stay in memory (~0.3 MB a model of 20
        features) between flushes."""
        self._coded = None

    def category_codes(self, batch: RowBatch) -> CodedRows | None:
        """For ``batch``, the last batch observed: the first of its rows past the warm-up,
        and each categorical feature's reference and the codes of its rows from there
        (``CategoricalReference.encode``'s). None for another batch or none past it."""
        if self._coded is None or self._coded[0] is not batch:
            return None
        _, first, parts = self._coded
        codes = {}
        for name, pieces in parts.items():
            if len(pieces) > 1:
                parts[name] = pieces = [np.concatenate(pieces)]
            codes[name.removeprefix("feature:")] = (self._categorical[name].reference, pieces[0])
        return first, codes

    def _observe_clients(self, batch: RowBatch, start: int, stop: int) -> list[Finding]:
        """The client detectors' findings on events [start, stop) of ``batch``, whose
        first is event ``self._events`` of the stream: run segment by segment, before
        the segment's window closes, so alarm states never depend on the batching."""
        if batch.client is None or not self._clients.detectors:
            return []
        scores = None if batch.score is None else batch.score[start:stop]
        inputs = {name: column[start:stop] for name, column in batch.numeric.items()}
        clients = batch.client[start:stop]
        ts = batch.ts[start:stop]
        return self._clients.observe(clients, scores, ts, self._events, self._alarms, inputs)

    def _moment(self, batch: RowBatch, start: int, size: int) -> Callable[[int], float]:
        """Event time of stream event ``index`` for the events [start, start + size) of
        ``batch``, the first being event ``self._events``: where an alarm state changes."""
        first, ts = self._events, batch.ts

        def moment(index: int) -> float:
            return float(ts[start + min(max(index - first, 0), size - 1)])

        return moment

    def _segment(self, batch: RowBatch, start: int, stop: int, filled: int) -> list[Finding]:
        size = stop - start
        if filled == 0:
            self._window_start_ts = float(batch.ts[start])
        keyed: list[tuple[int, int, int, Finding]] = []
        num_cols, cat_cols = numeric_columns(batch), categorical_columns(batch)
        for name, sig in self._numeric.items():
            col = num_cols.get(name)
            sig.push(None if col is None else col[1][start:stop], size)
        coded = None if self._coded is None else self._coded[2]
        for name, csig in self._categorical.items():
            ccol = cat_cols.get(name)
            csig.push(None if ccol is None else ccol[1][start:stop], size)
            if coded is not None and ccol is not None and csig.role == FEATURE:
                coded.setdefault(name, []).append(csig.buffer[csig.fill - size : csig.fill].copy())
        self._window_clients[filled : filled + size] = (
            None if batch.client is None else batch.client[start:stop]
        )
        moment = self._moment(batch, start, size)
        changes = [(k, name, det) for k, dets in self._change.items() for name, det in dets.items()]
        detected = [
            (ev.index, order, name, series, ev)
            for order, (series, name, det) in enumerate(changes)
            for ev in det.update(
                np.full(size, np.nan) if series not in num_cols else num_cols[series][1][start:stop]
            )
        ]
        if self._evidence:  # the segment's values, as the signals' windows hold them
            features = {k: s.buffer[s.fill - size : s.fill] for k, s in self._numeric.items()}
            codes = {k: s.buffer[s.fill - size : s.fill] for k, s in self._categorical.items()}
        for order, (name, ev_det) in enumerate(self._evidence.items(), start=len(changes)):
            detected += [
                (ev.index, order, name, signal, ev)
                for signal, ev in ev_det.update(features, codes, size)
            ]
        detected.sort(key=lambda t: t[:2])  # in stream order, whichever detector found it
        for at, order, name, series, ev in detected:
            f = self._change_finding(name, series, ev, moment)
            if f is not None:
                keyed.append((at, _CHANGE, order, f))
        for f in self._observe_clients(batch, start, stop):
            keyed.append((int(f.details["event_index"]) - self._events, _CLIENT, 0, f))
        last = self._events + size - 1
        self._events += size
        self._fill += size
        if self._fill == self.settings.window:
            self._fill = 0
            for order, f in enumerate(self._close_window(float(batch.ts[stop - 1]))):
                keyed.append((size - 1, _WINDOW, order, f))
        self._alarms.resolve_due(last, moment)
        keyed.sort(key=lambda t: t[:3])
        return [f for *_, f in keyed]

    def _change_finding(
        self, name: str, signal: str, ev: ChangeEvent, moment: Callable[[int], float]
    ) -> Finding | None:
        index = self._events + ev.index
        ts = moment(index)
        self._alarms.resolve_due(index - 1, moment)  # a test at ``index`` itself decides it
        state = self._alarms.report(f"{name}|{signal}", ev.severity, index, ts)
        if state is None:
            return None
        extra = {"state": state, "event_index": index, **self._surging(index)}
        return ev.finding(name, signal, ts, extra)

    def _surging(self, index: int) -> dict[str, Any]:
        """The details naming the callers that send far more than their share of the
        window so far (up to stream event ``index``), for a finding made before the
        window closes: a burst of search moves the fast detectors before any caller
        is flagged at the window's close."""
        so_far = self._window_clients[: index - (self._events - self._fill) + 1]
        surging = self._clients.surging(so_far) if self._clients.detectors else {}
        if not surging:
            return {}
        named = sorted(surging, key=lambda c: (-surging[c], c))[:MAX_ATTRIBUTED]
        flagged = {c: (surging[c], {"client_volume"}) for c in named}
        return {**attribution(named, surging, flagged), "attribution": "surging caller"}

    def _close_window(self, ts: float) -> list[Finding]:
        index = self._events - 1
        outcomes, windows = evaluate_window(
            self._numeric, self._categorical, self._tests, self._multi
        )
        level = self._window_level()
        violated = {(t, sig): (o, th) for t, sig, o, th in decide(outcomes, level)}
        explained = self._explained(violated, windows, level, index) if violated else {}
        lone_cutoff = level / max(sum(o.p_value is not None for *_, o in outcomes), 1)
        findings = []
        for test_name, signal, o in outcomes:
            broke = violated.get((test_name, signal))
            key = f"{test_name}|{signal}"
            state = None if broke is None else self._alarms.report(key, o.severity, index, ts)
            threshold = broke[1] if broke is not None else o.threshold
            if o.p_value is not None and broke is None:
                threshold = lone_cutoff  # the p-value a lone violation would need
            self._tested.append(
                SignalChange(
                    "tested",
                    test_name,
                    signal,
                    ts,
                    o.severity if broke is not None else "info",
                    firing=broke is not None or self._alarms.is_firing(key),
                    statistic=o.statistic,
                    threshold=threshold,
                    p_value=o.p_value,
                    effect_size=o.effect_size,
                )
            )
            if state is None:
                continue
            details = {
                "state": state,
                "event_index": index,
                "window_events": self.settings.window,
                "window_start_ts": self._window_start_ts,
                "fdr_level": level,
                **o.details,
                **(o.plot_details() if o.plot_details is not None else {}),
                **explained.get(key, {}),
            }
            findings.append(
                Finding(
                    detector=test_name,
                    signal=signal,
                    event_ts=ts,
                    severity=o.severity,
                    statistic=o.statistic,
                    threshold=threshold,
                    p_value=o.p_value,
                    effect_size=o.effect_size,
                    details=details,
                )
            )
        self._alarms.expire(index, ts)  # after recover_windows clean windows, at this close
        return findings

    def _explained(
        self, violated: dict[tuple[str, str], Any], windows: Windows, level: float, index: int
    ) -> dict[str, dict[str, Any]]:
        """The violations of this window that its flagged callers' requests explain
        (by ``test|signal``): the window's tests, run again without those requests,
        no longer find them. Each gets the details naming those callers."""
        flagged = self._clients.flagged(index)
        if not flagged:
            return {}
        callers = self._window_clients
        present = np.fromiter((c in flagged for c in callers), dtype=bool, count=len(callers))
        if not present.any():
            return {}
        counts = Counter(callers[present].tolist())
        ranked = sorted(counts, key=lambda c: (-counts[c], c))[:MAX_ATTRIBUTED]
        explained: dict[str, dict[str, Any]] = {}
        # Each caller alone first (most requests first), then all of them together.
        for named in [[c] for c in ranked] + [ranked] * (len(ranked) > 1):
            keep = np.fromiter((c not in named for c in callers), dtype=bool, count=len(callers))
            again: Outcomes = test_windows(
                without_rows(windows, keep),
                self._numeric,
                self._categorical,
                self._tests,
                self._multi,
            )
            still = {(t, sig) for t, sig, *_ in decide(again, level)}
            shares = {c: counts[c] / self.settings.window for c in named}
            details = {
                **attribution(named, shares, flagged),
                "attribution": "passes without their requests",
            }
            for t, sig in violated:
                if (t, sig) not in still:
                    explained.setdefault(f"{t}|{sig}", details)
            if len(explained) == len(violated):
                break
        return explained

    def take_changes(self) -> list[SignalChange]:
        """Every signal evaluation and state change since the last call (see
        :class:`detectors.base.SignalChange`); the alerts are the findings."""
        changes, self._tested = self._tested, []
        changes += self._alarms.take_changes()
        changes += self._errors.alarms.take_changes()
        changes += self._estimated.take_changes()
        for series in self._metrics.values():
            changes += series.alarms.take_changes()
        return changes

    # -- labels ---------------------------------------------------------
    def observe_labels(self, joined: JoinedLabels) -> list[Finding]:
        """Labels joined to their predictions (by the service); the error stream's findings."""
        return self._errors.observe(joined)

    # -- performance estimated without labels -----------------------------
    def observe_scored(self, events: list[Scored]) -> list[Finding]:
        """Scored predictions and labels, interleaved in stream order (CBPE)."""
        return self._estimated.observe(events)

    def set_scored_reference(self, events: Sequence[ScoredRow]) -> int:
        """CBPE's reference from trusted scored predictions and their labels (see
        ``EstimatedPerformance.set_reference``); the predictions taken, 0 for none."""
        return self._estimated.set_reference(events)

    def observe_scored_rows(self, rows: Sequence[ScoredRow]) -> list[Finding]:
        """``observe_scored`` for ``Scored``'s fields as tuples (the service's hot path)."""
        return self._estimated.observe_rows(rows)

    def take_performance_windows(self) -> list[WindowResult]:
        """Estimated and realized performance of the windows closed since the last call."""
        return self._estimated.take_results()

    # -- metric series --------------------------------------------------
    def observe_metric(self, name: str, ts: np.ndarray, values: np.ndarray) -> list[Finding]:
        """Feed the next points of one serving-metric series (latency_ms, qps, ...)."""
        ts = np.asarray(ts, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        if ts.shape != values.shape or ts.ndim != 1:
            raise ValueError(f"metric {name!r}: ts and values must be 1-d of equal length")
        series = self._metrics.get(name)
        if series is None:
            if not self.caps.metrics.admit(name):
                self.caps.metric_points_dropped += int(values.shape[0])
                return []
            series = MetricSeries.create(self.settings)
            self._metrics[name] = series
        return series.observe(f"metric:{name}", ts, values)

    # -- state ----------------------------------------------------------
    def dump(self, stored: Container[str] = frozenset()) -> dict[str, Any]:
        """The whole state as plain JSON-able data.

        ``stored``: digests of texts the caller keeps apart; references and
        fitted tables with those texts are dumped as ``{"$blob": digest}`` (for
        the store, which puts the texts back before :meth:`load`).
        """
        return {
            "version": 1,
            "settings": self.settings.dump(),
            "seed": self.seed,
            "events": self._events,
            "warmup": None if self._warmup is None else self._warmup.dump(),
            "numeric": {k: s.dump(stored) for k, s in self._numeric.items()},
            "categorical": {k: s.dump() for k, s in self._categorical.items()},
            "change": {k: {n: d.dump() for n, d in v.items()} for k, v in self._change.items()},
            "multivariate": {k: d.dump(stored) for k, d in self._multi.items()},
            "sequential": {k: d.dump(stored) for k, d in self._evidence.items()},
            "window_start_ts": encode_float(self._window_start_ts),
            "fill": self._fill,
            "window_clients": self._window_clients[: self._fill].tolist(),
            "alarms": self._alarms.dump(),
            "metrics": {k: m.dump() for k, m in self._metrics.items()},
            "clients": self._clients.dump(),
            "errors": self._errors.dump(),
            **self.caps.dump(),
            "estimated": self._estimated.dump(),
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> ModelDetectors:
        """Rebuild from :meth:`dump` output (after a JSON round trip or not)."""
        if state.get("version") != 1:
            raise ValueError(f"unsupported state version {state.get('version')!r}; expected 1")
        settings = SuiteSettings.load(state["settings"])
        md = cls(settings, seed=state["seed"])
        window = settings.window
        md._events = state["events"]
        md._warmup = None if state["warmup"] is None else WarmupRows.load(state["warmup"])
        md._numeric = {k: NumericSignal.load(v, window) for k, v in state["numeric"].items()}
        md._categorical = {
            k: CategoricalSignal.load(v, window) for k, v in state["categorical"].items()
        }
        md._change = {
            k: {n: registry.get(n, "change").loader(d) for n, d in v.items()}
            for k, v in state["change"].items()
        }
        md._multi = {
            k: registry.get(k, "multivariate").loader(d) for k, d in state["multivariate"].items()
        }
        md._evidence = {
            k: registry.get(k, "sequential").loader(d)
            for k, d in state.get("sequential", {}).items()
        }
        md._window_start_ts = decode_float(state["window_start_ts"])
        md._fill = state["fill"]
        callers = state.get("window_clients", [None] * md._fill)  # a state saved before callers
        md._window_clients[: md._fill] = [None if c is None else str(c) for c in callers]
        md._alarms = AlarmTracker.load(state["alarms"])
        md._metrics = {k: MetricSeries.load(v) for k, v in state["metrics"].items()}
        md._clients.restore(state.get("clients", {}))
        md._errors.restore(state.get("errors"), md._alarms)
        md.caps = StreamCaps.load(settings, state)
        if state.get("estimated") is not None:  # a state saved before it starts afresh
            md._estimated = EstimatedPerformance.load(state["estimated"])
        return md
