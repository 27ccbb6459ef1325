"""Feedback that disagrees in one segment: poisoning found, clean feedback quiet, exact."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detectors.base import Finding, RowBatch
from detectors.performance.feedback import (
    ARL_RATES,
    MAX_ARL_FACTOR,
    FeedbackWatch,
    arl_factor,
)
from detectors.performance.segments import MISSING, OTHER, SegmentLayout, bounded_text
from detectors.reference import CategoricalReference, NumericReference
from detectors.suite.error_stream import JoinedLabels
from tests.detectors.feedback_streams import cut, heterogeneous, labelled

REFERENCE = 5_000
ONSET = REFERENCE + 3_000


def _run(
    joined: JoinedLabels,
    layout: SegmentLayout,
    chunk: int | list[int],
    reload_at: int | None = None,
    **kwargs: float,
) -> list[Finding]:
    watch = FeedbackWatch(**kwargs)  # type: ignore[arg-type]
    sizes = chunk if isinstance(chunk, list) else [chunk]
    out: list[Finding] = []
    a, k = 0, 0
    while a < len(joined.seq):
        b = a + sizes[k % len(sizes)]
        out += watch.observe(cut(joined, a, b), layout)
        if k == reload_at:
            state = json.loads(json.dumps(watch.dump(), allow_nan=False))
            watch = FeedbackWatch.load(state)
        a, k = b, k + 1
    return out


def _label_number(finding: Finding) -> int:
    """The label's position in the stream of ``labelled`` (stream positions 1, 3, 5, ...)."""
    return (int(finding.details["event_index"]) - 1) // 2


def test_a_flip_from_5_to_30_percent_in_a_3_percent_segment_is_caught_within_5000_labels() -> None:
    delays = []
    for seed in range(6):
        joined, layout = labelled(ONSET + 10_000, seed, poison_at=ONSET)
        found = []
        watch = FeedbackWatch()
        for a in range(0, len(joined.seq), 100):
            for f in watch.observe(cut(joined, a, a + 100), layout):
                found.append(f)
                # Raised at the label that crossed: in the labels just given, never later.
                assert a <= _label_number(f) < a + 100
        assert found, f"seed {seed}: the poisoned segment was not found"
        first = found[0]
        assert first.signal == "feedback:merchant=m07"
        assert first.details["direction"] == "approve → decline"
        assert first.details["feature"] == "merchant" and first.details["segment"] == "m07"
        assert first.details["state"] == "alarm" and first.severity == "warning"
        # Honest: 5% on average, from ~105 reference trials (5,000 labels, and the labels
        # of the first blocks tested).
        assert 0.01 < first.details["reference_rate"] < 0.12
        before, after = (f"{first.details[k]:.1%}" for k in ("reference_rate", "current_rate"))
        assert first.details["summary"] == f"approve → decline {before} → {after} of labels"
        assert first.details["current_rate"] > 0.15
        assert first.statistic >= first.threshold  # type: ignore[operator]
        delays.append(_label_number(first) - ONSET)
    # Labels from the onset to the alarm, per seed (2.1% of labels are approvals at m07,
    # so ~50 poisoned trials take ~2,500 labels): [2306, 3168, 4389, 2580, 3060, 2629]
    # when written; [2306, 3702, 8461, 3459, 3955, 4771] with each segment's own
    # reference rate and the rest's noise in the null; the test of blocks before that:
    # [2597, 4540, 8685, 4546, 5196, 5124] to the label that crossed, raised up to 2,000
    # labels later. The delay spreads with the luck of the draw and of the 5,000-label
    # reference (it has not grown yet 3,000 labels after it): over more seeds, and with
    # fewer approvals, see scripts/bench_feedback.py and BENCHMARKS.md.
    assert all(d <= 5_000 for d in delays), delays
    later = [f for f in found if f.details["state"] == "escalated"]
    assert later and later[0].severity == "critical"


def test_segments_that_look_alike_share_their_evidence_and_segments_that_differ_do_not() -> None:
    # Honest rates: 3% where x0 < 0, 7% above, whatever the merchant.
    joined, layout = labelled(REFERENCE, seed=3)
    watch = FeedbackWatch()
    watch.observe(joined, layout)
    assert watch.reference_rate is not None and not watch.in_reference
    names = [f.name for f in layout.features]
    approve = watch.classes.index("approve")
    way = approve * (watch.max_classes + 1) + watch.classes.index("decline")
    merchant = names.index("merchant")
    seen = watch.trials[merchant, :, way] > 0
    raw = watch.hits[merchant, seen, way] / watch.trials[merchant, seen, way]
    pooled = watch.reference_rate[merchant, seen, way]
    # Each merchant's own rate rests on tens to hundreds of labels and scatters; pooled
    # with its alike neighbours' thousands, the rates are within a fraction of that.
    assert raw.max() - raw.min() > 0.04
    assert pooled.max() - pooled.min() < 0.005
    assert pooled.min() > 0.04 and pooled.max() < 0.065
    # x0's bins (deciles) differ for real: each keeps its own rate.
    x0 = layout.features[names.index("x0")]
    assert x0.cuts is not None
    rates = watch.reference_rate[names.index("x0"), : len(x0.cuts) + 1, way]
    below = [r for r, cut_ in zip(rates, x0.cuts, strict=False) if cut_ <= -0.3]
    above = [r for r, cut_ in zip(rates[1:], x0.cuts, strict=False) if cut_ >= 0.3]
    assert below and above and max(below) < 0.05 < min(above), rates


def test_the_rests_noise_leaves_the_nulls_at_their_reference_rates() -> None:
    # 7,550 labels after the reference: between two renewals of the reference (every
    # 3,000), so the nulls of the current step and the reference rates are of one time.
    joined, layout = labelled(REFERENCE + 7_550, seed=4)
    watch = FeedbackWatch()
    watch.observe(joined, layout)
    assert watch.baseline is not None and watch.reference_rate is not None
    k = watch.max_classes + 1
    ways = [a * k + b for a in range(2) for b in range(2) if a != b]
    live = watch.trials[:, :, ways] > 100
    null, reference = watch.baseline[:, :, ways][live], watch.reference_rate[:, :, ways][live]
    # The rest of a feature's recent labels (~1,000) scatter around its reference rate by
    # several percent of it; nulls lifted by that noise (and by the rest's reference
    # rate taken low), as before, were above their reference rates in 93% of these cells.
    lifted = null > reference * 1.001
    assert len(null) > 300 and lifted.mean() < 0.05, lifted.mean()


def test_findings_are_exact_whatever_the_batching_and_across_a_save_and_load() -> None:
    joined, layout = labelled(ONSET + 10_000, seed=0, poison_at=ONSET)
    whole = _run(joined, layout, len(joined.seq))
    assert whole, "nothing found"
    assert whole == _run(joined, layout, len(joined.seq)), "not deterministic"
    assert whole == _run(joined, layout, [1, 7, 500, 1999, 3]), "depends on batch boundaries"
    assert whole == _run(joined, layout, 997, reload_at=3), "save and load in the reference"
    assert whole == _run(joined, layout, 997, reload_at=6), "save and load within a step"
    assert whole == _run(joined, layout, 997, reload_at=12), "save and load, reference grown"
    assert whole == _run(joined, layout, 997, reload_at=11), "save and load while firing"


def test_states_of_the_block_test_before_load_and_go_on() -> None:
    joined, layout = labelled(ONSET + 10_000, seed=0, poison_at=ONSET)
    watch = FeedbackWatch()
    watch.observe(cut(joined, 0, 6_000), layout)
    state = json.loads(json.dumps(watch.dump()))
    # As the test of blocks wrote it: no version, recent counts or runs of the feature;
    # labels waiting for their block; and before that, no block length either.
    for key in ("version", "recent", "aging", "run_feature"):
        del state[key]
    state["pending"] = {"codes": None}  # its labels are not tested: never read
    older = FeedbackWatch.load(state)
    assert not older.in_reference and older.count == 6_000
    assert np.array_equal(older.cusum, watch.cusum)  # type: ignore[arg-type]
    assert np.array_equal(older.run_hits, watch.run_hits)  # type: ignore[arg-type]
    del state["block_labels"]
    oldest = FeedbackWatch.load(state)
    assert oldest.block_labels == 1000
    # It goes on: the poisoned segment is found all the same.
    found = [f for f in oldest.observe(cut(joined, 6_000, len(joined.seq)), layout)]
    assert found and found[0].signal == "feedback:merchant=m07"


def test_clean_feedback_stays_quiet_and_the_budget_holds() -> None:
    # 20 features, 200,000 clean labels, honest rates that differ by segment (3% / 7%).
    joined, layout = labelled(200_000, seed=11)
    assert _run(joined, layout, 4096) == []
    # Heterogeneity that is not poisoning: honest rates by country (x0.6 to x3), 90%
    # approvals (a rare class), merchants' shares drifting (m07 from 3% to 8%).
    joined, layout = labelled(200_000, seed=12, **heterogeneous())
    assert _run(joined, layout, 4096) == []
    # With a budget of one false alarm per 10,000 labels, the 180,000 labels tested may
    # raise at most about 18 (the rate the thresholds are set for); many more would mean
    # the thresholds or the reference rates are off.
    loose = _run(joined, layout, 4096, false_alarm_labels=1e4)
    alarms = [f for f in loose if f.details["state"] == "alarm"]
    assert len(alarms) <= 18, len(alarms)


def test_a_global_rise_of_the_error_is_not_poisoning_but_a_flip_in_it_still_is() -> None:
    # Every segment's disagreement goes from 10% to 40% at once (drift, a bad release):
    # realized performance speaks of it; no segment disagrees more than the rest. The rise
    # comes anywhere in a step of the nulls (100 labels) and a block (1,000).
    for seed, rise in enumerate((ONSET, ONSET + 550, ONSET + 999, ONSET + 250, ONSET + 99)):
        joined, layout = labelled(
            ONSET + 20_000, seed, error_rates=(0.07, 0.13), rise_at=rise, risen_rates=(0.37, 0.43)
        )
        assert _run(joined, layout, 2048) == [], f"seed {seed}"
    # The same rise with m07's approvals flipped at 80% instead of 40% is still found.
    joined, layout = labelled(
        ONSET + 20_000,
        0,
        poison_at=ONSET,
        poisoned=0.8,
        error_rates=(0.07, 0.13),
        rise_at=ONSET,
        risen_rates=(0.37, 0.43),
    )
    found = _run(joined, layout, 2048)
    assert found and {f.signal for f in found} == {"feedback:merchant=m07"}
    assert found[0].details["direction"] == "approve → decline"


@pytest.mark.slow
def test_one_million_clean_labels_raise_nothing() -> None:
    joined, layout = labelled(1_000_000, seed=21)
    assert _run(joined, layout, 8192) == []


def test_a_new_baseline_starts_a_new_reference() -> None:
    joined, layout = labelled(30_000, seed=4, poison_at=0)
    watch = FeedbackWatch(reference_labels=1000)
    watch.observe(cut(joined, 0, 5_000), layout)
    assert not watch.in_reference
    other, _ = labelled(1000, seed=5)
    new_layout = SegmentLayout.build({"x0": NumericReference.build(np.arange(10.0))})
    watch.observe(cut(other, 0, 10), new_layout)
    # Keys of the old layout no longer count; the new layout's reference starts.
    assert watch.layout is new_layout and watch.count == 0 and watch.skipped == 10


def test_value_predictions_are_tested_by_the_side_of_the_error() -> None:
    rng = np.random.default_rng(2)
    n = 40_000
    region = np.where(rng.random(n) < 0.05, "north", "south").astype(object)
    batch = RowBatch(ts=np.zeros(n), categorical={"region": region})
    layout = SegmentLayout.build({"region": CategoricalReference.build(region[:5000], 1000)})
    predicted = rng.normal(100, 10, n)
    truth = predicted + rng.normal(0, 5, n)
    poisoned = (region == "north") & (np.arange(n) >= 25_000)
    truth[poisoned] = predicted[poisoned] + np.abs(rng.normal(0, 5, int(poisoned.sum())))
    seq = np.arange(n, dtype=np.int64)
    joined = JoinedLabels(
        seq, 1.6e9 + seq, predicted.tolist(), truth.tolist(), segments=layout.keys(batch, list(seq))
    )
    found = _run(joined, layout, 3000)
    assert found and {f.signal for f in found} == {"feedback:region=north"}
    assert found[0].details["direction"] == "label above prediction"
    assert 25_000 <= found[0].details["event_index"] < 27_000


def test_segment_keys_bin_every_feature_and_names_are_bounded() -> None:
    refs: dict[str, NumericReference | CategoricalReference] = {
        "amount": NumericReference.build(np.arange(1000.0)),
        "city": CategoricalReference.build(np.array(["a"] * 5 + ["b"] * 3 + ["c"], object), 10),
    }
    layout = SegmentLayout.build(refs, categories=2)
    batch = RowBatch(
        ts=np.zeros(4),
        numeric={"amount": np.array([-5.0, 150.0, np.nan, 5000.0])},
        categorical={"city": np.array(["a", "c", None, "b"], dtype=object)},
    )
    codes = layout.codes(batch)
    assert codes[:, 0].tolist() == [0, 1, MISSING, 9]
    assert codes[:, 1].tolist() == [0, OTHER, MISSING, 1]
    keys = layout.keys(batch, [1, 3])
    assert keys[0] == layout.digest + bytes([1, OTHER]) and len(keys[1]) == 6
    amount, city = layout.features
    assert amount.segment(0) == "<99" and amount.segment(9) == ">=899"
    assert city.segment(OTHER) == "(other)" and amount.segment(MISSING) == "(missing)"
    assert bounded_text("x\x1b[31m" + "y" * 500) == ("x\\u001b[31m" + "y" * 500)[:99] + "…"
    # A feature missing from a batch is missing in every event of it.
    assert (layout.codes(RowBatch(ts=np.zeros(2))) == MISSING).all()
    with pytest.raises(ValueError, match="quantiles"):
        SegmentLayout.build(refs, quantiles=20)


@pytest.mark.parametrize("rate", ARL_RATES[[12, 15, 20]].tolist())  # 1.2%, 3.9%, 20%
def test_the_threshold_factor_is_the_cusums_simulated_run_length(rate: float) -> None:
    # A Bernoulli CUSUM (odds ratio 6) at its null rate, to a threshold of 5 nats: its
    # average run over many runs, against exp(5) times the factor the thresholds use
    # (exact at the rates it is computed at; between them, the smaller of the two).
    nats, odds = 5.0, 6.0
    p1 = odds * rate / (1 - rate) / (1 + odds * rate / (1 - rate))
    up, down = np.log(p1 / rate), np.log((1 - p1) / (1 - rate))
    rng = np.random.default_rng(3)
    runs = []
    for _ in range(400):
        value, n = 0.0, 0
        while value < nats:
            hits = rng.random(4096) < rate
            for hit in hits.tolist():
                n += 1
                value = max(0.0, value + (up if hit else down))
                if value >= nats:
                    break
        runs.append(n)
    simulated = float(np.mean(runs)) / np.exp(nats)
    factor = float(arl_factor(np.array([rate]), odds, nats)[0])
    # 400 runs (nearly exponential): the mean within ~10% (2 standard errors), and the
    # steps rounded to 0.01 nats in the factor's chain; never above MAX_ARL_FACTOR.
    expected = min(simulated, MAX_ARL_FACTOR)
    assert 0.85 * expected <= factor <= 1.15 * expected, (factor, simulated)
    # Between two rates it is computed at, the factor is the smaller: never above either.
    assert arl_factor(np.array([rate * 1.1]), odds, nats)[0] <= factor
