"""Checking the audit log: its chain, its anchor, and the alerts it recorded.

``verify_chain`` walks the ``audit`` rows in id order and names the first one
that was changed, inserted, deleted or rewritten without the key. An anchor (a
head, ``ID:HASH``, printed earlier by ``driftwarden audit head`` and kept
elsewhere) also catches what a chain alone cannot: rows cut off its end, every
row deleted, and a chain recomputed from start to end. ``verify_alerts`` then
compares each row of the ``alerts`` table with what its ``alert`` audit row
recorded, so an alert edited, deleted or added behind the log's back shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import sqlite_utils

from monitor.audit.chain import GENESIS, KEYED, SCHEMES, UNKEYED, Problem, row_hash
from monitor.errors import DriftwardenError

HEAD_FORMAT = re.compile(r"(\d+):([0-9a-f]{64})")
# The columns an ``alert`` audit row records, in the order differences are named.
ALERT_FIELDS = (
    "model",
    "detector",
    "signal",
    "severity",
    "event_ts",
    "details",
    "fingerprint",
    "incident_id",
    "created_at",
)


@dataclass(frozen=True)
class ChainReport:
    rows: int
    last_id: int
    keyed_from: int | None  # the first keyed row
    problem: Problem | None
    unchecked_from: int | None  # keyed rows whose hashes went unchecked, for want of the key


def format_head(head: tuple[int, str]) -> str:
    """A head as one token, ``<row id>:<hash>``; an empty log's is ``0:`` and 64 zeros."""
    return f"{head[0]}:{head[1]}"


def parse_head(text: str) -> tuple[int, str]:
    match = HEAD_FORMAT.fullmatch(text.strip())
    if match is None or (int(match.group(1)) == 0 and match.group(2) != GENESIS):
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise DriftwardenError(
            f"--anchor {shown!r} is not a head: give the last line printed by "
            "`driftwarden audit head`, ROW:HASH with 64 hex digits"
        )
    return int(match.group(1)), match.group(2)


def need_key(first_keyed: int) -> DriftwardenError:
    return DriftwardenError(
        f"the audit log is keyed from row {first_keyed}: verify it with its key "
        "(--config FILE whose [audit] key_env names it, or --key-env VAR)"
    )


def scheme_column(db: sqlite_utils.Database) -> str:
    """What to select for a row's scheme: a store written before keys has no such column."""
    columns = {column[0] for column in db.execute("SELECT * FROM audit LIMIT 0").description}
    return "scheme" if "scheme" in columns else f"'{UNKEYED}'"


def _rows(db: sqlite_utils.Database) -> Iterator[tuple[Any, ...]]:
    yield from db.execute(
        f"SELECT id, ts, kind, subject, content, prev_hash, hash, {scheme_column(db)} "
        "FROM audit ORDER BY id"
    )


def verify_chain(
    db: sqlite_utils.Database, key: bytes | None = None, anchor: tuple[int, str] | None = None
) -> ChainReport:
    """Walk the chain; ``problem`` names its first bad row, None when intact."""
    prev_id, prev_hash = 0, GENESIS
    before_prev_hash: str | None = None
    anchor_seen: str | None = None
    keyed_from: int | None = None
    count = 0

    def report(bad_row: int | None = None, what: str = "") -> ChainReport:
        problem = None if bad_row is None else (bad_row, what)
        unchecked = keyed_from if key is None else None
        return ChainReport(count, prev_id, keyed_from, problem, unchecked)

    for row_id, ts, kind, subject, content, stored_prev, stored_hash, scheme in _rows(db):
        count += 1
        if scheme not in SCHEMES:
            return report(row_id, f"row {row_id} names an unknown hash scheme {scheme!r}")
        own_ok: bool | None = None  # a keyed row cannot be checked without the key
        if scheme == UNKEYED or key is not None:
            own_key = key if scheme == KEYED else None
            own = row_hash(stored_prev, row_id, ts, kind, subject, content, own_key)
            own_ok = own == stored_hash
        if row_id != prev_id + 1:
            missing = prev_id + 1
            return report(missing, f"row {missing} is missing: deleted (next row is {row_id})")
        if stored_prev != prev_hash:
            if stored_prev == before_prev_hash:
                return report(prev_id, f"row {prev_id} was inserted: row {row_id} chains past it")
            if own_ok and prev_id > 0:
                what = f"row {prev_id} was changed: row {row_id} recorded another hash for it"
                return report(prev_id, what)
            what = f"row {row_id} does not chain to row {prev_id}: "
            return report(row_id, what + "it was changed or a row before it was deleted")
        if scheme == UNKEYED and keyed_from is not None:
            what = f"row {row_id} is unkeyed after keyed rows (from row {keyed_from}): "
            return report(row_id, what + "the log was rewritten without the key from here on")
        if own_ok is False:
            what = "hash" if scheme == UNKEYED else "keyed hash (or the key is not its own)"
            return report(
                row_id, f"row {row_id} was changed: its content does not match its {what}"
            )
        if scheme == KEYED and keyed_from is None:
            keyed_from = row_id
        if anchor is not None and row_id == anchor[0]:
            anchor_seen = stored_hash
        before_prev_hash, prev_id, prev_hash = prev_hash, row_id, stored_hash
    if anchor is not None:
        anchor_id, anchor_hash = anchor
        if prev_id == 0 < anchor_id:
            return report(1, f"rows 1 to {anchor_id} are missing: every row was deleted")
        if anchor_id > prev_id:
            first = prev_id + 1
            rows = f"row {first} is" if first == anchor_id else f"rows {first} to {anchor_id} are"
            return report(first, f"{rows} missing: cut off")
        if anchor_id > 0 and anchor_seen != anchor_hash:
            return report(anchor_id, f"row {anchor_id} does not match the anchor: chain rewritten")
    if key is not None and count and keyed_from is None:
        what = f"no row is keyed (rows 1 to {prev_id}): the log was rewritten without the key, "
        return report(1, what + "or nothing was written with the key yet")
    return report()


def _recorded(db: sqlite_utils.Database) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(alert id, audit row, recorded content) of every ``alert`` row, by alert id."""
    rows = db.execute(
        "SELECT id, subject, content FROM audit WHERE kind = 'alert' "
        "ORDER BY CAST(substr(subject, 7) AS INTEGER), id"
    )
    for row_id, subject, content in rows:
        match = re.fullmatch(r"alert:(\d+)", subject)
        yield (int(match.group(1)) if match else -1), row_id, orjson.loads(content)


def _stored(db: sqlite_utils.Database) -> Iterator[tuple[int, dict[str, Any]]]:
    columns = ", ".join(ALERT_FIELDS)
    for row in db.execute(f"SELECT id, {columns} FROM alerts ORDER BY id"):
        yield int(row[0]), dict(zip(ALERT_FIELDS, row[1:], strict=True))


def _difference(stored: dict[str, Any], recorded: dict[str, Any], audit_row: int) -> str | None:
    """What of an alert row differs from its audit row's record; None when nothing does."""
    for name in ALERT_FIELDS:
        if name not in recorded:
            continue  # recorded before the audit row held this column
        value = stored[name]
        if name == "details":
            try:
                same = orjson.loads(value) == recorded[name]
            except orjson.JSONDecodeError:
                same = False
            if not same:
                return f"its details differ from those audit row {audit_row} recorded"
        elif value != recorded[name]:
            return (
                f"its {name} is {value!r} where audit row {audit_row} recorded {recorded[name]!r}"
            )
    return None


def verify_alerts(db: sqlite_utils.Database) -> tuple[int, Problem | None]:
    """(alerts checked, None) when every alert matches its audit row, else the first bad alert."""
    recorded, stored = _recorded(db), _stored(db)
    rec, cur = next(recorded, None), next(stored, None)
    checked = 0
    while rec is not None or cur is not None:
        if rec is not None and rec[0] < 0:
            return checked, (rec[0], f"audit row {rec[1]} records an alert without an id")
        if cur is None or (rec is not None and rec[0] < cur[0]):
            assert rec is not None
            alert_id, audit_row = rec[0], rec[1]
            return checked, (
                alert_id,
                f"alert {alert_id} was deleted from the alerts table: audit row {audit_row} "
                "records it",
            )
        if rec is None or cur[0] < rec[0]:
            return checked, (
                cur[0],
                f"alert {cur[0]} has no audit row: it was added to the alerts table afterwards",
            )
        following = next(recorded, None)
        if following is not None and following[0] == rec[0]:
            return checked, (
                rec[0],
                f"alert {rec[0]} has two audit rows ({rec[1]} and {following[1]})",
            )
        what = _difference(cur[1], rec[2], rec[1])
        if what is not None:
            return checked, (cur[0], f"alert {cur[0]} was changed in the alerts table: {what}")
        checked += 1
        rec, cur = following, next(stored, None)
    return checked, None
