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
4. memory of the client detectors with --events distinct callers;
5. (``versus``, not run by default) the client detectors against those of git
   revision --against, in one process, alternating, --repeats times: CPU
   microseconds per event, the minimum of the repeats, in the daemon's steady
   state on one busy partition (37 callers, 16 numeric inputs, batches of
   --batch cut where the suite's windows close, each caller a new string per
   event as the decoder makes them; with --flood, every event's caller a new one).

    PYTHONPATH=. .venv/bin/python scripts/bench_clients.py [--events 1000000] [--batch 500]
        [--parts benign,attacks,cost,memory] [--against main --repeats 7 --flood]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

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
    held: dict[int, float] = {}
    first = 0  # batches need not divide the chunks of Traffic: count what was fed
    for b in data:
        watch.observe(callers[first : first + len(b)], b.score, b.ts, first, alarms, b.numeric)
        first += len(b)
        for mark in (n // 10, n // 2, n):
            if first >= mark and mark not in held:
                held[mark] = tracemalloc.get_traced_memory()[0] / 1e6
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    shown = ", ".join(f"{k} callers: {v:.2f} MB" for k, v in held.items())
    print(f"memory, every event a new caller: held after {shown}; peak {peak:.2f} MB")


def package_at(rev: str) -> ModuleType:
    """detectors/client as of git revision ``rev``, imported as ``client_at_rev``
    (its imports of itself renamed), for comparing in one process."""
    root = Path(__file__).resolve().parent.parent
    tmp = Path(tempfile.mkdtemp())
    (tmp / "client_at_rev").mkdir()
    git = ["git", "-C", str(root)]
    listed = subprocess.run(
        [*git, "ls-tree", "--name-only", rev, "detectors/client/"],
        check=True,
        capture_output=True,
        text=True,
    )
    for path in listed.stdout.split():
        text = subprocess.run(
            [*git, "show", f"{rev}:{path}"], check=True, capture_output=True, text=True
        ).stdout
        text = text.replace("detectors.client.", "client_at_rev.")
        text = text.replace("from detectors.client import", "from client_at_rev import")
        (tmp / "client_at_rev" / Path(path).name).write_text(text)
    sys.path.insert(0, str(tmp))
    return importlib.import_module("client_at_rev")


def watch_of(package: ModuleType, settings: SuiteSettings) -> Any:
    """A ClientWatch of ``package`` with that package's detectors (the registry
    builds the current ones)."""
    watch = importlib.import_module(f"{package.__name__}.watch").ClientWatch(settings)
    classes = (package.ClientVolume, package.ClientBoundary, package.ClientInputs)
    for cls in classes:
        if cls.name in watch.detectors:
            det = cls(**dict(settings.options.get(cls.name, {})))
            det.calibrate(0.1 * det.window / settings.false_alarm_events)
            watch.detectors[cls.name] = det
    return watch


Segment = tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]


def steady_segments(n: int, size: int, window: int) -> list[Segment]:
    """Batches of ``size`` events of 37 callers with 16 numeric inputs, cut where the
    suite's windows of ``window`` events close (as ModelDetectors feeds the watch)."""
    rng = np.random.default_rng(15)
    names = [f"tenant-{i:03d}-api-key" for i in range(37)]
    weights = rng.lognormal(0, 1, len(names))
    out: list[Segment] = []
    fill = 0
    for first in range(0, n, size):
        m = min(size, n - first)
        clients = np.empty(m, dtype=object)
        clients[:] = [names[i] for i in rng.choice(len(names), m, p=weights / weights.sum())]
        score = rng.beta(2, 5, m)
        inputs = {f"x{j:02d}": rng.normal(0, 1, m) for j in range(16)}
        ts = 1.7e9 + (first + np.arange(m)) * 0.01
        start = 0
        while start < m:
            take = min(m - start, window - fill)
            cut = slice(start, start + take)
            out.append((clients[cut], score[cut], ts[cut], {k: v[cut] for k, v in inputs.items()}))
            start += take
            fill = (fill + take) % window
    return out


def fresh(segments: list[Segment], flood: bool = False) -> list[Segment]:
    """``segments`` with each caller a new string, its hash not yet computed; with
    ``flood``, each event's caller one never seen before (hostile)."""
    out, seen = [], 0
    for clients, score, ts, inputs in segments:
        again = np.empty(len(clients), dtype=object)
        if flood:
            again[:] = [f"new-{seen + i}" for i in range(len(clients))]
            seen += len(clients)
        else:
            again[:] = [c.encode().decode() for c in clients.tolist()]
        out.append((again, score, ts, inputs))
    return out


def versus(n: int, size: int, rev: str, repeats: int, flood: bool) -> None:
    settings = SuiteSettings()
    old = package_at(rev)
    import detectors.client as new

    segments = steady_segments(n, size, settings.window)
    warm = len(segments) // 5  # past the reference and warm-up windows
    timed = sum(len(s[0]) for s in segments[warm:])
    best: dict[str, list[float]] = {"old": [], "new": []}
    for _ in range(repeats):
        for label, package in (("old", old), ("new", new)):
            watch, alarms = watch_of(package, settings), AlarmTracker(recover_after=6000)
            first = 0
            for clients, score, ts, inputs in fresh(segments[:warm], flood):
                watch.observe(clients, score, ts, first, alarms, inputs)
                first += len(clients)
            todo = fresh(segments[warm:], flood)
            gc.collect()
            c0 = time.process_time()
            for clients, score, ts, inputs in todo:
                watch.observe(clients, score, ts, first, alarms, inputs)
                first += len(clients)
            best[label].append((time.process_time() - c0) / timed * 1e6)
    was, now = min(best["old"]), min(best["new"])
    print(
        f"versus {rev}: {timed} events in batches of {size} "
        f"({'a new caller each' if flood else '37 callers'}, 16 inputs), "
        f"min of {repeats}: {was:.3f} -> {now:.3f} µs/event CPU, {was / now:.2f}x"
    )
    for label, times in best.items():
        print(f"  {label}: " + " ".join(f"{t:.3f}" for t in times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--parts", default="benign,attacks,cost,memory", help="comma-separated parts to run"
    )
    parser.add_argument("--against", default="main", help="git revision for part versus")
    parser.add_argument("--repeats", type=int, default=7, help="repeats of part versus")
    parser.add_argument("--flood", action="store_true", help="versus: a new caller per event")
    args = parser.parse_args()
    parts = {
        "benign": benign,
        "attacks": attacks,
        "cost": cost,
        "memory": memory,
        "versus": lambda n, size: versus(n, size, args.against, args.repeats, args.flood),
    }
    chosen = args.parts.split(",")
    unknown = sorted(set(chosen) - set(parts))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {', '.join(parts)}")
    for name in chosen:
        parts[name](args.events, args.batch)


if __name__ == "__main__":
    main()
