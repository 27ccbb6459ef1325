"""Silences from the command line: notifications muted, records kept, changes audited."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from detectors.base import Finding
from monitor.audit.chain import AuditLog
from monitor.cli import main as cli
from monitor.notify.policy import NotificationPolicy
from monitor.notify.targets import WebhookTarget
from monitor.silence.commands import parse_duration
from monitor.store.store import Store


def _pages(store: Store) -> list[str]:
    return [
        m
        for (m,) in store.db.execute(
            "SELECT i.model FROM outbox o JOIN incidents i ON i.id = o.incident_id ORDER BY o.id"
        )
    ]


def test_a_silence_mutes_one_model_until_it_ends(
    store: Store,
    record: Callable[..., int],
    make_finding: Callable[..., Finding],
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = NotificationPolicy([WebhookTarget("http://h/all", "generic", "info")])
    args = ["--store", str(store.path), "--by", "oncall"]
    assert cli.main(["silence", "add", "--model", "fraud", "--for", "2h", *args]) == 0
    assert "silence 1 mutes fraud/*/*" in capsys.readouterr().out
    record(store, "fraud", make_finding(event_ts=1e9), policy=policy)
    record(store, "churn", make_finding(event_ts=1e9), policy=policy)
    assert _pages(store) == ["churn"]
    assert store.count("alerts") == 2, "a silence keeps the record"

    assert cli.main(["silence", "list", "--store", str(store.path)]) == 0
    assert "fraud" in capsys.readouterr().out
    assert cli.main(["silence", "end", "1", *args]) == 0
    with store.transaction() as db:
        policy.enqueue_changes(db, time.time())
    assert _pages(store) == ["churn", "fraud"], "the muted incident is told once the silence ends"
    kinds = [k for (k,) in store.db.execute("SELECT kind FROM audit WHERE kind = 'silence'")]
    assert len(kinds) == 2
    assert AuditLog.verify(store.db) is None


def test_bad_silences_are_one_line_errors(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["silence", "add", "--store", str(store.path), "--by", "x"]
    assert cli.main([*base, "--for", "soon"]) == 2
    assert "is not a duration" in capsys.readouterr().err
    assert cli.main(["silence", "end", "7", "--store", str(store.path), "--by", "x"]) == 2
    assert "no silence 7" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1.5d", 129600)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
