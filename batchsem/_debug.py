"""Debug mode (``debug=True`` or ``BATCHSEM_DEBUG=1``): where were unreleased permits acquired?"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
import traceback
import warnings
from typing import TYPE_CHECKING, ClassVar, Final

from ._permit import Permit

if TYPE_CHECKING:
    from ._semaphore import Semaphore

__all__ = ["DEBUG_DEFAULT", "DebugLedger"]

_get_running_loop = asyncio.events._get_running_loop
_get_ident = threading.get_ident

#: The default of ``debug=`` when it is not given: the environment variable
#: ``BATCHSEM_DEBUG`` set to anything but "" or "0", read once at import.
DEBUG_DEFAULT: Final = os.environ.get("BATCHSEM_DEBUG", "") not in ("", "0")


def _owner() -> int:
    """Who is acquiring or releasing: the running task, else the thread."""
    task = asyncio.current_task() if _get_running_loop() is not None else None
    return id(task) if task is not None else _get_ident()


class _Record:
    """One acquisition in debug mode: how many of its permits are still out, where, by whom."""

    __slots__ = ("n", "origin", "owner")

    def __init__(self, n: int, origin: str) -> None:
        self.n = n
        self.origin = origin
        self.owner = _owner()


class DebugLedger:
    """Debug mode's record of acquisitions not yet released, oldest first.

    Every Permit made in debug mode carries a record with the stack where it
    was acquired. ``permit.release()`` and ``forget()`` close its record;
    ``sem.release(n)`` cannot say which acquisition it ends (the asyncio idiom
    discards the Permit), so it closes the open records of the releasing task
    (or thread) first, newest first, then the oldest of the others. When the
    semaphore is garbage-collected, or at interpreter exit, open records are
    reported as one ``ResourceWarning`` (shown with ``python -X dev`` or
    ``-W default``) listing where each was acquired. Nothing is ever released
    on the user's behalf. ``async with sem:`` blocks are not recorded (they
    cannot leak).
    """

    __slots__ = ("__weakref__", "name", "records")

    #: How many open acquisitions a report lists.
    REPORT_LIMIT: ClassVar[int] = 10

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.records: collections.deque[_Record] = collections.deque()

    def acquired(self, n: int) -> _Record:
        """Open a record for ``n`` permits, remembering the caller's stack."""
        record = _Record(n, "".join(traceback.format_stack(limit=14)[:-3]))
        if n:
            self.records.append(record)
        return record

    def cover(self, n: int) -> None:
        """An anonymous ``release(n)``: close ``n`` permits, the releaser's own records first."""
        records = self.records
        owner = _owner()
        for record in reversed(records):
            if not n:
                break
            if record.owner == owner and record.n:
                take = min(record.n, n)
                record.n -= take
                n -= take
        while records and not records[-1].n:
            records.pop()
        while records and (n or not records[0].n):
            record = records[0]
            take = min(record.n, n)
            record.n -= take
            n -= take
            if not record.n:
                records.popleft()

    def unreleased(self) -> list[_Record]:
        """The open records, oldest first."""
        return [r for r in self.records if r.n]

    def report(self) -> None:
        """Warn about open records (the semaphore's finaliser; also runs at exit)."""
        open_records = self.unreleased()
        if not open_records:
            return
        total = sum(r.n for r in open_records)
        shown = "".join(
            f"\n--- {r.n} permit(s) acquired at:\n{r.origin}"
            for r in open_records[: self.REPORT_LIMIT]
        )
        more = len(open_records) - self.REPORT_LIMIT
        tail = f"\n... and {more} more acquisitions" if more > 0 else ""
        warnings.warn(
            f"batchsem debug: semaphore {self.name!r} has {total} permit(s) acquired and "
            f"never released ({len(open_records)} acquisitions):{shown}{tail}",
            ResourceWarning,
            stacklevel=2,
        )


class _TrackedPermit(Permit):
    """A Permit of a semaphore in debug mode: closes its record when it gives permits up."""

    __slots__ = ("_record",)

    def __init__(self, sem: Semaphore, n: int, record: _Record) -> None:
        super().__init__(sem, n)
        self._record = record

    def release(self) -> None:
        n = self._n
        super().release()
        if n and not self._n:
            self._record.n = max(0, self._record.n - n)

    def forget(self) -> None:
        n = self._n
        super().forget()
        self._record.n = max(0, self._record.n - n)

    def split(self, n: int) -> Permit | None:
        part = super().split(n)
        if part is not None:
            self._record.n = max(0, self._record.n - part.num_permits)
        return part

    def merge(self, other: Permit) -> None:
        moved = other.num_permits if other is not self else 0
        super().merge(other)
        if moved:
            if isinstance(other, _TrackedPermit):
                other._record.n = max(0, other._record.n - moved)
            self._record.n += moved
