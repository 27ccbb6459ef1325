"""The per-client detectors give, batch after batch, the findings and saved
states recorded from their reference implementation (before their batch work
was shared between them): hostile streams of callers that come and go, one
that dominates, more callers than the caps keep, events without a caller,
long names, batches of one event to a thousand, a restart mid-stream.

The expectations (client_exact.json beside this file) hold every batch's
findings in full and a digest of the watch's saved state after it. They were
written by this module run as a script on the reference implementation:

    PYTHONPATH=REFERENCE_TREE:. python tests/detectors/test_det_client_exact.py --write
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detectors.client.watch import ClientWatch
from detectors.suite.alarms import AlarmTracker
from detectors.suite.settings import SuiteSettings

EXPECTED = Path(__file__).with_name("client_exact.json")
SEEDS = (1, 2, 3, 4)
SETTINGS = SuiteSettings(
    window=100,
    reference_size=100,
    false_alarm_events=2e4,
    detectors=("client_volume", "client_boundary", "client_inputs"),
    options={
        "client_volume": {"window": 100, "min_events": 5, "warmup_windows": 2, "max_clients": 8},
        "client_boundary": {
            "window": 100,
            "min_events": 5,
            "warmup_windows": 2,
            "max_clients": 8,
            "band": 0.05,
        },
        "client_inputs": {
            "window": 150,
            "min_events": 4,
            "warmup_windows": 2,
            "max_clients": 6,
            "spread_features": 2,
            "max_features": 4,
            "tail": 0.05,
            "novel": 0.01,
        },
    },
)
SIZES = np.array([1, 1, 2, 3, 7, 50, 99, 100, 137, 300, 512, 1000])
FEATURES = ("a", "b", "c", "d", "e")


@dataclasses.dataclass(frozen=True)
class Batch:
    clients: np.ndarray
    scores: np.ndarray | None
    ts: np.ndarray
    inputs: dict[str, np.ndarray]


def stream(seed: int, n: int = 9000) -> list[Batch]:
    """Phases of 1,500 events: callers come and go, one dominates (phase 2), a
    flood of one-off callers (phase 3), attackers from phase 1 on; seed 4 has
    no missing caller and a fixed-width string array rather than objects."""
    rng = np.random.default_rng([seed, 77])
    pool = [f"c{i}" for i in range(40)] + [("L" * 300) + str(i) for i in range(3)]
    out: list[Batch] = []
    total = 0
    while total < n:
        size = int(min(rng.choice(SIZES), n - total))
        phase = total // 1500
        active = pool[5 * phase : 5 * phase + 12] + pool[40:]
        weights = rng.lognormal(0, 1, len(active))
        if phase == 2:
            weights[0] = weights.sum()  # one caller sends half the traffic
        who = rng.choice(len(active), size, p=weights / weights.sum())
        # new str objects per event, as a decoder makes them
        callers: list[str | None] = [active[i].encode().decode() for i in who.tolist()]
        x = rng.normal(0, 1, (size, len(FEATURES)))
        x[rng.random(x.shape) < 0.02] = np.nan
        scores = rng.beta(2, 5, size)
        scores[rng.random(size) < 0.03] = np.nan
        draw = rng.random(size)
        for i in range(size):
            if phase == 3 and draw[i] < 0.3:
                callers[i] = f"once-{total + i}"
            elif phase >= 1 and draw[i] > 0.97:
                callers[i] = "sweeper"
                x[i] = rng.uniform(-4, 4, len(FEATURES))
            elif phase in (2, 4) and 0.90 < draw[i] <= 0.97:
                callers[i] = "searcher"
                x[i] = 0.3 + rng.normal(0, 1e-3, len(FEATURES))
                scores[i] = 0.49 if draw[i] < 0.935 else 0.51
            elif phase >= 1 and 0.85 < draw[i] <= 0.90:
                callers[i] = "prober"
                scores[i] = 0.5 + rng.uniform(-0.04, 0.04)
            elif seed != 4 and draw[i] < 0.08:
                callers[i] = None
        if seed == 4:
            clients = np.array(callers)
        else:
            clients = np.empty(size, dtype=object)
            clients[:] = callers
        inputs = {f: x[:, j] for j, f in enumerate(FEATURES)}
        if rng.random() < 0.1:  # a feature missing from a batch
            del inputs[FEATURES[int(rng.integers(0, len(FEATURES)))]]
        ts = 1.7e9 + (total + np.arange(size)) * 0.01
        out.append(Batch(clients, None if rng.random() < 0.03 else scores, ts, inputs))
        total += size
    return out


def digest(state: dict[str, Any]) -> str:
    text = json.dumps(state, sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def records(seed: int) -> list[str]:
    """Per batch, as canonical JSON: its findings, the callers surging in it and
    the digest of the watch's state after it (restored from JSON half-way)."""
    batches = stream(seed)
    watch = ClientWatch(SETTINGS)
    alarms = AlarmTracker(recover_after=300)
    first, out = 0, []
    for k, b in enumerate(batches):
        if k == len(batches) // 2:
            state = json.loads(json.dumps(watch.dump()))
            watch = ClientWatch(SETTINGS)
            watch.restore(state)
        found = watch.observe(b.clients, b.scores, b.ts, first, alarms, b.inputs)
        surging = watch.surging(b.clients)
        first += len(b.ts)
        watch.attribute([], first - 1)
        record = {
            "findings": [dataclasses.asdict(f) for f in found],
            "surging": surging,
            "state": digest(watch.dump()),
        }
        out.append(json.dumps(record, sort_keys=True))
    return out


@pytest.fixture(scope="module")
def expected() -> dict[str, list[str]]:
    loaded: dict[str, list[str]] = json.loads(EXPECTED.read_text())
    return loaded


@pytest.mark.parametrize("seed", SEEDS)
def test_findings_and_state_after_every_batch_are_the_recorded_ones(
    seed: int, expected: dict[str, list[str]]
) -> None:
    want = expected[str(seed)]
    got = records(seed)
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"seed {seed}, batch {k}"


def test_the_streams_exercise_findings_caps_and_missing_callers(
    expected: dict[str, list[str]],
) -> None:
    found = [json.loads(r)["findings"] for s in SEEDS for r in expected[str(s)]]
    detectors = {f["detector"] for fs in found for f in fs}
    assert detectors == {"client_volume", "client_boundary", "client_inputs"}
    behaviours = {f["details"].get("behaviour") for fs in found for f in fs}
    assert {"coverage", "search"} <= behaviours
    batches = stream(1)
    distinct = {c for b in batches for c in b.clients.tolist()}
    assert None in distinct and len(distinct) > 10 * 8  # more callers than any cap
    assert min(len(b.ts) for b in batches) == 1


def write() -> None:
    EXPECTED.write_text(json.dumps({str(s): records(s) for s in SEEDS}, indent=0) + "\n")


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    write()
