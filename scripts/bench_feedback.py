"""Feedback poisoned in one segment: detection delay, false alarms on clean labels, cost.

Streams of a 20-feature classifier (tests/detectors/feedback_streams.py): 15
numeric features and 5 categorical, predictions ``approve`` or ``decline``,
honest labels wrong 3% or 7% of the time depending on a feature (5% on
average). Poisoned runs flip, from label ``--onset`` on, 30% instead of 5% of
the labels of ``approve`` predictions at one merchant holding 3% of the
traffic (issue 12: "5% rising to 30% of one class's labels in a segment holding
3% of traffic"): at once, or (each of ``--ramps`` but 0) rising linearly from
5% to 30% over that many labels. Reported, for each share of approvals in
``--shares`` and each ramp: the
labels from the onset to the one at which the first ``feedback:merchant=m07``
alarm is *raised* (returned by the watch; labels are fed ``--chunk`` at a time,
so the count is at most ``--chunk - 1`` labels late) over ``--seeds`` seeds,
and alarms elsewhere; then the false alarms of ``--clean`` seeds of
``--clean-labels`` clean labels each, and of as many clean streams with
heterogeneity that is not poisoning (honest rates that differ by country, 90%
approvals, merchants' shares drifting); then, over ``--global-seeds`` seeds,
the alarms when the model's error rises everywhere at once (10% to 40% of
labels disagree from label ``--onset`` on: not poisoning, no segment should
fire); then the CPU cost per label of the test and per prediction of its
segment key (20 features, micro-batches of 2,048).

    PYTHONPATH=. .venv/bin/python scripts/bench_feedback.py
"""

from __future__ import annotations

import argparse
import statistics
import time

from detectors.performance.feedback import FeedbackWatch
from detectors.performance.segments import SegmentLayout
from detectors.suite.error_stream import JoinedLabels
from tests.detectors.feedback_streams import (
    TARGET,
    cut,
    heterogeneous,
    labelled,
    layout_of,
    rows,
)

CHUNK = 2048
SIGNAL = f"feedback:merchant={TARGET}"


def watch(
    joined: JoinedLabels, layout: SegmentLayout, chunk: int = CHUNK
) -> tuple[list[tuple[int, int, str]], float]:
    """(label number, labels fed when it was raised, signal) of each new alarm; CPU
    seconds spent in the watch."""
    test = FeedbackWatch()  # the defaults: a reference of 5,000 labels
    alarms = []
    spent = 0.0
    for a in range(0, len(joined.seq), chunk):
        part = cut(joined, a, a + chunk)
        began = time.process_time()
        found = test.observe(part, layout)
        spent += time.process_time() - began
        for f in found:
            if f.details["state"] == "alarm":
                fed = min(a + chunk, len(joined.seq))
                alarms.append(((int(f.details["event_index"]) - 1) // 2, fed, f.signal))
    return alarms, spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--onset", type=int, default=23_000)
    parser.add_argument("--after", type=int, default=15_000, help="labels after the onset")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.7, 0.5])
    parser.add_argument("--ramps", type=int, nargs="+", default=[0, 2500])
    parser.add_argument("--chunk", type=int, default=100, help="labels fed at a time (poisoned)")
    parser.add_argument("--clean", type=int, default=5)
    parser.add_argument("--clean-labels", type=int, default=1_000_000)
    parser.add_argument("--global-seeds", type=int, default=10)
    args = parser.parse_args()
    for share, ramp in ((s, r) for r in args.ramps for s in args.shares):
        delays: list[int] = []
        missed = elsewhere = 0
        for seed in range(args.seeds):
            joined, layout = labelled(
                args.onset + args.after,
                seed,
                poison_at=args.onset,
                approve_share=share,
                ramp=ramp,
            )
            alarms, _ = watch(joined, layout, args.chunk)
            raised = [fed for n, fed, signal in alarms if signal == SIGNAL and n >= args.onset]
            elsewhere += sum(1 for _, _, signal in alarms if signal != SIGNAL)
            if raised:
                delays.append(raised[0] - args.onset)
            else:
                missed += 1
        within = sum(d <= 5_000 for d in delays)
        rising = f", 5% rising to 30% over {ramp:,} labels" if ramp else ""
        print(
            f"approvals {share:.0%} (poisoned trials {0.03 * share:.1%} of labels{rising}): raised "
            f"after median {statistics.median(delays) if delays else float('nan'):,.0f} "
            f"labels, sorted {sorted(delays)}; {within}/{args.seeds} within 5,000; {missed} "
            f"not found in {args.after:,}; {elsewhere} alarms on other segments",
            flush=True,
        )
    false_alarms = 0
    labels = spent = 0.0
    for kind, extra in (("clean", {}), ("heterogeneous", heterogeneous())):
        for seed in range(args.clean):
            joined, layout = labelled(args.clean_labels, 1_000 + seed, **extra)
            alarms, seconds = watch(joined, layout)
            false_alarms += len(alarms)
            labels += len(joined.seq)
            spent += seconds
            shown = [(n, signal) for n, _, signal in alarms[:3]]
            print(
                f"{kind} seed {1_000 + seed}: {len(alarms)} alarms in {len(joined.seq):,} "
                f"labels {shown}",
                flush=True,
            )
    print(
        f"false alarms: {false_alarms} in {2 * args.clean} x {args.clean_labels:,} clean "
        f"labels; the test costs {spent / labels * 1e6:.2f} µs of CPU per label"
    )
    fired = []
    for seed in range(args.global_seeds):
        joined, layout = labelled(
            args.onset + args.after,
            2_000 + seed,
            error_rates=(0.07, 0.13),
            rise_at=args.onset,
            risen_rates=(0.37, 0.43),
        )
        alarms, _ = watch(joined, layout)
        fired.append(len({signal for _, _, signal in alarms}))
    print(
        f"global rise 10% -> 40% at label {args.onset:,}: segments alarmed per seed {fired} "
        f"in {args.after:,} labels after it"
    )
    batch = rows(CHUNK, seed=1)
    layout = layout_of(rows(10_000, seed=2))
    began = time.process_time()
    for _ in range(200):
        layout.keys(batch, list(range(CHUNK)))
    per_key = (time.process_time() - began) / (200 * CHUNK) * 1e6
    print(f"segment keys of 20 features: {per_key:.2f} µs of CPU per prediction")


if __name__ == "__main__":
    main()
