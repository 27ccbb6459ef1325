"""A lookup that bins values against a table of sorted edges without searching.

Each feature's range, from its first to its last finite edge, is cut into
equal cells, and a value's cell computed by a few float operations (subtract,
multiply, clip, truncate). Those keep order whatever the rounding: a larger
value never gets an earlier cell. Computing the edges' cells by the very same
operations, the edges in the cells before a value's are below it and those in
later cells above it, so where no cell holds more than one edge a value's bin
is the number of edges in the cells before its own, plus one if its cell's edge
is at or below it: three lookups and a comparison instead of eight halvings.

A feature whose edges crowd (a heavy tail: most edges within a few cells of a
range set by the rest) keeps the binary search: it gets up to
``max(SIZES)`` cells, then none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Cells per feature, tried in turn until none holds more than one edge: 16 to 64
# per edge of 255 (int32, 16 to 64 kB per feature: less than a 10,000-value reference)
SIZES = (4096, 8192, 16384)


def cells_of(x: np.ndarray, low: np.ndarray, scale: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Cell of every value of ``x``: ``(x - low) * scale`` clipped to [0, top] and
    truncated; NaN and -inf in cell 0, +inf in the last. Elementwise IEEE
    operations, the same for an edge at fit as for a value later."""
    with np.errstate(invalid="ignore", over="ignore"):
        t = x - low
        t *= scale  # inf * 0 is NaN: cell 0, as every other value then
    np.fmax(t, 0.0, out=t)
    np.fmin(t, top, out=t)
    cell: np.ndarray = t.astype(np.intp)  # truncation: the floor of a value >= 0
    return cell


@dataclass(frozen=True)
class CellGrid:
    """Cells of the ``gridded`` features (the others: ``searched``), each row of
    ``low``, ``scale``, ``top`` and ``row`` one gridded feature's. ``first`` holds,
    per cell, where its edges start in ``edges``, the (features x width) table of
    the edges padded with +inf, whose rows are laid out as the mid-ranks'."""

    gridded: np.ndarray  # (G,) feature numbers
    searched: np.ndarray  # (S,) feature numbers
    low: np.ndarray  # (G, 1): the feature's first edge
    scale: np.ndarray  # (G, 1): cells per unit; 0 with fewer than two edges
    top: np.ndarray  # (G, 1): its last cell
    row: np.ndarray  # (G, 1): where its cells start in ``first``
    first: np.ndarray  # (sum of the G features' cells,) int32
    edges: np.ndarray  # (F * width,)

    @classmethod
    def build(cls, edges: np.ndarray, width: int) -> CellGrid:
        """The grid of an (F x E) table of sorted edges padded with +inf, whose
        mid-ranks' rows are ``width`` long (E < width)."""
        padded = np.full((edges.shape[0], width), np.inf)
        padded[:, : edges.shape[1]] = edges
        gridded: list[int] = []
        searched: list[int] = []
        params: list[tuple[float, float, float]] = []  # low, scale, top
        firsts: list[np.ndarray] = []
        for f in range(edges.shape[0]):
            finite = edges[f][np.isfinite(edges[f])]
            found = _feature_cells(finite)
            if found is None:
                searched.append(f)
                continue
            low, scale, cells = found
            count = np.bincount(_cells(finite, low, scale, cells), minlength=cells)
            start = np.concatenate([[0], np.cumsum(count)[:-1]])
            gridded.append(f)
            params.append((low, scale, float(cells - 1)))
            firsts.append((f * width + start).astype(np.int32))
        rows = np.cumsum([0] + [c.shape[0] for c in firsts[:-1]]) if firsts else np.zeros(0)
        column = np.array(params, dtype=np.float64).reshape(-1, 3)
        return cls(
            np.array(gridded, dtype=np.intp),
            np.array(searched, dtype=np.intp),
            column[:, 0:1].copy(),
            column[:, 1:2].copy(),
            column[:, 2:3].copy(),
            np.asarray(rows, dtype=np.intp).reshape(-1, 1),
            np.concatenate(firsts) if firsts else np.zeros(0, dtype=np.int32),
            padded.ravel(),
        )

    def bins(self, x: np.ndarray) -> np.ndarray:
        """Index into the padded edges (and the mid-ranks) of the bin of every value
        of ``x`` (gridded features x events): its count of edges at or below it
        (past the table for x = +inf)."""
        cell = cells_of(x, self.low, self.scale, self.top)
        cell += self.row
        at: np.ndarray = self.first.take(cell)  # int32
        at += self.edges.take(at) <= x  # a finite value is never at or past the padding
        return at


def _cells(values: np.ndarray, low: float, scale: float, cells: int) -> np.ndarray:
    """:func:`cells_of` for one feature's values, with its parameters as arrays of
    the same dtype as at transform, so the same operations run."""
    one = np.ones((1, 1))
    cell: np.ndarray = cells_of(values[None, :], low * one, scale * one, (cells - 1) * one)[0]
    return cell


def _feature_cells(finite: np.ndarray) -> tuple[float, float, int] | None:
    """(low, scale, cells) of the fewest cells of ``SIZES`` in which no cell holds
    two of these sorted finite edges; None if even the most do not do."""
    if finite.shape[0] < 2:
        return 0.0, 0.0, 1  # every value in one cell, with its edge if any
    for cells in SIZES:
        with np.errstate(over="ignore", divide="ignore"):
            scale = cells / (finite[-1] - finite[0])
        if not (math.isfinite(scale) and scale > 0):
            return None  # the range overflows, or is below the float resolution
        scale = float(scale)
        low = float(finite[0])
        placed = _cells(finite, low, scale, cells)
        if np.all(placed[1:] > placed[:-1]):
            return low, scale, cells
    return None
