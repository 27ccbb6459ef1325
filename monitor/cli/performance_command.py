"""``driftwarden performance``: estimated (CBPE) and realized performance, side by side.

One line per model, window of predictions and metric, oldest first: when the
window closed (event time), the estimate with the 95% band its realized value
should fall in and the limit below which it alarms, and the realized value
once the labels of the window's predictions came (``-`` before, or without
labels). Read from the store's ``performance_windows`` as the last checkpoint
left it.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from monitor.cli.safe_text import printable
from monitor.cli.timefmt import format_time
from monitor.errors import DriftwardenError
from monitor.incidents.commands import opened_store
from monitor.pipeline import performance_windows
from monitor.pipeline.performance_windows import WindowRow

NAME_LIMIT = 100
METRICS = ("accuracy", "f1", "roc_auc")


def register(commands: argparse._SubParsersAction[Any]) -> None:
    cmd = commands.add_parser(
        "performance",
        help="performance estimated without labels (CBPE) beside the realized, per window",
    )
    cmd.add_argument("--model", help="only this model")
    cmd.add_argument("--metric", choices=METRICS, help="only this metric")
    cmd.add_argument("--limit", type=int, default=100, help="the latest N lines (100)")
    cmd.add_argument("--format", choices=("table", "json"), default="table")
    cmd.add_argument("--store", help="the SQLite store (default: the config's)")
    cmd.add_argument("--config", help="the TOML config naming the store")
    cmd.set_defaults(handler=_performance)


def _performance(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 1_000_000:
        raise DriftwardenError(f"--limit must be between 1 and 1000000, got {args.limit}")
    with opened_store(args) as store:
        rows = performance_windows.read(store.db, args.model, args.metric, args.limit)
    if not rows:
        which = f"model {printable(args.model, NAME_LIMIT)}" if args.model else "any model"
        raise DriftwardenError(
            f"no estimated performance recorded for {which} in this store (a classifier's "
            "predictions need a score or probabilities, and a reference and one window of "
            "them; check --model and --store)"
        )
    for row in rows:
        print(_json(row) if args.format == "json" else printable(_line(row), limit=None))
    return 0


def _number(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _line(r: WindowRow) -> str:
    band = f"[{_number(r.band_low)}, {_number(r.band_high)}]"
    realized = "-" if r.realized is None else f"{r.realized:.3f} ({r.labelled:,} labels)"
    return (
        f"{printable(r.model, NAME_LIMIT)}  window {r.window}  {format_time(r.end_ts)}  "
        f"{r.metric}: estimated {_number(r.estimated)} {band} alarm below "
        f"{_number(r.alarm_below)} ({r.rows:,} predictions); realized {realized}"
    )


def _json(r: WindowRow) -> str:
    return orjson.dumps(r.__dict__).decode()
