"""Segment keys computed over the whole micro-batch are byte for byte those of the
former per-feature computation (searchsorted per numeric feature, a dict lookup per
categorical value), on random batches with every awkward value."""

from __future__ import annotations

from itertools import repeat

import numpy as np
import pytest

from detectors.base import RowBatch
from detectors.performance.segments import (
    DIGEST_BYTES,
    MISSING,
    OTHER,
    FeatureBins,
    SegmentLayout,
)
from detectors.reference import CategoricalReference, NumericReference
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings


def former_key_matrix(layout: SegmentLayout, batch: RowBatch, rows: list[int]) -> np.ndarray:
    """The keys as computed before they were vectorised (revision bec8ca4)."""
    n = len(batch)
    codes = np.full((n, len(layout.features)), MISSING, dtype=np.uint8)
    for j, feature in enumerate(layout.features):
        if feature.labels is None:
            values = batch.numeric.get(feature.name)
            if values is None:
                continue
            cuts = np.array(feature.cuts or (), dtype=np.float64)
            bins = np.searchsorted(cuts, values, side="right")
            codes[:, j] = np.where(np.isnan(values), MISSING, bins)
            continue
        labels = batch.categorical.get(feature.name)
        if labels is None:
            continue
        table: dict[str | None, int] = {
            None: MISSING,
            **{v: i for i, v in enumerate(feature.labels)},
        }
        found = map(table.get, labels.tolist(), repeat(OTHER, n))
        codes[:, j] = np.fromiter(found, np.uint8, count=n)
    picked = codes[rows]
    keyed = np.empty((len(rows), DIGEST_BYTES + picked.shape[1]), dtype=np.uint8)
    keyed[:, :DIGEST_BYTES] = np.frombuffer(layout.digest, dtype=np.uint8)
    keyed[:, DIGEST_BYTES:] = picked
    return keyed


def _layout(rng: np.random.Generator) -> tuple[SegmentLayout, np.ndarray, list[np.ndarray]]:
    """A layout of numeric features (some with repeated values: fewer cuts; one
    constant; one with no reference values) and categorical ones; the numeric
    references' values and the label pool."""
    refs: dict[str, NumericReference | CategoricalReference] = {
        "n_normal": NumericReference.build(rng.normal(size=3000)),
        "n_few": NumericReference.build(rng.integers(0, 3, 3000).astype(float)),
        "n_const": NumericReference.build(np.full(500, 7.0)),
        "n_empty": NumericReference.build(np.array([], dtype=float)),
        "n_wide": NumericReference.build(rng.standard_cauchy(3000)),
    }
    pool = np.array([f"v{i}" for i in range(25)] + ["", "é", "v1 "], dtype=object)
    for name, size in (("c_many", 25), ("c_two", 2)):
        refs[name] = CategoricalReference.build(pool[rng.integers(0, size, 2000)], 50)
    layout = SegmentLayout.build(refs, categories=10)
    cuts = np.concatenate([np.array(f.cuts or ()) for f in layout.features if f.cuts])
    return layout, cuts, [pool]


def _batch(
    layout: SegmentLayout, cuts: np.ndarray, pool: np.ndarray, rng: np.random.Generator, n: int
) -> RowBatch:
    """``n`` events: values on and beside the cuts, NaN, ±inf, huge, missing and
    unseen labels; a feature or two left out of the batch altogether."""
    extremes = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e308, -1e308])
    awkward = np.concatenate(
        [cuts, np.nextafter(cuts, np.inf), np.nextafter(cuts, -np.inf), extremes]
    )
    numeric, categorical = {}, {}
    for f in layout.features:
        if rng.random() < 0.15:
            continue  # absent from this batch: missing everywhere
        if f.labels is None:
            values = np.where(
                rng.random(n) < 0.5, awkward[rng.integers(0, len(awkward), n)], rng.normal(0, 3, n)
            )
            numeric[f.name] = values
        else:
            labels = pool[rng.integers(0, len(pool), n)]
            labels[rng.random(n) < 0.1] = None
            labels[rng.random(n) < 0.05] = "never-seen"
            categorical[f.name] = labels
    return RowBatch(ts=np.zeros(n), numeric=numeric, categorical=categorical)


@pytest.mark.parametrize("seed", range(12))
def test_keys_equal_the_former_computation_on_random_batches(seed: int) -> None:
    rng = np.random.default_rng(seed)
    layout, cuts, (pool,) = _layout(rng)
    assert any(f.cuts == () for f in layout.features if f.labels is None)  # a feature of no cuts
    for n in (1, 2, 7, 300, 2048):
        batch = _batch(layout, cuts, pool, rng, n)
        for rows in (
            list(range(n)),
            sorted(rng.choice(n, size=max(1, n // 3), replace=False).tolist()),
            [n - 1],
            [],
        ):
            new = layout.key_matrix(batch, rows)
            assert new.dtype == np.uint8
            assert new.tobytes() == former_key_matrix(layout, batch, rows).tobytes()
            assert layout.key_matrix(batch, np.array(rows, dtype=np.int64)).tobytes() == (
                new.tobytes()
            )
        everything = former_key_matrix(layout, batch, list(range(n)))[:, DIGEST_BYTES:]
        assert layout.codes(batch).tobytes() == everything.tobytes()
        assert layout.keys(batch, [0]) == [layout.digest + everything[0].tobytes()]


def test_keys_of_a_loaded_layout_and_of_inf_cuts_match_too() -> None:
    """A layout loaded from state (possibly written by hand or an older build) keys the
    same as the former computation, even with infinite cuts or no numeric feature."""
    rng = np.random.default_rng(99)
    layouts = [
        SegmentLayout([FeatureBins("x", cuts=(-np.inf, 0.0, 1.0, np.inf))]),
        SegmentLayout([FeatureBins("x", cuts=(0.5,)), FeatureBins("y", cuts=())]),
        SegmentLayout([FeatureBins("c", labels=("a", "b"))]),
        SegmentLayout([]),
    ]
    values = np.array([np.nan, np.inf, -np.inf, 0.0, 0.5, 1.0, -1.0, 2.0] * 4)
    rng.shuffle(values)
    labels = np.array(["a", "b", None, "z"] * 8, dtype=object)
    batch = RowBatch(
        ts=np.zeros(32), numeric={"x": values, "y": values[::-1].copy()}, categorical={"c": labels}
    )
    for layout in layouts:
        loaded = SegmentLayout.load(layout.dump())
        rows = list(range(0, 32, 3))
        expected = former_key_matrix(layout, batch, rows).tobytes()
        assert loaded.key_matrix(batch, rows).tobytes() == expected
        assert layout.key_matrix(batch, rows).tobytes() == expected


@pytest.mark.parametrize("seed", range(6))
def test_keys_from_the_detectors_codes_are_the_lookups_keys(seed: int) -> None:
    """Keys made from the drift detectors' reference codes of a batch
    (``ModelDetectors.category_codes``) equal those of the label lookups, whatever the
    batch: the warm-up ending inside it, windows closing inside it, labels beyond the
    layout's ten and beyond the reference's cap, unseen labels, missing values, a
    feature absent from a batch, and rows picked out of order."""
    rng = np.random.default_rng(seed)
    settings = SuiteSettings(detectors=("ks",), reference_size=700, window=300, max_categories=15)
    detectors = ModelDetectors(settings)
    pool = np.array([f"L{i}" for i in range(40)] + [None], dtype=object)  # 40 labels, missing
    weights = np.r_[np.geomspace(1.0, 0.01, 40), 0.2]
    layout = None
    reused = 0
    for _ in range(12):
        n = int(rng.integers(1, 900))
        categorical = {
            "c_many": pool[rng.choice(len(pool), n, p=weights / weights.sum())],
            "c_few": pool[rng.integers(0, 4, n)],
        }
        if rng.random() < 0.2:  # a batch without one of the features
            del categorical["c_few"]
        if layout is not None and rng.random() < 0.5:  # labels never seen in the reference
            categorical["c_many"][rng.random(n) < 0.3] = "new"
        batch = RowBatch(
            ts=np.arange(n, dtype=np.float64),
            numeric={"x": rng.normal(size=n)},
            categorical=categorical,
        )
        detectors.observe_rows(batch)
        if layout is None and detectors.has_reference:
            layout = SegmentLayout.build(detectors.feature_references(), categories=10)
        coded = detectors.category_codes(batch)
        if layout is None or coded is None:
            continue
        first = coded[0]
        rows = rng.permutation(np.arange(first, n))[: int(rng.integers(0, n - first + 1))]
        for picked in (rows, np.arange(first, n)):
            expected = former_key_matrix(layout, batch, picked.tolist())
            np.testing.assert_array_equal(layout.key_matrix(batch, picked, coded), expected)
        reused += "c_many" in coded[1]
    assert reused >= 5  # the codes were there to reuse, not only the fallback
    assert detectors.category_codes(RowBatch(ts=np.zeros(1))) is None  # another batch
