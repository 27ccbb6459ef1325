"""``driftwarden quarantine list | show N``: the records the parser refused.

A quarantined record is whatever a producer sent, so it is shown as an escaped
excerpt (controls, bidi marks, markup and bytes that are not UTF-8 all inert),
never as it is; its size and SHA-256 describe the whole record even where the
store keeps only its head.
"""

from __future__ import annotations

import argparse
import hashlib
from typing import Any

from rich.table import Table

from monitor.cli.console import wide_console
from monitor.cli.safe_text import cell, printable
from monitor.cli.timefmt import format_time
from monitor.errors import DriftwardenError
from monitor.incidents.commands import opened_store
from monitor.store.store import Store

EXCERPT_BYTES = 4096  # of the raw record, shown by `show`
LIST_EXCERPT = 60  # characters of the raw record in a `list` row


def register(commands: argparse._SubParsersAction[Any]) -> None:
    quarantine = commands.add_parser("quarantine", help="records the parser refused, and why")
    actions = quarantine.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="quarantined records, newest first")
    listing.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")
    listing.set_defaults(handler=_list)
    show = actions.add_parser("show", help="one quarantined record: reason, source, excerpt")
    show.add_argument("record", type=int, metavar="N")
    show.set_defaults(handler=_show)
    for parser in (listing, show):
        parser.add_argument("--store", help="the SQLite store (default: the config's)")
        parser.add_argument("--config", help="the TOML config naming the store")


def excerpt(raw: bytes | None, limit: int) -> str:
    """The head of a raw record as inert text: bytes that are not UTF-8 as \\x.. escapes."""
    if not raw:
        return ""
    text = raw[: limit * 4].decode("utf-8", errors="backslashreplace")
    return printable(text, limit)


def _rows(store: Store, where: str, params: list[Any]) -> list[dict[str, Any]]:
    columns = {row[1] for row in store.db.execute("PRAGMA table_info(quarantine)")}
    length = "raw_length" if "raw_length" in columns else "NULL"
    digest = "raw_sha256" if "raw_sha256" in columns else "NULL"
    cursor = store.db.execute(
        "SELECT id, source, topic, partition, offset, reason, raw, created_at, "
        f"{length} AS raw_length, {digest} AS raw_sha256 FROM quarantine {where}",
        params,
    )
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _position(row: dict[str, Any]) -> str:
    if row["partition"] is not None:
        return f"{row['topic']}[{row['partition']}]@{row['offset']}"
    return f"line {row['offset']}" if row["offset"] is not None else "-"


def _size(row: dict[str, Any]) -> int:
    if row["raw_length"] is not None:
        return int(row["raw_length"])
    return len(row["raw"] or b"")


def _list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise DriftwardenError("--limit must be at least 1")
    with opened_store(args) as store:
        total = store.count("quarantine")
        rows = _rows(store, "ORDER BY id DESC LIMIT ?", [args.limit])
    table = Table(title=f"Quarantined records ({total:,} in all, newest first)")
    for column in ("#", "source", "position", "bytes", "reason", "record"):
        table.add_column(column, no_wrap=column in ("#", "bytes"))
    for row in rows:
        table.add_row(
            str(row["id"]),
            cell(row["source"]),
            cell(_position(row)),
            f"{_size(row):,}",
            cell(row["reason"]),
            cell(excerpt(row["raw"], LIST_EXCERPT)),
        )
    wide_console().print(table)
    if not rows:
        print("no quarantined records")
    return 0


def _show(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        rows = _rows(store, "WHERE id = ?", [args.record])
    if not rows:
        raise DriftwardenError(f"no quarantined record {args.record}: see `quarantine list`")
    row = rows[0]
    raw: bytes = row["raw"] or b""
    size = _size(row)
    digest = row["raw_sha256"] or hashlib.sha256(raw).hexdigest()
    kept = "whole" if len(raw) >= size else f"first {len(raw):,} bytes kept"
    lines = [
        f"quarantined record {row['id']}",
        f"  reason:   {printable(row['reason'], None)}",
        f"  source:   {printable(row['source'])}",
        f"  position: {printable(_position(row))}",
        f"  when:     {format_time(row['created_at'])} (wall clock)",
        f"  size:     {size:,} bytes ({kept})",
        f"  sha256:   {digest}",
        f"  record:   {excerpt(raw, EXCERPT_BYTES)}",
    ]
    print("\n".join(lines))
    return 0
