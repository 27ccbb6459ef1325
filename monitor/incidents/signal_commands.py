"""``driftwarden signals``: each signal's history, and which signals fire now.

By default one line per evaluation (a windowed test per window) or state
change, oldest first, filtered by model, detector, signal and event time; with
``--now``, the current state of every model x detector x signal (firing ones
first). ``--format json`` writes one JSON object per line for scripts and
dashboards.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import orjson
from rich.table import Table
from rich.text import Text

from monitor.cli.console import wide_console
from monitor.cli.safe_text import cell
from monitor.cli.timefmt import format_time
from monitor.errors import DriftwardenError
from monitor.incidents.commands import opened_store
from monitor.replay.kafka_replay import parse_time

STATE_COLUMNS = (
    "model, detector, signal, state, severity, since_ts, last_tested_ts, last_violation_ts, "
    "resolved_ts, statistic, p_value, threshold, effect_size"
)
HISTORY_COLUMNS = (
    "model, detector, signal, event_ts, change, state, severity, statistic, p_value, threshold, "
    "effect_size"
)


def register(commands: argparse._SubParsersAction[Any]) -> None:
    signals = commands.add_parser(
        "signals",
        help="the signal history (one line per window tested), or with --now which fire",
        description=(
            "Each model x detector x signal is ok or firing. By default: its history, "
            "one line per window tested or state change, in event time. With --now: "
            "the state now and the latest statistic."
        ),
    )
    signals.add_argument("--model", help="only this model")
    signals.add_argument("--signal", help="only this signal (a feature, score, a metric, ...)")
    signals.add_argument("--detector", help="only this detector (ks, chi2, psi, ...)")
    signals.add_argument("--now", action="store_true", help="the state now, not the history")
    signals.add_argument("--since", help="history from this event time (RFC 3339 or epoch)")
    signals.add_argument("--until", help="history up to this event time (RFC 3339 or epoch)")
    signals.add_argument("--firing", action="store_true", help="only lines where it fires")
    signals.add_argument("--limit", type=int, default=1000, help="rows at most (default 1000)")
    signals.add_argument("--format", choices=("table", "json"), default="table")
    signals.add_argument("--store", help="the SQLite store (default: the config's)")
    signals.add_argument("--config", help="the TOML config naming the store")
    signals.set_defaults(handler=_signals)


def _filters(args: argparse.Namespace) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column in ("model", "signal", "detector"):
        value = getattr(args, column)
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    return where, params


def _signals(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise DriftwardenError(f"--limit {args.limit}: give 1 or more rows")
    where, params = _filters(args)
    if not args.now:
        if args.firing:
            where.append("state = 'firing'")
        for option, op in (("since", ">="), ("until", "<=")):
            text = getattr(args, option)
            if text is not None:
                where.append(f"event_ts {op} ?")
                params.append(parse_time(text, f"--{option}"))
        sql = f"SELECT {HISTORY_COLUMNS} FROM signal_history"
        order = " ORDER BY event_ts, id"
    else:
        if args.since or args.until:
            raise DriftwardenError("--since and --until filter the history: drop --now")
        if args.firing:
            where.append("state = 'firing'")
        sql = f"SELECT {STATE_COLUMNS} FROM signal_state"
        order = " ORDER BY state = 'ok', model, detector, signal"
    if where:
        sql += " WHERE " + " AND ".join(where)
    with opened_store(args) as store:
        cursor = store.db.execute(sql + order + " LIMIT ?", [*params, args.limit])
        names = [c[0] for c in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    if args.format == "json":
        for row in rows:
            print(orjson.dumps(row).decode())
        return 0
    _print_table(rows, not args.now)
    return 0


def _print_table(rows: list[dict[str, Any]], history: bool) -> None:
    if not rows:
        wide_console().print("no signals recorded (yet)" if not history else "no history")
        return
    if history:
        title = "Signal history (event time, UTC)"
        columns: tuple[str, ...] = ("event time", "model", "detector", "signal", "change")
        columns += ("state", "statistic", "p", "threshold", "effect")
    else:
        title = "Signals (event time, UTC)"
        columns = ("model", "detector", "signal", "state", "severity", "since", "last tested")
        columns += ("statistic", "p", "effect")
    table = Table(title=title)
    for column in columns:
        table.add_column(column, no_wrap=column in ("event time", "since", "last tested"))
    for r in rows:
        numbers = [_number(r["statistic"]), _number(r["p_value"])]
        texts: list[str | Text]
        if history:
            texts = [format_time(r["event_ts"]), cell(r["model"]), cell(r["detector"])]
            texts += [cell(r["signal"]), cell(r["change"]), cell(r["state"]), *numbers]
            texts += [_number(r["threshold"]), _number(r["effect_size"])]
        else:
            since = r["since_ts"] if r["state"] == "firing" else r["resolved_ts"]
            texts = [cell(r["model"]), cell(r["detector"]), cell(r["signal"]), cell(r["state"])]
            texts += [cell(r["severity"]), format_time(since), format_time(r["last_tested_ts"])]
            texts += [*numbers, _number(r["effect_size"])]
        table.add_row(*texts)
    wide_console().print(table)


def _number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.4g}"
