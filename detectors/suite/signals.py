"""Per-signal buffers: the warm-up rows that become the reference, and the
event-count window each signal fills between tests."""

from __future__ import annotations

from collections.abc import Container
from typing import Any

import numpy as np

from detectors.base import RowBatch
from detectors.codec import decode_array, decode_labels, encode_array, encode_labels
from detectors.reference import CategoricalReference, NumericReference
from detectors.window.base import (
    FEATURE,
    PREDICTION,
    PREDICTION_VALUE,
    SCORE,
    CategoricalWindow,
    NumericWindow,
)


def numeric_columns(batch: RowBatch) -> dict[str, tuple[str, np.ndarray]]:
    """Signal name -> (role, float64 column) of a batch's numeric signals."""
    cols = {f"feature:{k}": (FEATURE, v) for k, v in batch.numeric.items()}
    if batch.score is not None:
        cols["score"] = (SCORE, batch.score)
    if batch.prediction_value is not None:
        cols[PREDICTION_VALUE] = (PREDICTION_VALUE, batch.prediction_value)
    return cols


def categorical_columns(batch: RowBatch) -> dict[str, tuple[str, np.ndarray]]:
    """Signal name -> (role, object column) of a batch's categorical signals."""
    cols = {f"feature:{k}": (FEATURE, v) for k, v in batch.categorical.items()}
    if batch.prediction is not None:
        cols[PREDICTION] = (PREDICTION, batch.prediction)
    return cols


class WarmupRows:
    """Rows collected before the reference exists; columns may come and go."""

    def __init__(self) -> None:
        self.n = 0
        self.numeric: dict[str, tuple[str, list[np.ndarray]]] = {}
        self.categorical: dict[str, tuple[str, list[np.ndarray]]] = {}

    def add(self, batch: RowBatch, start: int, stop: int) -> None:
        size = stop - start
        for store, cols, fill in (
            (self.numeric, numeric_columns(batch), np.nan),
            (self.categorical, categorical_columns(batch), None),
        ):
            dtype = np.float64 if fill is not None else object
            for name, (role, col) in cols.items():
                if name not in store:
                    store[name] = (role, [np.full(self.n, fill, dtype=dtype)])
                store[name][1].append(np.asarray(col[start:stop], dtype=dtype))
            for name, (_, parts) in store.items():
                if name not in cols:
                    parts.append(np.full(size, fill, dtype=dtype))
                if len(parts) > 32:  # tiny batches: keep few arrays, not one per event
                    parts[:] = [np.concatenate(parts)]
        self.n += size

    def columns(
        self, limit: int | None = None, seed: int = 0
    ) -> tuple[dict[str, tuple[str, np.ndarray]], dict[str, tuple[str, np.ndarray]]]:
        """Signal name -> (role, column), numeric then categorical; more than
        ``limit`` rows are subsampled (seeded, order kept)."""
        keep: slice | np.ndarray = slice(None)
        if limit is not None and self.n > limit:
            rng = np.random.default_rng([seed, self.n])
            keep = np.sort(rng.choice(self.n, limit, replace=False))
        num = {k: (r, np.concatenate(p)[keep]) for k, (r, p) in self.numeric.items()}
        cat = {k: (r, np.concatenate(p)[keep]) for k, (r, p) in self.categorical.items()}
        return num, cat

    def dump(self) -> dict[str, Any]:
        num, cat = self.columns()
        return {
            "n": self.n,
            "numeric": {k: [r, encode_array(v)] for k, (r, v) in num.items()},
            "categorical": {k: [r, encode_labels(v)] for k, (r, v) in cat.items()},
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> WarmupRows:
        rows = cls()
        rows.n = state["n"]
        rows.numeric = {k: (r, [decode_array(v)]) for k, (r, v) in state["numeric"].items()}
        rows.categorical = {
            k: (r, [decode_labels(v)]) for k, (r, v) in state["categorical"].items()
        }
        return rows


class NumericSignal:
    """A numeric signal's reference and its current, partly filled window."""

    def __init__(self, role: str, reference: NumericReference, window: int) -> None:
        self.role = role
        self.reference = reference
        self.buffer = np.full(window, np.nan)
        self.fill = 0

    def push(self, values: np.ndarray | None, size: int) -> None:
        if values is None:
            self.buffer[self.fill : self.fill + size] = np.nan
        else:
            self.buffer[self.fill : self.fill + size] = values
        self.fill += size

    def take_window(self) -> NumericWindow:
        self.fill = 0
        return NumericWindow(self.buffer.copy())

    def dump(self, stored: Container[str] = frozenset()) -> dict[str, Any]:
        """Plain data; see :meth:`NumericReference.dump` for ``stored``."""
        return {
            "role": self.role,
            "reference": self.reference.dump(stored),
            "window": encode_array(self.buffer[: self.fill]),
        }

    @classmethod
    def load(cls, state: dict[str, Any], window: int) -> NumericSignal:
        sig = cls(state["role"], NumericReference.load(state["reference"]), window)
        part = decode_array(state["window"])
        sig.push(part, part.shape[0])
        return sig


class CategoricalSignal:
    """A categorical signal's reference and its current window, as label codes."""

    def __init__(self, role: str, reference: CategoricalReference, window: int) -> None:
        self.role = role
        self.reference = reference
        # Codes run from -1 to the reference's label count: 32 bits hold any real
        # count at half the memory of 64.
        wide = reference.unknown_code >= np.iinfo(np.int32).max
        self.buffer = np.full(window, -1, dtype=np.int64 if wide else np.int32)
        self.fill = 0

    def push(self, values: np.ndarray | None, size: int) -> None:
        if values is None:
            self.buffer[self.fill : self.fill + size] = -1
        else:
            self.buffer[self.fill : self.fill + size] = self.reference.encode(values)
        self.fill += size

    def take_window(self) -> CategoricalWindow:
        self.fill = 0
        return CategoricalWindow(self.buffer.copy(), self.reference)

    def dump(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "reference": self.reference.dump(),
            "window": [int(c) for c in self.buffer[: self.fill]],
        }

    @classmethod
    def load(cls, state: dict[str, Any], window: int) -> CategoricalSignal:
        sig = cls(state["role"], CategoricalReference.load(state["reference"]), window)
        codes = np.array(state["window"], dtype=np.int64)
        sig.buffer[: codes.shape[0]] = codes
        sig.fill = int(codes.shape[0])
        return sig
