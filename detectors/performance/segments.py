"""Segments of a model's traffic, for testing its feedback one segment at a time.

A :class:`SegmentLayout` is built from a model's reference (the same sample
its drift tests use): each numeric feature is cut at its reference deciles
(fewer bins where values repeat), each categorical feature keeps its
``categories`` most frequent reference labels and puts the rest in one
"(other)" bin, and every feature has a "(missing)" bin. At most
``max_features`` features take part (the first by name), so a model has at
most ``max_features * BINS`` segments however many features or labels its
producers send.

A prediction's *key* is one byte per feature (its bin) behind the first
``DIGEST_BYTES`` bytes of the layout's digest: compact enough to store with
each prediction waiting for its label, and a key made under another layout
(after the model's baseline was rebuilt) is told apart by its digest.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import orjson

from detectors.base import RowBatch
from detectors.reference import CategoricalReference, NumericReference

BINS = 12  # bins per feature: at most 10 value bins, then "(other)" and "(missing)"
OTHER = 10
MISSING = 11
DIGEST_BYTES = 4
NAME_LIMIT = 100  # characters of a category kept in a segment's name


def bounded_text(text: str, limit: int = NAME_LIMIT) -> str:
    """Producer text fit for a signal name: invisible characters escaped, at most
    ``limit`` characters (the rest cut, ending in "…")."""
    if text.isprintable() and len(text) <= limit:
        return text
    shown = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text[:limit])
    return shown[: limit - 1] + "…" if len(shown) >= limit else shown


@dataclass(frozen=True)
class FeatureBins:
    """One feature's bins: ``cuts`` (numeric: bin i holds values in [cuts[i-1], cuts[i]))
    or ``labels`` (categorical: bin i holds labels[i])."""

    name: str
    cuts: tuple[float, ...] | None = None
    labels: tuple[str, ...] | None = None

    def segment(self, code: int) -> str:
        """The name of bin ``code``: a label, a value range, "(other)" or "(missing)"."""
        if code == MISSING:
            return "(missing)"
        if code == OTHER:
            return "(other)"
        if self.labels is not None:
            return bounded_text(self.labels[code])
        cuts = self.cuts or ()
        if not cuts:
            return "(any)"
        if code == 0:
            return f"<{cuts[0]:.4g}"
        if code == len(cuts):
            return f">={cuts[-1]:.4g}"
        return f"[{cuts[code - 1]:.4g}, {cuts[code]:.4g})"


class SegmentLayout:
    """The bins of a model's segment features, and the keys of its predictions."""

    def __init__(self, features: list[FeatureBins]) -> None:
        self.features = features
        # A categorical feature's label -> bin (None: missing; a label not kept: other).
        self._tables: list[dict[str | None, int] | None] = [
            None if f.labels is None else {None: MISSING, **{v: i for i, v in enumerate(f.labels)}}
            for f in features
        ]
        self._cuts = [np.array(f.cuts or (), dtype=np.float64) for f in features]
        self.digest = hashlib.sha256(orjson.dumps(self.dump())).digest()[:DIGEST_BYTES]

    @classmethod
    def build(
        cls,
        references: dict[str, NumericReference | CategoricalReference],
        max_features: int = 32,
        quantiles: int = 10,
        categories: int = 10,
    ) -> SegmentLayout:
        if not 2 <= quantiles <= OTHER or not 1 <= categories <= OTHER:
            raise ValueError(f"quantiles must be 2 to {OTHER} and categories 1 to {OTHER}")
        features = []
        for name in sorted(references)[:max_features]:
            ref = references[name]
            if isinstance(ref, CategoricalReference):
                features.append(FeatureBins(name, labels=tuple(ref.labels[:categories])))
                continue
            cuts: tuple[float, ...] = ()
            if ref.size:
                levels = np.arange(1, quantiles) / quantiles
                found = np.unique(np.quantile(ref.values, levels, method="inverted_cdf"))
                cuts = tuple(float(c) for c in found if math.isfinite(c))
            features.append(FeatureBins(name, cuts=cuts))
        return cls(features)

    def codes(self, batch: RowBatch) -> np.ndarray:
        """Each event's bin of each feature: uint8, shape (events, features)."""
        n = len(batch)
        out = np.full((n, len(self.features)), MISSING, dtype=np.uint8)
        for j, feature in enumerate(self.features):
            table = self._tables[j]
            if table is None:
                values = batch.numeric.get(feature.name)
                if values is None:
                    continue
                bins = np.searchsorted(self._cuts[j], values, side="right")
                out[:, j] = np.where(np.isnan(values), MISSING, bins)
                continue
            labels = batch.categorical.get(feature.name)
            if labels is None:
                continue
            # dict.get with a default, called from C: no Python call per value.
            found = map(table.get, labels.tolist(), repeat(OTHER, n))
            out[:, j] = np.fromiter(found, np.uint8, count=n)
        return out

    def keys(self, batch: RowBatch, rows: list[int]) -> list[bytes]:
        """The keys of events ``rows`` of ``batch``."""
        keyed = self.key_matrix(batch, rows)
        width = keyed.shape[1]
        raw = keyed.tobytes()  # slicing one bytes object is cheaper than a row each
        return [raw[k * width : (k + 1) * width] for k in range(len(rows))]

    def key_matrix(self, batch: RowBatch, rows: list[int]) -> np.ndarray:
        """The keys of events ``rows`` of ``batch``, one a row of a uint8 matrix (``keys``
        without a bytes object per event, for those who store them all)."""
        codes = self.codes(batch)[rows]
        keyed = np.empty((len(rows), DIGEST_BYTES + codes.shape[1]), dtype=np.uint8)
        keyed[:, :DIGEST_BYTES] = np.frombuffer(self.digest, dtype=np.uint8)
        keyed[:, DIGEST_BYTES:] = codes
        return keyed

    def dump(self) -> list[dict[str, Any]]:
        return [
            {"name": f.name, "cuts": None if f.cuts is None else list(f.cuts), "labels": f.labels}
            for f in self.features
        ]

    @classmethod
    def load(cls, state: list[dict[str, Any]]) -> SegmentLayout:
        return cls(
            [
                FeatureBins(
                    f["name"],
                    None if f["cuts"] is None else tuple(float(c) for c in f["cuts"]),
                    None if f["labels"] is None else tuple(str(v) for v in f["labels"]),
                )
                for f in state
            ]
        )
