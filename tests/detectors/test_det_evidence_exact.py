"""The sequential evidence's update, computed faster, gives the same numbers bit for bit.

Mid-ranks are found through a cell lookup rather than a binary search, the
blocks that lie within a batch are summed all at once and the charts stepped
block after block. Against a reference that does it the straightforward way
(one ``searchsorted`` per feature, one block at a time, as the detector did
before) and against digests of the findings and dumps the detector gave before
(``evidence_exact_digests.json``, made by that code), on streams of every kind:
continuous, heavily tied, integer-valued, constant, missing and infinite
values, values beyond the reference, a shift midway, batches of 1 event to
several blocks, a feature absent from some batches, a save and load midway.

The digests were made again once, when references moved to a float32 grid and
the rank table's edges became the float64 thresholds of grid values: the
findings and the dumps but for the table's edges were then checked equal, batch
by batch and to the bit, to those of the code before (its mid-ranks too).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detectors.change.base import ChangeEvent
from detectors.reference import CategoricalReference, NumericReference
from detectors.sequential import FeatureEvidence
from detectors.sequential.cells import SIZES
from detectors.sequential.ranks import RankTable

DIGESTS = Path(__file__).with_name("evidence_exact_digests.json")
SEEDS = (0, 1, 2, 3, 4, 5)  # 4: numeric features only, 5: categorical only
LABELS = np.array([f"label{i}" for i in range(10)], dtype=object)


def reference_ranks(table: RankTable, x: np.ndarray) -> np.ndarray:
    """Mid-ranks by one binary search per feature: the count of edges at or below."""
    u = np.empty(x.shape)
    for f in range(x.shape[0]):
        u[f] = table.ranks[f][np.searchsorted(table.edges[f], x[f], "right")]
    u[~np.isfinite(x)] = np.nan
    return u


class ReferenceEvidence(FeatureEvidence):
    """The detector as it was: every block copied into the buffer, summed and
    stepped on its own."""

    def update(
        self, numeric: dict[str, np.ndarray], categorical: dict[str, np.ndarray], size: int
    ) -> list[tuple[str, ChangeEvent]]:
        if not self._charts:
            return []
        missing = np.full(size, np.nan)
        x = [np.asarray(numeric.get(k, missing), dtype=np.float64) for k in self._numeric]
        u = reference_ranks(self._table, np.stack(x)) if x else np.zeros((0, size))
        buckets = self._bucket_ids(categorical, size)
        out: list[tuple[str, ChangeEvent]] = []
        pos = 0
        while pos < size:
            take = min(size - pos, self.block - self._fill)
            self._u[:, self._fill : self._fill + take] = u[:, pos : pos + take]
            self._buckets[:, self._fill : self._fill + take] = buckets[:, pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == self.block:
                self._fill = 0
                out += self._reference_close(pos - 1)
        return out

    def _reference_close(self, index: int) -> list[tuple[str, ChangeEvent]]:
        present = ~np.isnan(self._u)
        n_num = present.sum(axis=1).astype(np.float64)
        u = np.where(present, self._u, 0.0)
        a = np.where(present, np.abs(2 * u - 1), 0.0)
        ids = self._buckets[self._buckets >= 0]
        counts = np.bincount(ids, minlength=self._owner.shape[0]).astype(np.float64)
        n_cat = np.bincount(self._owner, weights=counts, minlength=len(self._categorical))
        raw = np.concatenate([u.sum(axis=1), a.sum(axis=1), counts])[self._raw_at]
        n = np.concatenate([n_num, n_cat])[self._n_at]
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (raw - n * self._null_mean) / np.sqrt(n * self._null_var)
        z = np.where(n >= 20, z, 0.0)
        bank = self._bank
        signed = np.stack([z, -z])[:, None, :]
        bank.sums = np.minimum(np.maximum(bank.sums + signed - bank.k, 0.0), bank.cap * bank.h)
        live = bank.sums > 0
        bank.run_sum = np.where(live, bank.run_sum + raw, 0.0)
        bank.run_n = np.where(live, bank.run_n + n, 0.0)
        over = bank.sums > bank.h
        return self._findings(over, index) if over.any() else []


def numeric_stream(rng: np.random.Generator, n: int, shift: float) -> dict[str, np.ndarray]:
    nan_laden = rng.normal(size=n)
    nan_laden[rng.random(n) < 0.4] = np.nan
    nan_laden[rng.random(n) < 0.01] = np.inf
    nan_laden[rng.random(n) < 0.01] = -np.inf
    wide = rng.standard_cauchy(n) * 1e300  # the range overflows: one crowded cell
    wide[rng.random(n) < 0.1] = np.nan
    return {
        "feature:normal": shift + rng.normal(size=n),
        "feature:rounded4": np.round(rng.lognormal(shift, 1, n), 4),
        "feature:tied": np.round(rng.normal(shift, 1, n), 1),
        "feature:integer": rng.poisson(3 + shift, n).astype(np.float64),
        "feature:binary": (rng.random(n) < 0.3 + 0.1 * shift).astype(np.float64),
        "feature:constant": np.full(n, 7.0),
        "feature:nan_laden": nan_laden,
        "feature:cauchy": rng.standard_cauchy(n),
        "feature:wide": wide,
        "feature:subnormal": rng.integers(0, 300, n) * 1e-310,  # its range overflows the scale
    }


def categorical_stream(rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    p = 1.0 / np.arange(1, 11) ** (1.0 + shift)
    codes = rng.choice(10, n, p=p / p.sum())
    return np.where(rng.random(n) < 0.05, -1, np.minimum(codes, 6))  # 6: unknown


def fitted(cls: type[FeatureEvidence], seed: int) -> FeatureEvidence:
    rng = np.random.default_rng(seed)
    block = (200, 37, 200, 23, 50, 64)[seed]
    det = cls(block=block, fast_k=1.0, false_alarm_events=2e4 * block)
    num = {k: NumericReference.build(v) for k, v in numeric_stream(rng, 5000, 0.0).items()}
    num["feature:empty"] = NumericReference.build(np.full(200, np.nan))
    cats = {
        "feature:colour": CategoricalReference.build(LABELS[rng.choice(10, 5000)], 6),
        "feature:zipf": CategoricalReference.build(LABELS[categorical_stream(rng, 5000, 0.0)], 6),
    }
    det.fit({} if seed == 5 else num, {} if seed == 4 else cats)
    return det


def batches(seed: int) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]]:
    rng = np.random.default_rng(1000 + seed)
    sizes = [1, 2, 199, 1, 200, 2048, 5, 513, 1, 4000, 37, 36, 1, 2048, 700, 3, 2049, 1]
    out = []
    for i, size in enumerate(sizes):
        shift = 0.0 if i < len(sizes) // 2 else 0.4  # a shift midway
        num = numeric_stream(rng, size, shift)
        if i % 5 == 3:
            del num["feature:integer"]  # missing throughout this batch
        cat = {
            "feature:colour": rng.choice(7, size) - (rng.random(size) < 0.1),
            "feature:zipf": categorical_stream(rng, size, shift),
        }
        out.append((num, cat, size))
    return out


def outcome(det: FeatureEvidence, hits: list[tuple[str, ChangeEvent]]) -> str:
    """Findings and dump after a batch, as text (repr: NaN equals NaN, floats to the bit)."""
    return repr(hits) + json.dumps(det.dump(), sort_keys=True)


def run(cls: type[FeatureEvidence], seed: int) -> list[str]:
    det = fitted(cls, seed)
    out = []
    for i, (num, cat, size) in enumerate(batches(seed)):
        out.append(outcome(det, det.update(num, cat, size)))
        if i == 8:  # saved and loaded midway
            det = cls.load(json.loads(json.dumps(det.dump())))
    return out


def digests(cls: type[FeatureEvidence]) -> dict[str, list[str]]:
    """Per seed, a digest of each batch's outcome (how the fixture was made)."""
    return {
        str(seed): [hashlib.sha256(o.encode()).hexdigest()[:16] for o in run(cls, seed)]
        for seed in SEEDS
    }


@pytest.mark.parametrize("seed", SEEDS)
def test_findings_and_dumps_equal_the_straightforward_reference_after_every_batch(
    seed: int,
) -> None:
    fast, slow = run(FeatureEvidence, seed), run(ReferenceEvidence, seed)
    for i, (got, expected) in enumerate(zip(fast, slow, strict=True)):
        assert got == expected, f"batch {i} differs"
    assert sum("ChangeEvent" in o for o in fast) >= 3  # streams that find things


def test_findings_and_dumps_equal_those_of_the_detector_before_after_every_batch() -> None:
    assert digests(FeatureEvidence) == json.loads(DIGESTS.read_text())


def test_mid_ranks_equal_a_search_per_feature_on_every_kind_of_value() -> None:
    rng = np.random.default_rng(9)
    refs = [NumericReference.build(v) for v in numeric_stream(rng, 5000, 0.0).values()]
    table = RankTable.build([*refs, NumericReference.build(np.array([]))])
    x = np.stack([*numeric_stream(rng, 3000, 0.5).values(), rng.normal(size=3000)])
    for f, ref in enumerate(refs):  # every edge, and the values next to it
        edges = table.edges[f][np.isfinite(table.edges[f])]
        near = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)])
        x[f, : min(near.shape[0], 3000)] = near[:3000]
        x[f, -4:] = [ref.low, ref.high, -1e308, 1e308]
    expected = reference_ranks(table, x)
    assert np.array_equal(table.transform(x), expected, equal_nan=True)
    assert np.array_equal(table.transform(x[:, :1]), expected[:, :1], equal_nan=True)


def write_digests(cls: Any) -> None:  # pragma: no cover - how the fixture was made
    DIGESTS.write_text(json.dumps(digests(cls), indent=0) + "\n")


def test_the_lookup_of_sixteen_numeric_features_takes_under_80_kb() -> None:
    """A model's tables live as long as it does (2 MB a model of 20 features): the
    lookup of 16 features that each need the most cells stays under 80 kB."""
    rng = np.random.default_rng(3)
    # lognormal sigma 1, to 4 decimals: its 255 quantiles need 4,096 cells, the most
    refs = [NumericReference.build(np.round(rng.lognormal(0, 1, 10_000), 4)) for _ in range(16)]
    table = RankTable.build(refs)
    x = rng.lognormal(0, 1, (16, 100))
    assert np.array_equal(table.transform(x), reference_ranks(table, x))
    grid = table._grid
    assert grid is not None and grid.gridded.shape[0] == 16
    assert grid.first.shape[0] == 16 * max(SIZES)
    assert grid.nbytes < 80_000
    assert max(SIZES) * 16 * grid.first.itemsize < 80_000  # whatever the features
