"""Every table of the store, created in one place when the store opens.

``ensure_schema`` runs from ``Store.__init__`` (and only there): it creates
the tables that are missing and brings a store written by an older version up
to date with the column migrations below. Everything is idempotent and safe
when two processes open the same store at once: a migration another process
made first is taken as done.

Tables and their owners: ``alerts`` and ``incidents`` (``monitor.incidents``),
``signal_state`` and ``signal_history`` (``monitor.incidents.signal_states``),
``quarantine`` (the parser's refusals), ``model_state`` and ``state_blobs``
(detector state), ``baseline_resets`` (``monitor.pipeline.baseline_reset``),
``baseline_references`` (``monitor.pipeline.reference_file``),
``performance_windows`` (``monitor.pipeline.performance_windows``),
``offsets`` (the next offset per consumer group and partition), ``audit``
(``monitor.audit.chain``), ``outbox``, ``silences`` and
``incident_notifications`` (``monitor.notify``), ``alertmanager_pushes``
(``monitor.notify.alertmanager``).
"""

from __future__ import annotations

import sqlite3

import sqlite_utils

# Where to find a prediction by the hash of its id (monitor.pipeline.label_index): per
# model, a generation of rows per flush (part: the last ins in it; dropped whole once all
# of it is gone), a row per shard (the hash's top bits) of pairs (ins - base, the hash's
# low 32 bits). Its own string: a store of the index before generations gets it anew.
LABEL_INDEX_TABLE = """
CREATE TABLE IF NOT EXISTS label_index (
    model TEXT NOT NULL,
    part INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    base INTEGER NOT NULL,
    pairs BLOB NOT NULL,
    PRIMARY KEY (model, part, shard)
) WITHOUT ROWID;
"""
TABLES = (
    """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    model TEXT NOT NULL,
    detector TEXT NOT NULL,
    signal TEXT NOT NULL,
    severity TEXT NOT NULL,
    event_ts REAL NOT NULL,
    created_at REAL NOT NULL,
    details TEXT NOT NULL,
    incident_id INTEGER REFERENCES incidents(id)
);
CREATE INDEX IF NOT EXISTS alerts_model_ts ON alerts(model, event_ts);
CREATE INDEX IF NOT EXISTS alerts_incident ON alerts(incident_id);
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    first_event_ts REAL NOT NULL,
    last_event_ts REAL NOT NULL,
    alert_count INTEGER NOT NULL DEFAULT 0,
    signals TEXT NOT NULL DEFAULT '[]',
    opened_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    acknowledged_by TEXT,
    acknowledged_at REAL,
    resolved_by TEXT,
    resolved_at REAL,
    notification_state TEXT NOT NULL DEFAULT 'pending'
);
CREATE INDEX IF NOT EXISTS incidents_model_status ON incidents(model, status);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    topic TEXT,
    partition INTEGER,
    offset INTEGER,
    reason TEXT NOT NULL,
    raw BLOB,
    created_at REAL NOT NULL,
    raw_length INTEGER,
    raw_sha256 TEXT
);
CREATE TABLE IF NOT EXISTS model_state (
    model TEXT PRIMARY KEY,
    state BLOB NOT NULL,
    events INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
-- Requests of `driftwarden baseline reset`, carried out by whoever holds the model.
CREATE TABLE IF NOT EXISTS baseline_resets (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    requested_at REAL NOT NULL,
    requested_by TEXT NOT NULL,
    done_at REAL
);
-- References set by `driftwarden baseline set` (or `replay --reference`): the sample
-- (zlib-compressed JSON lines) waits here until whoever holds the model builds its
-- baseline from it (done_at). A later set or reset supersedes it (superseded_at).
CREATE TABLE IF NOT EXISTS baseline_references (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    requested_at REAL NOT NULL,
    requested_by TEXT NOT NULL,
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    rows_read INTEGER NOT NULL,
    sample_size INTEGER NOT NULL,
    sample BLOB NOT NULL,
    done_at REAL,
    superseded_at REAL
);
-- See OFFSETS_TABLE.
-- Long strings of model_state, keyed by digest (monitor.store.state_blobs).
CREATE TABLE IF NOT EXISTS state_blobs (
    model TEXT NOT NULL,
    digest TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (model, digest)
);
-- Each model x detector x signal: ok or firing now (monitor.incidents.signal_states).
CREATE TABLE IF NOT EXISTS signal_state (
    model TEXT NOT NULL,
    detector TEXT NOT NULL,
    signal TEXT NOT NULL,
    state TEXT NOT NULL,
    severity TEXT NOT NULL,
    since_ts REAL,
    last_tested_ts REAL,
    last_violation_ts REAL,
    resolved_ts REAL,
    statistic REAL,
    p_value REAL,
    threshold REAL,
    effect_size REAL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (model, detector, signal)
);
-- Every evaluation and change of a signal, kept [history] retention_days of event time.
CREATE TABLE IF NOT EXISTS signal_history (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    detector TEXT NOT NULL,
    signal TEXT NOT NULL,
    event_ts REAL NOT NULL,
    change TEXT NOT NULL,
    state TEXT NOT NULL,
    severity TEXT NOT NULL,
    statistic REAL,
    p_value REAL,
    threshold REAL,
    effect_size REAL
);
CREATE INDEX IF NOT EXISTS signal_history_model_ts ON signal_history(model, event_ts);
-- The hash-chained audit log (monitor.audit.chain).
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    content TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    scheme TEXT NOT NULL DEFAULT 'sha256'
);
CREATE INDEX IF NOT EXISTS audit_kind ON audit(kind, id);
-- Predictions with a request id waiting for their label (monitor.pipeline.label_store):
-- one row per model and checkpoint, its predictions numbered first..last (ins: oldest-first
-- eviction; ins lists them when not consecutive) with their id hashes and event times as
-- arrays, and the predictions themselves in label_chunks, CHUNK at a time (a label's
-- lookup reads one small row). Small columns first: a scan reads no blob.
CREATE TABLE IF NOT EXISTS label_batches (
    model TEXT NOT NULL,
    first INTEGER NOT NULL,
    last INTEGER NOT NULL,
    count INTEGER NOT NULL,
    gone INTEGER NOT NULL,
    min_ts REAL NOT NULL,
    max_ts REAL NOT NULL,
    indexed INTEGER NOT NULL,
    ins BLOB,
    hashes BLOB NOT NULL,
    ts BLOB NOT NULL,
    PRIMARY KEY (model, first)
);
CREATE TABLE IF NOT EXISTS label_chunks (
    model TEXT NOT NULL,
    first INTEGER NOT NULL,
    classes TEXT NOT NULL,
    ins BLOB,
    records BLOB NOT NULL,
    ids BLOB NOT NULL,
    segments BLOB NOT NULL,
    PRIMARY KEY (model, first)
);
"""
    + LABEL_INDEX_TABLE
    + """
-- Stored predictions already labelled (a second label is a duplicate): per chunk of
-- label_chunks with any (its first), a mask of its slots labelled (bit k: slot k).
CREATE TABLE IF NOT EXISTS label_joined (
    model TEXT NOT NULL,
    first INTEGER NOT NULL,
    bits INTEGER NOT NULL,
    PRIMARY KEY (model, first)
) WITHOUT ROWID;
-- Each model's label join: its counts, its event-time watermark, its label delays, and
-- the state of its realized performance (detectors.performance.watch) and of its
-- per-segment feedback test (detectors.performance.feedback).
CREATE TABLE IF NOT EXISTS label_counts (
    model TEXT PRIMARY KEY,
    inserted INTEGER NOT NULL,
    watermark REAL NOT NULL,
    labels INTEGER NOT NULL,
    joined INTEGER NOT NULL,
    late INTEGER NOT NULL,
    unmatched INTEGER NOT NULL,
    duplicate INTEGER NOT NULL,
    evicted INTEGER NOT NULL,
    expired INTEGER NOT NULL,
    delays TEXT NOT NULL,
    performance TEXT,
    feedback TEXT,
    pending INTEGER NOT NULL DEFAULT 0,
    counted_ins INTEGER NOT NULL DEFAULT -9223372036854775808,
    counted_ts REAL NOT NULL DEFAULT -1e300,
    index_flushes INTEGER NOT NULL DEFAULT 0
);
-- Estimated (CBPE) and realized performance per window of predictions
-- (monitor.pipeline.performance_windows).
CREATE TABLE IF NOT EXISTS performance_windows (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    window INTEGER NOT NULL,
    end_ts REAL NOT NULL,
    metric TEXT NOT NULL,
    kind TEXT NOT NULL,
    value REAL NOT NULL,
    band_low REAL,
    band_high REAL,
    alarm_below REAL,
    rows INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS performance_windows_model ON performance_windows(model, end_ts);
-- Webhook deliveries (monitor.notify.outbox).
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    webhook_id TEXT NOT NULL UNIQUE,
    url_index INTEGER NOT NULL,
    url_key TEXT NOT NULL,
    format TEXT NOT NULL,
    incident_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_attempt_at REAL,
    last_status INTEGER,
    last_error TEXT,
    delivered_at REAL,
    failed_at REAL,
    gave_up_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_incident_url ON outbox(incident_id, url_key, state);
-- Silences and what each incident was last notified as (monitor.notify.policy).
CREATE TABLE IF NOT EXISTS silences (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL DEFAULT '*',
    signal TEXT NOT NULL DEFAULT '*',
    detector TEXT NOT NULL DEFAULT '*',
    starts_at REAL NOT NULL,
    ends_at REAL NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS incident_notifications (
    incident_id INTEGER PRIMARY KEY,
    sequence INTEGER NOT NULL,
    severity TEXT NOT NULL,
    status TEXT NOT NULL,
    last_notified_at REAL NOT NULL DEFAULT 0,
    signal_count INTEGER NOT NULL DEFAULT 0
);
-- The signals each Alertmanager was last told are firing (monitor.notify.alertmanager):
-- what must be resolved there when they return to ok, across restarts.
CREATE TABLE IF NOT EXISTS alertmanager_pushes (
    url_key TEXT NOT NULL,
    model TEXT NOT NULL,
    detector TEXT NOT NULL,
    signal TEXT NOT NULL,
    labels TEXT NOT NULL,
    starts_at REAL NOT NULL,
    pushed_at REAL NOT NULL,
    PRIMARY KEY (url_key, model, detector, signal)
);
"""
)
OFFSETS_TABLE = """
CREATE TABLE IF NOT EXISTS offsets (
    group_id TEXT NOT NULL DEFAULT '',
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);
"""
# Columns added to existing stores when they open: (table, column, type and default).
ADDED_COLUMNS = (
    ("quarantine", "raw_length", "INTEGER"),
    ("quarantine", "raw_sha256", "TEXT"),
    # Rows written before keyed rows existed are unkeyed.
    ("audit", "scheme", "TEXT NOT NULL DEFAULT 'sha256'"),
    # A store written before signals were counted.
    ("incident_notifications", "signal_count", "INTEGER NOT NULL DEFAULT 0"),
    # Event time at which the incident's last firing signal returned to ok.
    ("incidents", "resolved_event_ts", "REAL"),
    # The problem an incident is about (monitor.incidents.kinds), and its group.
    ("incidents", "kind", "TEXT"),
    ("incidents", "group_key", "TEXT"),
    # Segment keys of predictions waiting for labels, and the feedback test's state.
    ("label_counts", "feedback", "TEXT"),
    # The batch layout of pending predictions (label_store): predictions waiting, the
    # bounds up to which gone ones were counted, and the index merges done.
    ("label_counts", "pending", "INTEGER NOT NULL DEFAULT 0"),
    ("label_counts", "counted_ins", "INTEGER NOT NULL DEFAULT -9223372036854775808"),
    ("label_counts", "counted_ts", "REAL NOT NULL DEFAULT -1e300"),
    ("label_counts", "index_flushes", "INTEGER NOT NULL DEFAULT 0"),
)
# Offsets written before they carried their consumer group keep group_id '':
# the first daemon to start on the store takes them as its group's.
_OFFSETS_WITH_GROUPS = (
    "ALTER TABLE offsets RENAME TO offsets_without_groups",
    OFFSETS_TABLE,
    "INSERT INTO offsets (group_id, topic, partition, next_offset, updated_at) "
    "SELECT '', topic, partition, next_offset, updated_at FROM offsets_without_groups",
    "DROP TABLE offsets_without_groups",
)


def ensure_schema(db: sqlite_utils.Database) -> None:
    """Create the missing tables and run the migrations; call outside a transaction."""
    db.executescript(TABLES + OFFSETS_TABLE)
    _add_groups_to_offsets(db)
    _add_missing_columns(db)
    _mark_joined_by_chunk(db)
    _index_by_generation(db)
    _move_pending_labels(db)


def _columns(db: sqlite_utils.Database, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info([{table}])").fetchall()}


def _add_missing_columns(db: sqlite_utils.Database) -> None:
    for table, column, kind in ADDED_COLUMNS:
        if column not in _columns(db, table):
            try:
                db.execute(f"ALTER TABLE [{table}] ADD COLUMN [{column}] {kind}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):  # another process was first
                    raise


def _add_groups_to_offsets(db: sqlite_utils.Database) -> None:
    """Migrate a store whose offsets have no consumer group (before group_id existed)."""
    from monitor.audit.chain import write_transaction

    if "group_id" in _columns(db, "offsets"):
        return
    with write_transaction(db):
        if "group_id" in _columns(db, "offsets"):
            return  # another process migrated it meanwhile
        for statement in _OFFSETS_WITH_GROUPS:
            db.execute(statement)


def _move_pending_labels(db: sqlite_utils.Database) -> None:
    """Move the predictions of a store written before the batch layout (one row each in
    ``label_pending``) into it, and drop that table."""
    from monitor.audit.chain import write_transaction
    from monitor.pipeline.label_migration import move_label_pending

    if not _has_table(db, "label_pending"):
        return
    with write_transaction(db):
        if _has_table(db, "label_pending"):  # else another process moved them meanwhile
            move_label_pending(db)


def _mark_joined_by_chunk(db: sqlite_utils.Database) -> None:
    """Turn a store's labelled marks of one row per prediction (``label_joined.ins``,
    before the marks per chunk) into one mask per chunk."""
    from monitor.audit.chain import write_transaction
    from monitor.pipeline.label_migration import mark_joined_by_chunk

    if "ins" not in _columns(db, "label_joined"):
        return
    with write_transaction(db):
        if "ins" in _columns(db, "label_joined"):  # else another process did it meanwhile
            mark_joined_by_chunk(db)


def _index_by_generation(db: sqlite_utils.Database) -> None:
    """Rebuild a store's ``label_index`` of runs per shard, merged now and then (before the
    generations), as generations."""
    from monitor.audit.chain import write_transaction
    from monitor.pipeline.label_migration import index_by_generation

    if "pairs" in _columns(db, "label_index"):
        return
    with write_transaction(db):
        if "pairs" not in _columns(db, "label_index"):  # else another process did it meanwhile
            index_by_generation(db)


def _has_table(db: sqlite_utils.Database, table: str) -> bool:
    found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [table])
    return found.fetchone() is not None
