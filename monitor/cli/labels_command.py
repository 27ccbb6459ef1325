"""``driftwarden labels``: how labels join their predictions, per model.

Read from the store as the last checkpoint left it: predictions waiting for a
label, the share of labels that joined, label delay quantiles (label time minus
prediction time, in event time), and the labels that did not join (late,
unmatched, duplicate) and predictions that went unlabelled (evicted, expired),
and how far the per-segment feedback test has come.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from monitor.cli.safe_text import printable
from monitor.errors import DriftwardenError
from monitor.incidents.commands import opened_store
from monitor.pipeline.label_join import OUTCOMES, LabelCounts

NAME_LIMIT = 100


def register(commands: argparse._SubParsersAction[Any]) -> None:
    labels = commands.add_parser(
        "labels",
        help="how labels join their predictions: pending, join rate, delays, what did not join",
    )
    labels.add_argument("--model", help="only this model")
    labels.add_argument("--store", help="the SQLite store (default: the config's)")
    labels.add_argument("--config", help="the TOML config naming the store")
    labels.set_defaults(handler=_labels)


def _labels(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        where, params = ("WHERE model = ?", [args.model]) if args.model else ("", [])
        rows = store.db.execute(
            f"SELECT model, labels, {', '.join(OUTCOMES)}, delays, feedback, pending "
            f"FROM label_counts {where} ORDER BY model",
            params,
        ).fetchall()
    if not rows:
        which = f"model {printable(args.model, NAME_LIMIT)}" if args.model else "any model"
        raise DriftwardenError(
            f"no labels recorded for {which} in this store (labels are counted at checkpoints; "
            "check --model and --store)"
        )
    for row in rows:
        names = ("labels", *OUTCOMES)
        counts = LabelCounts(
            **dict(zip(names, (int(v) for v in row[1:8]), strict=True)),
            delays=orjson.loads(row[8]),
        )
        line = _describe(str(row[0]), counts, int(row[10]))
        print(printable(f"{line}; {_feedback(row[9], counts.labels)}", limit=None))
    return 0


def _describe(model: str, c: LabelCounts, pending: int) -> str:
    rate = c.joined / c.labels if c.labels else 0.0
    delays = ", ".join(
        f"p{int(q * 100)} {_duration(c.delay_quantile(q))}" for q in (0.5, 0.9, 0.99)
    )
    return (
        f"{printable(model, NAME_LIMIT)}: {pending:,} predictions pending; {c.labels:,} labels, "
        f"{c.joined:,} joined ({rate:.1%}); label delay {delays}; not joined: {c.late:,} late, "
        f"{c.unmatched:,} unmatched, {c.duplicate:,} duplicate; predictions unlabelled: "
        f"{c.evicted:,} evicted, {c.expired:,} expired"
    )


def _feedback(state_text: str | None, labels: int) -> str:
    """How far the feedback test (detectors.performance.feedback) has come."""
    if labels == 0:
        return "feedback test: no labels yet"
    state = None if state_text is None else orjson.loads(state_text)
    if state is None or state["layout"] is None:
        return "feedback test: waiting for the model's reference"
    count, reference = int(state["count"]), int(state["reference_labels"])
    features = len(state["layout"])
    unkeyed = f"{int(state['skipped']):,} labels without segments"
    if count < reference:
        return (
            f"feedback test: reference {count:,} of {reference:,} labels ({features} features; "
            f"{unkeyed})"
        )
    return (
        f"feedback test: {count - reference:,} labels tested on {features} features "
        f"after a reference of {reference:,} ({unkeyed})"
    )


def _duration(seconds: float | None) -> str:
    """At most this long (delays are counted in bins): 'n/a' without joined labels."""
    if seconds is None:
        return "n/a"
    for unit, size in (("d", 86_400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"≤{seconds / size:.3g}{unit}"
    return f"≤{seconds:.3g}s"
