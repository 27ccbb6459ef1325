"""client_inputs: quiet on benign callers with their own input mixes; catches an
extraction sweep, adversarial search and novelty, names the caller; drift
findings made meanwhile name it too; exact through a restart."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from detectors.base import Finding, RowBatch
from detectors.client.inputs import ClientInputs
from detectors.suite.model_detectors import ModelDetectors
from tests.detectors.client_streams import Attack, Traffic


def _feed(det: ClientInputs, batches: list[RowBatch]) -> list[tuple[int, str, str]]:
    out, first = [], 0
    for b in batches:
        for o in det.update(b.client, b.score, b.numeric):  # type: ignore[arg-type]
            out.append((first + o.index, o.client, o.behaviour))
        first += len(b)
    return out


def _detector() -> ClientInputs:
    det = ClientInputs()
    det.calibrate(1e-4)  # the suite's default grant: 0.1 * 2000 / 1e7 would be stricter
    return det


@pytest.mark.parametrize("seed", [1, 2])
def test_benign_callers_with_their_own_mixes_raise_nothing(seed: int) -> None:
    traffic = Traffic(callers=500, seed=seed)
    assert _feed(_detector(), list(traffic.chunks(300_000))) == []


@pytest.mark.parametrize("share", [0.005, 0.001])
def test_a_sweep_at_half_or_a_tenth_of_a_percent_is_caught_within_300_queries(
    share: float,
) -> None:
    traffic = Traffic(seed=3)
    sweep = Attack("sweeper", share, 40_000, 200_000)
    batches = list(traffic.chunks(200_000, (sweep,)))
    flagged = _feed(_detector(), batches)
    assert flagged and {c for _, c, _ in flagged} == {"sweeper"}
    at, _, behaviour = flagged[0]
    assert behaviour == "coverage"
    clients = np.concatenate([b.client for b in batches])
    queries = int((clients[: at + 1] == "sweeper").sum())
    assert 0 < queries <= 300


def test_a_burst_of_adversarial_search_is_caught_as_search() -> None:
    traffic = Traffic(seed=4)
    burst = Attack("searcher", 0.2, 60_000, 62_000)  # about 400 queries
    flagged = _feed(_detector(), list(traffic.chunks(100_000, (burst,))))
    assert [(c, b) for _, c, b in flagged] == [("searcher", "search")]


def test_a_population_that_drifts_is_left_to_the_drift_detectors() -> None:
    traffic = Traffic(seed=5)
    batches = list(traffic.chunks(120_000))
    for b in batches[1:]:  # from event 50,000 every caller's inputs grow heavy tails
        for name in ("age", "income", "tenure", "balance"):
            b.numeric[name] = b.numeric[name] * 3
    assert _feed(_detector(), batches) == []


def test_state_round_trips_mid_window_with_identical_continuation() -> None:
    traffic = Traffic(seed=6)
    sweep = Attack("sweeper", 0.01, 20_000, 60_000)
    batches = list(traffic.chunks(60_000, (sweep,), chunk=7_001))
    whole = _feed(_detector(), batches)
    first = _detector()
    head = _feed(first, batches[:1])  # inside the reference window, then mid-window later
    det = ClientInputs.load(json.loads(json.dumps(first.dump(), allow_nan=False)))
    rest = _feed(det, batches[1:])
    assert whole and head + [(i + len(batches[0]), c, b) for i, c, b in rest] == whole


def _suite_findings(attacks: tuple[Attack, ...], n: int, seed: int) -> list[Finding]:
    md = ModelDetectors()
    out: list[Finding] = []
    for chunk in Traffic(seed=seed).chunks(n, attacks, chunk=10_000):
        out += md.observe_rows(chunk)
    return out


def test_drift_made_by_a_searching_caller_names_it() -> None:
    burst = Attack("searcher", 0.2, 60_000, 62_000)
    findings = _suite_findings((burst,), 80_000, seed=7)
    clients = [f for f in findings if f.signal.startswith("client:")]
    assert {f.signal for f in clients} == {"client:searcher"}
    inputs = [f for f in clients if f.detector == "client_inputs"]
    assert inputs and inputs[0].details["behaviour"] == "search"
    drift = [f for f in findings if f.signal.startswith("feature:")]
    assert drift, "the burst moves the feature distributions"
    # Drift found once the caller is flagged names it; so does drift the sequential
    # evidence finds a few blocks into the burst, before the caller's window closes
    # (the caller sends far more than its share of the window so far).
    flagged_at = min(int(f.details["event_index"]) for f in inputs)
    before = [f for f in drift if int(f.details["event_index"]) < flagged_at]
    assert before, "the fast detectors see the burst before its window closes"
    assert {f.details.get("attribution") for f in before} == {"surging caller"}
    named: Any = [f.details.get("attributed_to") for f in drift]
    assert all(n == ["client:searcher"] for n in named)


def test_benign_traffic_raises_no_finding_in_the_suite() -> None:
    assert _suite_findings((), 200_000, seed=8) == []


def _suite_run(chunks: list[RowBatch], size: int, cut: int | None) -> list[Finding]:
    """The suite's findings with batches of ``size``, dumped and loaded at event ``cut``."""
    md, out = ModelDetectors(), []
    for chunk in chunks:
        for start in range(0, len(chunk), size):
            sl = slice(start, start + size)
            part = RowBatch(
                ts=chunk.ts[sl],
                numeric={k: v[sl] for k, v in chunk.numeric.items()},
                score=None if chunk.score is None else chunk.score[sl],
                client=None if chunk.client is None else chunk.client[sl],
            )
            out += md.observe_rows(part)
            if cut is not None and md.rows_observed == cut:
                md = ModelDetectors.load(json.loads(json.dumps(md.dump(), allow_nan=False)))
    return out


def test_attribution_survives_a_restart_and_any_batching() -> None:
    burst = Attack("searcher", 0.2, 30_000, 32_000)
    chunks = list(Traffic(seed=7).chunks(40_000, (burst,), chunk=10_000))
    gaps = chunks[3].numeric["visits"]  # events 30,000-39,999: a third missing from 32,000
    gaps[2_000:][np.random.default_rng(0).random(8_000) < 0.3] = np.nan

    def run(size: int, cut: int | None) -> list[Finding]:
        return _suite_run(chunks, size, cut)

    whole = run(10_000, None)
    later = [f for f in whole if int(f.details["event_index"]) > 32_000]
    assert any(
        f.detector == "missing_rate" and f.details.get("attributed_to") == ["client:searcher"]
        for f in later
    ), "a drift finding in the two windows after the flag names the searcher"
    assert run(777, None) == whole
    assert run(1_000, 32_000) == whole  # restart between the flag and that finding


def test_a_feature_named_like_the_internal_columns_changes_nothing() -> None:
    batches = list(Traffic(seed=9).chunks(30_000, (Attack("sweeper", 0.01, 15_000, 30_000),)))
    plain = _feed(_detector(), batches)
    for b in batches:
        b.numeric["$client"] = b.numeric["$score"] = np.zeros(len(b))
    assert plain and _feed(_detector(), batches) == plain


def test_drift_a_small_sweep_explains_names_the_sweeper_exactly_through_restarts() -> None:
    # 0.8% of traffic: below the share at which a flagged caller is named outright
    sweep = Attack("sweeper", 0.008, 20_000, 200_000)
    chunks = list(Traffic(seed=10).chunks(200_000, (sweep,), chunk=10_000))
    whole = _suite_run(chunks, 10_000, None)
    drift = [f for f in whole if not f.signal.startswith("client:")]
    assert drift, "the sweep's inputs beyond the reference's range move input_range"
    for f in drift:
        assert f.details["attributed_to"] == ["client:sweeper"], (f.detector, f.signal)
        assert f.details["attribution"] == "passes without their requests"
        assert 0 < f.details["attributed_shares"][0] < 0.02
    assert _suite_run(chunks, 777, None) == whole
    assert _suite_run(chunks, 1_000, 61_000) == whole  # restart mid-window


def test_real_drift_beside_a_flagged_sweeper_is_not_blamed_on_it() -> None:
    sweep = Attack("sweeper", 0.008, 20_000, 120_000)
    chunks = list(Traffic(seed=10).chunks(120_000, (sweep,), chunk=10_000))
    for b in chunks[8:]:  # from event 80,000 every caller's ages grow heavy tails
        b.numeric["age"] = 40 + (b.numeric["age"] - 40) * 3
    findings = _suite_run(chunks, 10_000, None)
    assert any(f.signal == "client:sweeper" for f in findings)
    age = [f for f in findings if f.signal == "feature:age"]
    assert age, "the population's drift is found"
    assert all("attributed_to" not in f.details for f in age)
