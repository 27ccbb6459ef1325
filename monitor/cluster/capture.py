"""What a checkpoint changed in the store, caught by SQLite triggers on its connection.

The checkpoint's own code (``monitor.pipeline.checkpoint``, the label join,
the signal states) writes the store as in single-machine mode; temporary
triggers, which live on this connection only and never in the file, note
each row it inserts, updates or deletes:

- rows of ``STATE_TABLES`` (a model's state, keyed by model first): what the
  changelog must carry, noted by primary key (the row is read back when the
  checkpoint is published, so the latest version goes, or a tombstone);
- rows inserted into ``OUTPUT_TABLES`` (alerts, signal history, performance
  windows, quarantined records), and the audit log's ``baseline_change`` rows:
  what the alerts and quarantine topics carry.

Notes are in the connection's temporary tables, which follow the
transaction: a rolled-back checkpoint leaves no note behind.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import sqlite_utils

# Every table holding part of one model's state (its first primary key column is
# ``model``). A table added to the store for a model's state must be added here, or
# that part of the state stays on the machine that wrote it.
STATE_TABLES = (
    "model_state",
    "state_blobs",
    "signal_state",
    "label_counts",
    "label_batches",
    "label_chunks",
    "label_index",
    "label_joined",
    # Requests of `baseline reset`/`baseline set` not yet carried out (``requests``).
    "baseline_requests",
)
# Tables whose new rows are the checkpoint's effects, by ``id``.
OUTPUT_TABLES = ("alerts", "signal_history", "performance_windows", "quarantine")

_TEMP_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS cluster_changed (tbl TEXT NOT NULL, key TEXT NOT NULL,
    PRIMARY KEY (tbl, key));
CREATE TEMP TABLE IF NOT EXISTS cluster_written (tbl TEXT NOT NULL, row INTEGER NOT NULL,
    PRIMARY KEY (tbl, row));
CREATE TEMP TABLE IF NOT EXISTS cluster_capture (paused INTEGER NOT NULL);
"""


def primary_key(db: sqlite_utils.Database, table: str) -> list[str]:
    """The table's primary key columns, in key order."""
    columns = db.execute(f"PRAGMA main.table_info([{table}])").fetchall()
    keyed = sorted((c[5], c[1]) for c in columns if c[5] > 0)
    names = [name for _, name in keyed]
    if not names or names[0] != "model":
        raise ValueError(f"table {table} is not keyed by model first; it cannot be replicated")
    return names


def _note_once(notes: str, table: str, key: str, column: str = "key") -> str:
    """A trigger's statement noting ``(table, key)`` in ``notes`` unless it is there.

    Not ``INSERT OR IGNORE``: a trigger fired by an upsert's DO UPDATE runs its
    statements under the upsert's ABORT, which overrides their own OR clause, so a
    row updated twice in one checkpoint would fail on the note already taken."""
    return (
        f"INSERT INTO {notes} SELECT '{table}', {key} WHERE NOT EXISTS "
        f"(SELECT 1 FROM {notes} WHERE tbl = '{table}' AND {column} = {key});"
    )


class ChangeCapture:
    """Installs the triggers on ``db``'s connection; reads and clears what they noted."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self.keys = {table: primary_key(db, table) for table in STATE_TABLES}
        for statement in _TEMP_TABLES.split(";"):
            if statement.strip():
                db.execute(statement)
        if db.execute("SELECT count(*) FROM temp.cluster_capture").fetchone()[0] == 0:
            db.execute("INSERT INTO temp.cluster_capture VALUES (0)")
        active = "WHEN (SELECT paused FROM temp.cluster_capture) = 0"
        for table, key in self.keys.items():
            for when, rows in (
                ("INSERT", ("NEW",)),
                ("UPDATE", ("OLD", "NEW")),
                ("DELETE", ("OLD",)),
            ):
                notes = " ".join(
                    _note_once(
                        "cluster_changed",
                        table,
                        f"json_array({', '.join(f'{row}.[{c}]' for c in key)})",
                    )
                    for row in rows
                )
                db.execute(
                    f"CREATE TEMP TRIGGER IF NOT EXISTS cluster_{table}_{when.lower()} "
                    f"AFTER {when} ON main.[{table}] {active} BEGIN {notes} END"
                )
        for table in OUTPUT_TABLES:
            db.execute(
                f"CREATE TEMP TRIGGER IF NOT EXISTS cluster_{table}_written "
                f"AFTER INSERT ON main.[{table}] {active} BEGIN "
                f"{_note_once('cluster_written', table, 'NEW.id', 'row')} END"
            )
        # A model's baseline log goes with its checkpoint, for the notifier's audit log.
        db.execute(
            "CREATE TEMP TRIGGER IF NOT EXISTS cluster_audit_written "
            f"AFTER INSERT ON main.[audit] {active} AND NEW.kind = 'baseline_change' BEGIN "
            f"{_note_once('cluster_written', 'audit', 'NEW.id', 'row')} END"
        )

    def changed(self) -> list[tuple[str, list[Any], dict[str, Any] | None]]:
        """Each state row changed since the last ``clear``: table, key, the row now (None: gone).

        One query per table (a checkpoint changes a row per prediction waiting for its
        label): the notes joined to the table on its key.
        """
        found = []
        for table, columns in self.keys.items():
            on = " AND ".join(
                f"t.[{c}] = json_extract(c.key, '$[{i}]')" for i, c in enumerate(columns)
            )
            cursor = self.db.execute(
                f"SELECT c.key, t.* FROM temp.cluster_changed c LEFT JOIN main.[{table}] t "
                f"ON {on} WHERE c.tbl = ? ORDER BY c.key",
                [table],
            )
            names = [d[0] for d in cursor.description][1:]
            first = names.index(columns[0])
            for key_json, *row in cursor.fetchall():
                present = row[first] is not None  # the key's first column is NOT NULL
                value = dict(zip(names, row, strict=True)) if present else None
                found.append((table, orjson.loads(key_json), value))
        return found

    def written(self, table: str) -> list[dict[str, Any]]:
        """The rows inserted into an output table since the last ``clear``, in order."""
        cursor = self.db.execute(
            f"SELECT t.* FROM main.[{table}] t JOIN temp.cluster_written w "
            "ON w.tbl = ? AND w.row = t.id ORDER BY t.id",
            [table],
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def clear(self) -> None:
        """Everything noted is published (call inside the checkpoint's transaction)."""
        self.db.execute("DELETE FROM temp.cluster_changed")
        self.db.execute("DELETE FROM temp.cluster_written")

    def forget(self, models: Collection[str]) -> None:
        """Drop what was noted of models whose partitions went to another member: their
        state is the new owner's to publish, from the changelog (a change noted here but
        never committed, by a failed transaction or a load before it, is redone there)."""
        if not models:
            return
        names = sorted(models)
        marks = ", ".join("?" * len(names))
        self.db.execute(
            f"DELETE FROM temp.cluster_changed WHERE json_extract(key, '$[0]') IN ({marks})",
            names,
        )
        self.db.execute(
            "DELETE FROM temp.cluster_written WHERE tbl = 'audit' AND row IN "
            f"(SELECT id FROM main.audit WHERE subject IN ({marks}))",
            [f"model:{name}" for name in names],
        )

    def keep(self, table: str, key: list[Any]) -> None:
        """Note a row again (after ``clear``): it could not be published this time."""
        self.db.execute(
            "INSERT OR IGNORE INTO temp.cluster_changed VALUES (?, ?)",
            [table, orjson.dumps(key).decode()],
        )

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Writes that must not be published (a restore writing what the changelog holds)."""
        self.db.execute("UPDATE temp.cluster_capture SET paused = 1")
        try:
            yield
        finally:
            self.db.execute("UPDATE temp.cluster_capture SET paused = 0")
