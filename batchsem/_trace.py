"""Trace events (the ``tracer=`` hook) and the ``statistics()`` record.

Both implementations (pure Python and ``batchsem._cbatchsem``) build these
Python objects, so what a tracer or ``statistics()`` caller sees is the same.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["SemaphoreStatistics", "TraceEvent", "TraceFn", "emit"]

TraceFn = Callable[["TraceEvent"], None]

_log = logging.getLogger("batchsem")


def emit(tracer: TraceFn, event: TraceEvent) -> None:
    """Hand ``event`` to ``tracer``; a tracer that raises is logged, never propagated.

    Trace calls happen in the middle of acquiring and releasing: an exception
    escaping there would leave a request queued with nobody waiting on it, or
    lose a grant. Observability must not break the semaphore.
    """
    try:
        tracer(event)
    except Exception:
        _log.exception("batchsem tracer %r raised on %s; event dropped", tracer, event.kind)


class TraceEvent:
    """One structured event from a semaphore with a ``tracer``.

    ``kind`` is one of ``"acquire"`` (requested), ``"granted"``, ``"cancelled"``,
    ``"failed_closed"``, ``"release"``, ``"close"``, ``"forget"``. ``permits`` is
    the count the event is about; ``available`` and ``waiting`` are the free
    counter and the queue length right after the event, read under the lock.
    ``time`` is ``time.monotonic()``; ``thread`` the native thread id.
    """

    __slots__ = ("available", "kind", "name", "permits", "thread", "time", "waiting")

    def __init__(
        self, kind: str, name: str | None, permits: int, available: int, waiting: int
    ) -> None:
        self.kind = kind
        self.name = name
        self.permits = permits
        self.available = available
        self.waiting = waiting
        self.time = time.monotonic()
        self.thread = threading.get_native_id()

    def as_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict."""
        return {
            "time": self.time,
            "event": self.kind,
            "semaphore": self.name,
            "permits": self.permits,
            "available": self.available,
            "waiting": self.waiting,
            "thread": self.thread,
        }

    def __repr__(self) -> str:
        return f"TraceEvent({self.as_dict()!r})"


@dataclass(frozen=True, slots=True)
class SemaphoreStatistics:
    """A consistent snapshot of a semaphore (or of the one under a Mutex or RwLock).

    All fields are read in one step under the semaphore's lock.
    """

    #: Permits free in the counter (permits handed to queued requests are not in it).
    available_permits: int
    #: Queued requests: waiting tasks plus threads blocked in ``acquire_blocking``.
    tasks_waiting: int
    #: The permits those requests still need, in total.
    permits_wanted: int
    #: True once ``close()`` was called.
    closed: bool
    #: The most permits that can ever be free at once, where one is known:
    #: a BoundedSemaphore's value, 1 for a Mutex, ``max_readers`` for an RwLock;
    #: None for a plain Semaphore.
    capacity: int | None
