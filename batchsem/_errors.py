"""Errors raised by the semaphore and the primitives built on it."""

from __future__ import annotations

__all__ = ["AcquireError", "Closed", "NoPermits", "TryAcquireError"]


class AcquireError(Exception):
    """``acquire`` failed because the semaphore is closed.

    Raised by ``await sem.acquire(n)`` and ``sem.acquire_blocking(n)`` when the
    semaphore was closed before the request started, while it was queued, or
    after it was granted but before the waiting task resumed. Whatever the
    request had been handed goes back to the semaphore before this is raised.
    """

    def __init__(self, message: str = "semaphore closed") -> None:
        super().__init__(message)


class TryAcquireError(Exception):
    """``try_acquire`` could not take the permits; see :class:`NoPermits` and :class:`Closed`."""


class NoPermits(TryAcquireError):
    """``try_acquire``: too few permits are free, or an earlier request is queued."""

    def __init__(self, message: str = "no permits available") -> None:
        super().__init__(message)


class Closed(TryAcquireError, AcquireError):
    """``try_acquire`` on a closed semaphore. Also an :class:`AcquireError`."""

    def __init__(self, message: str = "semaphore closed") -> None:
        TryAcquireError.__init__(self, message)
