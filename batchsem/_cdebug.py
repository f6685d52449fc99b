"""Debug-mode glue for the compiled core: the C code calls these on the debug path only.

``DebugLedger.acquired`` drops the innermost three frames of the stack it
records, which in the Python core are its own internals (``acquired``,
``_new_permit``, ``_grant``). Called from C, the innermost Python frame is the
user's, so :func:`acquired` reaches the ledger through exactly two frames of
its own and the record ends at the user's code, as with the Python core.
"""

from __future__ import annotations

from typing import Any

from ._debug import DebugLedger

__all__ = ["acquired", "covered", "moved"]


def acquired(ledger: DebugLedger, n: int) -> Any:
    """Open a record for ``n`` permits (the frame the ledger drops with the next one)."""
    return _open(ledger, n)


def _open(ledger: DebugLedger, n: int) -> Any:
    return ledger.acquired(n)


def covered(record: Any, n: int) -> None:
    """``n`` permits of a tracked Permit were given up (released, forgotten, split off)."""
    record.n = max(0, record.n - n)


def moved(record: Any, n: int) -> None:
    """``n`` permits were merged into a tracked Permit."""
    record.n += n
