"""The reference's empirical CDF of every numeric feature, as one binned table.

A value is mapped to its mid-rank in the reference (the probability integral
transform): ``u = (count below + half the count equal) / n``. Under the null
``u`` has mean exactly 1/2 whatever the feature's shape, and ``|2u - 1|``
(how far out in either tail) a mean and variance read off the reference
itself, ties and discrete values included. The transform is computed on at
most 255 bin edges per feature: every distinct value of a reference with few
of them (exact mid-ranks), quantiles of a continuous one (u resolved to 1/256,
which costs a test of location or scale a negligible share of its power).
Values are binned by a lookup in equal cells of each feature's range (see
:mod:`detectors.sequential.cells`): three numpy lookups and a comparison for
every feature at once. A feature whose edges crowd a few cells (a heavy tail)
is binned by a branchless binary search over a (features x edges) table
instead, 8 numpy steps for all such features.

The edges are taken from the reference's float32 grid (see
:mod:`detectors.reference`) and kept as their float64 thresholds: a raw value
is at or above a threshold exactly when its projection on the grid is at or
above the grid value, so raw values are binned as projected ones would be
(ties with reference values kept), without projecting them.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.codec import FixedArrays, decode_array
from detectors.reference import NumericReference, thresholds_of
from detectors.sequential.cells import CellGrid

EDGES = 255  # per feature, padded with +inf; 2**8 - 1 so the search takes 8 halvings


def _edges(values: np.ndarray) -> np.ndarray:
    """Bin edges of one sorted finite reference (its grid): its distinct values when
    few, else quantiles."""
    distinct: np.ndarray = values[np.concatenate([[True], values[1:] != values[:-1]])]
    if distinct.shape[0] <= EDGES + 1:
        return distinct[1:]
    n = values.shape[0]
    quantiles: np.ndarray = np.unique(values[(np.arange(1, EDGES + 1) * n) // (EDGES + 1)])
    return quantiles


@dataclass
class RankTable:
    """Edges and mid-ranks of the reference bins of ``F`` numeric features.

    ``edges`` is (F, EDGES), ``ranks`` (F, EDGES + 1): the mid-rank of each bin
    (bin ``j`` holds the values with ``j`` edges at or below them).
    """

    edges: np.ndarray  # float64 thresholds of grid values (see the module docstring)
    ranks: np.ndarray
    _fixed: FixedArrays = field(default_factory=FixedArrays, repr=False, compare=False)
    _grid: CellGrid | None = field(default=None, repr=False, compare=False)
    # The references the table was built from, for ``null_moments``; none once loaded.
    _sources: tuple[NumericReference, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def build(cls, references: list[NumericReference]) -> RankTable:
        edges = np.full((len(references), EDGES), np.inf)
        ranks = np.full((len(references), EDGES + 1), 0.5)
        on_grid = [_edges(ref.grid) if ref.size else np.zeros(0) for ref in references]
        for f, (ref, e, t) in enumerate(
            zip(references, on_grid, thresholds_of(references, on_grid), strict=True)
        ):
            if ref.size == 0:
                continue
            edges[f, : e.shape[0]] = t
            counts = np.bincount(np.searchsorted(e, ref.grid, "right"), minlength=EDGES + 1)
            below = np.concatenate([[0], np.cumsum(counts)[:-1]])
            ranks[f] = (below + 0.5 * counts) / ref.size
        return cls(edges, ranks, _sources=tuple(references))

    @property
    def features(self) -> int:
        return int(self.edges.shape[0])

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Mid-ranks of ``x`` (features x events); NaN where ``x`` is not finite."""
        grid = self._grid
        if grid is None:  # built once per table, on first use (a table never changes)
            grid = self._grid = CellGrid.build(self.edges)
        if grid.searched.shape[0] == 0:
            u: np.ndarray = self.ranks.take(grid.bins(x))
        else:
            u = np.empty(x.shape)
            if grid.gridded.shape[0]:
                u[grid.gridded] = self.ranks.take(grid.bins(x[grid.gridded]))
            u[grid.searched] = self._search(x[grid.searched], grid.searched)
        u[~np.isfinite(x)] = np.nan
        return u

    def _search(self, x: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Mid-ranks of ``x`` (these features x events) by a branchless binary search
        over every feature's edges at once: 8 numpy steps."""
        n = x.shape[1]
        flat = self.edges.ravel()
        feature = features[:, None]
        # position in the flattened edges: the feature's first edge plus the
        # number of its edges found at or below x so far
        pos = np.repeat(feature * EDGES, n, axis=1)
        step = (EDGES + 1) // 2
        with np.errstate(invalid="ignore"):
            while step >= 1:
                # the edge ``step - 1`` beyond pos, read through a view that starts
                # there rather than by adding the offset to every position
                pos += (flat[step - 1 :][pos] <= x) * step
                step //= 2
        found: np.ndarray = self.ranks.ravel()[pos + feature]  # row f starts at f * (EDGES + 1)
        return found

    def null_moments(self, references: list[NumericReference]) -> dict[str, np.ndarray]:
        """Per feature: variance of u, mean and variance of |2u - 1|, and how many
        distinct bins the reference fills, all over the reference's own values.

        The references the table was built from are binned on their grid, as
        ``build`` counted them (exactly as their raw values would be); others by
        their values back in float64 (within their grid's rounding)."""
        var_u, mean_a, var_a, bins = (np.zeros(self.features) for _ in range(4))
        for f, ref in enumerate(references):
            if ref.size == 0:
                continue
            if f < len(self._sources) and ref is self._sources[f]:
                index = np.searchsorted(_edges(ref.grid), ref.grid, "right")
            else:
                index = np.searchsorted(self.edges[f], ref.float_values(), "right")
            u = self.ranks[f][index]
            a = np.abs(2 * u - 1)
            var_u[f] = float(np.mean((u - 0.5) ** 2))
            mean_a[f] = float(np.mean(a))
            var_a[f] = float(np.var(a))
            # The distinct u are the mid-ranks of the bins hit: at most EDGES + 1 to sort,
            # not every value of the reference.
            hit = np.bincount(index, minlength=EDGES + 1) > 0
            bins[f] = float(np.unique(self.ranks[f][hit]).shape[0])
        return {"var_u": var_u, "mean_a": mean_a, "var_a": var_a, "bins": bins}

    def dump(self, stored: Container[str] = frozenset()) -> dict[str, Any]:
        """Plain data; the tables named by digest where ``stored`` has them."""
        return {
            "edges": self._fixed.dump("edges", self.edges, stored),
            "ranks": self._fixed.dump("ranks", self.ranks, stored),
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> RankTable:
        return cls(decode_array(state["edges"]), decode_array(state["ranks"]))
