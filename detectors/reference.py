"""Compact summaries of a signal's reference (baseline) sample.

A numeric reference keeps its finite values sorted, which is all that rank
tests (KS, CvM), quantile bins (PSI, Jensen-Shannon) and Wasserstein need. A
categorical reference keeps the counts of its most frequent labels. Both keep
how many events lacked the signal, for the missing-rate test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container
from dataclasses import dataclass, field
from functools import cached_property
from itertools import repeat
from typing import Any

import numpy as np

from detectors.codec import decode_array, dump_fixed_array

MISSING_CODE = -1


@dataclass
class NumericReference:
    """The sorted finite values of a numeric signal's reference, and its missing count."""

    n: int
    missing: int
    values: np.ndarray  # sorted finite float64 values, read-only
    # The digest of the values' text, once dumped (see ``dump``).
    _digest: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Fixed once built: a dump may name it by a digest taken earlier.
        self.values.setflags(write=False)

    @classmethod
    def build(cls, values: np.ndarray) -> NumericReference:
        x = np.asarray(values, dtype=np.float64)
        finite = x[np.isfinite(x)]
        return cls(
            n=int(x.shape[0]), missing=int(x.shape[0] - finite.shape[0]), values=np.sort(finite)
        )

    @property
    def size(self) -> int:
        return int(self.values.shape[0])

    @cached_property
    def mean(self) -> float:
        return finite_moment(np.mean, self.values) if self.size else 0.0

    @cached_property
    def std(self) -> float:
        return finite_moment(np.std, self.values) if self.size > 1 else 0.0

    @cached_property
    def var(self) -> float:
        """Sample variance (ddof=1); the largest float where it overflows."""
        if self.size < 2:
            return 0.0
        with np.errstate(all="ignore"):
            var = float(np.var(self.values, ddof=1))
        return var if np.isfinite(var) else float(np.finfo(np.float64).max)

    def scale(self) -> float:
        """The standard deviation, or 1 for a constant reference."""
        return self.std if self.std > 0 else 1.0

    def dump(self, stored: Container[str] = frozenset()) -> dict[str, Any]:
        """Plain data; the values as ``{"$blob": digest}`` if their text is in ``stored``.

        The values are most of a model's state, and their text is larger
        still: a caller that keeps the text apart (the store, by digest)
        passes the digests it holds, so that an unchanged reference is
        neither encoded again nor kept encoded in memory between dumps.
        """
        values, self._digest = dump_fixed_array(self.values, self._digest, stored)
        return {"n": self.n, "missing": self.missing, "values": values}

    @classmethod
    def load(cls, state: dict[str, Any]) -> NumericReference:
        return cls(n=state["n"], missing=state["missing"], values=decode_array(state["values"]))


@dataclass
class CategoricalReference:
    """Counts of the most frequent labels of a categorical signal's reference.

    Window values are turned into codes: ``0..len(labels)-1`` for a known
    label, ``len(labels)`` for a label not kept (unseen or beyond the cap) and
    :data:`MISSING_CODE` where missing.
    """

    n: int
    missing: int
    labels: list[str]
    counts: np.ndarray  # int64, one per label
    dropped: int = 0  # events whose label was beyond the cap
    singletons: int = 0  # labels seen exactly once (Good-Turing unseen mass)
    _index: dict[str | None, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {label: i for i, label in enumerate(self.labels)}
        self._index[None] = MISSING_CODE

    @classmethod
    def build(cls, values: np.ndarray, max_categories: int) -> CategoricalReference:
        present = [v for v in values.tolist() if v is not None]
        counter = Counter(present)
        ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = ranked[:max_categories]
        dropped = sum(c for _, c in ranked[max_categories:])
        return cls(
            n=int(values.shape[0]),
            missing=int(values.shape[0]) - len(present),
            labels=[k for k, _ in kept],
            counts=np.array([c for _, c in kept], dtype=np.int64),
            dropped=int(dropped),
            singletons=sum(1 for c in counter.values() if c == 1),
        )

    @property
    def unknown_code(self) -> int:
        return len(self.labels)

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Codes of window values (see the class docstring)."""
        # dict.get with the unknown code as default: a label not kept is a miss
        lookup = self._index.get
        unknown = repeat(self.unknown_code)
        codes = map(lookup, values.tolist(), unknown)
        return np.fromiter(codes, dtype=np.int64, count=values.shape[0])

    def dump(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "missing": self.missing,
            "labels": list(self.labels),
            "counts": [int(c) for c in self.counts],
            "dropped": self.dropped,
            "singletons": self.singletons,
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> CategoricalReference:
        return cls(
            n=state["n"],
            missing=state["missing"],
            labels=list(state["labels"]),
            counts=np.array(state["counts"], dtype=np.int64),
            dropped=state["dropped"],
            singletons=state["singletons"],
        )


Reference = NumericReference | CategoricalReference


def finite_moment(statistic: Any, values: np.ndarray) -> float:
    """A mean or standard deviation of finite values, even of values near the float
    limit (1e308, as hostile producers send), whose plain sums overflow."""
    with np.errstate(all="ignore"):
        plain = float(statistic(values))
    if np.isfinite(plain):
        return plain
    largest = float(np.max(np.abs(values)))
    return float(min(largest * float(statistic(values / largest)), np.finfo(np.float64).max))
