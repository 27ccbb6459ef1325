"""``driftwarden baseline reset``: start a model's baseline again, with the config's settings.

A model's detectors keep the settings they were built with: its reference was
drawn under them, and changing a window or a test under a running baseline
would mix two regimes. So a changed ``[detection]`` takes effect for a model
only when its baseline starts again. The command writes a request; whoever
holds the model acts on it in its next checkpoint (or when it next loads the
model): the stored state is dropped, the audit log says so, and the model warms
up again from the events that follow. It works with the daemon running: no
process writes the old state back. A reference set from a file
(``driftwarden baseline set``, ``monitor.pipeline.reference_file``) gives way
to the warm-up again. In cluster mode the request goes to the changelog topic,
and the daemon holding the model carries it out (``monitor.cluster.requests``).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import sqlite_utils

from monitor.audit.chain import AuditLog, write_transaction
from monitor.cli.safe_text import printable
from monitor.cluster.request_command import send_reset
from monitor.config import load_config
from monitor.incidents.commands import opened_store, who_is_acting
from monitor.pipeline import baseline_set, reference_file


def register(commands: argparse._SubParsersAction[Any]) -> None:
    baseline = commands.add_parser(
        "baseline", help="start a model's baseline again, or build it from a file"
    )
    actions = baseline.add_subparsers(dest="action", required=True, metavar="ACTION")
    reset = actions.add_parser(
        "reset", help="drop a model's detector state; it warms up again with the config's settings"
    )
    reset.add_argument("--model", required=True, help="the model whose baseline starts again")
    reset.add_argument("--by", help="who does it (default: the login user name)")
    reset.add_argument("--store", help="the SQLite store (default: the config's)")
    reset.add_argument("--config", help="the TOML config naming the store")
    reset.set_defaults(handler=_reset)
    baseline_set.register(actions)


def _reset(args: argparse.Namespace) -> int:
    who = who_is_acting(args)
    now = time.time()
    config = baseline_set.cluster_config(args, load_config(args.config) if args.config else None)
    if config is not None:
        model = baseline_set.configured(args.model, config)
        sent = send_reset(config, model, who, requested(who))
        print(
            printable(
                f"model {model}: baseline reset requested by {who}; {baseline_set.sent_line(sent)}"
                "; the model then warms up again with the config's [detection] settings",
                limit=None,
            )
        )
        return 0
    with opened_store(args) as store:
        baseline_set.refuse_in_cluster_mode(args, store, "reset")
    with opened_store(args) as store, write_transaction(store.db) as db:
        record(db, args.model, who, now)
        AuditLog.append(db, "baseline_change", f"model:{args.model}", requested(who))
        stored = db.execute("SELECT events FROM model_state WHERE model = ?", [args.model])
        known = stored.fetchone() is not None
    print(
        f"model {args.model}: baseline reset requested by {who}. A running daemon drops the "
        "model's state at its next checkpoint (within checkpoint.every_seconds); a stopped one "
        "when it starts. The model then warms up again with the config's [detection] settings."
        + ("" if known else " (The store holds no state for this model yet.)")
    )
    return 0


def record(db: sqlite_utils.Database, model: str, who: str, now: float) -> int:
    """A reset request in the store, and the model's reference set from a file gives way
    (back to the stream's warm-up); its row id. No audit row: see ``requested``."""
    cursor = db.execute(
        "INSERT INTO baseline_resets (model, requested_at, requested_by) VALUES (?, ?, ?)",
        [model, now, who],
    )
    reference_file.supersede(db, model, now)
    return int(cursor.lastrowid or 0)


def requested(who: str) -> dict[str, object]:
    """The ``baseline_change`` row of ``baseline reset``."""
    return {"source": "reset requested", "by": who}


def pending(db: sqlite_utils.Database) -> set[str]:
    """Models with a reset request not yet carried out (table ``baseline_resets`` of the store)."""
    rows = db.execute("SELECT DISTINCT model FROM baseline_resets WHERE done_at IS NULL")
    return {row[0] for row in rows.fetchall()}


def carry_out(db: sqlite_utils.Database, model: str, now: float) -> None:
    """Mark a model's requests done and record it; call where its state is dropped."""
    db.execute(
        "UPDATE baseline_resets SET done_at = ? WHERE model = ? AND done_at IS NULL", [now, model]
    )
    AuditLog.append(db, "baseline_change", f"model:{model}", {"source": "reset carried out"})
