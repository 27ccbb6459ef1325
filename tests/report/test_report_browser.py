"""The report in real headless Chromium: it renders, and the console stays silent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

Render = Callable[[Path, Path], Any]


def test_report_renders_without_console_messages(
    drift_store: Path, driftwarden: Any, render: Render, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # The screenshot is kept as the test's artifact, under pytest's own tmp folder.
    folder = tmp_path_factory.mktemp("artifacts", numbered=False)
    out, shot = folder / "report.html", folder / "report.png"
    done = driftwarden("report", "--store", str(drift_store), "--out", str(out))
    assert done.returncode == 0, done.stderr
    page = render(out, shot)
    # the report has no script: any console message (error, CSP violation) is a fault
    assert page.console == [], page.console
    assert page.dom.count("<section") == out.read_text(encoding="utf-8").count("<section")
    assert "Driftwarden incident report" in page.dom
    assert "<script>alert(1)</script>" not in page.dom
    assert shot.stat().st_size > 50_000, "a screenshot of the rendered plots"
    assert page.dom.count('class="statistic history"') >= 5, "signals drawn as full lines"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("<script>console.error('deliberate x')</script>", "deliberate x"),
        ("<script>null.f()</script>", "Uncaught TypeError"),
        (
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<img src="http://example.invalid/pixel.png">',
            "Content Security Policy",
        ),
    ],
    ids=["console-error", "exception", "network-load"],
)
def test_console_check_catches_faults(
    body: str, expected: str, render: Render, tmp_path: Path
) -> None:
    page_file = tmp_path / "faulty.html"
    page_file.write_text(f"<!doctype html><html><head>{body}</head><body>x</body></html>")
    page = render(page_file, tmp_path / "faulty.png")
    assert any(expected in message for message in page.console), page.stderr[-2000:]
