"""The rows CBPE keeps (the reference, the windows awaiting labels) and the
calibration that turns them into class probabilities (see ``estimated``)."""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np

from detectors.codec import decode_array, decode_float, encode_array, encode_float
from detectors.performance import cbpe
from detectors.performance.columns import Codes, Sparse

_SEP = "\x00"  # between packed ids in one string (an id holding it: kept as is)
_BATCH = 256  # ids added are packed once this many wait (fewer: a chunk's own objects weigh)
_CHUNKS = 16  # packed batches of ids kept apart at most: more are joined into one


@dataclass(frozen=True, slots=True)
class PackedIds:
    """Request ids as one string: a label may still come for any of them, yet most
    never do, and an id's own string object costs ~50 bytes beside its text (~300 kB a
    model over the windows kept). Unpacked at C speed when read."""

    text: str
    nones: tuple[int, ...]  # where the id was None (its place holds "")
    n: int

    @classmethod
    def of(cls, ids: Sequence[str | None]) -> PackedIds | None:
        """None when an id holds the separator (the list stays as it is)."""
        nones: tuple[int, ...] = ()
        if None in ids:
            nones = tuple(i for i, x in enumerate(ids) if x is None)
            ids = ["" if x is None else x for x in ids]
        text = _SEP.join(ids)  # type: ignore[arg-type]  # no None left
        if text.count(_SEP) != max(len(ids) - 1, 0):
            return None
        return cls(text, nones, len(ids))

    @classmethod
    def joined(cls, parts: list[PackedIds]) -> PackedIds:
        """The ids of ``parts``, in order, as one."""
        nones: list[int] = []
        n = 0
        for part in parts:
            nones += [n + i for i in part.nones]
            n += part.n
        return cls(_SEP.join(p.text for p in parts if p.n), tuple(nones), n)

    def unpacked(self) -> list[str | None]:
        out: list[str | None] = list(self.text.split(_SEP)) if self.n else []
        for i in self.nones:
            out[i] = None
        return out


@dataclass
class Rows:
    """Scored predictions as they came (and their labels, once joined), column by column.
    Ids come packed a batch at a time (``add_ids``), read them by ``kept_ids``; a closed
    window is sealed (``seal``): its ids packed into one string, and its classes coded.

    Labels and probabilities are mostly None (labels come for few predictions, if any;
    most models send a score): a byte a row, and a row's probabilities only where there
    are (``columns``), not a list's pointer per row each, ~130 kB a model."""

    ids: list[str | None] = field(default_factory=list)  # after those in ``chunks``
    predicted: list[str] | Codes = field(default_factory=list)  # Codes once sealed
    # A C array of doubles, not a list of float objects: 8 bytes a row instead of 32,
    # ~190 kB a model over the reference and the windows kept.
    score: array[float] = field(default_factory=lambda: array("d"))
    probabilities: Sparse = field(default_factory=Sparse)  # by row; its length: predicted's
    truth: Codes = field(default_factory=Codes)
    end_ts: float = math.nan
    estimate: dict[str, float] = field(default_factory=dict)
    # The first ids, packed: a batch's at a time. An open window is half full on
    # average, and the reference holds 10,000 predictions until the first window closes.
    chunks: list[PackedIds] = field(default_factory=list)

    @property
    def packed(self) -> PackedIds | None:
        """The ids as one string, once all are (an id holding the separator: never)."""
        return self.chunks[0] if len(self.chunks) == 1 and not self.ids else None

    def add_ids(self, ids: Sequence[str | None]) -> None:
        """The next predictions' ids (also appended to ``ids`` one by one; ``settle``
        then): packed by batches of at least ``_BATCH``, as their own string objects (as
        events are parsed) cost ~50 bytes an id beside their text."""
        self.ids.extend(ids)
        self.settle()

    def settle(self) -> None:
        """Pack the ids added since the last packing once there are ``_BATCH`` of them."""
        if len(self.ids) >= _BATCH:
            self._pack()

    def _pack(self) -> None:
        """The ids not packed yet (``ids``) packed after the others, unless one holds
        the separator (then they stay a list, and so do those added after them)."""
        if self.ids:
            tail = PackedIds.of(self.ids)
            if tail is not None:
                self.chunks.append(tail)
                self.ids = []
                if len(self.chunks) > _CHUNKS:  # few strings, and few to unpack a range
                    self.chunks = [PackedIds.joined(self.chunks)]

    def forget_ids(self) -> None:
        """The rows' ids let go (each row then has none)."""
        self.ids, self.chunks = [None] * self.id_count(), []

    def seal(self) -> None:
        """Pack the ids into one string, and share equal classes: no more predictions
        come to these rows. (Events parsed one by one bring a string of their own per
        class named: ~50 bytes a row, 400 kB a model over the windows kept.)"""
        self._pack()
        if len(self.chunks) > 1:
            self.chunks = [PackedIds.joined(self.chunks)]
        if isinstance(self.predicted, list):
            self.predicted = Codes.of(self.predicted)  # a byte a row, each class once

    def classes(self) -> list[str]:
        """The predicted classes in order, coded or not."""
        predicted = self.predicted
        return predicted if isinstance(predicted, list) else predicted.tolist()

    def class_indices(self, index: dict[str, int]) -> np.ndarray:
        """Each row's predicted class's index in ``index``, -1 for none tracked."""
        predicted = self.predicted
        if isinstance(predicted, Codes):
            return predicted.indices(index, -1)
        return np.fromiter(map(index.get, predicted, repeat(-1)), np.int64, len(predicted))

    def probability_rows(self) -> list[dict[str, float] | None]:
        """Each row's probabilities, None where none."""
        return self.probabilities.values(len(self.predicted))

    def kept_ids(self, start: int = 0, stop: int | None = None) -> list[str | None]:
        """The rows' ids in order, packed or not: from row ``start`` to ``stop`` (the
        end when None). Only the packed batches holding them are unpacked."""
        if not self.chunks:
            return self.ids[start:stop]
        stop = self.id_count() if stop is None else stop
        out: list[str | None] = []
        at = 0
        for chunk in self.chunks:
            if at < stop and start < at + chunk.n:
                part = chunk.unpacked()
                whole = start <= at and at + chunk.n <= stop
                out += part if whole else part[max(start - at, 0) : stop - at]
            at += chunk.n
        if at < stop:
            out += self.ids[max(start - at, 0) : stop - at]
        return out

    def id_count(self) -> int:
        chunks = self.chunks
        if not chunks:  # a label's look-up asks each kept window: the usual cases first
            return len(self.ids)
        if len(chunks) == 1:
            return chunks[0].n + len(self.ids)
        return sum(chunk.n for chunk in chunks) + len(self.ids)

    def dump(self) -> dict[str, Any]:
        return {
            "ids": self.kept_ids(),
            "predicted": self.classes(),
            "score": encode_array(np.array(self.score, dtype=np.float64)),
            "probabilities": self._dump_probabilities(),
            "truth": self.truth.tolist(),
            "end_ts": encode_float(self.end_ts),
            "estimate": {k: encode_float(v) for k, v in self.estimate.items()},
        }

    def _dump_probabilities(self) -> list[list[list[Any]] | None]:
        if not self.probabilities.count():  # scores alone: the usual
            return [None] * len(self.predicted)
        return [
            None if p is None else [[k, encode_float(v)] for k, v in p.items()]
            for p in self.probability_rows()
        ]

    @classmethod
    def load(cls, state: dict[str, Any]) -> Rows:
        rows = cls(
            list(state["ids"]),
            list(state["predicted"]),
            array("d", decode_array(state["score"]).astype(np.float64).tobytes()),
            Sparse.of(
                None if p is None else {k: decode_float(v) for k, v in p}
                for p in state["probabilities"]
            ),
            Codes.of(state["truth"]),
            decode_float(state["end_ts"]),
            {k: decode_float(v) for k, v in state["estimate"].items()},
        )
        rows._pack()
        return rows


@dataclass
class Calibration:
    """How rows become probabilities, fixed when the first window after the reference closes."""

    source: str  # "probabilities", "score" (of class ``score_class``) or "confidence"
    classes: list[str]
    positive: int
    score_class: int = 1
    labels: int = 0  # reference labels it was fitted on (0: scores taken as calibrated)
    # Per calibrated class (the positive one of two): [xp, fp], or None where the
    # scores are calibrated already (an isotonic fit does not improve them held out).
    curves: list[list[list[float]] | None] = field(default_factory=list)
    # metric: [reference value, the spread of a window's estimate, the spread of a
    # window's realized value around its estimate]
    reference: dict[str, list[float]] = field(default_factory=dict)

    def matrix(self, rows: Rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw probabilities (n x K), predicted class indices, and which rows are usable."""
        index = {c: i for i, c in enumerate(self.classes)}
        k, n = len(self.classes), len(rows.predicted)
        raw = np.zeros((n, k))
        predicted = rows.class_indices(index)
        usable = predicted >= 0
        if self.source == "probabilities":
            for i, probs in enumerate(rows.probability_rows()):
                if probs is None:
                    usable[i] = False
                    continue
                for name, value in probs.items():
                    j = index.get(name)
                    if j is not None:
                        raw[i, j] = value
            finite = np.isfinite(raw).all(axis=1)
            raw = np.where(np.isfinite(raw), np.clip(raw, 0, None), 0)
            total = raw.sum(axis=1)
            usable &= finite & (total > 0)
            raw[usable] /= total[usable, None]
        else:
            score = np.array(rows.score, dtype=np.float64)
            usable &= np.isfinite(score)
            p = np.clip(score, 0, 1)  # rows with a NaN or an infinity go below, unusable
            if self.source == "score":
                first = p if self.score_class == 1 else 1 - p
            else:  # confidence in the predicted class
                first = np.where(predicted == 1, p, 1 - p)
            raw[:, 1], raw[:, 0] = first, 1 - first
        return raw[usable], predicted[usable], usable

    def with_truth(self, rows: Rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`matrix`'s usable rows with their true class indices (-1: no label, or
        a class not tracked)."""
        raw, predicted, usable = self.matrix(rows)
        # None (no label) is no class: -1, as a class not tracked.
        index: dict[str | None, int] = {c: i for i, c in enumerate(self.classes)}
        return raw, predicted, rows.truth.indices(index, -1)[usable]

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        if not any(curve is not None for curve in self.curves):
            return raw
        if len(self.classes) == 2:
            p = self._column(0, raw[:, self.positive])
            out = np.empty_like(raw)
            out[:, self.positive], out[:, 1 - self.positive] = p, 1 - p
            return out
        out = np.column_stack([self._column(c, raw[:, c]) for c in range(len(self.curves))])
        total = out.sum(axis=1, keepdims=True)
        return np.where(total > 0, out / np.where(total > 0, total, 1), raw)

    def _column(self, c: int, p: np.ndarray) -> np.ndarray:
        curve = self.curves[c]
        if curve is None:
            return p
        return cbpe.apply_isotonic(np.array(curve[0]), np.array(curve[1]), p)

    def describe(self) -> str:
        if not self.labels:
            return "none: too few reference labels, scores taken as calibrated"
        fitted = sum(curve is not None for curve in self.curves)
        if not fitted:
            return f"none needed: scores calibrated on {self.labels} reference labels"
        return f"isotonic on {fitted} of {len(self.curves)} classes, {self.labels} reference labels"

    def dump(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "classes": self.classes,
            "positive": self.positive,
            "score_class": self.score_class,
            "labels": self.labels,
            "curves": self.curves,
            "reference": self.reference,
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> Calibration:
        return cls(**state)
