"""CBPE gives exactly the figures and the state it gave before its hot paths were made
cheaper: random streams (binary and three classes, scores and probabilities, ids sent
again, labels late or for unknown ids, batches of 1 to thousands of events cut anywhere,
through each of the three ways in) are fed, and everything that comes out is compared
with what the code gave when the fixture was written: each call's findings, the window
results, the signal changes and ``dump()`` (its ``repr``: values, types and key order),
with the state round-tripped through JSON and ``load`` now and then. The state's id
map is left out of the comparison: the rows hold the ids it is made of, and
``test_det_cbpe_ids`` holds the rows the labels land on to that map, kept eagerly.

The fixture holds a digest per stretch of each stream. To write it again (only for a
deliberate change of results): ``python -m tests.detectors.test_det_cbpe_exact --write``.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detectors.performance.estimated import (
    EstimatedPerformance,
    Scored,
    ScoredColumns,
    ScoredRow,
)

FIXTURE = Path(__file__).with_name("cbpe_exact.json")
PARAMS: dict[str, Any] = {
    "window": 150,
    "reference": 450,
    "alpha": 0.01,
    "recover_windows": 2,
    "realized_after": 2,
    "min_labels": 50,
    "max_classes": 3,
}
KINDS = ("confidence", "score", "classes3", "mixed", "one_class")
STREAMS = [(kind, seed) for kind in KINDS for seed in (1, 2)]
CHECKPOINT = 2  # calls between two digests


def _prediction(kind: str, i: int, rng: np.random.Generator, shifted: bool) -> tuple[Any, ...]:
    """(predicted, score, probabilities, P(each class)) of prediction ``i``."""
    if kind != "classes3":
        p = rng.beta(3, 3) if shifted else rng.beta(0.6, 0.6)
        if kind == "score":  # the probability of "b", rarely predicted
            p = p * 0.6
            predicted = "b" if p >= 0.5 else "a"
            return predicted, float(p), None, {"a": 1 - p, "b": p}
        predicted = "yes" if p >= 0.5 else "no"
        if kind == "one_class":
            predicted = "yes"
        score: float = float(max(p, 1 - p))
        if kind == "mixed" and rng.random() < 0.85:  # probabilities of the two classes
            both = {"yes": p, "no": 1 - p}
            if rng.random() < 0.02:
                both.update(maybe=0.0, later=0.0)  # more classes than tracked
            return (
                predicted,
                score if rng.random() < 0.5 else math.nan,
                both,
                {"yes": p, "no": 1 - p},
            )
        roll = rng.random()
        if roll < 0.01:
            score = math.nan
        elif roll < 0.015:
            score = math.inf
        elif roll < 0.02:
            score = 1  # an int score
        return predicted, score, None, {"yes": p, "no": 1 - p}
    names = ["a", "b", "c"]
    alpha = [3.0, 3.0, 3.0] if shifted else [0.7, 0.5, 0.4]
    q = rng.dirichlet(alpha)
    probabilities: dict[str, float] = {c: float(q[k]) for k, c in enumerate(names)}
    roll = rng.random()
    if roll < 0.02:
        probabilities["d"] = 0.01  # more classes than tracked: taken without them
    elif roll < 0.03:
        probabilities["a"] = math.nan
    predicted = names[int(np.argmax(q))]
    score = math.nan if rng.random() < 0.8 else float(q.max())
    return predicted, score, probabilities, dict(zip(names, q.tolist(), strict=True))


def make_events(kind: str, seed: int, n: int = 3000) -> list[ScoredRow]:
    """Predictions in runs, labels in clumps between them (some late, some for ids
    never seen or without an id), ids sent again now and then."""
    rng = np.random.default_rng(seed)
    events: list[ScoredRow] = []
    pending: list[tuple[int, str | None, str]] = []  # (due at prediction, id, truth)
    seq = 0
    sent: list[str] = []
    for i in range(n):
        shifted = n // 2 <= i < n // 2 + 600
        predicted, score, probabilities, truth_p = _prediction(kind, i, rng, shifted)
        # Ids missing or sent again in one stretch of three: the other windows have each
        # id once, as most streams do.
        roll = rng.random() if (i // 400) % 3 == 1 else 1.0
        request: str | None
        if roll < 0.03:
            request = None
        elif roll < 0.13 and sent:
            request = sent[-int(rng.integers(1, min(len(sent), 500) + 1))]
        else:
            request = f"r{i}"
            sent.append(request)
        events.append((seq, 1.6e9 + seq, request, predicted, score, probabilities, None))
        seq += 1
        if rng.random() < 0.9:
            names = list(truth_p)
            weights = np.array([truth_p[c] for c in names], dtype=np.float64)
            truth = names[int(rng.choice(len(names), p=weights / weights.sum()))]
            delay = int(rng.integers(0, 30)) if rng.random() < 0.7 else int(rng.integers(0, 400))
            pending.append((i + delay, request, truth))
        if rng.random() < 1 / 60:  # a clump of labels: those due, and a few strays
            due = [p for p in pending if p[0] <= i]
            pending = [p for p in pending if p[0] > i]
            due.append((i, f"unknown{i}", "yes"))
            due.append((i, None, "no"))
            for _, request_id, truth in due:
                events.append((seq, 1.6e9 + seq, request_id, None, math.nan, None, truth))
                seq += 1
    return events


def _cuts(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    cuts, at = [], 0
    while at < n:
        roll = rng.random()
        if roll < 0.25:
            size = 1
        elif roll < 0.7:
            size = int(rng.integers(2, 60))
        elif roll < 0.95:
            size = int(rng.integers(60, 300))
        else:
            size = int(rng.integers(400, 2048))
        cuts.append((at, min(at + size, n)))
        at += size
    return cuts


def trace(kind: str, seed: int) -> list[str]:
    """A digest per ``CHECKPOINT`` calls of everything CBPE returned and its state."""
    events = make_events(kind, seed)
    rng = np.random.default_rng(1000 + seed)
    est = EstimatedPerformance(**PARAMS)
    digests: list[str] = []
    seen: list[str] = []
    for call, (start, stop) in enumerate(_cuts(len(events), rng), start=1):
        part = events[start:stop]
        way = rng.random()
        if way < 0.6:
            found = est.observe_rows(part)
        elif way < 0.8:
            found = est.observe([Scored(*row) for row in part])
        else:
            found = est.observe_columns(ScoredColumns.of(part))
        seen.append(repr(found))
        if call % CHECKPOINT == 0 or stop == len(events):
            state = est.dump()
            rows = {k: v for k, v in state.items() if k != "ids"}  # see the docstring
            seen += [repr(est.take_results()), repr(est.take_changes()), repr(rows)]
            digests.append(hashlib.sha256("\n".join(seen).encode()).hexdigest()[:16])
            seen = []
            if call % (3 * CHECKPOINT) == 0:  # go on from the state, as after a restart
                loaded = EstimatedPerformance.load(json.loads(json.dumps(state)))
                assert repr(loaded.dump()) == repr(state)
                est = loaded
    return digests


@pytest.mark.parametrize(("kind", "seed"), STREAMS)
def test_results_and_state_are_what_they_were(kind: str, seed: int) -> None:
    expected = json.loads(FIXTURE.read_text())[f"{kind}/{seed}"]
    got = trace(kind, seed)
    first = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b), None)
    assert first is None, f"differs from stretch {first} (of {CHECKPOINT} calls each) on"
    assert len(got) == len(expected)


def test_the_streams_reach_every_path() -> None:
    """The streams cross windows mid-batch, alarm, and realize windows from labels."""
    events = make_events("confidence", 1)
    est = EstimatedPerformance(**PARAMS)
    found = []
    for start, stop in _cuts(len(events), np.random.default_rng(1001)):
        found += est.observe_rows(events[start:stop])
    kinds = {r.kind for r in est.take_results()}
    assert found and kinds == {"estimated", "realized"}
    assert est.calibration is not None and est.calibration.labels > 0


def write() -> None:
    FIXTURE.write_text(
        json.dumps({f"{kind}/{seed}": trace(kind, seed) for kind, seed in STREAMS}, indent=1) + "\n"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
