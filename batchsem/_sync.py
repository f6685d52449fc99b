"""Mutex and RwLock: thin policies over the fair batch semaphore.

They use only the public API of the semaphore class named by their
``_semaphore_class`` attribute (a :class:`BoundedSemaphore`), so they work on
top of either implementation; :func:`bind` makes variants on another one.
"""

from __future__ import annotations

from collections.abc import Generator
from types import TracebackType
from typing import Any, ClassVar, Final, Generic, TypeVar, cast

from ._errors import NoPermits
from ._semaphore import BoundedSemaphore, Permit, Semaphore, check_count
from ._trace import SemaphoreStatistics, TraceFn

__all__ = ["MAX_READS", "Mutex", "ReadGuard", "RwLock", "WriteGuard", "bind"]

#: Tokio's ``MAX_READS`` (``u32::MAX >> 3``): the most readers an RwLock admits at once.
MAX_READS: Final = 2**29 - 1


class Mutex:
    """A FIFO-fair lock, API-compatible with ``asyncio.Lock``, built on ``BoundedSemaphore(1)``.

    ``await acquire()`` returns True; ``release()`` raises ``RuntimeError`` if
    the lock is not held (the owner is not tracked, as in ``asyncio.Lock``).
    Waiters are served strictly in arrival order; cancellation while waiting
    leaves the lock as it was. Usable from any thread and event loop.
    Supports weak references (e.g. a ``WeakValueDictionary`` of per-key locks).
    """

    __slots__ = ("__weakref__", "_sem")

    #: The semaphore class underneath (see :func:`bind`).
    _semaphore_class: ClassVar[type[BoundedSemaphore]] = BoundedSemaphore

    def __init__(self, *, name: str | None = None, tracer: TraceFn | None = None) -> None:
        self._sem = self._semaphore_class(1, name=name, tracer=tracer)

    def locked(self) -> bool:
        """True if the lock is held (or handed to a waiter that has not resumed yet)."""
        return self._sem.locked()

    async def acquire(self) -> bool:
        """Wait until the lock is free and take it; return True."""
        await self._sem.__aenter__()
        return True

    def try_acquire(self) -> bool:
        """Take the lock if it is free and nobody is queued; return whether it was taken."""
        try:
            self._sem.try_acquire(1)
        except NoPermits:
            return False
        return True

    def release(self) -> None:
        """Release the lock; ``RuntimeError`` if it is not held.

        The check and the release are one atomic step of the bounded
        semaphore, so two racing ``release()`` calls cannot both succeed.
        """
        try:
            self._sem.release()
        except ValueError:
            raise RuntimeError("Lock is not acquired.") from None

    def statistics(self) -> SemaphoreStatistics:
        """The underlying semaphore's statistics (``capacity`` is 1)."""
        return self._sem.statistics()

    async def __aenter__(self) -> None:
        await self._sem.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "locked" if self.locked() else "unlocked"
        return f"<batchsem.Mutex [{state}, waiters:{self._sem.waiting}]>"


class _Guard:
    __slots__ = ("__weakref__", "_lock", "_permit")

    def __init__(self, lock: RwLock, permit: Permit) -> None:
        self._lock = lock
        self._permit = permit

    @property
    def released(self) -> bool:
        """True once the guard has been released (or downgraded, for a write guard)."""
        return self._permit.num_permits == 0

    def release(self) -> None:
        """Give the access back. Idempotent."""
        self._permit.release()

    def __enter__(self) -> _Guard:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class ReadGuard(_Guard):
    """Shared access to an :class:`RwLock`; ``release()`` ends it."""

    __slots__ = ()


class WriteGuard(_Guard):
    """Exclusive access to an :class:`RwLock`; ``release()`` ends it, ``downgrade()`` shares it."""

    __slots__ = ()

    def downgrade(self) -> ReadGuard:
        """Turn exclusive access into shared access without letting a writer in between.

        All but one permit go back to the lock (to the queued requests first,
        in order: readers queued behind this writer proceed, a queued writer
        keeps waiting for this reader). The write guard is released.
        """
        permit = self._permit
        if permit.num_permits == 0:
            raise RuntimeError("write guard already released")
        keep = permit.split(1)
        assert keep is not None
        permit.release()
        return ReadGuard(self._lock, keep)


_G = TypeVar("_G", bound=_Guard)


class _LockRequest(Generic[_G]):
    """``rw.read()`` / ``rw.write()``: await it for a guard, or use it as ``async with``."""

    __slots__ = ("_guard", "_lock", "_n")
    _guard_cls: type[_G]

    def __init__(self, lock: RwLock, n: int) -> None:
        self._lock = lock
        self._n = n
        self._guard: _G | None = None

    def __await__(self) -> Generator[Any, None, _G]:
        permit = yield from self._lock._sem.acquire(self._n).__await__()
        return self._guard_cls(self._lock, permit)

    async def __aenter__(self) -> _G:
        self._guard = guard = await self
        return guard

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        guard = self._guard
        if guard is not None:
            self._guard = None
            guard.release()


class _ReadRequest(_LockRequest[ReadGuard]):
    __slots__ = ()
    _guard_cls = ReadGuard


class _WriteRequest(_LockRequest[WriteGuard]):
    __slots__ = ()
    _guard_cls = WriteGuard


class RwLock:
    """A fair reader-writer lock: many readers or one writer, FIFO, writers never starve.

    Built on a :class:`BoundedSemaphore` with ``max_readers`` permits: a
    reader takes one, a writer takes all of them. Because the semaphore is
    FIFO and never lets a later request past a queued one, a queued writer
    blocks readers that arrive after it, and a stream of readers cannot starve
    a writer. ``ValueError`` if ``max_readers`` is outside ``1..MAX_READS``.
    Supports weak references, as do its guards.
    """

    __slots__ = ("__weakref__", "_max_readers", "_sem")

    #: The semaphore class underneath (see :func:`bind`).
    _semaphore_class: ClassVar[type[BoundedSemaphore]] = BoundedSemaphore

    def __init__(
        self,
        max_readers: int = MAX_READS,
        *,
        name: str | None = None,
        tracer: TraceFn | None = None,
    ) -> None:
        max_readers = check_count(max_readers, "max_readers")
        if not 1 <= max_readers <= MAX_READS:
            raise ValueError(f"max_readers must be in 1..{MAX_READS}, got {max_readers}")
        self._max_readers = max_readers
        self._sem = self._semaphore_class(max_readers, name=name, tracer=tracer)

    @property
    def max_readers(self) -> int:
        """The number of readers admitted at once (and the permits a writer takes)."""
        return self._max_readers

    @property
    def semaphore(self) -> Semaphore:
        """The underlying semaphore (for inspection: ``available_permits``, ``waiting``)."""
        return self._sem

    def statistics(self) -> SemaphoreStatistics:
        """The underlying semaphore's statistics (``capacity`` is ``max_readers``)."""
        return self._sem.statistics()

    def read(self) -> _ReadRequest:
        """Shared access: ``async with rw.read():`` or ``guard = await rw.read()``."""
        return _ReadRequest(self, 1)

    def write(self) -> _WriteRequest:
        """Exclusive access: ``async with rw.write():`` or ``guard = await rw.write()``."""
        return _WriteRequest(self, self._max_readers)

    def try_read(self) -> ReadGuard:
        """Shared access now, or :class:`NoPermits` (a writer holds or is queued)."""
        return ReadGuard(self, self._sem.try_acquire(1))

    def try_write(self) -> WriteGuard:
        """Exclusive access now, or :class:`NoPermits`."""
        return WriteGuard(self, self._sem.try_acquire(self._max_readers))

    def __repr__(self) -> str:
        sem = self._sem
        free = sem.available_permits
        if free == self._max_readers:
            state = "unlocked"
        elif free == 0 and sem.waiting == 0:
            state = "locked"
        else:
            state = f"readers:{self._max_readers - free}"
        return f"<batchsem.RwLock [{state}, waiters:{sem.waiting}]>"


def bind(semaphore_class: type[BoundedSemaphore]) -> tuple[type[Mutex], type[RwLock]]:
    """``Mutex`` and ``RwLock`` classes built on ``semaphore_class`` (e.g. the compiled one)."""
    mutex = type("Mutex", (Mutex,), {"__slots__": (), "_semaphore_class": semaphore_class})
    rwlock = type("RwLock", (RwLock,), {"__slots__": (), "_semaphore_class": semaphore_class})
    for cls in (mutex, rwlock):
        cls.__module__ = "batchsem"
    return cast(type[Mutex], mutex), cast(type[RwLock], rwlock)
