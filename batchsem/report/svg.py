"""A :class:`~batchsem.report.figures.Plot` as inline SVG, with hover text and unique ids.

matplotlib writes an artist with a ``gid`` as ``<g id="GID">``; each hover
text becomes a ``<title>`` first child of that group, which every browser
shows as a tooltip over the mark (no script). Text stays text
(``svg.fonttype = none``), so a figure is a few tens of kB. All ids and their
references are prefixed per figure, so several figures can share one HTML
document without two elements having the same id.
"""

from __future__ import annotations

import html
import io
import re

import matplotlib

from .figures import Plot

__all__ = ["to_svg"]

_ID = re.compile(r'(\bid="|url\(#|xlink:href="#|href="#)([^"()]+)')


def to_svg(plot: Plot, prefix: str) -> str:
    """The plot's SVG element (no XML prolog or doctype), ids prefixed with ``prefix``."""
    for i, (artist, _) in enumerate(plot.tips):
        artist.set_gid(f"tip{i}")
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": prefix}):
        plot.figure.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    for i, (_, tip) in enumerate(plot.tips):
        opening = f'<g id="tip{i}">'
        text = text.replace(opening, f"{opening}<title>{html.escape(tip)}</title>", 1)
    text = _ID.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text)
    return text.replace("<svg ", f'<svg role="img" aria-label="{html.escape(plot.title)}" ', 1)
