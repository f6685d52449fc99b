"""Help-text pieces shared by the commands: example epilogs and name listings."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

# Help text is kept within this width so that it reads whole in an 80-column terminal.
HELP_WIDTH = 76


def examples(*lines: tuple[str, str]) -> str:
    """A help epilog listing ``(command, what it does)`` pairs, kept verbatim by click.

    Each example is one copy-pasteable line, ``command  # what it does``.
    """
    body = "\n".join(f"  {cmd}  # {what}" if what else f"  {cmd}" for cmd, what in lines)
    return f"\b\nExamples:\n{body}"


def listing(title: str, names: Iterable[str], tail: str = "") -> str:
    """An epilog paragraph ``title: a, b, c tail`` wrapped without splitting a name."""
    text = f"{title}: {', '.join(names)}{tail}"
    lines = textwrap.wrap(text, HELP_WIDTH, break_on_hyphens=False, break_long_words=False)
    return "\b\n" + "\n".join(lines)
