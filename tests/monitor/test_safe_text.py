"""Producer text shown to an operator: escaped visibly, inert as markup, bounded."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from rich.table import Table

from monitor.cli.safe_text import CELL_LIMIT, bounded_list, cell, markup_safe, printable

SGR = re.compile(r"\x1b\[[0-9;]*m")  # rich's own colours and styles
HOSTILE = {
    "[/]": "[/]",
    "[link=http://x]y[/link]": "[link=http://x]y[/link]",
    "\x1b[31mred": "\\x1b[31mred",
    "\x1b]8;;http://evil\x1b\\x": "\\x1b]8;;http://evil\\x1b\\x",
    "\u202eevil": "\\u202eevil",
    "a\nb\tc\rd": "a\\nb\\tc\\rd",
    "\x9bc1": "\\x9bc1",
    "zero\u200bwidth\ufeff": "zero\\u200bwidth\\ufeff",
    "line\u2028sep": "line\\u2028sep",
    "tag\U000e0041": "tag\\U000e0041",
    "lone\ud800surrogate": "lone\\ud800surrogate",
    "del\x7f": "del\\x7f",
    "café 日本 ok": "café 日本 ok",
}


@pytest.mark.parametrize(("raw", "shown"), HOSTILE.items(), ids=repr)
def test_printable_escapes_what_terminals_act_on(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert printable(raw).isprintable()


def test_printable_bounds_length_with_an_ellipsis() -> None:
    assert printable("A" * 10_000) == "A" * (CELL_LIMIT - 1) + "…"
    assert printable("A" * CELL_LIMIT) == "A" * CELL_LIMIT
    assert printable("A" * 10_000, limit=None) == "A" * 10_000
    # An escape is never cut in half: it goes whole or not at all.
    assert printable("ab\x1b", limit=5) == "ab…"
    assert printable("ab\x1b", limit=6) == "ab\\x1b"
    for limit in range(1, 40):
        out = printable("\u202e" * 50, limit)
        assert len(out) <= limit
        assert out.rstrip("…").replace("\\u202e", "") == ""
    assert printable(12345) == "12345"


def _render(*renderables: object) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=400, force_terminal=True, color_system="truecolor")
    for renderable in renderables:
        console.print(renderable)
    out = SGR.sub("", buffer.getvalue())
    assert "\x1b" not in out, "only rich's own styles may reach the terminal"
    return out


def test_rich_shows_names_literally_and_never_emits_a_hyperlink() -> None:
    table = Table()
    table.add_column("name")
    for raw in HOSTILE:
        table.add_row(cell(raw))
    out = _render(table, markup_safe("[link=http://x]y[/link] and [/] and [bold]"))
    assert "\x1b]8;" not in out, "no OSC 8 hyperlink"
    assert "\u202e" not in out and "\ud800" not in out
    assert "[link=http://x]y[/link] and [/] and [bold]" in out
    for shown in HOSTILE.values():
        assert shown in out
    # cell() text is not markup and has no emoji codes.
    assert ":skull:" in _render(cell(":skull: [b]x[/b]"))


def test_bounded_list_says_how_many_are_left() -> None:
    names = [f"s{i}\x1b" for i in range(120)]
    out = bounded_list(names, 50)
    assert out.count("\\x1b") == 50
    assert out.endswith("… and 70 more")
    assert bounded_list(["a", "b"], 50) == "a, b"
