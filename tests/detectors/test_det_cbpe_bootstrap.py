"""The reference's bootstrap windows computed all at once (``bootstrap``) give the
figures of ``cbpe.estimate`` and ``cbpe.realized`` window by window, bit for bit:
binary scores and multiclass probabilities, with ties, with classes absent from
windows, through to the calibration's reference values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.performance import bootstrap, cbpe
from detectors.performance.calibration import Calibration
from detectors.performance.estimated import BOOTSTRAP_DRAWS, EstimatedPerformance

Case = tuple[np.ndarray, np.ndarray, np.ndarray, int]


def per_window(
    case: Case, window: int, draws: int, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The window-by-window loop ``_fix_reference`` ran before: the oracle."""
    calibrated, raw, predicted, positive = case
    rng = np.random.default_rng(seed)
    estimated: dict[str, list[float]] = {m: [] for m in cbpe.METRICS}
    realized: dict[str, list[float]] = {m: [] for m in cbpe.METRICS}
    for _ in range(draws):
        take = rng.integers(0, len(predicted), window)
        p, r, k = calibrated[take], raw[take], predicted[take]
        for metric, v in cbpe.estimate(p, r, k, positive).items():
            estimated[metric].append(v)
        for metric, v in cbpe.realized(r, k, cbpe.draw_labels(p, rng), positive).items():
            realized[metric].append(v)
    return (
        {m: np.array(v) for m, v in estimated.items()},
        {m: np.array(v) for m, v in realized.items()},
    )


def batched(
    case: Case, window: int, draws: int, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    draws_ = bootstrap.Draws.of(np.random.default_rng(seed), len(case[2]), window, draws)
    return bootstrap.metrics(*case, draws_)


def assert_bitwise(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert got.shape == expected.shape, what
    # The bits: tells -0.0 from 0.0 and a NaN's payload too.
    differ = got.view(np.uint64) != expected.view(np.uint64)
    assert not differ.any(), (what, got[differ][:5], expected[differ][:5])


def binary_scores(seed: int, n: int, decimals: int | None, positive: int) -> Case:
    """A score model: P(positive) from a Beta, rounded to ``decimals`` (ties), calibrated
    by a monotone map that ties more of them (as isotonic steps do)."""
    rng = np.random.default_rng(seed)
    score = rng.beta(0.8, 2.0, n)
    if decimals is not None:
        score = np.round(score, decimals)
    raw = np.empty((n, 2))
    raw[:, positive], raw[:, 1 - positive] = score, 1 - score
    stepped = np.minimum(np.floor(score * 20) / 20 + 0.03, 1.0)  # ties runs of scores
    calibrated = np.empty((n, 2))
    calibrated[:, positive], calibrated[:, 1 - positive] = stepped, 1 - stepped
    predicted = np.where(score >= 0.5, positive, 1 - positive)
    return calibrated, raw, predicted.astype(np.int64), positive


def multiclass(seed: int, n: int, k: int, decimals: int | None, absent: bool) -> Case:
    """Dirichlet probabilities over ``k`` classes; ``absent``: the last class has
    probability 0 on most rows and is rarely predicted (windows without it)."""
    rng = np.random.default_rng(seed)
    raw = rng.dirichlet(np.linspace(0.4, 2.0, k), n)
    if absent:
        raw[rng.random(n) < 0.97, -1] = 0.0
    if decimals is not None:
        raw = np.round(raw, decimals)
        raw[raw.sum(axis=1) == 0, 0] = 1.0
    raw /= raw.sum(axis=1, keepdims=True)
    calibrated = np.sqrt(raw)  # another order of sums than raw's, and no longer summing to 1
    calibrated /= calibrated.sum(axis=1, keepdims=True)
    return calibrated, raw, raw.argmax(axis=1).astype(np.int64), 0


CASES = {
    "binary, ties": lambda seed: binary_scores(seed, 3000, 2, 1),
    "binary, few distinct scores": lambda seed: binary_scores(seed, 3000, 1, 0),
    "binary, no ties but repeated rows": lambda seed: binary_scores(seed, 3000, None, 1),
    "two classes' probabilities": lambda seed: multiclass(seed, 2000, 2, None, False),
    "multiclass": lambda seed: multiclass(seed, 3000, 4, None, False),
    "multiclass, ties": lambda seed: multiclass(seed, 3000, 5, 2, False),
    "multiclass, a class mostly absent": lambda seed: multiclass(seed, 3000, 3, 2, True),
    "ten classes": lambda seed: multiclass(seed, 3000, 10, 3, True),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_windows_equal_the_window_by_window_figures(
    name: str, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES[name](seed)
    for window, block in ((40, None), (700, None), (700, 7)):  # 40 rows: classes absent
        if block is not None:  # blocks of 7 windows, the last of 2
            monkeypatch.setattr(bootstrap, "BLOCK_ITEMS", block * window)
        expected = per_window(case, window, 30, seed)
        got = batched(case, window, 30, seed)
        for kind, e, g in zip(("estimated", "realized"), expected, got, strict=True):
            for metric in cbpe.METRICS:
                assert_bitwise(g[metric], e[metric], f"{name} {window} {kind} {metric}")


def test_scores_past_16_bit_ranks_equal_the_window_by_window_figures() -> None:
    case = binary_scores(8, 70_000, None, 1)  # ~70,000 distinct scores: 32-bit ranks
    assert bootstrap.rank(case[1][:, 1]).dtype == np.uint32
    expected, got = per_window(case, 300, 12, 8), batched(case, 300, 12, 8)
    for e, g in zip(expected, got, strict=True):
        for metric in cbpe.METRICS:
            assert_bitwise(g[metric], e[metric], metric)


def test_stable_order_of_32_bit_ranks_is_numpy_s_stable_argsort() -> None:
    rng = np.random.default_rng(6)
    for high in (70_000, 1 << 20, (1 << 32) - 1):
        ranks = rng.integers(0, high, (5, 3000)).astype(np.uint32)
        ranks[:, ::7] = ranks[:, :1]  # ties, a seventh of each row
        expected = np.argsort(ranks, axis=1, kind="stable")
        assert np.array_equal(bootstrap.stable_order(ranks), expected)


def test_the_cases_cover_ties_and_absent_classes() -> None:
    """The cases above meet what they are meant to: NaN AUCs where a window lacks a class
    (estimated and realized), and runs of ties longer than numpy's pairwise blocks."""
    estimated, realized = per_window(CASES["multiclass, a class mostly absent"](0), 40, 30, 0)
    for values in (estimated["roc_auc"], realized["roc_auc"]):
        assert np.isnan(values).any() and np.isfinite(values).any()
    calibrated, raw, predicted, _ = CASES["multiclass, a class mostly absent"](0)
    window_without = np.flatnonzero(calibrated[:, -1] == 0)[:40]
    alone = cbpe.estimate(
        calibrated[window_without], raw[window_without], predicted[window_without], 0
    )
    assert math.isnan(alone["roc_auc"])  # a class of probability 0 throughout: no pairs
    _, raw, _, _ = CASES["binary, few distinct scores"](0)
    assert np.unique(raw[:700, 0], return_counts=True)[1].max() > 128


def test_segments_sum_as_np_sum_does_each_alone() -> None:
    rng = np.random.default_rng(5)
    lengths = rng.integers(0, 300, 200)
    lengths[:3] = 0
    values = rng.random(int(lengths.sum())) * 10.0 ** rng.integers(-8, 8, int(lengths.sum()))
    got = bootstrap.Segments(lengths).sums(values)
    bounds = np.cumsum(lengths)
    expected = np.array([values[b - n : b].sum() for b, n in zip(bounds, lengths, strict=True)])
    assert_bitwise(got, expected, "segment sums")
    # The plain reduceat is not np.sum: what the -0.0 in front of each segment is for.
    starts = bounds - lengths
    plain = np.add.reduceat(values, starts[lengths > 0])
    assert not np.array_equal(plain, expected[lengths > 0])


def fix_reference_per_window(case: Case, window: int) -> dict[str, list[float]]:
    """``_fix_reference`` as it was, window by window."""
    calibrated, raw, predicted, positive = case
    value = cbpe.estimate(calibrated, raw, predicted, positive)
    estimated, realized = per_window(case, window, BOOTSTRAP_DRAWS, 0)
    widen = math.sqrt(1 + window / len(predicted))
    out = {}
    for metric in cbpe.METRICS:
        spread, gap = estimated[metric], realized[metric] - estimated[metric]
        if math.isfinite(value[metric]) and np.isfinite(spread).all():
            finite = gap[np.isfinite(gap)]
            out[metric] = [
                value[metric],
                float(np.std(spread, ddof=1)) * widen,
                float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan,
            ]
    return out


@pytest.mark.parametrize("name", ["binary, ties", "multiclass, a class mostly absent"])
def test_the_reference_values_are_those_of_the_window_by_window_loop(name: str) -> None:
    case = CASES[name](3)
    calibrated, raw, predicted, positive = case
    est = EstimatedPerformance(window=300, reference=len(predicted))
    classes = [str(c) for c in range(raw.shape[1])]
    calibration = Calibration("probabilities", classes, positive)
    est._fix_reference(calibration, calibrated, raw, predicted)
    expected = fix_reference_per_window(case, 300)
    assert calibration.reference.keys() == expected.keys()
    for metric, values in expected.items():
        got = np.array(calibration.reference[metric])
        assert_bitwise(got, np.array(values), metric)


def held_out_brier_per_split(
    p: np.ndarray, y: np.ndarray, rng: np.random.Generator, splits: int
) -> tuple[float, float]:
    """``needs_calibration``'s Brier scores as they were: a fit sorting each split."""
    before = after = 0.0
    n = len(p)
    held = max(n // 10, 1)
    for _ in range(splits):
        order = rng.permutation(n)
        test, train = order[:held], order[held:]
        xp, fp = cbpe.fit_isotonic(p[train], y[train])
        outcome = y[test].astype(np.float64)
        before += float(np.sum((p[test] - outcome) ** 2))
        after += float(np.sum((cbpe.apply_isotonic(xp, fp, p[test]) - outcome) ** 2))
    return before, after


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("decimals", [None, 3, 1])
def test_held_out_brier_sorted_once_equals_a_sort_per_split(
    seed: int, decimals: int | None
) -> None:
    rng = np.random.default_rng(seed)
    p = rng.beta(0.7, 1.5, 5000)
    if decimals is not None:
        p = np.round(p, decimals)  # ties: many rows per distinct score
    y = rng.random(5000) < p**1.5
    if seed == 3:
        p[:100], p[100:200] = -0.0, 0.0  # equal, yet not the same bits
    expected = held_out_brier_per_split(p, y, np.random.default_rng(42), 10)
    assert cbpe.held_out_brier(p, y, np.random.default_rng(42), 10) == expected
