"""The predictions a model's join saw since its last checkpoint, held as cheaply as can be.

Remembering a prediction is on the path of every event: one append to each of
five column lists, nothing else (no object of its own). The map from id to
the latest prediction with it is brought up to date only when a label asks
(one ``dict.update`` in C for all the predictions since), and segment keys come
per micro-batch as one matrix (``SegmentLayout.key_matrix``), not a bytes
object per prediction; the checkpoint takes the columns as they are for the
arrays ``label_store`` writes.
"""

from __future__ import annotations

import math
from itertools import count, islice

import numpy as np

from monitor.pipeline.label_store import Pending, Predictions, SegmentKeys


class RecentPredictions:
    def __init__(self, first: int) -> None:
        self.first = first  # the number (ins) of the first one
        # One entry per prediction (its slot): id, event time, predicted class or value,
        # score (None: none), row in its micro-batch.
        self.ids: list[str] = []
        self.ts: list[float] = []
        self.predicted: list[str | float] = []
        self.scores: list[float | None] = []
        self.batch_rows: list[int] = []
        self._by_id: dict[str, int] = {}  # the latest of each id: its slot
        self._mapped = 0  # slots in _by_id
        self.joined: set[int] = set()  # slots labelled already
        # Segment keys: (slots, key matrix) per micro-batch, in slot order.
        self.key_blocks: list[tuple[np.ndarray, np.ndarray]] = []
        self.unkeyed_from = 0  # slots from here wait for their micro-batch's keys

    def __len__(self) -> int:
        return len(self.ids)

    def slot_of(self, request: str) -> int:
        """The slot of the latest prediction with id ``request``; -1 if none."""
        if self._mapped < len(self.ids):  # later slots overwrite earlier ones: the latest
            mapped = self._mapped
            self._by_id.update(zip(islice(self.ids, mapped, None), count(mapped)))
            self._mapped = len(self.ids)
        return self._by_id.get(request, -1)

    def unkeyed(self) -> tuple[np.ndarray, np.ndarray]:
        """The slots waiting for their keys, and their rows in the micro-batch; they wait
        no more (rows of the warm-up, or before a model has segments, get no key)."""
        start, stop = self.unkeyed_from, len(self.ids)
        self.unkeyed_from = stop
        rows = np.array(self.batch_rows[start:stop], dtype=np.int64)
        return np.arange(start, stop, dtype=np.int64), rows

    def add_keys(self, slots: np.ndarray, keys: np.ndarray) -> None:
        if len(slots):
            self.key_blocks.append((slots, keys))

    def key(self, slot: int) -> bytes | None:
        for slots, keys in self.key_blocks:
            at = int(slots.searchsorted(slot))
            if at < len(slots) and slots[at] == slot:
                return bytes(keys[at].tobytes())
        return None

    def pending(self, slot: int) -> Pending:
        score = self.scores[slot]
        return Pending(
            self.first + slot,
            self.ts[slot],
            self.predicted[slot],
            math.nan if score is None else score,
            slot in self.joined,
            self.key(slot),
        )

    def predictions(self) -> Predictions:
        """All of them, as a checkpoint writes them."""
        n = len(self.ids)
        joined = np.zeros(n, dtype=bool)
        joined[list(self.joined)] = True
        return Predictions(
            self.first,
            self.ids,
            self.ts,
            self.predicted,
            np.array(self.scores, dtype=np.float64),  # None: NaN
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
