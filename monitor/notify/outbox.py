"""The durable webhook outbox (CONTRACT §5).

A notification row is written in the same transaction as the alert that caused
it, so it exists exactly when the alert does; a kill at any moment loses none.
Posting the rows is the job of ``monitor.notify.delivery``.
"""

from __future__ import annotations

import hashlib

import sqlite_utils

from monitor.audit.chain import AuditLog


def url_key(url: str) -> str:
    """How the store names a webhook: a digest of its URL, never the URL.

    Slack and PagerDuty URLs carry their credentials; a store is copied around
    for forensics, so it keeps only what tells the webhooks apart.
    """
    return "sha256:" + hashlib.sha256(url.encode()).hexdigest()[:32]


def message_id(incident_key: str, kind: str, sequence: int, fmt: str, webhook: str) -> str:
    """The ``webhook-id``: the same notification always gets the same id, replays included."""
    text = f"{incident_key}\x00{kind}\x00{sequence}\x00{fmt}\x00{webhook}"
    return "msg_" + hashlib.sha256(text.encode()).hexdigest()[:32]


class WebhookOutbox:
    """Writes notification rows; every method runs inside the caller's transaction."""

    @staticmethod
    def enqueue(
        db: sqlite_utils.Database,
        *,
        url_index: int,
        url: str,
        fmt: str,
        incident_id: int,
        incident_key: str,
        kind: str,
        reason: str,
        sequence: int,
        body: bytes,
        now: float,
    ) -> str:
        """Add one notification; a row with the same webhook id already there is kept as is."""
        key = url_key(url)
        webhook_id = message_id(incident_key, kind, sequence, fmt, key)
        cursor = db.execute(
            "INSERT OR IGNORE INTO outbox (webhook_id, url_index, url_key, format, incident_id, "
            "kind, reason, sequence, body, created_at, next_attempt_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [webhook_id, url_index, key, fmt, incident_id, kind, reason, sequence, body, now, now],
        )
        if cursor.rowcount:
            AuditLog.append(
                db,
                "notification",
                f"incident:{incident_id}",
                {
                    "event": "enqueued",
                    "webhook_id": webhook_id,
                    "webhook": url_index,
                    "format": fmt,
                    "kind": kind,
                    "reason": reason,
                    "sequence": sequence,
                },
                ts=now,
            )
        return webhook_id

    @staticmethod
    def sent_firing(db: sqlite_utils.Database, incident_id: int, url: str, fmt: str) -> bool:
        """Whether this URL was ever sent (or is to be sent) a firing message for the incident."""
        row = db.execute(
            "SELECT 1 FROM outbox WHERE incident_id = ? AND url_key = ? AND format = ? "
            "AND kind != 'resolve' LIMIT 1",
            [incident_id, url_key(url), fmt],
        ).fetchone()
        return row is not None

    @staticmethod
    def depth(db: sqlite_utils.Database) -> int:
        """Undelivered rows still being tried: the outbox depth metric."""
        return int(db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0])
