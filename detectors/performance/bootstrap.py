"""CBPE's metrics of many windows drawn from one set of rows, all at once.

The reference's alarm limits and bands come from ``BOOTSTRAP_DRAWS`` windows drawn
from its rows: each window's estimated metrics (``cbpe.estimate``) and its realized
ones with labels drawn from the calibrated probabilities (``cbpe.realized`` of
``cbpe.draw_labels``). Window by window that is a float argsort, a ``np.unique`` and
a dozen small numpy calls per class and window; here each step runs once over a
(draws x window) matrix instead, and each class's scores are ranked once, on the
reference, so that sorting a window is a radix sort of small integers.

The figures are those of ``estimate`` and ``realized`` window by window, bit for bit.
Where the numbers added are fractions, the same numbers are added in the same order
as numpy adds them window by window (see :class:`Segments`); where they are counts
(the realized metrics), every sum is exact in any order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.performance import cbpe

# numpy's stable sort sorts 16-bit integers by radix (linear time), wider ones by
# comparing (~10 times slower here): ranks of more distinct scores than 16 bits hold
# are sorted by two 16-bit passes.
_DIGIT = 16
# Windows are computed this many items at a time: arrays of a few hundred kB stay in
# the caches and are reused by the allocator; arrays of all the windows at once (3 MB
# each at the defaults) are fresh pages each, and faulting them in cost half the time.
BLOCK_ITEMS = 50_000


@dataclass(frozen=True)
class Draws:
    """The random numbers of the bootstrap windows: each window's rows (``take``,
    draws x window row indices) and the uniforms its labels are drawn with (``u``)."""

    take: np.ndarray
    u: np.ndarray

    @classmethod
    def of(cls, rng: np.random.Generator, rows: int, window: int, draws: int) -> Draws:
        """As the window-by-window loop draws them: a window's rows, then its labels'
        uniforms (``cbpe.draw_labels``), then the next window's rows, on one generator."""
        take = np.empty((draws, window), dtype=np.int64)
        u = np.empty((draws, window), dtype=np.float64)
        for d in range(draws):
            take[d] = rng.integers(0, rows, window)
            rng.random(window, out=u[d])  # the same draws, written in place
        return cls(take, u)

    def block(self, start: int, stop: int) -> Draws:
        return Draws(self.take[start:stop], self.u[start:stop])


class Segments:
    """Sums of the consecutive segments of arrays, each as ``np.sum`` adds it alone.

    ``np.sum`` adds pairwise, starting from -0.0; ``np.add.reduceat`` adds a segment's
    first item to the pairwise sum of the rest. So each segment gets a -0.0 in front,
    the item reduceat then starts from, and the sums are ``np.sum``'s bit for bit.
    """

    def __init__(self, lengths: np.ndarray) -> None:
        count = len(lengths)
        before = np.cumsum(lengths) - lengths
        self.heads = before + np.arange(count)  # where each padded segment starts
        self.slots = np.arange(int(lengths.sum())) + np.repeat(np.arange(1, count + 1), lengths)
        self.size = len(self.slots) + count
        self.empty = lengths == 0

    def sums(self, values: np.ndarray) -> np.ndarray:
        padded = np.full(self.size, -0.0)
        padded[self.slots] = values
        sums = np.asarray(np.add.reduceat(padded, self.heads))
        sums[self.empty] = 0.0  # np.sum of nothing is +0.0
        return sums


class Selected:
    """The items a (draws x window) mask selects in each row: their sums per row, as
    ``np.sum`` adds a row's selected items alone (``Segments``' -0.0 in front of each,
    here a first column the mask always selects)."""

    def __init__(self, mask: np.ndarray) -> None:
        draws, window = mask.shape
        self.keep = np.empty((draws, window + 1), dtype=bool)
        self.keep[:, 0] = True
        self.keep[:, 1:] = mask
        lengths = mask.sum(axis=1)
        self.heads = np.cumsum(lengths + 1) - (lengths + 1)
        self.empty = lengths == 0
        self.padded = np.empty((draws, window + 1))
        self.padded[:, 0] = -0.0

    def sums(self, values: np.ndarray) -> np.ndarray:
        """``np.sum(values[d][mask[d]])`` for each row ``d``, bit for bit."""
        self.padded[:, 1:] = values
        sums = np.asarray(np.add.reduceat(self.padded[self.keep], self.heads))
        sums[self.empty] = 0.0  # np.sum of nothing is +0.0
        return sums


def rank(scores: np.ndarray) -> np.ndarray:
    """Each score's rank among the distinct ``scores`` (equal scores, equal ranks): the
    scores' order and ties, in the smallest integer type that holds them."""
    distinct, inverse = np.unique(scores, return_inverse=True)
    return inverse.astype(np.uint16 if len(distinct) <= 1 << _DIGIT else np.uint32)


def stable_order(ranks: np.ndarray) -> np.ndarray:
    """``np.argsort(ranks, axis=1, kind="stable")`` of 16- or 32-bit ranks: the same
    order, a 32-bit rank sorted by its low 16 bits, then stably by its high 16 bits."""
    if ranks.dtype == np.uint16:
        return np.argsort(ranks, axis=1, kind="stable")
    low = (ranks & ((1 << _DIGIT) - 1)).astype(np.uint16)
    by_low = np.argsort(low, axis=1, kind="stable")
    high = np.take_along_axis(ranks >> _DIGIT, by_low, axis=1).astype(np.uint16)
    return np.take_along_axis(by_low, np.argsort(high, axis=1, kind="stable"), axis=1)


@dataclass(frozen=True)
class Ranked:
    """Each window's items sorted by one class's score, and the runs of ties among them."""

    flat: np.ndarray  # where each sorted item sits in the (draws x window) matrix, flat
    starts: np.ndarray  # where each run of ties starts among the sorted items (flat)
    sizes: np.ndarray  # each run's length
    runs: Segments  # each window's runs
    window: int

    @classmethod
    def of(cls, ranks: np.ndarray) -> Ranked:
        """``ranks``: (draws x window) each item's rank by the score among the reference's.
        A stable sort by rank is the stable argsort of the scores: the same order."""
        draws, window = ranks.shape
        order = stable_order(ranks)
        flat = (order + np.arange(0, draws * window, window)[:, None]).ravel()
        ranked = ranks.ravel()[flat].reshape(draws, window)
        first = np.ones((draws, window), dtype=bool)
        first[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
        starts = np.flatnonzero(first)  # each window's first item starts a run
        sizes = np.diff(starts, append=draws * window)
        return cls(flat, starts, sizes, Segments(first.sum(axis=1)), window)

    def auc(self, p: np.ndarray) -> np.ndarray:
        """Per window, ``cbpe._auc_rows(scores, p[None, :])[0]`` (its estimated AUC) for
        the (draws x window) class probabilities ``p``."""
        pos = np.asarray(np.add.reduceat(p.ravel()[self.flat], self.starts))  # alone per run
        neg = self.sizes - pos
        below = self._running_sums(neg) - neg
        right = self.runs.sums(pos * (below + 0.5 * neg))
        return _ratio(right, self.runs.sums(pos) * self.runs.sums(neg))

    def _running_sums(self, values: np.ndarray) -> np.ndarray:
        """``np.cumsum`` of each window's runs' ``values``: along the rows of a matrix
        holding each run's value where it starts and zeros elsewhere. Adding a zero leaves
        a running sum as it was (none is -0.0: ``neg`` is a count less a sum at most as
        large), and no window's sum carries into the next, as on the flat array."""
        spread = np.zeros(len(self.flat))
        spread[self.starts] = values
        running = np.cumsum(spread.reshape(-1, self.window), axis=1)
        return np.asarray(running.ravel()[self.starts])

    def realized_auc(self, truth: np.ndarray) -> np.ndarray:
        """Per window, ``cbpe._auc_rows(scores, truth[None, :])[0]`` for the (draws x
        window) 0/1 ``truth``, by the rank sum: a positive item counts the negatives below
        it and half those tied with it, which is its mid-rank less the positives up to it
        (twice that, in integers). The float sums there add counts and halves of counts,
        all exact: the same two numbers, the same ratio."""
        # Twice each sorted item's mid-rank: its run's first and last ranks (1-based), added.
        within = self.starts % self.window
        twice_rank = np.repeat(2 * within + self.sizes + 1, self.sizes).reshape(-1, self.window)
        positive = truth.ravel()[self.flat].reshape(-1, self.window)
        count = positive.sum(axis=1)
        twice_right = np.where(positive, twice_rank, 0).sum(axis=1) - count * (count + 1)
        pairs = count * (self.window - count)
        return _ratio(twice_right / 2, pairs.astype(np.float64))


def _ratio(right: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """``right / pairs``, NaN where there are no pairs (a class absent), as ``_auc_rows``."""
    out = np.full(len(pairs), np.nan)
    np.divide(right, pairs, out=out, where=pairs > 0)
    return out


def drawn_labels(calibrated: np.ndarray, draws: Draws) -> np.ndarray:
    """``cbpe.draw_labels`` of each window (draws x window class indices)."""
    k = calibrated.shape[1]
    # Row by row cumulative sums: a window's rows' sums are the reference rows' ones.
    cumulative = np.cumsum(calibrated, axis=1)
    # Counts of at most K: small integers, a quarter of the memory to go through.
    drawn = np.zeros(draws.take.shape, dtype=np.int16 if k < 1 << 15 else np.int64)
    for c in range(k):  # a class at a time: a (draws x window x K) cube can be large
        drawn += draws.u >= cumulative[:, c][draws.take]
    return np.asarray(np.minimum(drawn, k - 1))


def metrics(
    calibrated: np.ndarray,
    raw: np.ndarray,
    predicted: np.ndarray,
    positive: int,
    draws: Draws,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per window of ``draws``: ``cbpe.estimate`` of its rows, and ``cbpe.realized`` of
    its rows with labels drawn by ``cbpe.draw_labels`` (each metric an array, a value
    per window)."""
    classes = cbpe.classes(calibrated.shape[1], positive)
    ranks = {c: rank(raw[:, c]) for c in classes}
    confidence = calibrated[np.arange(len(predicted)), predicted]
    step = max(BLOCK_ITEMS // draws.take.shape[1], 1)
    parts = [
        _block(calibrated, confidence, predicted, ranks, draws.block(lo, lo + step))
        for lo in range(0, len(draws.take), step)
    ]
    estimated = {m: np.concatenate([part[0][m] for part in parts]) for m in cbpe.METRICS}
    realized = {m: np.concatenate([part[1][m] for part in parts]) for m in cbpe.METRICS}
    return estimated, realized


def _block(
    calibrated: np.ndarray,
    confidence: np.ndarray,
    predicted: np.ndarray,
    ranks: dict[int, np.ndarray],
    draws: Draws,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """:func:`metrics` of a block of windows (``confidence``: each reference row's
    probability of its predicted class; ``ranks``: each class's ranks of the rows)."""
    take = draws.take
    chosen = predicted[take]
    labels = drawn_labels(calibrated, draws)
    f1s: list[np.ndarray] = []
    aucs: list[np.ndarray] = []
    real_f1s: list[np.ndarray] = []
    real_aucs: list[np.ndarray] = []
    for c, ranked_c in ranks.items():
        p, is_c, true_c = calibrated[:, c][take], chosen == c, labels == c
        predicted_c = Selected(is_c)
        tp, fp = predicted_c.sums(p), predicted_c.sums(1 - p)
        f1s.append(cbpe.f1(tp, fp, Selected(~is_c).sums(p)))
        real_f1s.append(_counted_f1(is_c, true_c))
        ranked = Ranked.of(ranked_c[take])
        aucs.append(ranked.auc(p))
        real_aucs.append(ranked.realized_auc(true_c))
    estimated = {
        "accuracy": confidence[take].mean(axis=1),
        "f1": _macro(f1s),
        "roc_auc": _macro(aucs),
    }
    realized = {
        "accuracy": (chosen == labels).mean(axis=1),
        "f1": _macro(real_f1s),
        "roc_auc": _macro(real_aucs),
    }
    return estimated, realized


def _counted_f1(is_c: np.ndarray, true_c: np.ndarray) -> np.ndarray:
    """Per window, F1 from the counts of the predicted and the true class (exact)."""
    tp = (is_c & true_c).sum(axis=1).astype(np.float64)
    fp = (is_c & ~true_c).sum(axis=1).astype(np.float64)
    fn = (~is_c & true_c).sum(axis=1).astype(np.float64)
    return cbpe.f1(tp, fp, fn)


def _macro(per_class: list[np.ndarray]) -> np.ndarray:
    """The mean over the classes per window: a row's mean adds as ``np.mean`` of its list."""
    return np.asarray(np.column_stack(per_class).mean(axis=1))
