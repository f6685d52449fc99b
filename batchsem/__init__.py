"""batchsem: a fair, thread-safe batch semaphore for asyncio, a port of Tokio's batch_semaphore.

A task may wait for many permits at once; requests are served strictly in
FIFO order, so large requests are never starved; cancellation is O(1) and
hands back every permit; ``close()`` fails every waiter. ``Mutex`` and
``RwLock`` are built on it. The library uses only the standard library.
"""

from ._errors import AcquireError, Closed, NoPermits, TryAcquireError
from ._semaphore import MAX_PERMITS, Permit, Semaphore, TraceEvent
from ._sync import MAX_READS, Mutex, ReadGuard, RwLock, WriteGuard

__version__ = "0.2.0"

__all__ = [
    "MAX_PERMITS",
    "MAX_READS",
    "AcquireError",
    "Closed",
    "Mutex",
    "NoPermits",
    "Permit",
    "ReadGuard",
    "RwLock",
    "Semaphore",
    "TraceEvent",
    "TryAcquireError",
    "WriteGuard",
    "__version__",
]
