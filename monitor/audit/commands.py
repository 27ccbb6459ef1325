"""``driftwarden audit head`` and ``driftwarden audit verify`` (CONTRACT §2).

Both open the store read-only, in one snapshot, so a running daemon's writes
are neither disturbed nor half seen. ``head`` prints the chain head; its last
line, ``<row id>:<hash>``, is the anchor to keep somewhere the store's writers
cannot reach. ``verify`` exits 0 when the chain and the alerts are intact, 1
naming the first bad row or alert, 2 on a usage or store error.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from monitor.audit.chain import GENESIS, key_from_env
from monitor.audit.verify import (
    ALERT_FIELDS,
    ChainReport,
    format_head,
    need_key,
    parse_head,
    scheme_column,
    verify_alerts,
    verify_chain,
)
from monitor.cli.timefmt import format_time
from monitor.config import Config, load_config
from monitor.errors import DriftwardenError
from monitor.store.errors import explain
from monitor.store.store import connect_read_only

# Stand-ins, in the connection's own temp schema, for tables the store lacks.
_EMPTY = {
    "audit": "id INTEGER PRIMARY KEY, ts, kind, subject, content, prev_hash, hash, scheme",
    "alerts": "id INTEGER PRIMARY KEY, " + ", ".join(ALERT_FIELDS),
}


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add the ``audit`` command to the top-level subparsers."""
    audit = commands.add_parser("audit", help="the hash-chained audit log")
    actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    head = actions.add_parser(
        "head", help="print the chain head; keep its last line (ROW:HASH) somewhere else"
    )
    head.set_defaults(handler=_head)
    verify = actions.add_parser(
        "verify", help="check the chain and the alerts; names the first bad row"
    )
    verify.add_argument(
        "--anchor",
        metavar="HEAD",
        help="a head printed earlier by `audit head`: also catch rows cut off or a rewritten chain",
    )
    verify.add_argument(
        "--key-env",
        metavar="VAR",
        help="the environment variable holding the audit key (default: the config's key_env)",
    )
    verify.set_defaults(handler=_verify)
    for parser in (head, verify):
        parser.add_argument("--store", help="the SQLite store (default: the config's)")
        parser.add_argument("--config", help="the TOML config naming the store")


def _config(args: argparse.Namespace) -> Config | None:
    return load_config(args.config) if args.config else None


@contextmanager
def _snapshot(args: argparse.Namespace, config: Config | None) -> Iterator[sqlite_utils.Database]:
    """The store, read-only, in one read transaction."""
    if args.store:
        path = Path(args.store)
    elif config is not None:
        path = Path(config.store.path)
    else:
        raise DriftwardenError("say which store: give --store DB or --config FILE")
    conn = connect_read_only(path, " (check --store or the config's store.path)")
    db = sqlite_utils.Database(conn)
    try:
        db.execute("BEGIN")
        tables = set(db.table_names())
        if not tables & {"audit", "alerts", "incidents", "offsets"}:
            raise DriftwardenError(f"store {path}: no audit log in it (not a Driftwarden store?)")
        for name, columns in _EMPTY.items():
            if name not in tables:  # dropped, or never written: read as empty
                db.execute(f"CREATE TEMP TABLE {name} ({columns})")
        yield db
    except sqlite3.Error as exc:
        raise explain(exc, path) from None
    finally:
        conn.close()


def _head(args: argparse.Namespace) -> int:
    with _snapshot(args, _config(args)) as db:
        count = int(db.execute("SELECT count(*) FROM audit").fetchone()[0])
        last = db.execute(
            f"SELECT id, ts, kind, hash, {scheme_column(db)} FROM audit ORDER BY id DESC LIMIT 1"
        ).fetchone()
    if last is None:
        print("audit log: no rows yet")
        print(format_head((0, GENESIS)))
        return 0
    row_id, ts, kind, digest, scheme = last
    print(
        f"audit log: {count:,} row(s); the last, row {row_id} ({kind}, {scheme}), "
        f"written {format_time(ts)} UTC"
    )
    print(format_head((int(row_id), str(digest))))
    return 0


def _verify(args: argparse.Namespace) -> int:
    config = _config(args)
    anchor = parse_head(args.anchor) if args.anchor is not None else None
    key_env = args.key_env if args.key_env is not None else (config.audit.key_env if config else "")
    key = key_from_env(key_env, os.environ)
    with _snapshot(args, config) as db:
        report = verify_chain(db, key, anchor)
        checked, bad_alert = 0, None
        if report.problem is None and report.unchecked_from is None:
            checked, bad_alert = verify_alerts(db)
    if report.problem is not None:
        row_id, what = report.problem
        print(f"audit log tampered at row {row_id}: {what}")
        return 1
    if report.unchecked_from is not None:
        raise need_key(report.unchecked_from)
    if bad_alert is not None:
        alert_id, what = bad_alert
        print(f"audit log tampered at alert {alert_id}: {what}")
        return 1
    print(
        f"audit log intact: {_summary(report, anchor)}; {checked:,} alert(s) match their audit rows"
    )
    return 0


def _summary(report: ChainReport, anchor: tuple[int, str] | None) -> str:
    text = f"{report.rows:,} row(s)"
    if report.keyed_from is None:
        text += ", unkeyed"
    elif report.keyed_from == 1:
        text += ", keyed"
    else:
        text += f", keyed from row {report.keyed_from} (the rows before were written unkeyed)"
    if anchor is not None:
        text += f", through the anchor at row {anchor[0]}"
    return text
