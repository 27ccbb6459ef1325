"""``driftwarden silence add|list|end``: mute notifications for a while, keep every record.

A silence matches incidents whose every signal fits its glob patterns (model,
detector, signal); alerts and incidents are still written, only the webhooks
stay quiet. Adding and ending silences go to the audit log.
"""

from __future__ import annotations

import argparse
import re
import time
from typing import Any

from rich.table import Table

from monitor.audit.chain import AuditLog, write_transaction
from monitor.cli.console import wide_console
from monitor.cli.safe_text import cell, printable
from monitor.cli.timefmt import format_time
from monitor.errors import DriftwardenError
from monitor.incidents.commands import opened_store, who_is_acting
from monitor.notify.policy import Silence, add_silence

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def register(commands: argparse._SubParsersAction[Any]) -> None:
    silence = commands.add_parser("silence", help="mute notifications for a while")
    actions = silence.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="mute incidents that match, from now on")
    add.add_argument("--model", default="*", help="glob pattern (default: every model)")
    add.add_argument("--detector", default="*", help="glob pattern (default: every detector)")
    add.add_argument("--signal", default="*", help="glob pattern (default: every signal)")
    add.add_argument("--for", dest="duration", required=True, help="how long: 30m, 2h, 1d, 90s")
    add.add_argument("--comment", default="", help="why, for whoever reads it later")
    add.add_argument("--by", help="who does it (default: the login user name)")
    add.set_defaults(handler=_add)
    listing = actions.add_parser("list", help="silences in force (--all: every one)")
    listing.add_argument("--all", action="store_true")
    listing.set_defaults(handler=_list)
    end = actions.add_parser("end", help="end silence N now")
    end.add_argument("silence", type=int, metavar="N")
    end.add_argument("--by", help="who does it (default: the login user name)")
    end.set_defaults(handler=_end)
    for parser in actions.choices.values():
        parser.add_argument("--store", help="the SQLite store (default: the config's)")
        parser.add_argument("--config", help="the TOML config naming the store")


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if match is None or float(match.group(1)) <= 0:
        raise DriftwardenError(f"--for {text!r} is not a duration: write e.g. 30m, 2h, 1d or 90s")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _add(args: argparse.Namespace) -> int:
    seconds = parse_duration(args.duration)
    who = who_is_acting(args)
    now = time.time()
    silence = Silence(now, now + seconds, who, args.model, args.signal, args.detector, args.comment)
    with opened_store(args) as store, write_transaction(store.db) as db:
        number = add_silence(db, silence, now)
        content = {
            "model": args.model,
            "detector": args.detector,
            "signal": args.signal,
            "ends_at": silence.ends_at,
            "comment": args.comment,
            "by": who,
        }
        AuditLog.append(db, "silence", f"silence:{number}", content, ts=now)
    patterns = "/".join(printable(p) for p in (args.model, args.detector, args.signal))
    print(f"silence {number} mutes {patterns} until {format_time(silence.ends_at)} UTC")
    return 0


def _list(args: argparse.Namespace) -> int:
    now = time.time()
    query = (
        "SELECT id, model, detector, signal, starts_at, ends_at, created_by, comment FROM silences"
    )
    with opened_store(args) as store:
        rows = store.db.execute(
            query + ("" if args.all else " WHERE starts_at <= ? AND ends_at > ?") + " ORDER BY id",
            [] if args.all else [now, now],
        ).fetchall()
    table = Table(title="Silences" if args.all else "Silences in force")
    for column in ("#", "model", "detector", "signal", "from", "until", "by", "comment"):
        table.add_column(column)
    for n, model, detector, signal, starts, ends, by, comment in rows:
        names = (cell(model), cell(detector), cell(signal))
        table.add_row(
            str(n), *names, format_time(starts), format_time(ends), cell(by), cell(comment)
        )
    wide_console().print(table)
    return 0


def _end(args: argparse.Namespace) -> int:
    who = who_is_acting(args)
    now = time.time()
    with opened_store(args) as store, write_transaction(store.db) as db:
        row = db.execute("SELECT ends_at FROM silences WHERE id = ?", [args.silence]).fetchone()
        if row is None:
            raise DriftwardenError(f"no silence {args.silence}: see `driftwarden silence list`")
        if row[0] <= now:
            raise DriftwardenError(f"silence {args.silence} has already ended")
        db.execute("UPDATE silences SET ends_at = ? WHERE id = ?", [now, args.silence])
        AuditLog.append(db, "silence", f"silence:{args.silence}", {"ended_by": who}, ts=now)
    print(f"silence {args.silence} ended by {printable(who)}")
    return 0
