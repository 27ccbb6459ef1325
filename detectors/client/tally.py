"""One window's per-caller counts of :class:`ClientInputs`, kept in numpy arrays.

Callers get a slot on their first request in the window (a dict lookup per
caller of a batch, whose requests come coded by caller: see
:mod:`detectors.client.callers`); the counts, and each caller's last grid
cell and output side, are numpy arrays indexed by slot, updated for a whole
batch at once. A window holds at most ``window`` callers, so memory is
bounded whatever the number of distinct callers in the stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import compress
from typing import Any

import numpy as np

NO_SIDE = -1  # a request without a finite score


@dataclass(frozen=True)
class WindowCounts:
    """A closed window's counts: ``counts[slots[c]]`` is caller ``c``'s
    [requests, spread, novel, search hits]; ``callers`` in slot order."""

    callers: list[str]
    slots: dict[str, int]
    counts: np.ndarray

    def where(self, mask: np.ndarray) -> dict[str, list[int]]:
        """Caller -> counts, of the callers (in slot order) where ``mask`` is true."""
        return dict(
            zip(compress(self.callers, mask.tolist()), self.counts[mask].tolist(), strict=True)
        )


class WindowTally:
    """Per caller: requests, spread, novel and search hits; last cell and side."""

    def __init__(self) -> None:
        self.slots: dict[str, int] = {}
        self.counts = np.zeros((16, 4), dtype=np.int64)
        self.last_cell = np.zeros(16, dtype=np.uint64)
        self.last_side = np.full(16, -2, dtype=np.int64)  # -2: no request yet

    def _grow(self, size: int) -> None:
        if size <= self.counts.shape[0]:
            return
        new = max(size, 2 * self.counts.shape[0])
        grow = new - self.counts.shape[0]
        self.counts = np.vstack([self.counts, np.zeros((grow, 4), dtype=np.int64)])
        self.last_cell = np.concatenate([self.last_cell, np.zeros(grow, dtype=np.uint64)])
        self.last_side = np.concatenate([self.last_side, np.full(grow, -2, dtype=np.int64)])

    def add(
        self,
        names: list[object],
        codes: np.ndarray,
        spread: np.ndarray,
        novel: np.ndarray,
        cells: Callable[[np.ndarray | None], np.ndarray],
        side: np.ndarray,
    ) -> None:
        """Count a batch of requests, in stream order; ``names[codes[i]]`` sent request ``i``
        (the coding of :class:`~detectors.client.callers.Callers`, shared by the detectors).
        ``cells(rows)`` gives the grid cells of the requests ``rows`` (all for None).

        A search hit is a request in the same cell as its caller's previous
        one, with a finite score on the other side of the boundary.
        """
        # Stable sort by caller, each caller's requests in stream order; 16-bit codes
        # (all but a flood of callers) sort by radix, in linear time.
        small = codes.astype(np.int16) if len(names) <= np.iinfo(np.int16).max else codes
        order = np.argsort(small, kind="stable")
        c_sorted, side_sorted = codes[order], side[order]
        start = np.ones(len(order), dtype=bool)
        start[1:] = c_sorted[1:] != c_sorted[:-1]
        end = np.ones(len(order), dtype=bool)
        end[:-1] = start[1:]
        seen = c_sorted[start]  # the callers of the batch, by code
        # a slot for each new caller, in order of first request
        first = np.argsort(order[start])
        slot = np.empty(len(seen), dtype=np.intp)
        slots = self.slots
        slot[first] = [slots.setdefault(names[c], len(slots)) for c in seen[first].tolist()]
        self._grow(len(slots))
        prev_side = shifted(side_sorted)
        prev_side[start] = self.last_side[slot]
        # a hit needs a side flip; only then, and for each caller's last request, are
        # cells compared or kept: computed for those requests alone when they are few
        flip = (prev_side >= 0) & (side_sorted >= 0) & (prev_side != side_sorted)
        needed = flip | end
        needed[:-1] |= flip[1:] & ~start[1:]  # the request before a flip, same caller
        picked = np.flatnonzero(needed)
        if 4 * len(picked) < 3 * len(order):
            cell_sorted = np.zeros(len(order), dtype=np.uint64)
            cell_sorted[picked] = cells(order[picked])
        else:
            cell_sorted = cells(None)[order]
        prev_cell = shifted(cell_sorted)
        prev_cell[start] = self.last_cell[slot]
        hit = flip & (prev_cell == cell_sorted)
        group = np.cumsum(start) - 1  # per sorted request, its caller's place in seen
        size = len(seen)
        counts = self.counts
        counts[slot, 0] += np.bincount(group, minlength=size)
        counts[slot, 1] += np.bincount(group, spread[order], size).astype(np.int64)
        counts[slot, 2] += np.bincount(group, novel[order], size).astype(np.int64)
        counts[slot, 3] += np.bincount(group, hit, size).astype(np.int64)
        self.last_cell[slot] = cell_sorted[end]
        self.last_side[slot] = side_sorted[end]

    def table(self) -> WindowCounts:
        """The counts as they stand, for numpy work over all callers at once."""
        return WindowCounts(list(self.slots), self.slots, self.counts[: len(self.slots)])

    def rows(self) -> dict[str, list[int]]:
        """Caller -> [requests, spread, novel, search hits]."""
        counts = self.counts.tolist()
        return {c: counts[s] for c, s in self.slots.items()}

    def dump(self) -> dict[str, Any]:
        rows = self.rows()
        return {
            "counts": [[c, *rows[c]] for c in sorted(rows)],
            "last": [
                [c, str(int(self.last_cell[s])), int(self.last_side[s])]
                for c, s in sorted(self.slots.items())
            ],
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> WindowTally:
        tally = cls()
        last = {c: (int(cell), int(side)) for c, cell, side in state["last"]}
        for c, *row in state["counts"]:
            s = tally.slots.setdefault(c, len(tally.slots))
            tally._grow(s + 1)
            tally.counts[s] = row
            tally.last_cell[s], tally.last_side[s] = last[c]
        return tally


def shifted(a: np.ndarray) -> np.ndarray:
    """``a`` moved one place on (the first element is the last's, as ``np.roll(a, 1)``)."""
    out = np.empty_like(a)
    out[1:] = a[:-1]
    out[:1] = a[-1:]
    return out
