"""A caller whose inputs do not look like the reference population's: an
extraction sweep, novelty, or adversarial search."""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial
from itertools import compress, repeat
from typing import Any

import numpy as np

from detectors.base import Severity
from detectors.client.base import ClientOutcome, ClientWindowTest, learned
from detectors.client.callers import Callers, span
from detectors.client.input_profile import InputProfile
from detectors.client.tally import NO_SIDE, WindowCounts, WindowTally
from detectors.codec import (
    decode_array,
    decode_float,
    decode_labels,
    encode_array,
    encode_float,
    encode_labels,
)
from detectors.suite.fdr import benjamini_hochberg

# The behaviours, in the order of their per-caller counts after the request count.
BEHAVIOURS = ("coverage", "novelty", "search")


class ClientInputs(ClientWindowTest):
    """A caller whose inputs do not look like the reference population's.

    The first ``window`` requests that carry a client are the reference: each
    numeric feature's tails, outlier quantiles and deciles are learned from
    them (:mod:`detectors.client.input_profile`). From then on, every
    ``window`` requests, each caller with at least ``min_events`` of them (or,
    for a slower caller, as soon as its windows add up to that many) is
    tested on three behaviours, each the share of its requests that:

    - ``coverage``: lie in the outer tails (``tail``) of at least
      ``spread_features`` features at once. An extraction sweep draws each
      input uniformly over its feature's observed range, so its requests cover
      the input space's edges that real traffic rarely visits together.
    - ``novelty``: hold an input the reference would call an outlier (beyond
      its ``novel`` quantiles).
    - ``search``: fall in the same grid cell (deciles of every feature) as the
      caller's previous request but land on the other side of ``boundary``:
      near-identical inputs whose output flips, as adversarial search makes.

    Each share is tested against the caller's own baseline (learned over
    windows, frozen while the caller is flagged), or, for a caller without
    one, against the share in all traffic; never against less than what all
    other callers send in the same window, so a population that drifts is left
    to the drift detectors. The tests are binomial, with a minimum excess
    ``min_excess``; the false discovery rate over all callers and behaviours
    of a window is held at the level the suite's budget grants (Benjamini-
    Hochberg). A caller is reported once per window, with its most
    significant behaviour (``behaviour``) and all flagged ones.

    Parameters
    ----------
    window
        Requests carrying a client per window (the first one is the reference).
    tail
        Quantile marking each feature's outer tails (both sides).
    spread_features
        Features whose tails a request must reach at once to count as spread.
    novel
        Quantile beyond which an input is an outlier (both sides).
    boundary
        The model's decision threshold on the score (for ``search``).
    min_events
        Fewest requests a client needs in a window to be tested.
    min_excess
        Smallest excess over the baseline share that is reported.
    critical_excess
        Excess at or above which a finding is critical rather than a warning.
    warmup_windows
        Windows, the reference's included, that only teach the baselines.
    half_life_windows
        Windows after which a past window's weight in a baseline has halved.
    max_clients
        Most client baselines kept per behaviour (the largest ones).
    max_features
        Most numeric features profiled (the first by name).

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.client import ClientInputs
    >>> rng = np.random.default_rng(0)
    >>> keys = np.array([f"k{i}" for i in range(20)], dtype=object)
    >>> def traffic(n):
    ...     inputs = {f"x{j}": rng.normal(0, 1, n) for j in range(8)}
    ...     return rng.choice(keys, n), rng.beta(2, 5, n), inputs
    >>> watch = ClientInputs(window=1000, warmup_windows=3)
    >>> watch.calibrate(1e-4)
    >>> clients, scores, inputs = traffic(5000)
    >>> watch.update(clients, scores, inputs)
    []

    A new key sweeps every feature uniformly over its range, one request in 20:

    >>> clients, scores, inputs = traffic(1000)
    >>> clients[::20] = "sweeper"
    >>> for x in inputs.values():
    ...     x[::20] = rng.uniform(-4, 4, 50)
    >>> [(o.client, o.behaviour, o.count) for o in watch.update(clients, scores, inputs)]
    [('sweeper', 'coverage', 50)]

    References
    ----------
    .. [1] Tramèr, F., Zhang, F., Juels, A., Reiter, M. K., & Ristenpart, T.
       (2016). Stealing machine learning models via prediction APIs. In *25th
       USENIX Security Symposium* (pp. 601-618).
    .. [2] Juuti, M., Szyller, S., Marchal, S., & Asokan, N. (2019). PRADA:
       protecting against DNN model stealing attacks. In *2019 IEEE European
       Symposium on Security and Privacy* (pp. 512-527).
    .. [3] Chen, S., Carlini, N., & Wagner, D. (2020). Stateful detection of
       black-box adversarial attacks. In *Proceedings of the 1st ACM Workshop
       on Security and Privacy on Artificial Intelligence* (pp. 30-39).
    .. [4] Benjamini, Y., & Hochberg, Y. (1995). Controlling the false
       discovery rate. *Journal of the Royal Statistical Society: Series B*,
       57(1), 289-300.
    """

    name = "client_inputs"
    reads_inputs = True  # the suite passes it the numeric inputs

    def __init__(
        self,
        window: int = 2000,
        tail: float = 0.025,
        spread_features: int = 3,
        novel: float = 0.001,
        boundary: float = 0.5,
        min_events: int = 8,
        min_excess: float = 0.3,
        critical_excess: float = 0.6,
        warmup_windows: int = 3,
        half_life_windows: float = 20.0,
        max_clients: int = 1000,
        max_features: int = 32,
    ) -> None:
        super().__init__(
            window,
            min_events,
            min_excess,
            critical_excess,
            warmup_windows,
            half_life_windows,
            max_clients,
        )
        if not 0 < novel < tail < 0.5:
            raise ValueError(f"need 0 < novel < tail < 0.5, got novel={novel!r}, tail={tail!r}")
        if spread_features < 1 or max_features < 1:
            raise ValueError("spread_features and max_features must be at least 1")
        if not math.isfinite(boundary):
            raise ValueError(f"boundary must be a finite number, got {boundary!r}")
        self.tail = tail
        self.spread_features = spread_features
        self.novel = novel
        self.boundary = boundary
        self.max_features = max_features
        self._profile: InputProfile | None = None
        self._reference: dict[str, list[np.ndarray]] = {}  # rows of the reference window
        self._tally = WindowTally()
        self._slow: dict[str, list[int]] = {}  # caller -> requests and hits over windows
        self._baselines: dict[str, dict[str, float]] = {b: {} for b in BEHAVIOURS}
        self._population: dict[str, float] = dict.fromkeys(BEHAVIOURS, math.nan)
        self._batch: tuple[dict[str, np.ndarray], np.ndarray] | None = None

    # -- feeding ----------------------------------------------------------
    def update(
        self,
        clients: np.ndarray,
        scores: np.ndarray | None = None,
        inputs: dict[str, np.ndarray] | None = None,
    ) -> list[ClientOutcome]:
        """Feed callers (None where an event has none), scores and numeric inputs
        (feature -> values), in stream order; without inputs nothing is counted."""
        if inputs is None:
            return []
        return self.feed(Callers.of(clients), scores, inputs)

    def feed(
        self,
        callers: Callers,
        scores: np.ndarray | None = None,
        inputs: dict[str, np.ndarray] | None = None,
    ) -> list[ClientOutcome]:
        if inputs is None:
            return []
        n = len(callers.codes)
        self._batch = (
            inputs,
            np.full(n, np.nan) if scores is None else np.asarray(scores, dtype=np.float64),
        )
        try:
            return super().feed(callers, scores)
        finally:
            self._batch = None

    def _accumulate(self, callers: Callers, scores: np.ndarray | None, rows: np.ndarray) -> None:
        assert self._batch is not None  # set by feed for the rows it counts
        inputs, score = self._batch
        if self._profile is None:
            self._keep_reference(callers.clients, score, inputs, rows)
            return
        take = span(rows)  # contiguous rows (the usual case): views
        self._count(callers, take, score[take], {k: v[take] for k, v in inputs.items()})

    def _keep_reference(
        self,
        clients: np.ndarray,
        score: np.ndarray,
        inputs: dict[str, np.ndarray],
        rows: np.ndarray,
    ) -> None:
        ref = self._reference
        have = sum(a.shape[0] for a in ref.get("$score", []))
        # "$" marks the caller and score columns: a feature so named is left out
        features = sorted((k, v) for k, v in inputs.items() if not k.startswith("$"))
        for name, col in [("$client", clients), ("$score", score), *features]:
            if name not in ref:  # a feature first seen now was missing before
                ref[name] = [np.full(have, np.nan)]
            dtype = object if name == "$client" else np.float64
            ref[name].append(np.asarray(col, dtype=dtype)[rows])
        for name, parts in ref.items():
            if name not in inputs and not name.startswith("$"):
                parts.append(np.full(len(rows), np.nan))
            if len(parts) > 32:  # tiny batches: few arrays, not one per event
                parts[:] = [np.concatenate(parts)]

    def _count(
        self,
        callers: Callers,
        take: np.ndarray | slice,
        score: np.ndarray,
        inputs: dict[str, np.ndarray],
    ) -> None:
        """Count the events ``take`` of ``callers``, whose scores and inputs are given."""
        assert self._profile is not None
        codes = callers.codes[take]
        x = self._profile.matrix(inputs, len(codes))
        spread, novel = self._profile.marks(x)
        side = np.where(np.isnan(score), NO_SIDE, score >= self.boundary).astype(np.int64)
        self._tally.add(callers.names, codes, spread, novel, partial(self._profile.cells, x), side)

    # -- closing a window -------------------------------------------------
    def _close(self, index: int) -> list[ClientOutcome]:
        if self._profile is None:
            self._fit_reference()
        window = self._tally.table()
        slow = self._gather_slow(window)
        flagged = self._flag(index, window, slow) if self.warm else []
        self._learn_all(window, {o.client for o in flagged})
        self._tally = WindowTally()
        return flagged

    def _gather_slow(self, window: WindowCounts) -> dict[str, list[int]]:
        """Add up the windows of callers too slow to be tested in one; those
        that now reach ``min_events`` leave the sum and are returned (a sweep
        at a fraction of a percent is tested after a few windows). The sum
        keeps the ``max_clients`` callers with most requests."""
        slow = self._slow
        few = window.counts[:, 0] < self.min_events
        callers = list(compress(window.callers, few.tolist()))
        if callers:  # their sums so far plus this window's counts, added in numpy
            none = [0, 0, 0, 0]
            sums = np.array(list(map(slow.get, callers, repeat(none))), dtype=np.int64)
            slow.update(zip(callers, (sums + window.counts[few]).tolist(), strict=True))
        ready = {c: row for c, row in slow.items() if row[0] >= self.min_events}
        for client in ready:
            del slow[client]
        if len(slow) > self.max_clients:
            kept = sorted(slow.items(), key=lambda kv: (-kv[1][0], kv[0]))[: self.max_clients]
            self._slow = dict(kept)
        return ready

    def _fit_reference(self) -> None:
        """Profile the reference window, then count it as the first window."""
        ref = {k: np.concatenate(v) for k, v in self._reference.items()}
        self._reference = {}
        inputs = {k: v for k, v in ref.items() if not k.startswith("$")}
        self._profile = InputProfile.fit(
            inputs, self.tail, self.novel, self.spread_features, self.max_features
        )
        self._count(Callers.of(ref["$client"]), slice(None), ref["$score"], inputs)

    @property
    def warm(self) -> bool:
        return self._windows >= self.warmup_windows

    def _flag(
        self, index: int, window: WindowCounts, slow: dict[str, list[int]]
    ) -> list[ClientOutcome]:
        """Callers of this window with enough requests, and slow ones whose
        windows add up to enough, tested together."""
        if self._profile is None or not self._profile.features:
            return []
        rows = window.where(window.counts[:, 0] >= self.min_events) | slow
        tested = sorted(rows)
        totals = window.counts.sum(axis=0)
        none = [0, 0, 0, 0]
        slots = window.slots
        counts = window.counts.tolist()
        mine_of = [counts[slots[c]] if c in slots else none for c in tested]
        candidates: list[ClientOutcome] = []
        for i, b in self._worth_testing(tested, rows, mine_of, totals):
            client, behaviour = tested[i], BEHAVIOURS[b - 1]
            row, mine = rows[client], mine_of[i]
            others = totals[0] - mine[0]
            now = (totals[b] - mine[b]) / others if others else 0.0
            base = max(self._baselines[behaviour].get(client, self._population[behaviour]), now)
            outcome = self._test(index, client, row[0], row[b], row[0], base, 1.0)
            if outcome is not None:
                candidates.append(replace(outcome, behaviour=behaviour))
        if not candidates:
            return []
        m = len(tested) * len(BEHAVIOURS)
        p = np.array([o.p_value for o in candidates] + [1.0] * (m - len(candidates)))
        keep = benjamini_hochberg(p, self._alpha)[: len(candidates)]
        level = self._alpha * int(keep.sum()) / m  # the largest p-value BH rejects at most
        best: dict[str, ClientOutcome] = {}
        for o, kept in zip(candidates, keep.tolist(), strict=True):
            if kept and (o.client not in best or o.p_value < best[o.client].p_value):
                best[o.client] = replace(o, level=level, severity=self._severity(o))
        return [best[c] for c in sorted(best)]

    def _worth_testing(
        self,
        tested: list[str],
        rows: dict[str, list[int]],
        mine_of: list[list[int]],
        totals: np.ndarray,
    ) -> list[tuple[int, int]]:
        """(caller position in ``tested``, behaviour column) of the shares whose
        excess over their expected share reaches ``min_excess``, in the order
        callers then behaviours: what :meth:`_test` would not dismiss outright,
        computed for all callers at once with the same floating-point steps."""
        if not tested:
            return []
        row = np.array([rows[c] for c in tested], dtype=np.int64)
        mine = np.array(mine_of, dtype=np.int64)
        others = totals[0] - mine[:, :1]
        # callers x behaviours, each column as Python would compute it for one caller
        now = np.zeros((len(tested), len(BEHAVIOURS)))
        np.divide(totals[1:] - mine[:, 1:], others, out=now, where=others != 0)
        known = np.empty_like(now)
        for b, behaviour in enumerate(BEHAVIOURS):
            prior = repeat(self._population[behaviour])
            known[:, b] = np.fromiter(map(self._baselines[behaviour].get, tested, prior), float)
        base = np.where(now > known, now, known)  # max(known, now), NaN kept as Python's
        share = row[:, 1:] / row[:, :1]
        with np.errstate(invalid="ignore"):
            worth = ~np.isnan(base) & ~(share - base < self.min_excess)
        return [(int(i), int(b) + 1) for i, b in zip(*np.nonzero(worth), strict=True)]

    def _severity(self, o: ClientOutcome) -> Severity:
        return "critical" if o.share - o.baseline >= self.critical_excess else "warning"

    def _learn_all(self, window: WindowCounts, frozen: set[str]) -> None:
        enough = window.counts[:, 0] >= self.min_events
        tested = list(compress(window.callers, enough.tolist()))
        free = np.ones(len(window.callers), dtype=bool)
        free[[window.slots[c] for c in frozen if c in window.slots]] = False
        sums = window.counts[free].sum(axis=0).tolist()
        total = sums[0]
        for b, behaviour in enumerate(BEHAVIOURS, start=1):
            shares = (window.counts[enough, b] / window.counts[enough, 0]).tolist()
            if total:
                share = sums[b] / total
                old = self._population[behaviour]
                decay = self.decay
                self._population[behaviour] = (
                    share if math.isnan(old) else decay * old + (1 - decay) * share
                )
            self._baselines[behaviour] = learned(
                self._baselines[behaviour],
                dict(zip(tested, shares, strict=True)),
                frozen,
                absent_is_zero=False,
                prior=self._population[behaviour],
                first=self._windows == 0,
                decay=self.decay,
                max_clients=self.max_clients,
            )

    # -- state ------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        reference = {k: np.concatenate(v) for k, v in self._reference.items()}
        return {
            **self._dump_common(),
            "profile": None if self._profile is None else self._profile.dump(),
            "reference": {
                k: encode_labels(v) if k == "$client" else encode_array(v)
                for k, v in sorted(reference.items())
            },
            **self._tally.dump(),
            "slow": [[c, *row] for c, row in sorted(self._slow.items())],
            "baselines": {
                b: [[c, encode_float(v)] for c, v in sorted(self._baselines[b].items())]
                for b in BEHAVIOURS
            },
            "population": {b: encode_float(self._population[b]) for b in BEHAVIOURS},
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> ClientInputs:
        det = cls.build(**state["params"])
        det._load_common(state)
        if state["profile"] is not None:
            det._profile = InputProfile.load(state["profile"])
        det._reference = {
            k: [decode_labels(v) if k == "$client" else decode_array(v)]
            for k, v in state["reference"].items()
        }
        det._tally = WindowTally.load(state)
        det._slow = {row[0]: [int(v) for v in row[1:]] for row in state["slow"]}
        det._baselines = {
            b: {c: decode_float(v) for c, v in state["baselines"][b]} for b in BEHAVIOURS
        }
        det._population = {b: decode_float(state["population"][b]) for b in BEHAVIOURS}
        return det
