"""Peak memory of a replay against streams with ever more distinct names or values.

A producer decides how many distinct feature names, metric names, model names,
client ids and category labels it sends; none of them may make Driftwarden's
memory grow without bound. For each dimension and each count of distinct
values, this writes a JSONL stream into a temporary folder, replays it with
``driftwarden replay`` in a fresh process and reports that process's peak
resident memory and the size of the detector state it saved. The peak is the
replay's own ``VmHWM`` (from /proc at its exit): ``ru_maxrss`` of a child
includes the parent's resident memory at the fork, which would hide it here.

    .venv/bin/python scripts/bench_caps.py [--sizes 10000,100000,1000000]
        [--dimensions features,metrics,unlisted,clients,categories]

- features: 20,000 events of one model, each with 2 real features, a score and
  ceil(distinct / 10,000) junk feature names, so that every junk name shows
  during the 10,000-event warm-up (the worst case: capped by
  ``[detection] max_features``);
- metrics: max(distinct, 50,000) metric points, each series name new until
  ``distinct`` (``[detection] max_metric_series``);
- unlisted: max(distinct, 50,000) events, nine in ten of models not in the
  config, each name new until ``distinct`` (``[limits] max_unlisted_models``);
- clients: max(distinct, 50,000) predictions from ``distinct`` callers (bounded
  by the client detectors' ``max_clients`` and their windows);
- categories: max(distinct, 50,000) predictions whose categorical feature takes
  ``distinct`` labels (bounded by ``[detection] max_categories``).
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
START = 1_790_000_000.0  # 2026-09-21: replays refuse times ahead of the wall clock
WARMUP = 10_000  # the default reference_size
DIMENSIONS = ("features", "metrics", "unlisted", "clients", "categories")
CONFIG = '[store]\npath = "unused.db"\n[[models]]\nname = "m"\n'


def _prediction(
    i: int, features: dict[str, object] | None = None, **extra: object
) -> dict[str, object]:
    values: dict[str, object] = {"amount": (i * 7919) % 1000 / 10.0}
    values["country"] = ("DE", "FR", "US")[i % 3]
    values.update(features or {})
    score = (i * 104729) % 1000 / 1000.0
    return {"model": "m", "ts": START + i, "score": score, "features": values, **extra}


def features(distinct: int) -> Iterator[dict[str, object]]:
    per = math.ceil(distinct / WARMUP)
    for i in range(2 * WARMUP):
        junk = {f"junk_feature_{(i * per + t) % distinct}": 1.0 for t in range(per)}
        yield _prediction(i, features=junk)


def metrics(distinct: int) -> Iterator[dict[str, object]]:
    for i in range(max(distinct, 50_000)):
        name = f"latency_ms_{i % distinct}"
        yield {"type": "metric", "model": "m", "ts": START + i, "name": name, "value": i % 97}


def unlisted(distinct: int) -> Iterator[dict[str, object]]:
    for i in range(max(distinct, 50_000)):
        if i % 10 == 0:
            yield _prediction(i)
        else:
            yield {"model": f"unlisted-model-{i % distinct:07d}", "ts": START + i, "score": 0.5}


def clients(distinct: int) -> Iterator[dict[str, object]]:
    for i in range(max(distinct, 50_000)):
        yield _prediction(i, client=f"client-{(i * 7) % distinct}")


def categories(distinct: int) -> Iterator[dict[str, object]]:
    for i in range(max(distinct, 50_000)):
        yield _prediction(i, features={"merchant": f"merchant-{(i * 7) % distinct}"})


STREAMS: dict[str, Callable[[int], Iterator[dict[str, object]]]] = {
    "features": features,
    "metrics": metrics,
    "unlisted": unlisted,
    "clients": clients,
    "categories": categories,
}


@dataclass
class Run:
    dimension: str
    distinct: int
    events: int
    input_mb: float
    peak_rss_mb: float
    state_mb: float
    seconds: float


def write_stream(path: Path, events: Iterator[dict[str, object]]) -> int:
    count = 0
    with path.open("wb") as out:
        lines = []
        for event in events:
            lines.append(orjson.dumps(event))
            count += 1
            if len(lines) == 10_000:
                out.write(b"\n".join(lines) + b"\n")
                lines = []
        if lines:
            out.write(b"\n".join(lines) + b"\n")
    return count


# `driftwarden replay ...` run as `python -m monitor.cli` does, then its peak resident
# memory (kB) written to the file named by argv[1].
CHILD = """
import sys
from pathlib import Path
from monitor.cli.main import main
out = Path(sys.argv[1])
try:
    code = main(sys.argv[2:])
finally:
    status = Path("/proc/self/status").read_text()
    out.write_text(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1])
sys.exit(code)
"""


def replay(config: Path, events: Path, store: Path, folder: Path) -> tuple[float, float]:
    """``driftwarden replay`` in a fresh process: its peak resident MB and its seconds."""
    peak, log = folder / "peak.txt", folder / "replay.log"
    args = [sys.executable, "-c", CHILD, str(peak), "replay", "--config", str(config)]
    args += ["--input", str(events), "--store", str(store)]
    started = time.perf_counter()
    with log.open("wb") as output:
        code = subprocess.run(args, cwd=ROOT, stdout=output, stderr=output).returncode
    if code != 0:
        raise SystemExit(f"replay failed ({code}):\n{log.read_text()[-2000:]}")
    return int(peak.read_text()) / 1024, time.perf_counter() - started


def state_mb(store: Path) -> float:
    with sqlite3.connect(store) as db:
        (state,) = db.execute("SELECT coalesce(sum(length(state)), 0) FROM model_state").fetchone()
        (blobs,) = db.execute("SELECT coalesce(sum(length(data)), 0) FROM state_blobs").fetchone()
    return float(state + blobs) / 1e6


def measure(dimension: str, distinct: int, folder: Path) -> Run:
    events = folder / f"{dimension}-{distinct}.jsonl"
    count = write_stream(events, STREAMS[dimension](distinct))
    config = folder / "bench.toml"
    config.write_text(CONFIG)
    store = folder / f"{dimension}-{distinct}.db"
    peak, seconds = replay(config, events, store, folder)
    run = Run(
        dimension,
        distinct,
        count,
        events.stat().st_size / 1e6,
        peak,
        state_mb(store),
        seconds,
    )
    events.unlink()
    store.unlink()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--dimensions", default=",".join(DIMENSIONS))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    dimensions = args.dimensions.split(",")
    unknown = set(dimensions) - set(DIMENSIONS)
    if unknown:
        raise SystemExit(f"unknown dimension(s) {sorted(unknown)}; choose from {DIMENSIONS}")
    print("| dimension | distinct values | events | input MB | peak RSS MB | state MB | seconds |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="bench-caps-") as tmp:
        for dimension in dimensions:
            for distinct in sizes:
                r = measure(dimension, distinct, Path(tmp))
                print(
                    f"| {r.dimension} | {r.distinct:,} | {r.events:,} | {r.input_mb:,.1f} | "
                    f"{r.peak_rss_mb:,.0f} | {r.state_mb:,.2f} | {r.seconds:,.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
