"""The predictions a model's join saw since its last checkpoint, held as cheaply as can be.

Remembering a prediction is on the path of every event: one tuple appended and
one dict entry (the latest prediction of each id), nothing else. Segment keys
come per micro-batch as one matrix (``SegmentLayout.key_matrix``), not a bytes
object per prediction; the checkpoint turns it all into the arrays
``label_store`` writes.
"""

from __future__ import annotations

import math
from operator import itemgetter

import numpy as np

from monitor.pipeline.label_store import Pending, Predictions, SegmentKeys

# (id, event time, predicted class or value, score or None, row in its micro-batch)
Row = tuple[str, float, "str | float", "float | None", int]


class RecentPredictions:
    def __init__(self, first: int) -> None:
        self.first = first  # the number (ins) of the first one
        self.rows: list[Row] = []
        self.by_id: dict[str, int] = {}  # the latest of each id: its slot in rows
        self.joined: set[int] = set()  # slots labelled already
        # Segment keys: (slots, key matrix) per micro-batch, in slot order.
        self.key_blocks: list[tuple[np.ndarray, np.ndarray]] = []
        self.unkeyed_from = 0  # slots from here wait for their micro-batch's keys

    def unkeyed(self) -> tuple[list[int], list[int]]:
        """The slots waiting for their keys, and their rows in the micro-batch; they wait
        no more (rows of the warm-up, or before a model has segments, get no key)."""
        slots = list(range(self.unkeyed_from, len(self.rows)))
        self.unkeyed_from = len(self.rows)
        return slots, [self.rows[s][4] for s in slots]

    def add_keys(self, slots: list[int], keys: np.ndarray) -> None:
        if slots:
            self.key_blocks.append((np.array(slots, dtype=np.int64), keys))

    def key(self, slot: int) -> bytes | None:
        for slots, keys in self.key_blocks:
            at = int(slots.searchsorted(slot))
            if at < len(slots) and slots[at] == slot:
                return bytes(keys[at].tobytes())
        return None

    def pending(self, slot: int) -> Pending:
        _, ts, predicted, score, _ = self.rows[slot]
        return Pending(
            self.first + slot,
            ts,
            predicted,
            math.nan if score is None else score,
            slot in self.joined,
            self.key(slot),
        )

    def predictions(self) -> Predictions:
        """All of them, as a checkpoint writes them."""
        rows, n = self.rows, len(self.rows)
        joined = np.zeros(n, dtype=bool)
        joined[list(self.joined)] = True
        # One column at a time, in C (zip(*rows) makes an iterator per row).
        return Predictions(
            self.first,
            list(map(itemgetter(0), rows)),
            list(map(itemgetter(1), rows)),
            list(map(itemgetter(2), rows)),
            np.array(list(map(itemgetter(3), rows)), dtype=np.float64),  # None: NaN
            self._segment_keys(n),
            joined,
        )

    def _segment_keys(self, n: int) -> SegmentKeys:
        keyed = np.zeros(n, dtype=np.uint8)
        lengths = np.zeros(n, dtype=np.int64)
        for slots, keys in self.key_blocks:
            keyed[slots] = 1
            lengths[slots] = keys.shape[1]
        data = b"".join(keys.tobytes() for _, keys in self.key_blocks)
        return SegmentKeys(keyed, np.cumsum(lengths), data)
