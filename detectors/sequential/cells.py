"""A lookup that bins values against a table of sorted edges without searching.

Each feature's range, from its first to its last finite edge, is cut into
equal cells, and a value's cell computed by a few float operations (subtract,
multiply, clip, truncate). Those keep order whatever the rounding: a larger
value never gets an earlier cell. Computing the edges' cells by the very same
operations, the edges in the cells before a value's are at or below it and
those in later cells above it, so where no cell holds more than one edge a
value's bin is the number of edges in the cells before its own, plus one if
its cell's edge is at or below it: three lookups and a comparison instead of
eight halvings.

Memory bounds the cells, not speed: a model's tables live as long as it does,
and a daemon holds hundreds of models within 2 MB each. A cell stores its
feature's own edge count (one byte: at most 255 edges), the feature's offset
added at lookup, and a feature gets the fewest cells of ``SIZES`` that do, at
most 4,096 (4 kB, 64 kB for 16 features). A feature whose edges crowd more
than that (a heavy tail: most edges within a few cells of a range set by the
rest) keeps the binary search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Cells per feature, tried in turn until none holds more than one edge. Few
# cells are enough for most features (255 quantiles of a normal need 1,024),
# and a small table also stays in cache.
SIZES = (256, 512, 1024, 2048, 4096)


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
    ``low``, ``scale``, ``top``, ``row`` and ``at`` one gridded feature's.
    ``first`` holds, per cell, the number of its feature's edges in the cells
    before it, capped at its last edge; ``edges`` is the table's (features x
    width) edges, flat (a view, not a copy)."""

    gridded: np.ndarray  # (G,) feature numbers
    searched: np.ndarray  # (S,) feature numbers
    low: np.ndarray  # (G, 1): the feature's first edge
    scale: np.ndarray  # (G, 1): cells per unit; 0 with fewer than two edges
    top: np.ndarray  # (G, 1): its last cell
    row: np.ndarray  # (G, 1): where its cells start in ``first``
    at: np.ndarray  # (G, 1): where its edges start in ``edges``: f * width
    shift: np.ndarray  # (G, 1): f, the further start of its mid-ranks (width + 1 long)
    first: np.ndarray  # (sum of the G features' cells,) uint8
    edges: np.ndarray  # (F * width,)

    @classmethod
    def build(cls, edges: np.ndarray) -> CellGrid:
        """The grid of an (F x E) table of sorted edges padded with +inf, E <= 256."""
        width = edges.shape[1]
        if width > 256:
            raise ValueError(f"{width} edges a feature do not fit a byte")
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
            before = np.concatenate([[0], np.cumsum(count)[:-1]])
            # A cell past the last edge's (none, in practice: the last edge is in the
            # last cell) reads the last edge, which is below any value there, and
            # so stays within the feature's row.
            np.minimum(before, max(finite.shape[0] - 1, 0), out=before)
            gridded.append(f)
            params.append((low, scale, float(cells - 1)))
            firsts.append(before.astype(np.uint8))
        rows = np.cumsum([0] + [c.shape[0] for c in firsts[:-1]]) if firsts else np.zeros(0)
        column = np.array(params, dtype=np.float64).reshape(-1, 3)
        return cls(
            np.array(gridded, dtype=np.intp),
            np.array(searched, dtype=np.intp),
            column[:, 0:1].copy(),
            column[:, 1:2].copy(),
            column[:, 2:3].copy(),
            np.asarray(rows, dtype=np.intp).reshape(-1, 1),
            np.array(gridded, dtype=np.intp).reshape(-1, 1) * width,
            np.array(gridded, dtype=np.intp).reshape(-1, 1),
            np.concatenate(firsts) if firsts else np.zeros(0, dtype=np.uint8),
            edges.reshape(-1),
        )

    @property
    def nbytes(self) -> int:
        """Bytes the grid holds beyond the table's edges (which it only views)."""
        params = (self.low, self.scale, self.top, self.row, self.at, self.shift)
        return sum(a.nbytes for a in (self.gridded, self.searched, *params)) + self.first.nbytes

    def bins(self, x: np.ndarray) -> np.ndarray:
        """Index into the flat (features x width + 1) mid-ranks of the bin of every
        value of ``x`` (gridded features x events): the feature's row plus its
        count of edges at or below the value (one more for x = +inf)."""
        at = cells_of(x, self.low, self.scale, self.top)
        at += self.row
        np.add(self.first.take(at), self.at, out=at)  # the feature's offset, added here
        at += self.edges.take(at) <= x
        at += self.shift  # row f of the mid-ranks starts f further than its edges'
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
