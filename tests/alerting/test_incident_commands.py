"""``driftwarden incidents`` and ``driftwarden audit verify`` on a real store."""

from __future__ import annotations

import getpass
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from detectors.base import Finding
from monitor.audit.chain import AuditLog
from monitor.notify.policy import NotificationPolicy
from monitor.notify.targets import WebhookTarget
from monitor.store.store import Store


@pytest.fixture
def populated(
    store: Store, record: Callable[..., int], make_finding: Callable[..., Finding]
) -> Store:
    policy = NotificationPolicy([WebhookTarget("http://h", "generic", "info")])
    record(
        store,
        "fraud",
        make_finding("amount", 1_764_140_000.0, "warning"),
        make_finding("country", 1_764_140_030.0, "critical", detector="chi2"),
        policy=policy,
    )
    record(store, "churn", make_finding("tenure", 1_764_150_000.0, "warning"), policy=policy)
    with store.transaction() as db:
        AuditLog.append_new_alerts(db)
    return store


def test_list_shows_every_incident(
    populated: Store, run_cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("incidents", "list", "--store", str(populated.path)) == 0
    out = capsys.readouterr().out
    assert "fraud: drift in amount (ks)" in out
    assert "churn: drift in tenure (ks)" in out
    assert run_cli("incidents", "list", "--status", "resolved", "--store", str(populated.path)) == 0
    assert "no incidents" in capsys.readouterr().out


def test_show_lists_alerts_statistics_and_timings(
    populated: Store, run_cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("incidents", "show", "1", "--store", str(populated.path)) == 0
    out = capsys.readouterr().out
    assert "Incident #1" in out
    assert "2 alert(s)" in out
    assert "chi2" in out and "country" in out
    assert "time to detect" in out and "10.0 min" in out


def test_ack_then_resolve_records_who_when_and_audits_it(
    populated: Store, run_cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(populated.path)
    assert run_cli("incidents", "ack", "1", "--by", "ana", "--store", path) == 0
    assert run_cli("incidents", "resolve", "1", "--store", path) == 0
    row = populated.db.execute(
        "SELECT status, acknowledged_by, acknowledged_at, resolved_by, resolved_at "
        "FROM incidents WHERE id = 1"
    ).fetchone()
    assert row[0] == "resolved"
    assert row[1] == "ana" and row[2] is not None
    assert row[3] == getpass.getuser() and row[4] >= row[2]
    changes = [
        orjson.loads(c)
        for (c,) in populated.db.execute(
            "SELECT content FROM audit WHERE kind = 'incident_transition' "
            "AND subject = 'incident:1'"
        )
    ]
    assert [(c["change"], c.get("by")) for c in changes][-2:] == [
        ("acknowledged", "ana"),
        ("resolved", getpass.getuser()),
    ]
    assert run_cli("incidents", "show", "1", "--store", path) == 0
    assert "time to resolve" in capsys.readouterr().out


def test_user_errors_exit_2_with_one_line(
    populated: Store,
    run_cli: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    path = str(populated.path)
    assert run_cli("incidents", "resolve", "2", "--store", path) == 0
    capsys.readouterr()
    for argv, says in (
        (("incidents", "ack", "2", "--store", path), "already resolved"),
        (("incidents", "show", "99", "--store", path), "no incident 99"),
        (("incidents", "list", "--store", str(tmp_path / "none.db")), "no such store"),
        (("incidents", "list"), "give --store DB or --config FILE"),
        (("audit", "verify", "--config", str(tmp_path / "none.toml")), "no such config file"),
    ):
        assert run_cli(*argv) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err


def test_the_config_names_the_store(
    populated: Store,
    run_cli: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    config = tmp_path / "dw.toml"
    config.write_text(f'[store]\npath = "{populated.path}"\n\n[[models]]\nname = "fraud"\n')
    assert run_cli("incidents", "list", "--config", str(config)) == 0
    assert "fraud" in capsys.readouterr().out


def test_audit_verify_exit_codes(
    populated: Store, run_cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(populated.path)
    assert run_cli("audit", "verify", "--store", path) == 0
    assert "intact" in capsys.readouterr().out
    populated.db.execute("UPDATE audit SET content = '{}' WHERE id = 3")
    assert run_cli("audit", "verify", "--store", path) == 1
    assert capsys.readouterr().out.startswith("audit log tampered at row 3:")


def test_a_name_that_is_not_utf8_is_refused_in_one_line(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    store.write_bytes(b"")
    command = [sys.executable.encode(), b"-m", b"monitor.cli", b"incidents", b"ack", b"1"]
    done = subprocess.run(
        [*command, b"--store", str(store).encode(), b"--by", b"\xffadmin"],
        capture_output=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.decode().strip() == (
        "driftwarden: --by is not valid UTF-8 text: \\udcffadmin"
    )


def test_show_states_a_performance_metric_before_and_after(
    store: Store,
    record: Callable[..., int],
    run_cli: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The realized performance watch's findings, as the label join records them."""
    from tests.detectors.test_det_performance import _run
    from tests.detectors.test_det_performance_metrics import REFERENCE, _binary

    found = _run(_binary(9_000, seed=21, accuracy_after=0.6, at=REFERENCE), 1000)
    accuracy = next(f for f in found if f.signal == "performance:accuracy")
    record(store, "loans", accuracy)
    assert run_cli("incidents", "show", "1", "--store", str(store.path)) == 0
    out = capsys.readouterr().out
    assert "metric before → after" in out
    assert accuracy.details["summary"] in out  # e.g. "accuracy 0.933 → 0.610"
    assert accuracy.details["summary"].startswith("accuracy 0.9")
