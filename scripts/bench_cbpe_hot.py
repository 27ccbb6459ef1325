"""CBPE's steady-state cost, this tree's against another revision's, in one process.

The stream is the daemon's busy partition: one binary model, a score and a "yes"/"no"
prediction and a request id on every event, no labels after the reference's (or, with
``--labelled``, a share of predictions labelled a little later), fed as
``observe_rows`` batches of ``--batch`` predictions as the service buffers them. Past the
calibration, both versions are fed the same batches, alternating (each batch is made
just before it is fed, as the service makes it), and the CPU time per prediction is
the minimum over ``--repeats`` rounds of ``--batches`` batches each; then ``dump()``,
the minimum of as many, and its size as JSON. The other revision's
``detectors/performance`` modules are read with ``git show`` and imported under
another name:

    .venv/bin/python scripts/bench_cbpe_hot.py --against main
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detectors.performance import estimated  # noqa: E402

MODULES = ("cbpe", "bootstrap", "calibration", "columns", "estimated")  # those a revision has
LABEL_DELAY = 50  # predictions between one and its label, with --labelled


def old_version(revision: str, into: Path) -> ModuleType:
    """``estimated`` as of ``revision``, with the sibling modules it imports, as a
    package ``old_performance``."""
    package = into / "old_performance"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in MODULES:
        shown = subprocess.run(
            ["git", "show", f"{revision}:detectors/performance/{name}.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if shown.returncode != 0:  # a module that revision had not
            continue
        text = shown.stdout
        text = text.replace("from detectors.performance.", "from old_performance.")
        text = text.replace("from detectors.performance import", "from old_performance import")
        (package / f"{name}.py").write_text(text)
    sys.path.insert(0, str(into))
    spec = importlib.util.find_spec("old_performance.estimated")
    assert spec is not None
    return importlib.import_module("old_performance.estimated")


def make_rows(p: np.ndarray, start: int, n: int, labelled: float = 0.0) -> list[Any]:
    """Rows as ``scored_row`` makes them: a confidence score, no probabilities; after
    each, the label of the prediction ``LABEL_DELAY`` before it, for a share ``labelled``
    of them (drawn from the prediction's number: both versions get the same)."""
    rows = []
    for i in range(start, start + n):
        predicted = "yes" if p[i] >= 0.5 else "no"
        score = float(max(p[i], 1 - p[i]))
        rows.append((i, 1.6e9 + i, f"req-{i:09d}", predicted, score, None, None))
        j = i - LABEL_DELAY
        if labelled and j >= 0 and (j * 0.6180339887) % 1 < labelled:
            truth = "yes" if (j * 0.7548776662) % 1 < p[j] else "no"
            rows.append((i, 1.6e9 + i, f"req-{j:09d}", None, math.nan, None, truth))
    return rows


def warmed(module: ModuleType, p: np.ndarray, rng: np.random.Generator) -> Any:
    """An estimator past its calibration: the reference with labels, then one window."""
    est = module.EstimatedPerformance()
    events = []
    for row in make_rows(p, 0, est.reference_size + est.window):
        events.append(row)
        if row[0] < est.reference_size:
            truth = "yes" if rng.random() < p[row[0]] else "no"
            events.append((row[0], row[1], row[2], None, math.nan, None, truth))
    est.observe_rows(events)
    assert est.calibration is not None
    return est


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="main", help="the revision to compare with")
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--labelled", type=float, default=0.0, help="the share of predictions with a label"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = old_version(args.against, Path(tmp))
        needed = 20_000 + args.repeats * args.batches * args.batch
        p = np.random.default_rng(1).beta(0.6, 0.6, needed)
        versions = {"old": old, "new": estimated}
        ests = {k: warmed(m, p, np.random.default_rng(2)) for k, m in versions.items()}
        at = ests["new"].count
        best = {k: math.inf for k in versions}
        dumps = {k: math.inf for k in versions}
        for _ in range(args.repeats):
            spent = dict.fromkeys(versions, 0.0)
            for batch in range(args.batches):
                # Each version first every other batch: neither is timed in the other's wake.
                for name, est in sorted(ests.items(), reverse=batch % 2 == 1):
                    rows = make_rows(p, at, args.batch, args.labelled)
                    started = time.process_time()
                    est.observe_rows(rows)
                    spent[name] += time.process_time() - started
                at += args.batch
            for name, est in ests.items():
                best[name] = min(best[name], spent[name] / (args.batches * args.batch))
                started = time.process_time()
                est.dump()
                dumps[name] = min(dumps[name], time.process_time() - started)
        states = {name: est.dump() for name, est in ests.items()}
        # A revision that dumps the id map: the rest of the state is the same.
        same = {k: v for k, v in states["old"].items() if k != "ids"} == {
            k: v for k, v in states["new"].items() if k != "ids"
        } and repr(ests["old"].take_results()) == repr(ests["new"].take_results())
        size = {name: len(json.dumps(state)) for name, state in states.items()}
    print(
        f"batches of {args.batch:,} predictions, {args.labelled:.0%} labelled, min of "
        f"{args.repeats} rounds of {args.batches} batches; the same state and results: {same}"
    )
    print(
        f"observe_rows: old {best['old'] * 1e6:.3f} us, new {best['new'] * 1e6:.3f} us per "
        f"prediction ({best['old'] / best['new']:.2f}x)"
    )
    print(
        f"dump: old {dumps['old'] * 1e3:.2f} ms, new {dumps['new'] * 1e3:.2f} ms "
        f"({dumps['old'] / dumps['new']:.2f}x); as JSON: old {size['old']:,} bytes, "
        f"new {size['new']:,} bytes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
