"""batchsem: a fair, thread-safe batch semaphore for asyncio, a port of Tokio's batch_semaphore.

A task may wait for many permits at once; requests are served strictly in
FIFO order, so large requests are never starved; cancellation is O(1) and
hands back every permit; ``close()`` fails every waiter. ``Mutex`` and
``RwLock`` are built on it. The library uses only the standard library.

Two implementations share one set of semantics: the compiled core
``batchsem._cbatchsem`` (used when it was built and imports) and the pure-Python
reference (``batchsem._semaphore``). ``BATCHSEM_PURE_PYTHON=1`` in the
environment forces the Python one; :data:`IMPLEMENTATION` says which is active.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING, Final

from ._errors import AcquireError, Closed, NoPermits, TryAcquireError
from ._semaphore import MAX_PERMITS
from ._sync import MAX_READS, ReadGuard, WriteGuard
from ._trace import SemaphoreStatistics, TraceEvent

__version__ = "0.1.0"


def _compiled_core() -> ModuleType | None:
    """``batchsem._cbatchsem`` unless forced off by ``BATCHSEM_PURE_PYTHON`` or not importable."""
    if os.environ.get("BATCHSEM_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from . import _cbatchsem  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    core: ModuleType = _cbatchsem
    return core


if TYPE_CHECKING:
    from ._semaphore import Acquire, BoundedSemaphore, Permit, Semaphore
    from ._sync import Mutex, RwLock

    #: ``"c"`` when the compiled core is active, ``"python"`` for the pure-Python module.
    IMPLEMENTATION: Final[str] = "python"
else:
    _core = _compiled_core()
    if _core is None:
        from ._semaphore import Acquire, BoundedSemaphore, Permit, Semaphore
        from ._sync import Mutex, RwLock

        IMPLEMENTATION = "python"
    else:
        from ._sync import bind as _bind

        Acquire = _core.Acquire
        BoundedSemaphore = _core.BoundedSemaphore
        Permit = _core.Permit
        Semaphore = _core.Semaphore
        Mutex, RwLock = _bind(BoundedSemaphore)
        IMPLEMENTATION = "c"
        if _core.MAX_PERMITS != MAX_PERMITS:  # pragma: no cover - a broken build
            raise ImportError("batchsem._cbatchsem disagrees on MAX_PERMITS")

__all__ = [
    "IMPLEMENTATION",
    "MAX_PERMITS",
    "MAX_READS",
    "Acquire",
    "AcquireError",
    "BoundedSemaphore",
    "Closed",
    "Mutex",
    "NoPermits",
    "Permit",
    "ReadGuard",
    "RwLock",
    "Semaphore",
    "SemaphoreStatistics",
    "TraceEvent",
    "TryAcquireError",
    "WriteGuard",
    "__version__",
]
