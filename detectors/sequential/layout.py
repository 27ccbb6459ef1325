"""Which charts a model's features get, and the null moments each is judged by.

A numeric feature gets a *location* chart (mean of its reference mid-ranks
``u`` against 1/2) and, when its reference has at least ``MIN_SCALE_BINS``
distinct values, a *scale* chart (mean of ``|2u - 1|`` against the reference's
own). A categorical feature gets one *share* chart per bucket: each of its
most frequent reference labels expected at least ``min_expected`` times per
block (at most ``max_categories``), and "other" (every remaining label,
unseen ones included) when it is that frequent too; a feature split two ways
needs one chart, the other being its mirror image. Missing values count in no
statistic (the ``missing_rate`` test watches them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.reference import CategoricalReference, NumericReference
from detectors.sequential.ranks import RankTable

LOCATION, SCALE, SHARE = "location", "scale", "share"
OTHER = "(other)"
MIN_REFERENCE = 100  # reference values below which a feature gets no chart
MIN_SCALE_BINS = 5  # with fewer distinct values |2u-1| is nearly a function of u
MIN_VARIANCE = 1e-9
LABEL_CHARS = 100  # category labels in details are cut to this


@dataclass
class Chart:
    """One statistic: its signal, kind, where its values come from (a numeric
    feature's row, or a categorical bucket's global id), and its null mean,
    variance (per value) and reference size."""

    signal: str
    kind: str
    source: int
    mean: float
    var: float
    reference_n: int
    label: str | None = None

    def dump(self) -> list[Any]:
        return [
            self.signal,
            self.kind,
            self.source,
            self.mean,
            self.var,
            self.reference_n,
            self.label,
        ]

    @classmethod
    def load(cls, row: list[Any]) -> Chart:
        return cls(row[0], row[1], int(row[2]), float(row[3]), float(row[4]), int(row[5]), row[6])


def numeric_charts(names: list[str], refs: list[NumericReference], table: RankTable) -> list[Chart]:
    moments = table.null_moments(refs)
    charts = []
    for f, (name, ref) in enumerate(zip(names, refs, strict=True)):
        if ref.size < MIN_REFERENCE or moments["var_u"][f] < MIN_VARIANCE:
            continue
        charts.append(Chart(name, LOCATION, f, 0.5, float(moments["var_u"][f]), ref.size))
        if moments["bins"][f] >= MIN_SCALE_BINS and moments["var_a"][f] >= MIN_VARIANCE:
            mean_a, var_a = float(moments["mean_a"][f]), float(moments["var_a"][f])
            charts.append(Chart(name, SCALE, f, mean_a, var_a, ref.size))
    return charts


def bucket_maps(
    names: list[str],
    refs: list[CategoricalReference],
    block: int,
    min_expected: float,
    max_categories: int,
) -> tuple[list[np.ndarray], np.ndarray, list[Chart]]:
    """Per feature, a map from reference code + 1 to a global bucket id (-1:
    missing); the feature of each bucket; the share charts."""
    maps: list[np.ndarray] = []
    owner: list[int] = []
    charts: list[Chart] = []
    for f, (name, ref) in enumerate(zip(names, refs, strict=True)):
        present = int(ref.counts.sum()) + ref.dropped
        shares = ref.counts / present if present else np.zeros(0)
        kept = int(np.count_nonzero(shares[:max_categories] * block >= min_expected))
        first = len(owner)
        codes = np.arange(-1, ref.unknown_code + 1)
        maps.append(np.where(codes < 0, -1, first + np.minimum(codes, kept)))
        owner += [f] * (kept + 1)
        if present < MIN_REFERENCE:
            continue
        other = 1.0 - float(shares[:kept].sum())
        tracked = [(b, float(shares[b]), ref.labels[b][:LABEL_CHARS]) for b in range(kept)]
        if other * block >= min_expected:
            tracked.append((kept, other, OTHER))
        if len(tracked) == 2 and tracked[0][1] + tracked[1][1] > 1 - 1e-9:
            tracked = tracked[:1]
        for b, p, label in tracked:
            charts.append(Chart(name, SHARE, first + b, p, p * (1 - p), present, label))
    return maps, np.array(owner, dtype=np.intp), charts
