"""Where each request's inputs fall in the reference population, per request.

A profile is learned once, from the numeric inputs of a reference period: per
feature, the quantiles that mark its outer tails, its extremes and a coarse
grid. Each request then gets three cheap flags, computed with numpy for a
whole batch at once:

- ``spread``: at least ``spread_features`` of its inputs lie in their
  feature's outer tails (outside the ``tail`` and ``1 - tail`` quantiles). A
  sweep that draws every input uniformly over its feature's observed range
  lands in the tails of many features at once; real requests seldom do.
- ``novel``: some input lies beyond what the reference would call an outlier
  (outside the ``novel`` and ``1 - novel`` quantiles).
- ``cell``: a hash of the grid cell (feature deciles) the request falls in,
  so two requests in one cell are near-duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.codec import decode_array, encode_array

GRID = np.linspace(0.1, 0.9, 9)  # decile cut points: ten cells per feature


@dataclass(frozen=True)
class InputFlags:
    """Per request: in the tails of many features, an outlier, its grid cell."""

    spread: np.ndarray  # bool
    novel: np.ndarray  # bool
    cell: np.ndarray  # uint64


class InputProfile:
    """Tail, outlier and grid quantiles of each numeric feature of a reference."""

    def __init__(self, features: tuple[str, ...], cuts: np.ndarray, spread_features: int) -> None:
        self.features = features
        # rows: tail low, tail high, novel low, novel high, then the grid cut points
        self.cuts = cuts
        self.spread_features = spread_features
        rng = np.random.default_rng(len(features))
        self._weights = rng.integers(1, 2**63, size=len(features), dtype=np.uint64) | 1
        # C order, so that comparing a batch against them runs over contiguous memory
        self._cuts = np.ascontiguousarray(cuts)
        self._grid = self._cuts[4:]
        # With each feature's cut points in order (as quantiles are), a value's
        # cell is the count of cut points below it: one comparison for the whole
        # batch. Cut points out of order (a hand-edited state) keep the search.
        self._ordered = bool(np.all(self._grid[1:] >= self._grid[:-1]))

    @classmethod
    def fit(
        cls,
        inputs: dict[str, np.ndarray],
        tail: float,
        novel: float,
        spread_features: int,
        max_features: int,
    ) -> InputProfile:
        """The profile of ``inputs`` (feature -> values): features mostly finite
        and not constant, at most ``max_features`` (by name)."""
        probs = np.concatenate([[tail, 1 - tail, novel, 1 - novel], GRID])
        names, columns = [], []
        for name in sorted(inputs):
            x = np.asarray(inputs[name], dtype=np.float64)
            finite = x[np.isfinite(x)]
            if finite.shape[0] < max(10, x.shape[0] // 2) or finite.min() == finite.max():
                continue
            names.append(name)
            columns.append(np.quantile(finite, probs))
            if len(names) == max_features:
                break
        cuts = np.array(columns).T if columns else np.zeros((probs.shape[0], 0))
        return cls(tuple(names), cuts, spread_features)

    def matrix(self, inputs: dict[str, np.ndarray], n: int) -> np.ndarray:
        """Requests x profiled features; a feature absent from ``inputs`` is NaN.

        Each feature's values are contiguous (the transpose of a features x
        requests array): :meth:`flags` compares them row by row, in loops as
        long as the batch rather than as short as the feature count.
        """
        out = np.full((len(self.features), n), np.nan)
        for j, name in enumerate(self.features):
            col = inputs.get(name)
            if col is not None:
                out[j] = col
        return out.T

    def flags(self, x: np.ndarray) -> InputFlags:
        """The flags of each row of ``x`` (from :meth:`matrix`)."""
        spread, novel = self.marks(x)
        return InputFlags(spread, novel, self.cells(x))

    def marks(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``spread`` and ``novel`` of each row of ``x`` (from :meth:`matrix`)."""
        xt = x.T  # features x requests
        c = self._cuts[:, :, None]  # each cut point against a feature's row
        with np.errstate(invalid="ignore"):
            tails = (xt < c[0]) | (xt > c[1])
            novel = ((xt < c[2]) | (xt > c[3])).any(axis=0)
        # a count per request: bytes summed as bytes, when the features fit in one
        wide = xt.shape[0] > np.iinfo(np.uint8).max
        dtype = np.int64 if wide else np.uint8
        spread = tails.view(np.uint8).sum(axis=0, dtype=dtype) >= min(
            self.spread_features, max(1, x.shape[1])
        )
        return spread, novel

    def cells(self, x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """The grid cell (a hash) of each row of ``x`` (from :meth:`matrix`), or of
        its ``rows``: the search detector needs the cells of few requests."""
        xt = x.T if rows is None else x.T[:, rows]  # features x requests, C order
        with np.errstate(invalid="ignore"):
            cells = self._cells(xt)
        cells[np.isnan(xt)] = len(GRID) + 1  # missing: a cell of its own
        # wraps modulo 2**64, whatever the order of the sum
        cell: np.ndarray = np.einsum("j,jn->n", self._weights, cells.astype(np.uint64))
        return cell

    def _cells(self, xt: np.ndarray) -> np.ndarray:
        """Each value's decile cell (features x requests): the number of its
        feature's cut points strictly below it."""
        grid = self._grid
        if self._ordered:
            below: np.ndarray = np.add.reduce(grid[:, :, None] < xt[None], axis=0, dtype=np.uint8)
            return below
        cells = np.empty(xt.shape, dtype=np.uint8)
        for j in range(xt.shape[0]):
            cells[j] = np.searchsorted(grid[:, j], xt[j], side="left")
        return cells

    def dump(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "cuts": encode_array(self.cuts),
            "spread_features": self.spread_features,
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> InputProfile:
        return cls(tuple(state["features"]), decode_array(state["cuts"]), state["spread_features"])
