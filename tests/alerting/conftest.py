"""Fixtures for alerting tests: a real SQLite store and a real local webhook receiver."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from detectors.base import Finding
from monitor.audit.chain import write_transaction
from monitor.cli import main as cli
from monitor.incidents.commands import register
from monitor.incidents.grouping import AlertPolicy
from monitor.store import schema
from monitor.store.store import Store
from tests.webhook_receiver import Received, WebhookReceiver, start_receiver

__all__ = ["Received", "WebhookReceiver", "start_receiver"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "store.db")
    schema.ensure_schema(store.db)
    yield store
    store.close()


def finding(
    signal: str = "amount",
    event_ts: float = 1_764_140_000.0,
    severity: str = "warning",
    detector: str = "ks",
    statistic: float = 0.31,
) -> Finding:
    return Finding(
        detector=detector,
        signal=signal,
        event_ts=event_ts,
        severity=severity,  # type: ignore[arg-type]
        statistic=statistic,
        threshold=0.2,
        p_value=1e-6,
        effect_size=statistic,
        details={"window_events": 1000, "window_start_ts": event_ts - 600.0},
    )


@pytest.fixture
def make_finding() -> Callable[..., Finding]:
    return finding


@pytest.fixture
def record() -> Callable[..., int]:
    """Write findings as the pipeline does: alerts, incidents, outbox in one transaction."""

    def write(store: Store, model: str, *findings: Finding, policy: object = None) -> int:
        with write_transaction(store.db) as db:
            written = AlertPolicy().record(db, model, findings)
            if policy is not None:
                policy.enqueue_changes(db, time.time())  # type: ignore[attr-defined]
        return written

    return write


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    """``driftwarden ARGS`` in-process, with the incident commands registered."""
    original = cli._parser

    def parser_with_incidents() -> argparse.ArgumentParser:
        parser = original()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if "incidents" not in commands.choices:
            register(commands)
        return parser

    monkeypatch.setattr(cli, "_parser", parser_with_incidents)
    monkeypatch.setenv("COLUMNS", "200")  # rich would wrap tables at 80 columns
    return lambda *argv: cli.main(list(argv))
