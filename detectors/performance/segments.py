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
from detectors.reference import (
    MISSING_CODE,
    CategoricalReference,
    NumericReference,
    shortest_cuts_of,
)

BINS = 12  # bins per feature: at most 10 value bins, then "(other)" and "(missing)"
OTHER = 10
MISSING = 11
# The drift detectors' codes of a batch's categorical features (``ModelDetectors.
# category_codes``): the first row they cover, and per feature its reference and codes.
CodedRows = tuple[int, dict[str, tuple[CategoricalReference, np.ndarray]]]
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
        # A categorical feature's label -> bin as one byte (None: missing; a label not kept:
        # other), so that a column's bins are one bytes.join of dict lookups made from C.
        self._tables: list[dict[str | None, bytes] | None] = [
            None
            if f.labels is None
            else {None: bytes([MISSING]), **{v: bytes([i]) for i, v in enumerate(f.labels)}}
            for f in features
        ]
        # The numeric features' cuts, one row each, padded with NaN (no value is >= NaN):
        # a value's bin is the number of its feature's cuts it is >= (searchsorted's "right").
        self._numeric = [j for j, f in enumerate(features) if f.labels is None]
        widest = max((len(features[j].cuts or ()) for j in self._numeric), default=0)
        self._cut_rows = np.full((len(self._numeric), widest), np.nan)
        for k, j in enumerate(self._numeric):
            cuts = features[j].cuts or ()
            self._cut_rows[k, : len(cuts)] = cuts
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
        names = sorted(references)[:max_features]
        numeric = [r for n in names if isinstance(r := references[n], NumericReference)]
        levels = np.arange(1, quantiles) / quantiles
        # Reference values on their grid; raw values are cut at the shortest number
        # that projects onto each (the reference's own value where it was short).
        found = [
            np.unique(np.quantile(r.grid, levels, method="inverted_cdf")) if r.size else r.grid
            for r in numeric
        ]
        numeric_cuts = iter(shortest_cuts_of(numeric, found))
        features = []
        for name in names:
            ref = references[name]
            if isinstance(ref, CategoricalReference):
                features.append(FeatureBins(name, labels=tuple(ref.labels[:categories])))
                continue
            cuts = tuple(float(c) for c in next(numeric_cuts) if math.isfinite(c))
            features.append(FeatureBins(name, cuts=cuts))
        return cls(features)

    def codes(self, batch: RowBatch) -> np.ndarray:
        """Each event's bin of each feature: uint8, shape (events, features)."""
        return np.ascontiguousarray(self._codes_by_feature(batch, None).T)

    def keys(self, batch: RowBatch, rows: list[int]) -> list[bytes]:
        """The keys of events ``rows`` of ``batch``."""
        keyed = self.key_matrix(batch, rows)
        width = keyed.shape[1]
        raw = keyed.tobytes()  # slicing one bytes object is cheaper than a row each
        return [raw[k * width : (k + 1) * width] for k in range(len(rows))]

    def key_matrix(
        self, batch: RowBatch, rows: list[int] | np.ndarray, coded: CodedRows | None = None
    ) -> np.ndarray:
        """The keys of events ``rows`` of ``batch``, one a row of a uint8 matrix (``keys``
        without a bytes object per event, for those who store them all). ``coded``: the
        reference codes of categorical features that the drift detectors made for the
        batch (``ModelDetectors.category_codes``), turned into bins instead of looking
        each label up again."""
        picked = np.asarray(rows, dtype=np.intp)
        every = len(picked) == len(batch) and bool((picked == np.arange(len(batch))).all())
        codes = self._codes_by_feature(batch, None if every else picked, coded)
        keyed = np.empty((len(picked), DIGEST_BYTES + len(self.features)), dtype=np.uint8)
        keyed[:, :DIGEST_BYTES] = np.frombuffer(self.digest, dtype=np.uint8)
        keyed[:, DIGEST_BYTES:] = codes.T
        return keyed

    def _codes_by_feature(
        self, batch: RowBatch, rows: np.ndarray | None, coded: CodedRows | None = None
    ) -> np.ndarray:
        """The bins of events ``rows`` (None: all) of ``batch``: uint8, shape (features,
        events), each feature's bins contiguous."""
        n = len(batch) if rows is None else len(rows)
        out = np.full((len(self.features), n), MISSING, dtype=np.uint8)
        present = [
            (j, k, values)
            for k, j in enumerate(self._numeric)
            if (values := batch.numeric.get(self.features[j].name)) is not None
        ]
        if present:
            # All numeric features at once: one comparison per cut level over the matrix.
            values = np.array([v if rows is None else v[rows] for *_, v in present], np.float64)
            cuts = self._cut_rows[[k for _, k, _ in present]]
            bins = np.zeros(values.shape, dtype=np.uint8)
            for level in range(cuts.shape[1]):
                bins += values >= cuts[:, level : level + 1]
            np.putmask(bins, np.isnan(values), MISSING)
            out[[j for j, *_ in present]] = bins
        other = bytes([OTHER])
        for j, feature in enumerate(self.features):
            table = self._tables[j]
            labels = None if table is None else batch.categorical.get(feature.name)
            if table is None or labels is None:
                continue
            reused = None if coded is None else self._bins_of_codes(j, coded, rows, len(batch))
            if reused is not None:
                out[j] = reused
                continue
            picked = labels.tolist() if rows is None else labels[rows].tolist()
            # dict.get with a default, called from C, and one join: no Python call per value.
            found = b"".join(map(table.get, picked, repeat(other, n)))
            out[j] = np.frombuffer(found, dtype=np.uint8)
        return out

    def _bins_of_codes(
        self, j: int, coded: CodedRows, rows: np.ndarray | None, n: int
    ) -> np.ndarray | None:
        """Feature ``j``'s bins of events ``rows`` from their reference codes, when those
        cover the rows and the feature's labels lead the reference's (the layout was built
        from it: bin i is the reference's label i, the labels after ours are "other")."""
        first, by_feature = coded
        found = by_feature.get(self.features[j].name)
        labels = self.features[j].labels or ()
        if found is None or (first > 0 and (rows is None or (len(rows) and rows.min() < first))):
            return None
        reference, codes = found
        if len(codes) != n - first or tuple(reference.labels[: len(labels)]) != labels:
            return None
        # Codes run from MISSING_CODE (-1) to the reference's unknown code: shifted by one.
        table = np.full(reference.unknown_code + 2, OTHER, dtype=np.uint8)
        table[MISSING_CODE + 1] = MISSING
        table[1 : len(labels) + 1] = np.arange(len(labels), dtype=np.uint8)
        at = codes + 1 if rows is None else codes[rows - first] + 1
        return np.asarray(table[at], dtype=np.uint8)

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
