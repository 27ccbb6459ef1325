"""Time the sequential evidence's update against an earlier revision's, in one process.

The earlier revision's ``detectors/sequential`` is read from git into a temporary
package, and both are fed the same events, old and new alternating, the minimum
of several repeats (CPU time) kept; their findings and dumps must be equal. The
data is scripts/bench_detectors.py's model (16 numeric features of varied
shapes, 4 categorical), numeric values rounded to 4 decimals, a detector with
the default settings fitted on the first 10,000 events, then fed in batches.

    .venv/bin/python scripts/bench_evidence.py [--old main] [--batch 2048] [--batches 100]
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from detectors.reference import CategoricalReference, NumericReference
from detectors.sequential import FeatureEvidence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_detectors import batches

REFERENCE = 10_000
Call = tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]


def old_class(rev: str, folder: Path) -> Any:
    """``FeatureEvidence`` as of ``rev``, imported from a copy under ``folder``."""
    root = Path(__file__).resolve().parent.parent
    names = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{rev}:detectors/sequential"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    package = folder / "old_sequential"
    package.mkdir()
    for name in (n for n in names if n.endswith(".py")):
        text = subprocess.run(
            ["git", "show", f"{rev}:detectors/sequential/{name}"],
            cwd=root,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (package / name).write_text(text.replace("detectors.sequential", "old_sequential"))
    sys.path.insert(0, str(folder))
    return importlib.import_module("old_sequential.evidence").FeatureEvidence


def workload(batch: int, count: int) -> tuple[dict[str, Any], list[Call]]:
    """A fitted detector's dump and the batches after its reference."""
    data = batches(REFERENCE + batch * count, batch, seed=1)
    for b in data:
        for k in b.numeric:
            b.numeric[k] = np.round(b.numeric[k], 4)
    first = REFERENCE // batch + 1
    num = {
        f"feature:{k}": NumericReference.build(
            np.concatenate([b.numeric[k] for b in data[:first]])[:REFERENCE]
        )
        for k in data[0].numeric
    }
    cat = {
        f"feature:{k}": CategoricalReference.build(
            np.concatenate([b.categorical[k] for b in data[:first]])[:REFERENCE], 100
        )
        for k in data[0].categorical
    }
    det = FeatureEvidence()
    det.fit(num, cat)
    calls = [
        (
            {f"feature:{k}": v for k, v in b.numeric.items()},
            {f"feature:{k}": cat[f"feature:{k}"].encode(v) for k, v in b.categorical.items()},
            len(b),
        )
        for b in data[first:]
    ]
    return det.dump(), calls


def run(cls: Any, state: dict[str, Any], calls: list[Call]) -> tuple[float, str]:
    det = cls.load(state)
    start = time.process_time()
    found = [det.update(num, cat, size) for num, cat, size in calls]
    return time.process_time() - start, repr(found) + repr(det.dump())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="main", help="the revision to compare with")
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    state, calls = workload(args.batch, args.batches)
    events = sum(size for _, _, size in calls)
    with tempfile.TemporaryDirectory() as folder:
        classes = {"old": old_class(args.old, Path(folder)), "new": FeatureEvidence}
        best = dict.fromkeys(classes, float("inf"))
        for _ in range(args.repeats):
            outcomes = {}
            for name, cls in classes.items():
                seconds, outcomes[name] = run(cls, state, calls)
                best[name] = min(best[name], seconds)
            assert outcomes["old"] == outcomes["new"], "findings or dumps differ"
    old, new = (best[k] / events * 1e6 for k in ("old", "new"))
    print(
        f"{events} events in batches of {args.batch}: {args.old} {old:.3f} µs/event, "
        f"this tree {new:.3f} µs/event of CPU (min of {args.repeats}), ratio {old / new:.2f}; "
        "findings and dumps equal"
    )


if __name__ == "__main__":
    main()
