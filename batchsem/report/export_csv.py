"""CSV export (``--export-csv FILE``): one header line of machine-readable keys, then rows.

Numbers are written unformatted in the unit their header names (``p99_us``:
microseconds, ``throughput_per_s``: per second); an empty field is a value
that was not measured.
"""

from __future__ import annotations

import csv
import io

from .tabular import Tabular

__all__ = ["to_csv"]


def to_csv(table: Tabular) -> str:
    """The table as CSV text (RFC 4180 quoting, ``\\n`` line ends)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.keys())
    for row in table.rows:
        writer.writerow("" if v is None else repr(v) if isinstance(v, float) else v
                        for v in row)
    return out.getvalue()
