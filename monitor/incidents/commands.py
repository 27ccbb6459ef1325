"""``driftwarden incidents …`` (CONTRACT §2), and how the store commands open the store.

Acknowledging and resolving record who and when on the incident and append an
``incident_transition`` row to the audit log in the same transaction; the
daemon's notification policy then tells the webhooks about a resolve.
"""

from __future__ import annotations

import argparse
import getpass
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import sqlite_utils
from rich.table import Table

from monitor.audit import chain as audit
from monitor.audit.chain import AuditLog, write_transaction
from monitor.cli.console import wide_console
from monitor.cli.safe_text import bounded_list, cell, printable
from monitor.cli.timefmt import format_time
from monitor.config import load_config
from monitor.errors import DriftwardenError
from monitor.store.errors import store_errors
from monitor.store.store import Store

SIGNALS_SHOWN = 50  # of an incident's signals, in `incidents show`


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add the ``incidents`` command to the top-level subparsers."""
    incidents = commands.add_parser("incidents", help="the incident log and its lifecycle")
    actions = incidents.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="incidents, newest first")
    listing.add_argument("--status", choices=("open", "acknowledged", "resolved"))
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=_list)
    show = actions.add_parser("show", help="one incident with its alerts and timings")
    show.add_argument("incident", type=int, metavar="N")
    show.set_defaults(handler=_show)
    for name, handler in (("ack", _ack), ("resolve", _resolve)):
        action = actions.add_parser(name, help=f"{name} incident N")
        action.add_argument("incident", type=int, metavar="N")
        action.add_argument("--by", help="who does it (default: the login user name)")
        action.set_defaults(handler=handler)

    for parser in actions.choices.values():
        parser.add_argument("--store", help="the SQLite store (default: the config's)")
        parser.add_argument("--config", help="the TOML config naming the store")


@contextmanager
def opened_store(args: argparse.Namespace) -> Iterator[Store]:
    """The store of ``--store`` or ``--config``; audit rows appended use the config's key."""
    config = load_config(args.config) if args.config else None
    if args.store:
        path = Path(args.store)
    elif config is not None:
        path = Path(config.store.path)
    else:
        raise DriftwardenError("say which store: give --store DB or --config FILE")
    if not path.is_file():
        raise DriftwardenError(f"no such store: {path} (check --store or the config's store.path)")
    with store_errors(path):
        store = Store(path)
        try:
            if config is not None and config.audit.key_env:
                # Read when a row is appended: commands that only read need no key.
                audit.bind_key(store.db, partial(_audit_key, config.audit.key_env))
            yield store
        finally:
            store.close()


def _audit_key(key_env: str, db: sqlite_utils.Database) -> bytes | None:
    """The config's audit key, refused if it is not the key of the log it would extend."""
    key = audit.key_from_env(key_env, os.environ)
    audit.check_key(db, key, key_env)
    return key


def _incident(store: Store, number: int) -> dict[str, Any]:
    cursor = store.db.execute("SELECT * FROM incidents WHERE id = ?", [number])
    row = cursor.fetchone()
    if row is None:
        raise DriftwardenError(f"no incident {number}: see `driftwarden incidents list`")
    return dict(zip([c[0] for c in cursor.description], row, strict=True))


def _span(start: float | None, end: float | None) -> str:
    if start is None or end is None or math.isnan(start) or math.isnan(end):
        return "-"
    seconds = max(0.0, end - start)
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _list(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        where, params = ("WHERE status = ?", [args.status]) if args.status else ("", [])
        rows = store.db.execute(
            "SELECT id, status, severity, model, title, alert_count, first_event_ts, "
            f"last_event_ts, acknowledged_by, resolved_by FROM incidents {where} "
            "ORDER BY id DESC LIMIT ?",
            [*params, args.limit],
        ).fetchall()
    table = Table(title="Incidents (times UTC)")
    for column in ("#", "status", "severity", "title", "alerts", "since (event time)", "by"):
        table.add_column(column, no_wrap=column != "title")
    for n, status, severity, _, title, count, first, _, ack_by, res_by in rows:
        by = cell(res_by or ack_by or "-")
        table.add_row(
            str(n), cell(status), cell(severity), cell(title), str(count), format_time(first), by
        )
    wide_console().print(table if rows else "no incidents")
    return 0


def _show(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        incident = _incident(store, args.incident)
        alerts = store.db.execute(
            "SELECT id, detector, signal, severity, event_ts, details FROM alerts "
            "WHERE incident_id = ? ORDER BY id",
            [args.incident],
        ).fetchall()
        states = _signal_states(store, incident)
    details = [orjson.loads(a[5]) for a in alerts]
    onsets = [d["window_start_ts"] for d in details if isinstance(d.get("window_start_ts"), float)]
    onset = min(onsets) if onsets else None
    console = wide_console()
    title = cell(f"Incident #{incident['id']}: {printable(incident['title'])}", style="table.title")
    summary = Table(title=title, show_header=False)
    summary.add_column("field")
    summary.add_column("value")
    for label, value in (
        ("key", incident["key"]),
        ("status", incident["status"]),
        ("severity", incident["severity"]),
        ("signals", bounded_list(orjson.loads(incident["signals"]), SIGNALS_SHOWN)),
        ("first alert (event time)", format_time(incident["first_event_ts"])),
        ("last alert (event time)", format_time(incident["last_event_ts"])),
        ("opened (wall clock)", format_time(incident["opened_at"])),
        ("time to detect (from window start)", _span(onset, incident["first_event_ts"])),
        ("acknowledged", f"{format_time(incident['acknowledged_at'])} by "
         f"{printable(incident['acknowledged_by'] or '-')}"),
        ("time to acknowledge", _span(incident["opened_at"], incident["acknowledged_at"])),
        ("resolved", f"{format_time(incident['resolved_at'])} by "
         f"{printable(incident['resolved_by'] or '-')}"),
        ("resolved (event time)", format_time(incident.get("resolved_event_ts"))),
        ("time to resolve", _span(incident["opened_at"], incident["resolved_at"])),
        ("firing now", _firing_summary(states)),
    ):  # fmt: skip
        summary.add_row(label, cell(value, limit=None))
    console.print(summary)
    console.print(_states_table(states))
    table = Table(title=f"{len(alerts)} alert(s)")
    columns = ("#", "event time", "detector", "signal", "severity", "statistic", "p", "effect")
    for column in (*columns, "metric before → after"):
        table.add_column(column, no_wrap=column == "event time")
    for (n, detector, signal, severity, event_ts, _), d in zip(alerts, details, strict=True):
        table.add_row(
            str(n),
            format_time(event_ts),
            cell(detector),
            cell(signal),
            cell(severity),
            _number(d.get("statistic")),
            _number(d.get("p_value")),
            _number(d.get("effect_size")),
            # Performance findings state their metric before and after ("accuracy 0.944 →
            # 0.915"), realized or estimated; other findings have none.
            cell(d.get("summary") or "-"),
        )
    console.print(table)
    return 0


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def _signal_states(store: Store, incident: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    """The state now of each of the incident's signals (at most SIGNALS_SHOWN)."""
    states = []
    for name in orjson.loads(incident["signals"])[:SIGNALS_SHOWN]:
        detector, _, signal = name.partition(":")
        row = store.db.execute(
            "SELECT state, since_ts, last_tested_ts, resolved_ts, statistic, p_value, effect_size "
            "FROM signal_state WHERE model = ? AND detector = ? AND signal = ?",
            [incident["model"], detector, signal],
        ).fetchone()
        states.append((name, tuple(row) if row is not None else ("ok",) + (None,) * 6))
    return states


def _firing_summary(states: list[tuple[str, tuple[Any, ...]]]) -> str:
    firing = [name for name, row in states if row[0] == "firing"]
    if not firing:
        return "none: every signal is back within its baseline"
    return f"{len(firing)} of {len(states)}: " + bounded_list(firing, SIGNALS_SHOWN)


def _states_table(states: list[tuple[str, tuple[Any, ...]]]) -> Table:
    table = Table(title="Its signals now (event time)")
    for column in ("signal", "state", "since", "last tested", "statistic", "p", "effect"):
        table.add_column(column, no_wrap=column in ("since", "last tested"))
    for name, (state, since, tested, resolved, statistic, p_value, effect) in states:
        when = since if state == "firing" else resolved
        table.add_row(
            cell(name),
            cell(state),
            format_time(when),
            format_time(tested),
            _number(statistic),
            _number(p_value),
            _number(effect),
        )
    return table


def who_is_acting(args: argparse.Namespace) -> str:
    if args.by:
        return str(args.by)
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        raise DriftwardenError("cannot tell who you are: pass --by NAME") from None


def _transition(args: argparse.Namespace, to: str) -> int:
    who = who_is_acting(args)
    now = time.time()
    with opened_store(args) as store, write_transaction(store.db) as db:
        incident = _incident(store, args.incident)
        status = incident["status"]
        if status == "resolved" or status == to:
            by = incident["resolved_by"] if status == "resolved" else incident["acknowledged_by"]
            raise DriftwardenError(f"incident {args.incident} is already {status} (by {by})")
        column = "acknowledged" if to == "acknowledged" else "resolved"
        db.execute(
            f"UPDATE incidents SET status = ?, {column}_by = ?, {column}_at = ?, updated_at = ? "
            "WHERE id = ?",
            [to, who, now, now, args.incident],
        )
        content = {"key": incident["key"], "change": column, "from": status, "to": to, "by": who}
        AuditLog.append(db, "incident_transition", f"incident:{args.incident}", content, ts=now)
    print(f"incident {args.incident} {column} by {printable(who)}")
    return 0


def _ack(args: argparse.Namespace) -> int:
    return _transition(args, "acknowledged")


def _resolve(args: argparse.Namespace) -> int:
    return _transition(args, "resolved")
