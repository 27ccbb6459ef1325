"""Text from events made safe to show an operator: visible, inert and bounded.

Model, feature, category, client and metric names come from Kafka records, and
producers are not trusted. Printed as they are, they could move the cursor,
clear the screen or plant hyperlinks (ANSI and OSC escapes), reverse the text
around them (bidi overrides), pose as other rows (newlines), or act as rich
markup (``[link=…]``, ``[/]``). Everything that reaches a terminal goes through
``printable``; what goes into rich goes through ``cell`` (a ``Text``, never
parsed as markup) or ``markup_safe``.

Escaped are the characters Python does not call printable: controls (C0, DEL,
C1), format characters (bidi marks and overrides, zero-width characters, tag
characters), lone surrogates, line and paragraph separators, spaces other than
the ASCII one, private-use and unassigned code points. Each shows as its
Python escape (``\\n``, ``\\x1b``, ``\\u202e``, ``\\U000e0041``); a backslash already
in the text is left as it is.
"""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text

CELL_LIMIT = 200  # characters of a name in a table cell
LINE_LIMIT = 2000  # characters of a message line that quotes names
ELLIPSIS = "…"


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: object, limit: int | None = CELL_LIMIT) -> str:
    """``text`` with every non-printable character escaped visibly, at most ``limit`` long.

    A longer result is cut and ends with "…" (``limit`` counts it); an escape is never
    cut in half. ``None`` as the limit keeps the whole text.
    """
    text = text if isinstance(text, str) else str(text)
    if text.isprintable() and (limit is None or len(text) <= limit):
        return text
    pieces: list[str] = []
    length = 0
    for char in text:
        piece = char if char.isprintable() else _escaped(char)
        pieces.append(piece)
        length += len(piece)
        if limit is not None and length > limit:
            break
    else:
        return "".join(pieces)
    assert limit is not None
    while pieces and length > limit - len(ELLIPSIS):
        length -= len(pieces.pop())
    return "".join(pieces) + ELLIPSIS


def markup_safe(text: object, limit: int | None = CELL_LIMIT) -> str:
    """``printable`` text to put inside a rich markup string: brackets cannot open tags."""
    return escape(printable(text, limit))


def cell(text: object, limit: int | None = CELL_LIMIT, style: str = "") -> Text:
    """``printable`` text as a rich ``Text``: shown as is, with no markup or emoji codes."""
    return Text(printable(text, limit), style=style)


def bounded_list(items: list[str], shown: int, limit: int | None = CELL_LIMIT) -> str:
    """At most ``shown`` items, each ``printable``, comma-separated; says how many are left."""
    out = ", ".join(printable(item, limit) for item in items[:shown])
    if len(items) > shown:
        out += f" … and {len(items) - shown:,} more"
    return out
