"""Compact summaries of a signal's reference (baseline) sample.

A numeric reference keeps its finite values sorted, which is all that rank
tests (KS, CvM), quantile bins (PSI, Jensen-Shannon) and Wasserstein need,
and keeps them on a float32 grid centred on the median (half the memory of
float64: the values are most of a model's state). A value ``x`` is stored as
``float32(clip((x - center) * factor))``, ``factor`` a power of two that brings
the reference's spread (its quartiles' distance from the median) near 1:
about 7 significant digits relative to the distance from the median rather
than to the magnitude (timestamps of 1.7e9 keep sub-second steps), float32's
exponent range spent around the spread (1e-38 to 3.4e38 times it, whether the
values are 1e-310 or 1e300), and the clip keeps values near the float64 limit
(1e308, as hostile producers send) finite and present, all of those beyond
3.4e38 spreads from the median as one value. The map is monotone (never reverses
an order) and maps equal values to equal ones, so ranks and ties survive it
as long as both sides of a comparison went through it: a test projects its
window's values with :meth:`NumericReference.project` before comparing them
with the grid, or compares raw values with :meth:`NumericReference.thresholds`
of grid values, which is the same comparison. Rounding could move a decision
where the figure is not a rank, so the reference keeps its extremes, mean,
standard deviation and variance exact (float64, computed before rounding).

A categorical reference keeps the counts of its most frequent labels. Both
keep how many events lacked the signal, for the missing-rate test.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Container
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from itertools import repeat
from typing import Any

import numpy as np

from detectors.codec import decode_array, decode_float, dump_fixed_array, encode_float

MISSING_CODE = -1


# The grid's range: a difference from the center beyond it is clipped to it.
GRID_MAX = float(np.finfo(np.float32).max)
_FLOAT_MAX = float(np.finfo(np.float64).max)
_INT64_MIN = np.int64(np.iinfo(np.int64).min)


@dataclass
class NumericReference:
    """The sorted finite values of a numeric signal's reference on a float32 grid
    (see the module docstring), their exact extremes and moments, and its missing
    count."""

    n: int
    missing: int
    grid: np.ndarray  # sorted float32 offsets of the finite values from center, read-only
    center: float  # the median of the finite values (0 without any)
    factor: float  # a power of two (see the module docstring)
    low: float  # the exact minimum (0 without any)
    high: float  # the exact maximum (0 without any)
    mean: float
    std: float
    var: float  # sample variance (ddof=1); the largest float where it overflows
    # The digest of the grid's text, once dumped (see ``dump``).
    _digest: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Fixed once built: a dump may name it by a digest taken earlier.
        self.grid.setflags(write=False)

    @classmethod
    def build(cls, values: np.ndarray) -> NumericReference:
        x = np.asarray(values, dtype=np.float64)
        finite = x[np.isfinite(x)]
        return cls.of_sorted(int(x.shape[0]), int(x.shape[0] - finite.shape[0]), np.sort(finite))

    @classmethod
    def of_sorted(cls, n: int, missing: int, values: np.ndarray) -> NumericReference:
        """The reference of sorted finite float64 ``values`` (``n`` events, ``missing``
        of them without one)."""
        size = int(values.shape[0])
        if size == 0:
            return cls(n, missing, np.zeros(0, np.float32), 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        half = size // 2
        center = float(values[half]) if size % 2 else float(0.5 * (values[half - 1] + values[half]))
        if not np.isfinite(center):  # two middle values near the float limit
            center = float(0.5 * values[half - 1] + 0.5 * values[half])
        factor = _grid_factor(values, center)
        var = 0.0
        if size > 1:
            with np.errstate(all="ignore"):
                var = float(np.var(values, ddof=1))
            var = var if np.isfinite(var) else _FLOAT_MAX
        return cls(
            n=n,
            missing=missing,
            grid=_project(values, center, factor),
            center=center,
            factor=factor,
            low=float(values[0]),
            high=float(values[-1]),
            mean=finite_moment(np.mean, values),
            std=finite_moment(np.std, values) if size > 1 else 0.0,
            var=var,
        )

    @property
    def size(self) -> int:
        return int(self.grid.shape[0])

    @property
    def median(self) -> float:
        return self.center

    def scale(self) -> float:
        """The standard deviation, or 1 for a constant reference."""
        return self.std if self.std > 0 else 1.0

    def project(self, values: np.ndarray) -> np.ndarray:
        """Float64 ``values`` on this reference's grid (float32 offsets from its
        center): what a rank or bin comparison with :attr:`grid` needs. Sorted
        values stay sorted, and a value equal to a reference value lands on it."""
        return _project(values, self.center, self.factor)

    def thresholds(self, points: np.ndarray) -> np.ndarray:
        """For each grid value ``p`` of ``points``, the smallest float64 ``t`` whose
        projection is at or above ``p``: a raw value ``x >= t`` exactly when
        ``project(x) >= p``. Lets a table of edges taken from the grid bin raw
        values as if they were projected, at no cost per value."""
        return grid_thresholds(np.asarray(points, dtype=np.float32), self.center, self.factor)

    def float_values(self) -> np.ndarray:
        """The values back as float64 (each within the grid's rounding of the
        original): for quantiles to show, not for comparisons with raw values."""
        out: np.ndarray = self.grid.astype(np.float64) / self.factor + self.center
        return out

    def dump(self, stored: Container[str] = frozenset()) -> dict[str, Any]:
        """Plain data; the grid as ``{"$blob": digest}`` if its text is in ``stored``.

        The grid is most of a model's state, and its text is larger still: a
        caller that keeps the text apart (the store, by digest) passes the
        digests it holds, so that an unchanged reference is neither encoded
        again nor kept encoded in memory between dumps.
        """
        values, self._digest = dump_fixed_array(self.grid, self._digest, stored)
        return {
            "n": self.n,
            "missing": self.missing,
            "center": encode_float(self.center),
            "factor": encode_float(self.factor),
            "low": encode_float(self.low),
            "high": encode_float(self.high),
            "mean": encode_float(self.mean),
            "std": encode_float(self.std),
            "var": encode_float(self.var),
            "values": values,
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> NumericReference:
        values = decode_array(state["values"])
        if "center" not in state:  # written before the grid: the exact sorted float64 values
            return cls.of_sorted(state["n"], state["missing"], values)
        return cls(
            n=state["n"],
            missing=state["missing"],
            grid=values,
            center=decode_float(state["center"]),
            factor=decode_float(state["factor"]),
            low=decode_float(state["low"]),
            high=decode_float(state["high"]),
            mean=decode_float(state["mean"]),
            std=decode_float(state["std"]),
            var=decode_float(state["var"]),
        )


def _grid_factor(values: np.ndarray, center: float) -> float:
    """The power of two that brings the sorted ``values``' spread around ``center``
    to [0.5, 1): the quartiles' farthest distance from it, else (a feature mostly
    at one value) that of the 1st and 99th percentiles, else the extremes'; 1 for
    a constant. Robust spreads first, so that a few values near 1e308 do not push
    the bulk of the reference below float32's smallest numbers."""
    n = values.shape[0]
    with np.errstate(over="ignore"):
        for lo, hi in ((n // 4, (3 * n) // 4), (n // 100, (99 * n) // 100), (0, n - 1)):
            spread = max(abs(float(values[lo]) - center), abs(float(values[hi]) - center))
            if spread > 0:
                exponent = int(np.frexp(min(spread, _FLOAT_MAX))[1])
                # Within float64's normal powers of two: the scale itself stays exact.
                return float(np.ldexp(1.0, min(max(-exponent, -1022), 1023)))
    return 1.0


def thresholds_of(refs: list[NumericReference], points: list[np.ndarray]) -> list[np.ndarray]:
    """:meth:`NumericReference.thresholds` of each reference's ``points``, in one
    bisection for all of them (a model's features at once: 64 numpy steps, not
    64 for each feature)."""
    sizes = [int(p.shape[0]) for p in points]
    if not sum(sizes):
        return [np.zeros(0) for _ in points]
    center = np.repeat([r.center for r in refs], sizes)
    factor = np.repeat([r.factor for r in refs], sizes)
    flat = np.concatenate([np.asarray(p, dtype=np.float32) for p in points])
    found = grid_thresholds(flat, center, factor)
    return np.split(found, np.cumsum(sizes)[:-1])


def shortest_cuts_of(refs: list[NumericReference], points: list[np.ndarray]) -> list[np.ndarray]:
    """For each reference's grid ``points``, the number of fewest significant digits
    among the raw values that project onto each point, at or above the first of
    them: a cut that bins raw values as the threshold does but for values within
    the grid's rounding below it, and reads as the reference's value where that
    was short (0.1, 12.5, 0 rather than a threshold a float32 step below it)."""
    tops = [np.nextafter(np.asarray(p, np.float32), np.float32(np.inf)) for p in points]
    out = []
    for low, high in zip(thresholds_of(refs, points), thresholds_of(refs, tops), strict=True):
        pairs = zip(low.tolist(), high.tolist(), strict=True)
        out.append(np.array([_shortest(a, b) for a, b in pairs]))
    return out


def _shortest(low: float, high: float) -> float:
    """The float of the shortest decimal in [low, high): ``low`` rounded up at the
    coarsest power of ten that stays below ``high`` (``low`` itself when the
    interval is empty or unbounded)."""
    if not low < high or not math.isfinite(high):
        return low
    exact = Decimal(low)  # every float is a decimal, exactly
    top = math.floor(math.log10(max(abs(low), abs(high)))) + 1
    for exponent in range(top, top - 20, -1):
        up = exact.scaleb(-exponent).to_integral_value(rounding=ROUND_CEILING)
        x = float(up.scaleb(exponent)) + 0.0  # -0.0 as 0.0
        if low <= x < high:
            return x
    return low


def _project(
    values: np.ndarray, center: float | np.ndarray, scale: float | np.ndarray
) -> np.ndarray:
    """``float32(clip((values - center) * scale))``: each step is monotone and maps
    equal values to equal ones (a rounded difference, a product by a power of two,
    a clip, a rounding to float32)."""
    with np.errstate(over="ignore", under="ignore"):  # inf beyond the limit: clipped too
        offsets = np.subtract(values, center, dtype=np.float64)
        offsets *= scale
    np.clip(offsets, -GRID_MAX, GRID_MAX, out=offsets)
    grid: np.ndarray = offsets.astype(np.float32)
    return grid


def _ordered(x: np.ndarray) -> np.ndarray:
    """Float64 as int64 in the same order (-0.0 and 0.0 both 0)."""
    bits = x.view(np.int64)
    out: np.ndarray = np.where(bits >= 0, bits, _INT64_MIN - bits)
    return out


def _unordered(k: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_ordered`."""
    out: np.ndarray = np.where(k >= 0, k, _INT64_MIN - k).view(np.float64)
    return out


def grid_thresholds(
    points: np.ndarray, center: float | np.ndarray, scale: float | np.ndarray
) -> np.ndarray:
    """The smallest finite float64 ``t`` with ``_project(t, center, scale) >= p``, for
    each float32 grid value ``p`` of ``points`` (``center`` and ``scale`` broadcast
    against them): a
    bisection over the floats in order, 64 halvings for the whole array."""
    lo = np.full(points.shape, _ordered(np.array(-_FLOAT_MAX)))  # below or at the answer
    hi = np.full(points.shape, _ordered(np.array(_FLOAT_MAX)))  # at or above: always holds
    done = _project(_unordered(lo), center, scale) >= points  # every float qualifies
    hi = np.where(done, lo, hi)
    while True:
        open_ = hi > lo + 1
        if not open_.any():
            break
        mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)  # no overflow
        up = _project(_unordered(mid), center, scale) >= points
        hi = np.where(open_ & up, mid, hi)
        lo = np.where(open_ & ~up, mid, lo)
    return _unordered(hi)


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
