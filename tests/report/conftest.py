"""Fixtures for the report tests: a store written by the real replay, and real Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from detectors.base import Finding
from monitor.incidents.grouping import AlertPolicy
from monitor.store.store import Store
from simulation.simulator import write_simulation

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = "<script>alert(1)</script>"
# Chromium logs every console message (log, warn, error, uncaught exception,
# CSP violation) as an INFO line "...:INFO:CONSOLE(line)] "text", source: ...".
CONSOLE_LINE = re.compile(r":CONSOLE[:(]\d*\)?\]\s*(.*)")

Run = Callable[..., subprocess.CompletedProcess[str]]


def run_driftwarden(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


@pytest.fixture(scope="session")
def driftwarden() -> Run:
    return run_driftwarden


@pytest.fixture(scope="session")
def drift_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store from replaying simulated drift, plus one incident of a hostile model name."""
    folder = tmp_path_factory.mktemp("report")
    events, store = folder / "events.jsonl", folder / "store.db"
    write_simulation(events, events=60_000, seed=7)
    replay = run_driftwarden(
        "replay",
        "--config",
        str(ROOT / "configs" / "demo.toml"),
        "--input",
        str(events),
        "--store",
        str(store),
    )
    assert replay.returncode == 0, replay.stderr
    hostile = Finding(
        detector="chi2",
        signal=f"feature:{HOSTILE}",
        event_ts=1_793_495_000.0,
        severity="critical",
        statistic=12.5,
        threshold=1e-5,
        p_value=1e-9,
        effect_size=0.4,
        details={
            "most_changed": HOSTILE,
            "share_labels": [HOSTILE, "ok"],
            "reference_shares": [0.1, 0.9],
            "window_shares": [0.5, 0.5],
        },
    )
    db = Store(store)
    try:
        with db.transaction() as tx:
            AlertPolicy().record(tx, HOSTILE, [hostile])
    finally:
        db.close()
    return store


@dataclass(frozen=True)
class Rendered:
    dom: str
    console: list[str]
    screenshot: Path
    stderr: str


def ensure_chromium() -> Path:
    if not CHROMIUM.exists():
        done = subprocess.run(
            [str(ROOT / "scripts" / "install-chromium")], capture_output=True, text=True
        )
        if done.returncode != 0 or not CHROMIUM.exists():
            pytest.fail(
                "headless Chromium is needed to render the report and could not be installed "
                f"by scripts/install-chromium (exit {done.returncode}):\n"
                f"{done.stdout}{done.stderr}",
                pytrace=False,
            )
    return CHROMIUM


def render_page(page: Path, screenshot: Path, profile: Path) -> Rendered:
    """Load ``page`` in headless Chromium: its DOM, console messages and a screenshot."""
    chromium = ensure_chromium()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.unlink(missing_ok=True)
    done = subprocess.run(
        [
            str(chromium),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            # any name lookup fails: a page that tried the network could not succeed
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            f"--screenshot={screenshot}",
            "--window-size=1280,2000",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LANG": "C.UTF-8"},
    )
    assert done.returncode == 0, f"chromium failed ({done.returncode}):\n{done.stderr[-3000:]}"
    console = [m.group(1) for line in done.stderr.splitlines() if (m := CONSOLE_LINE.search(line))]
    return Rendered(done.stdout, console, screenshot, done.stderr)


@pytest.fixture(scope="session")
def chromium_available() -> Path:
    return ensure_chromium()


@pytest.fixture
def render(chromium_available: Path, tmp_path: Path) -> Callable[[Path, Path], Rendered]:
    def _render(page: Path, screenshot: Path) -> Rendered:
        profile = tmp_path / f"profile-{page.stem}"
        try:
            return render_page(page, screenshot, profile)
        finally:
            shutil.rmtree(profile, ignore_errors=True)

    return _render
