"""Categorical features as columns of the multivariate test.

A categorical feature becomes a block of one-hot columns: one per label among
the reference's most frequent ones, one for every other label (rarer ones and
labels the reference never showed) and one for a missing value. Each column is
centred by its reference share ``p`` and the block is scaled so that its total
reference variance, ``sum p (1 - p)``, is 1: one categorical feature weighs as
much as one standardised numeric feature, however many labels it has.

Rows are kept as the column index each event falls in (never as the dense
one-hot block): a row's projection on the principal components is then one
table look-up per feature, and its squared length another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.codec import decode_array, encode_array
from detectors.reference import CategoricalReference
from detectors.window.base import CategoricalWindow


@dataclass
class CategoryColumns:
    """The one-hot block of one categorical feature: ``labels``, then "other",
    then "missing"; ``shares`` are the reference's share of each column."""

    name: str
    labels: list[str]
    shares: np.ndarray
    # Column index of each code of the signal's reference, shifted by one so
    # that the missing code (-1) reads entry 0; rebuilt when the reference changes.
    _lookup: tuple[CategoricalReference, np.ndarray] | None = field(
        default=None, repr=False, compare=False
    )

    @classmethod
    def fit(cls, name: str, sample: CategoricalWindow, max_labels: int) -> CategoryColumns:
        """The block of the reference ``sample``: its ``max_labels`` most frequent labels."""
        ref = sample.reference
        counts = sample.counts[: len(ref.labels)]
        ranked = sorted(range(len(ref.labels)), key=lambda i: (-int(counts[i]), ref.labels[i]))
        labels = [ref.labels[i] for i in ranked[:max_labels] if counts[i] > 0]
        columns = cls(name, labels, np.zeros(len(labels) + 2))
        index = columns.column_index(sample)
        columns.shares = np.bincount(index, minlength=columns.width) / max(sample.n, 1)
        return columns

    @property
    def width(self) -> int:
        return len(self.labels) + 2

    @property
    def weight(self) -> float:
        """Scale of the centred columns that makes the block's total variance 1
        (1 for a feature constant in the reference)."""
        variance = float(np.sum(self.shares * (1.0 - self.shares)))
        return 1.0 / math.sqrt(variance) if variance > 0 else 1.0

    def column_index(self, window: CategoricalWindow) -> np.ndarray:
        """The column each event of ``window`` falls in."""
        if self._lookup is None or self._lookup[0] is not window.reference:
            other, missing = len(self.labels), len(self.labels) + 1
            own = {label: i for i, label in enumerate(self.labels)}
            codes = [own.get(label, other) for label in window.reference.labels]
            table = np.array([missing, *codes, other], dtype=np.int64)  # missing, labels, unknown
            self._lookup = (window.reference, table)
        index: np.ndarray = self._lookup[1][window.codes + 1]
        return index

    def dump(self) -> dict[str, Any]:
        return {"name": self.name, "labels": list(self.labels), "shares": encode_array(self.shares)}

    @classmethod
    def load(cls, state: dict[str, Any]) -> CategoryColumns:
        return cls(state["name"], list(state["labels"]), decode_array(state["shares"]))
