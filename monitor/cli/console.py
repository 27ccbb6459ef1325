"""Tables on stdout: the terminal's width, and no narrower than a readable minimum.

Rich assumes 80 columns when stdout is a pipe or a file, which truncates
statistics and signal names; logs and CI output are read at least this wide.
"""

from __future__ import annotations

from rich.console import Console


def wide_console(min_width: int = 120) -> Console:
    # soft_wrap: lines of text stay whole (greppable, copyable); tables still fit the width.
    return Console(width=max(Console().width, min_width), soft_wrap=True)
