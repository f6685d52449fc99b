"""The implementations the library tests run against, and what the compiled core must export.

Every library test (``tests/core/``) runs once per implementation: the pure-Python
reference (always) and the compiled core ``batchsem._cbatchsem`` (when it imports;
with ``CI`` set in the environment a missing compiled core FAILS the "c" tests instead
of skipping them). ``tests/core/conftest.py`` provides the ``impl`` fixture (an
:class:`Impl`) and rebinds the implementation's names in each test module.

What ``batchsem._cbatchsem`` must export (everything else comes from Python modules)
--------------------------------------------------------------------------------
``MAX_PERMITS``
    ``2**61 - 1`` (``batchsem`` refuses to import a core that disagrees).
``Semaphore(value=1, *, name=None, tracer=None, debug=None)``
    Same semantics as ``batchsem._semaphore.Semaphore`` (read its docstrings; they are
    the specification). Public surface used by the tests: ``acquire(n=1)`` returning an
    ``Acquire``; ``try_acquire(n=1)``; ``acquire_blocking(n=1, timeout=None)``;
    ``release(n=1)``; ``add_permits(n)``; ``forget_permits(n)``; ``close()``;
    ``locked()``; ``statistics()``; ``async with sem`` (``__aenter__``/``__aexit__``);
    properties ``available_permits``, ``waiting``, ``closed``, ``name``, ``tracer``
    (settable); ``__repr__`` in the Python format
    ``<batchsem.Semaphore 'name' [open, permits:N, waiters:W]>`` (``permits:N/CAP`` for a
    BoundedSemaphore); weak references. Subclassable is not required.
``BoundedSemaphore(value=1, *, name=None, tracer=None, debug=None)``
    A subclass of the core's ``Semaphore`` with the capacity rules of
    ``batchsem._semaphore.BoundedSemaphore`` (``statistics().capacity`` is set).
``Permit``
    ``num_permits``, ``semaphore``, ``release()``, ``forget()``, ``split(n)``,
    ``merge(other)``, ``with`` and ``async with``. No finaliser that releases.
``Acquire``
    The object ``acquire(n)`` returns: awaitable once (``__await__``), coroutine-like
    (``send``, ``throw``, ``close``; ``asyncio.iscoroutine()`` must be True, e.g. via
    ``collections.abc.Coroutine.register``), and an async context manager yielding the
    Permit and releasing it at exit.
Stranded waiters (no export)
    A waiter whose loop is closed after its wake-up was scheduled gives its permits back
    on inspection and to a request that finds the queue empty, and the waiters queued
    behind it re-check on their own (invariant (S) in ``batchsem._waitlist.stranded``:
    a ``loop.call_later`` timer for an async waiter of a semaphore that has had waiters
    of two loops, timed waits for ``acquire_blocking``; ``RECHECK_FIRST`` doubling to
    ``RECHECK_MAX``). ``tests/core/test_stranded.py`` checks it with no call into the
    semaphore.
One test hook
    ``Semaphore._queue_snapshot() -> list[tuple[int, int]]``: the queued requests head
    first as ``(needed, assigned)``, after checking the queue's internal consistency
    (raise ``AssertionError`` if broken, or if free permits coexist with waiters).

Shared Python objects the core must use rather than redefine: the errors of
``batchsem._errors`` (``AcquireError``, ``Closed``, ``NoPermits``, ``TryAcquireError``),
``batchsem._trace.TraceEvent`` (build one per event, hand it to ``emit``'s rules: a
tracer that raises is logged, never propagated) and ``batchsem._trace.SemaphoreStatistics``.
``Mutex`` and ``RwLock`` are the Python classes of ``batchsem._sync`` bound to the core's
``BoundedSemaphore`` with ``batchsem._sync.bind``; they use only the public surface above.

``tests/core/test_differential.py`` applies random operation sequences to the core and to
the Python reference and requires identical observable results (return values, exception
types, ``statistics()``, the queue snapshot, task states). ``tests/core/test_cpython_locks.py``
holds CPython's own Semaphore and Lock tests.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import batchsem
from batchsem import _errors, _semaphore, _sync

IMPL_NAMES = ("python", "c")


@dataclass(frozen=True)
class Impl:
    """One implementation's classes. The errors and limits are shared by both."""

    name: str
    Semaphore: Any
    BoundedSemaphore: Any
    Permit: Any
    Acquire: Any
    Mutex: Any
    RwLock: Any
    MAX_PERMITS: int = batchsem.MAX_PERMITS
    MAX_READS: int = batchsem.MAX_READS
    AcquireError: type[Exception] = _errors.AcquireError
    Closed: type[Exception] = _errors.Closed
    NoPermits: type[Exception] = _errors.NoPermits
    TryAcquireError: type[Exception] = _errors.TryAcquireError

    def __repr__(self) -> str:
        return f"Impl({self.name})"


PYTHON = Impl(
    "python",
    Semaphore=_semaphore.Semaphore,
    BoundedSemaphore=_semaphore.BoundedSemaphore,
    Permit=_semaphore.Permit,
    Acquire=_semaphore.Acquire,
    Mutex=_sync.Mutex,
    RwLock=_sync.RwLock,
)


def compiled_module() -> ModuleType | None:
    """``batchsem._cbatchsem``, imported directly (``BATCHSEM_PURE_PYTHON`` does not matter)."""
    try:
        return importlib.import_module("batchsem._cbatchsem")
    except ImportError:
        return None


def load(name: str) -> Impl:
    """The named implementation; ``LookupError`` (with the reason) if it is not available."""
    if name == "python":
        return PYTHON
    if name != "c":
        raise ValueError(name)
    core = compiled_module()
    if core is None:
        raise LookupError("batchsem._cbatchsem (the compiled core) is not built")
    if batchsem.IMPLEMENTATION == "c":  # the classes `import batchsem` already bound
        mutex, rwlock = batchsem.Mutex, batchsem.RwLock
    else:
        mutex, rwlock = _sync.bind(core.BoundedSemaphore)
    return Impl(
        "c",
        Semaphore=core.Semaphore,
        BoundedSemaphore=core.BoundedSemaphore,
        Permit=core.Permit,
        Acquire=core.Acquire,
        Mutex=mutex,
        RwLock=rwlock,
    )


def in_ci() -> bool:
    return bool(os.environ.get("CI"))
