"""Markdown export (``--export-markdown FILE``): a GitHub table, units in the header.

As hyperfine does it: the header says ``p99 [µs]`` and the cells are plain
numbers rounded for reading; ``-`` is a value that was not measured.
"""

from __future__ import annotations

import math

from .tabular import Column, Tabular, Value

__all__ = ["format_value", "to_markdown"]


def format_value(column: Column, value: Value) -> str:
    """A value as a human reads it: 4 significant digits (whole numbers from 1000 on),
    3 decimals for ratios, a signed percentage for changes, ``-`` for a value that was
    not measured."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if column.kind == "ratio":
        return f"{value:.3f}"
    if column.kind == "percent":
        return f"{value:+.1%}"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4g}"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Tabular) -> str:
    """The table as GitHub-flavoured Markdown (numbers right-aligned)."""
    head = "| " + " | ".join(_escape(c.heading) for c in table.columns) + " |"
    rule = "|" + "|".join("--:" if c.kind != "text" else "---" for c in table.columns) + "|"
    lines = [head, rule]
    for row in table.rows:
        cells = (_escape(format_value(c, v)) for c, v in zip(table.columns, row, strict=True))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
