"""Benchmark the per-client detectors: false alarms, attacks caught, cost, memory.

Traffic of 500 benign callers with heavy-tailed rates and their own input mixes
(tests/detectors/client_streams.py), through the default detector suite in
batches of --batch events:

1. --events benign events: every finding counted (an incident needs one);
2. the same traffic with an extraction sweep (0.5% of traffic), a burst of
   adversarial search (about 400 queries) and boundary probing (1%): when and
   as what each attacker is flagged, and whom drift findings name;
3. the client detectors alone: microseconds per event (CPU time of this
   process, and wall time, which a loaded machine inflates);
4. memory of the client detectors with --events distinct callers.

    PYTHONPATH=. .venv/bin/python scripts/bench_clients.py [--events 1000000] [--batch 500]
        [--parts benign,attacks,cost,memory]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections import Counter

import numpy as np

from detectors.base import Finding, RowBatch
from detectors.client.watch import ClientWatch
from detectors.suite.alarms import AlarmTracker
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings
from tests.detectors.client_streams import Attack, Traffic


def batches(
    traffic: Traffic, n: int, size: int, attacks: tuple[Attack, ...] = ()
) -> list[RowBatch]:
    out = []
    for chunk in traffic.chunks(n, attacks):
        for s in range(0, len(chunk), size):
            sl = slice(s, s + size)
            out.append(
                RowBatch(
                    ts=chunk.ts[sl],
                    numeric={k: v[sl] for k, v in chunk.numeric.items()},
                    score=None if chunk.score is None else chunk.score[sl],
                    prediction=None if chunk.prediction is None else chunk.prediction[sl],
                    client=None if chunk.client is None else chunk.client[sl],
                )
            )
    return out


def suite_findings(data: list[RowBatch]) -> list[Finding]:
    md = ModelDetectors()
    out: list[Finding] = []
    for b in data:
        out += md.observe_rows(b)
    return out


def benign(n: int, size: int) -> None:
    findings = suite_findings(batches(Traffic(seed=11), n, size))
    clients = [f for f in findings if f.signal.startswith("client:")]
    print(
        f"benign: {n} events, 500 callers: {len(findings)} findings, {len(clients)} caller alerts"
    )
    for f in findings[:10]:
        print("  ", f.detector, f.signal, f.details["event_index"])


def attacks(n: int, size: int) -> None:
    sweep = Attack("sweeper", 0.005, n // 10, n)
    burst = Attack("searcher", 0.2, n // 2, n // 2 + 2000)
    probe = Attack("prober", 0.01, 6 * n // 10, n)
    data = batches(Traffic(seed=12), n, size, (sweep, burst, probe))
    findings = suite_findings(data)
    clients = np.concatenate([b.client for b in data if b.client is not None])
    print(f"attacks: {n} events; sweep 0.5% from {sweep.start}, burst at {burst.start}, ")
    print(f"  probing 1% from {probe.start}")
    for who in ("sweeper", "searcher", "prober"):
        sent = int((clients == who).sum())
        flags = [f for f in findings if f.signal == f"client:{who}"]
        if not flags:
            print(f"  {who}: {sent} queries, NOT caught")
            continue
        at = int(flags[0].details["event_index"])
        before = int((clients[: at + 1] == who).sum())
        how = sorted({f"{f.detector}:{f.details.get('behaviour', '-')}" for f in flags})
        print(f"  {who}: {sent} queries; first flagged after {before} of them (event {at}); {how}")
    others = {f.signal for f in findings if f.signal.startswith("client:")} - {
        "client:sweeper",
        "client:searcher",
        "client:prober",
    }
    print(f"  benign callers flagged: {sorted(others)}")
    drift = [f for f in findings if not f.signal.startswith("client:")]
    named = Counter(tuple(f.details.get("attributed_to", ["(none)"])) for f in drift)
    print(f"  drift findings: {len(drift)}; named callers: {dict(named)}")
    unnamed = Counter(f.detector for f in drift if "attributed_to" not in f.details)
    print(f"  drift findings naming no caller, by detector: {dict(unnamed)}")


def cost(n: int, size: int) -> None:
    data = batches(Traffic(seed=13), n, size)
    settings = SuiteSettings()
    for names in (None, ("client_inputs",)):
        watch = ClientWatch(settings if names is None else SuiteSettings(detectors=names))
        alarms = AlarmTracker(recover_after=3 * settings.window)
        first, t0, c0 = 0, time.perf_counter(), time.process_time()
        for b in data:
            assert b.client is not None
            watch.observe(b.client, b.score, b.ts, first, alarms, b.numeric)
            first += len(b)
        wall = (time.perf_counter() - t0) / n * 1e6
        cpu = (time.process_time() - c0) / n * 1e6
        label = ", ".join(watch.detectors)
        print(f"cost: {label}: {cpu:.2f} µs/event CPU, {wall:.2f} wall", end=" ")
        print(f"({n} events, batches of {size})")


def memory(n: int, size: int) -> None:
    watch = ClientWatch(SuiteSettings())
    alarms = AlarmTracker(recover_after=6000)
    data = batches(Traffic(seed=14), n, size)
    callers = np.array([f"new-{i}" for i in range(n)], dtype=object)
    tracemalloc.start()
    held = {}
    for k, b in enumerate(data):
        first = k * size
        watch.observe(callers[first : first + len(b)], b.score, b.ts, first, alarms, b.numeric)
        if first + size in (n // 10, n // 2, n):
            held[first + size] = tracemalloc.get_traced_memory()[0] / 1e6
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    shown = ", ".join(f"{k} callers: {v:.2f} MB" for k, v in held.items())
    print(f"memory, every event a new caller: held after {shown}; peak {peak:.2f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--parts", default="benign,attacks,cost,memory", help="comma-separated parts to run"
    )
    args = parser.parse_args()
    parts = {"benign": benign, "attacks": attacks, "cost": cost, "memory": memory}
    chosen = args.parts.split(",")
    unknown = sorted(set(chosen) - set(parts))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {', '.join(parts)}")
    for name in chosen:
        parts[name](args.events, args.batch)


if __name__ == "__main__":
    main()
