"""One window's per-caller counts of :class:`ClientInputs`, kept in numpy arrays.

Callers get a slot on their first request in the window (a dict lookup per
request, run in C by ``map``: the only per-request work outside numpy); the
counts, and each caller's last grid cell and output side, are numpy arrays
indexed by slot, updated for a whole batch at once. A window holds at most
``window`` callers, so memory is bounded whatever the number of distinct
callers in the stream.
"""

from __future__ import annotations

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
        callers: list[str],
        spread: np.ndarray,
        novel: np.ndarray,
        cell: np.ndarray,
        side: np.ndarray,
    ) -> None:
        """Count a batch of requests, in stream order.

        A search hit is a request in the same cell as its caller's previous
        one, with a finite score on the other side of the boundary.
        """
        slots = self.slots
        for c in dict.fromkeys(callers):  # each caller once, in order of first request
            if c not in slots:
                slots[c] = len(slots)
        code = np.fromiter(map(slots.__getitem__, callers), dtype=np.int64, count=len(callers))
        self._grow(len(slots))
        order = np.argsort(code, kind="stable")
        c_sorted, cell_sorted, side_sorted = code[order], cell[order], side[order]
        start = np.ones(len(order), dtype=bool)
        start[1:] = c_sorted[1:] != c_sorted[:-1]
        prev_cell = np.where(start, self.last_cell[c_sorted], shifted(cell_sorted))
        prev_side = np.where(start, self.last_side[c_sorted], shifted(side_sorted))
        hit = (prev_cell == cell_sorted) & (prev_side >= 0) & (side_sorted >= 0)
        hit &= prev_side != side_sorted
        size = len(slots)
        self.counts[:size, 0] += np.bincount(code, minlength=size)
        self.counts[:size, 1] += np.bincount(code, weights=spread, minlength=size).astype(np.int64)
        self.counts[:size, 2] += np.bincount(code, weights=novel, minlength=size).astype(np.int64)
        self.counts[:size, 3] += np.bincount(c_sorted, weights=hit, minlength=size).astype(np.int64)
        end = np.ones(len(order), dtype=bool)
        end[:-1] = start[1:]
        self.last_cell[c_sorted[end]] = cell_sorted[end]
        self.last_side[c_sorted[end]] = side_sorted[end]

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
