"""Permit: ownership of some permits of one semaphore (a handle; see ``Semaphore``)."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from ._counts import MAX_PERMITS, check_count

if TYPE_CHECKING:
    from ._semaphore import Semaphore

__all__ = ["Permit"]


class Permit:
    """Ownership of some permits of one semaphore: a handle, never released by the collector.

    Returned by ``await sem.acquire(n)``, ``try_acquire`` and
    ``acquire_blocking``. ``release()`` gives the permits back (idempotent);
    ``forget()`` drops them without giving them back (the semaphore shrinks).
    ``with permit:`` and ``async with permit:`` release at exit. Dropping the
    last reference releases nothing: release through the Permit or through
    ``sem.release(n)``.
    """

    __slots__ = ("_n", "_sem")

    def __init__(self, sem: Semaphore, n: int) -> None:
        self._sem = sem
        # Permits held now.
        self._n = n

    @property
    def num_permits(self) -> int:
        """How many permits this object holds now (0 after release or forget)."""
        return self._n

    @property
    def semaphore(self) -> Semaphore:
        """The semaphore the permits belong to."""
        return self._sem

    def release(self) -> None:
        """Give the permits back to the semaphore. Calling it again does nothing.

        If the semaphore refuses them (``ValueError``: its limit would be
        exceeded), the Permit keeps holding them.
        """
        n = self._n
        if n:
            self._n = 0
            try:
                self._sem._put(n)
            except ValueError:  # refused before anything changed (over the limit)
                self._n += n
                raise

    def forget(self) -> None:
        """Drop the permits without giving them back: the semaphore permanently has ``n`` fewer.

        On a :class:`BoundedSemaphore` the capacity shrinks by ``n``. ``ValueError``,
        changing nothing, if that would leave the capacity below the permits no one
        holds: this Permit's permits were given back already, by a ``release()``
        made without it (the asyncio idiom), so they are not this Permit's to drop.
        """
        n = self._n
        if n:
            self._sem._forgotten(n)
            self._n = 0

    def split(self, n: int) -> Permit | None:
        """Move ``n`` permits into a new Permit; ``None`` (nothing moved) if fewer are held."""
        n = check_count(n)
        if n > self._n:
            return None
        self._n -= n
        return self._sem._new_permit(n)

    def merge(self, other: Permit) -> None:
        """Move all of ``other``'s permits into this one.

        ``ValueError``, changing neither, for another semaphore's Permit or if
        the result would hold more than :data:`MAX_PERMITS`.
        """
        if other is self:
            return
        if other._sem is not self._sem:
            raise ValueError("cannot merge permits of different semaphores")
        total = self._n + other._n
        if total > MAX_PERMITS:
            raise ValueError(f"a Permit cannot hold more than MAX_PERMITS ({MAX_PERMITS})")
        self._n = total
        other._n = 0

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    async def __aenter__(self) -> Permit:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<batchsem.Permit permits:{self._n} of {self._sem!r}>"
