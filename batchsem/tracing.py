"""Tracers: receivers for a semaphore's structured :class:`TraceEvent` stream.

Pass one as ``Semaphore(..., tracer=...)`` (or ``Mutex``/``RwLock``). A tracer
is any callable taking a :class:`TraceEvent`; it is called after the
semaphore's lock has been released, on whichever thread caused the event.
With no tracer set, the only cost is one attribute check per operation.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import IO

from ._semaphore import TraceEvent, TraceFn

__all__ = ["JsonLinesTracer", "LoggingTracer", "MemoryTracer", "TraceEvent", "TraceFn"]


class JsonLinesTracer:
    """Writes each event as one JSON object per line to a text file (thread-safe).

    Keys: ``time`` (monotonic seconds), ``event``, ``semaphore`` (its name),
    ``permits``, ``available``, ``waiting``, ``thread``, plus any ``extra``
    fields given at construction (e.g. the benchmark case).
    """

    def __init__(self, file: IO[str], **extra: object) -> None:
        self._file = file
        self._extra = extra
        self._lock = threading.Lock()

    def bind(self, **extra: object) -> JsonLinesTracer:
        """A tracer writing to the same file (same lock) with more ``extra`` fields."""
        bound = JsonLinesTracer(self._file, **{**self._extra, **extra})
        bound._lock = self._lock
        return bound

    def __call__(self, event: TraceEvent) -> None:
        record = event.as_dict()
        if self._extra:
            record.update(self._extra)
        line = json.dumps(record, separators=(",", ":"))
        with self._lock:
            self._file.write(line + "\n")


class LoggingTracer:
    """Sends each event to the ``batchsem`` logger (or another) at DEBUG (or another level)."""

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.DEBUG) -> None:
        self._logger = logger if logger is not None else logging.getLogger("batchsem")
        self._level = level

    def __call__(self, event: TraceEvent) -> None:
        if self._logger.isEnabledFor(self._level):
            self._logger.log(
                self._level,
                "%s %s permits=%d available=%d waiting=%d",
                event.name or "semaphore",
                event.kind,
                event.permits,
                event.available,
                event.waiting,
                extra={"batchsem_event": event.as_dict()},
            )


class MemoryTracer:
    """Keeps every event in ``events`` (thread-safe append); for tests and debugging."""

    def __init__(self) -> None:
        self.events: list[TraceEvent] = []

    def __call__(self, event: TraceEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        """The event kinds, in order."""
        return [e.kind for e in self.events]
