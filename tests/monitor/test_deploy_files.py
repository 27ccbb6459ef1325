"""The systemd unit and the container file say what operations rely on."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_unit_file_has_the_hardening_and_lifecycle_directives(tmp_path: Path) -> None:
    unit = (ROOT / "scripts" / "driftwarden.service").read_text()
    for directive in (
        "Type=notify",
        "Restart=on-failure",
        "WatchdogSec=",
        "StateDirectory=driftwarden",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
    ):
        assert directive in unit, directive
    if shutil.which("systemd-analyze"):
        # Point ExecStart at an executable that exists here so verify checks the rest.
        local = unit.replace("/opt/driftwarden/.venv/bin/driftwarden", str(Path(sys.executable)))
        path = tmp_path / "driftwarden.service"
        path.write_text(local)
        result = subprocess.run(
            ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert "driftwarden.service" not in result.stderr, result.stderr


def test_container_runs_as_non_root_with_a_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "\nUSER driftwarden\n" in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    assert '"driftwarden", "run"' in dockerfile


def test_the_demo_finds_the_broker_script_and_its_config_in_the_checkout() -> None:
    from simulation.demo.config import BASE_CONFIG
    from simulation.demo.processes import KAFKA_SCRIPT

    assert KAFKA_SCRIPT.is_file() and os.access(KAFKA_SCRIPT, os.X_OK), KAFKA_SCRIPT
    assert BASE_CONFIG.is_file(), BASE_CONFIG
