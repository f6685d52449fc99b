"""A fair, thread-safe counting semaphore whose waiters may ask for many permits at once.

Implementation details
----------------------
This is a port of Tokio's ``batch_semaphore``. The semaphore is a counter of
free permits plus a FIFO queue of waiters. The queue is an intrusive doubly
linked list: every waiter is a :class:`_Waiter` node that carries its own
``prev``/``next`` links, so a cancelled waiter leaves the queue in O(1)
without searching for itself (``collections.deque.remove`` is O(n), which is
what makes cancelling many queued ``asyncio.Semaphore`` waiters quadratic).

Permits released to the semaphore are handed to the waiter at the *head* of
the queue. If the head needs more than is being released it keeps what it
was given (a partial reservation) and nothing goes past it; only when the
head is fully served is it unlinked and woken, and the remainder moves on to
the next waiter. Permits reach the free counter only once the queue is empty.
That is the whole fairness argument: a request for many permits accumulates
permits as they are released and cannot be overtaken by smaller requests
that arrive after it, so it is never starved. Higher-level primitives depend
on this: an RwLock writer, which takes every permit, is not starved by a
stream of readers.

Cancellation hands back everything the waiter had been given, partial or
whole, including a waiter that was fully served but cancelled before it got
to run again; the returned permits go to the next waiter in line.

Thread safety: all state lives behind one ``threading.Lock``. A waiter
belongs to the event loop it was created on; permits may be released from any
thread. Waiters are collected under the lock and woken after it is released
(waking runs arbitrary callbacks, and a waiter's loop may live on another
thread, in which case the wake-up goes through ``call_soon_threadsafe``).
Waking never decides who owns permits: ownership is decided under the lock
when permits are assigned to a node, and a waiter that never resumes
(cancelled, or its loop closed) gives its node's permits back under the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import types
import warnings
from collections.abc import Callable, Generator
from types import TracebackType
from typing import Any, Final

from ._errors import AcquireError, Closed, NoPermits

__all__ = ["MAX_PERMITS", "Permit", "Semaphore"]

#: The largest number of permits a semaphore can hold. Tokio reserves three flag
#: bits of a ``usize`` for its state, so on 64-bit targets its limit is
#: ``usize::MAX >> 3``. Python ints do not overflow; the limit is kept so the
#: two agree and so that a runaway ``release`` loop fails loudly.
MAX_PERMITS: Final = 2**61 - 1

_get_running_loop = asyncio.events._get_running_loop
# Waking compares thread idents, not loops: on CPython 3.11 every
# _get_running_loop() call makes a getpid() system call (cpython#100363).
_get_ident = threading.get_ident


def check_count(n: object, what: str = "permits") -> int:
    """Return ``n`` if it is an int in ``0..MAX_PERMITS``; raise ``TypeError``/``ValueError``."""
    if type(n) is not int:
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"{what} must be an int, not {type(n).__name__}")
        n = int(n)
    if n < 0:
        raise ValueError(f"{what} must be >= 0, got {n}")
    if n > MAX_PERMITS:
        raise ValueError(f"{what} must be <= MAX_PERMITS ({MAX_PERMITS}), got {n}")
    return n


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


class _Waiter:
    """A queued request: an intrusive list node plus the way to wake its owner.

    ``assigned``, ``queued``, ``prev`` and ``next`` may only be touched while
    the semaphore's lock is held, except that a node served or failed by the
    semaphore (no longer queued) is chained through ``next`` to the other
    nodes to wake, and :meth:`Semaphore._wake` clears that link.
    """

    __slots__ = (
        "assigned", "event", "fut", "loop", "needed", "next", "prev", "queued", "thread"
    )

    def __init__(
        self,
        needed: int,
        loop: asyncio.AbstractEventLoop | None,
        fut: asyncio.Future[None] | None,
        event: threading.Event | None,
    ) -> None:
        self.needed = needed
        # Permits handed to this request so far; 0 <= assigned <= needed.
        self.assigned = 0
        # True exactly while the node is linked into the semaphore's queue.
        self.queued = False
        self.prev: _Waiter | None = None
        self.next: _Waiter | None = None
        # An async waiter has a loop and a future; a blocking one has an event.
        # Both are attached before the node is queued: another thread may serve
        # it as soon as the lock is released, and _wake reads them.
        self.loop = loop
        self.fut = fut
        self.event = event
        # The thread the waiter's loop runs on (the one creating the node). A
        # loop moved to another thread while a task waits on it is not supported.
        self.thread = _get_ident()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Semaphore:
    """A counting semaphore where a task may wait for many permits at once, strictly FIFO.

    Guarantees:

    * **FIFO, no barging.** Requests are served in the order they started
      waiting, whatever their sizes. A request that cannot be served at once
      takes what is free and queues for the rest; while anyone is queued the
      free counter is 0, so no later ``acquire`` or ``try_acquire`` can take
      permits ahead of a queued request.
    * **Nothing is lost.** A cancelled or failed request gives back every
      permit it had been handed. A :class:`Permit` returns its permits when
      released, when its ``with`` block ends, or (with a ``ResourceWarning``)
      when it is garbage-collected.
    * **Thread-safe.** Every method may be called from any thread; tasks on
      different event loops may wait on the same semaphore; a waiter is always
      resumed on its own loop.

    Raises ``TypeError`` for a non-int count (``bool`` included) and
    ``ValueError`` for a negative count or one above :data:`MAX_PERMITS`.
    """

    __slots__ = (
        "__weakref__",
        "_closed",
        "_fast",
        "_head",
        "_lock",
        "_name",
        "_permits",
        "_tail",
        "_tracer",
        "_waiting",
    )

    def __init__(
        self, permits: int = 0, *, name: str | None = None, tracer: TraceFn | None = None
    ) -> None:
        # Lock discipline: every field below is read and written only while
        # holding _lock (the properties read single fields without it). While
        # the lock is held nothing is allocated that the cyclic GC tracks and no
        # last reference is dropped, so no garbage collection and no __del__
        # (a Permit's, or user code that releases permits) can run inside a
        # locked region and re-enter this non-reentrant lock. Exceptions,
        # trace events and Permits are therefore created after unlocking, and
        # served waiters are chained through their own ``next`` links instead
        # of being collected in a list.
        self._lock = threading.Lock()
        # The free counter. Invariant: the queue is non-empty => _permits == 0.
        # Consequences used below: a new request can take from the counter only
        # when nobody is queued (no barging), and the leftover of a release is
        # exactly what the counter gains, so the MAX_PERMITS check can be made
        # before anything changes.
        self._permits = check_count(permits)
        self._closed = False
        # FIFO queue, oldest at _head. Only the head may hold a partial
        # reservation (assigned > 0): permits are handed out head first, and a
        # new waiter takes from the counter only when the queue is empty, i.e.
        # when it becomes the head itself.
        self._head: _Waiter | None = None
        self._tail: _Waiter | None = None
        self._waiting = 0
        self._name = name
        self._tracer = tracer
        # True while not closed and no tracer is set: the fast paths may then
        # skip everything but the counter.
        self._fast = tracer is None

    # ------------------------------------------------------------------ state

    @property
    def available_permits(self) -> int:
        """Permits free in the counter. Permits already handed to queued waiters are not in it."""
        return self._permits

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    @property
    def waiting(self) -> int:
        """The number of queued acquire calls (async and blocking)."""
        return self._waiting

    @property
    def name(self) -> str | None:
        """The name given at construction, used in ``repr`` and trace events."""
        return self._name

    @property
    def tracer(self) -> TraceFn | None:
        """The callable that receives :class:`TraceEvent`; may be replaced at any time."""
        return self._tracer

    @tracer.setter
    def tracer(self, tracer: TraceFn | None) -> None:
        with self._lock:
            # Keep the old tracer alive until the lock is released: dropping its
            # last reference in here could run a __del__ (e.g. of a Permit the
            # tracer owns) that re-enters this lock.
            old = self._tracer
            self._tracer = tracer
            self._fast = tracer is None and not self._closed
        del old

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        name = f" {self._name!r}" if self._name is not None else ""
        return (
            f"<batchsem.Semaphore{name} [{state}, permits:{self._permits}, "
            f"waiters:{self._waiting}]>"
        )

    # ------------------------------------------ locked steps (lock held, no allocation)

    def _assign_locked(self, rem: int) -> _Waiter | None:
        """Hand ``rem`` permits to the queue, head first; the rest to the counter.

        Returns the served waiters to wake (a prefix of the queue, still chained
        through ``next``). The caller has made sure the counter cannot exceed
        :data:`MAX_PERMITS` (with a non-empty queue it is 0, so it cannot).
        """
        node = self._head
        last = None
        while node is not None and rem:
            want = node.needed - node.assigned
            if rem < want:
                node.assigned += rem
                rem = 0
                break
            rem -= want
            node.assigned = node.needed
            node.queued = False
            node.prev = None
            self._waiting -= 1
            last = node
            node = node.next
        self._permits += rem
        if last is None:
            return None
        served = self._head
        last.next = None
        self._head = node
        if node is None:
            self._tail = None
        else:
            node.prev = None
        return served

    # --------------------------------------------------------- unlocked steps

    def _wake(self, node: _Waiter | None) -> None:
        """Resume a chain of served (or failed) waiters, each on its own loop."""
        ident = _get_ident()
        while node is not None:
            nxt = node.next
            node.next = None
            loop = node.loop
            if loop is None:
                event = node.event
                assert event is not None
                event.set()
            elif node.thread == ident:  # on the waiter's own loop thread
                fut = node.fut
                assert fut is not None
                if not fut.done():
                    try:
                        fut.set_result(None)
                    except RuntimeError:  # its loop is closed: it will never resume
                        self._abandon(node)
            else:
                fut = node.fut
                assert fut is not None
                try:
                    loop.call_soon_threadsafe(_resolve, fut)
                except RuntimeError:
                    # The waiter's loop is closed: it will never resume and
                    # its permits would be lost. Take them back.
                    self._abandon(node)
            node = nxt

    def _abandon(self, node: _Waiter) -> None:
        """The request will not complete: unlink it and give back what it had been handed."""
        lock = self._lock
        lock.acquire()
        try:
            if node.queued:
                prev, nxt = node.prev, node.next
                if prev is None:
                    self._head = nxt
                else:
                    prev.next = nxt
                if nxt is None:
                    self._tail = prev
                else:
                    nxt.prev = prev
                node.prev = node.next = None
                node.queued = False
                self._waiting -= 1
            n = node.assigned
            if n:
                node.assigned = 0
                woken = self._assign_locked(n)
            else:
                woken = None
        finally:
            lock.release()
        if woken is not None:
            self._wake(woken)

    def _trace(self, tracer: TraceFn, kind: str, n: int) -> None:
        with self._lock:
            available = self._permits
            waiting = self._waiting
        emit(tracer, TraceEvent(kind, self._name, n, available, waiting))

    # ------------------------------------------------------------ releasing

    def add_permits(self, n: int) -> None:
        """Add ``n`` permits: to the queue oldest first (partially to the head), then the counter.

        Works after :meth:`close` (the counter grows; the semaphore stays
        closed). Raises ``ValueError``, changing nothing, if the counter would
        exceed :data:`MAX_PERMITS`.
        """
        if type(n) is not int or not 0 <= n <= MAX_PERMITS:
            n = check_count(n)
        self._put(n)

    release = add_permits

    def _put(self, n: int) -> None:
        """add_permits for a checked ``n``: one lock round on the common paths."""
        woken = None
        slow = True
        lock = self._lock
        lock.acquire()
        try:
            if self._fast:
                head = self._head
                if head is None:
                    if self._permits + n <= MAX_PERMITS:
                        self._permits += n
                        slow = False
                elif head.needed - head.assigned == n:
                    # The usual hand-over: exactly what the head still needs
                    # (_assign_locked's first step, inlined on this hot path).
                    head.assigned = head.needed
                    head.queued = False
                    self._waiting -= 1
                    nxt = head.next
                    self._head = nxt
                    if nxt is None:
                        self._tail = None
                    else:
                        nxt.prev = None
                        head.next = None
                    woken = head
                    slow = False
                else:
                    woken = self._assign_locked(n)
                    slow = False
        finally:
            lock.release()
        if slow:  # closed, traced, or over MAX_PERMITS
            self._put_slow(n)
        elif woken is not None:
            fut = woken.fut
            if woken.next is None and woken.thread == _get_ident() and fut is not None:
                # One waiter, on this thread's loop: _wake's common case, inlined.
                if not fut.done():
                    try:
                        fut.set_result(None)
                    except RuntimeError:  # its loop is closed: it will never resume
                        self._abandon(woken)
            else:
                self._wake(woken)

    def _put_slow(self, n: int) -> None:
        with self._lock:
            free = self._permits
            overflow = self._head is None and free + n > MAX_PERMITS
            woken = None if overflow else self._assign_locked(n)
            available = self._permits
            waiting = self._waiting
        if overflow:
            raise ValueError(
                f"adding {n} permits would exceed MAX_PERMITS ({MAX_PERMITS}); {free} are free"
            )
        if woken is not None:
            self._wake(woken)
        tracer = self._tracer
        if tracer is not None:
            emit(tracer, TraceEvent("release", self._name, n, available, waiting))

    def forget_permits(self, n: int) -> int:
        """Remove up to ``n`` permits from the free counter (never from waiters); return how many.

        The closed state is unchanged.
        """
        n = check_count(n)
        with self._lock:
            taken = min(n, self._permits)
            self._permits -= taken
            available = self._permits
            waiting = self._waiting
        tracer = self._tracer
        if tracer is not None:
            emit(tracer, TraceEvent("forget", self._name, taken, available, waiting))
        return taken

    def close(self) -> None:
        """Close the semaphore. Idempotent.

        Every queued waiter fails with :class:`AcquireError` and what it had
        been handed goes back to the counter. Later ``acquire`` calls raise
        :class:`AcquireError`; ``try_acquire`` raises :class:`Closed`.
        Outstanding permits stay valid and may still be released.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._fast = False
            failed = node = self._head
            while node is not None:
                self._permits += node.assigned
                node.assigned = 0
                node.queued = False
                node.prev = None
                node = node.next
            self._head = self._tail = None
            self._waiting = 0
            available = self._permits
        self._wake(failed)
        tracer = self._tracer
        if tracer is not None:
            emit(tracer, TraceEvent("close", self._name, 0, available, 0))

    # ------------------------------------------------------------ acquiring

    def acquire(self, n: int = 1) -> Permit:
        """Request ``n`` permits; await the result, or use it as ``async with``.

        ``permit = await sem.acquire(3)`` or ``async with sem.acquire(3) as permit:``.
        The result is a pending :class:`Permit` that holds the permits once
        awaited (it can be awaited once). The queue position is taken when it
        is awaited, not when ``acquire()`` is called. Free
        permits are taken at once and the request queues for the rest; it is
        served in FIFO order. Raises :class:`AcquireError` if the semaphore is
        or becomes closed (handing back anything it had been given).
        Cancellation at any point hands back everything it had been given.
        ``acquire(0)`` returns an empty Permit at once unless closed.
        """
        if type(n) is not int or not 0 <= n <= MAX_PERMITS:
            n = check_count(n)
        return Permit(self, 0, n)

    def try_acquire(self, n: int = 1) -> Permit:
        """Take ``n`` permits now, or raise :class:`Closed` (checked first) or :class:`NoPermits`.

        Never takes permits ahead of a queued request.
        """
        if type(n) is not int or not 0 <= n <= MAX_PERMITS:
            n = check_count(n)
        with self._lock:
            closed = self._closed
            ok = not closed and self._permits >= n
            if ok:
                self._permits -= n
        if not ok:
            raise Closed() if closed else NoPermits()
        tracer = self._tracer
        if tracer is not None:
            self._trace(tracer, "granted", n)
        return Permit(self, n)

    def _begin(self, node: _Waiter) -> bool:
        """Start a request the fast path could not serve; True if it must wait on ``node``.

        Under the lock: takes what is free if nobody is queued (all of it if
        enough), and links ``node`` at the tail for the rest. A request for 0
        permits is served at once even behind queued waiters (as in Tokio).
        Raises :class:`AcquireError` if the semaphore is closed.
        """
        needed = node.needed
        lock = self._lock
        lock.acquire()
        try:
            closed = self._closed
            wait = False
            if closed:
                pass
            elif self._head is None:
                free = self._permits
                if free >= needed:
                    self._permits = free - needed
                    node.assigned = needed
                else:
                    node.assigned = free
                    self._permits = 0
                    wait = True
            elif needed:
                wait = True
            if wait:
                node.queued = True
                node.prev = tail = self._tail
                if tail is None:
                    self._head = node
                else:
                    tail.next = node
                self._tail = node
                self._waiting += 1
        finally:
            lock.release()
        tracer = self._tracer
        if tracer is not None:
            self._trace(tracer, "failed_closed" if closed else "acquire", needed)
        if closed:
            raise AcquireError()
        return wait

    def _new_async_waiter(self, n: int) -> _Waiter:
        loop = _get_running_loop()
        if loop is None:
            raise RuntimeError("no running event loop")
        return _Waiter(n, loop, loop.create_future(), None)

    def _finish_closed(self, node: _Waiter) -> None:
        """A served waiter resumed after close(): give back what it held; AcquireError."""
        self._abandon(node)
        raise AcquireError()

    def _failed(self, node: _Waiter) -> None:
        """The waiter on ``node`` was cancelled or failed: give back everything it had."""
        self._abandon(node)
        tracer = self._tracer
        if tracer is not None:
            self._trace(tracer, "failed_closed" if self._closed else "cancelled", node.needed)

    @types.coroutine
    def _wait(self, n: int) -> Generator[Any, None, None]:
        """Queue for ``n`` permits and wait in FIFO order: the slow path of ``async with sem``.

        Raises :class:`AcquireError` if the semaphore is closed before the
        request, while it is queued, or before it resumes (giving back what it
        had been handed); on cancellation gives back everything and re-raises.
        (:meth:`Permit.__await__` has the same few lines inline, so that a
        wake-up or a cancellation crosses one generator frame, not two.)
        """
        node = self._new_async_waiter(n)
        if self._begin(node):
            try:
                yield from node.fut  # type: ignore[misc]
                # _closed only goes from False to True, so reading it unlocked
                # is safe: a stale False means close() came after this grant.
                if self._closed:
                    self._finish_closed(node)
            except BaseException:
                self._failed(node)
                raise
        tracer = self._tracer
        if tracer is not None:
            self._trace(tracer, "granted", n)

    def acquire_blocking(self, n: int = 1, timeout: float | None = None) -> Permit:
        """Block the calling thread until ``n`` permits are granted (FIFO with async waiters).

        Raises ``TimeoutError`` after ``timeout`` seconds (handing back what it
        had been given), :class:`AcquireError` if closed, and ``RuntimeError``
        if the calling thread is running an event loop (it would deadlock it).
        """
        n = check_count(n)
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0, got {timeout}")
        if _get_running_loop() is not None:
            raise RuntimeError(
                "acquire_blocking() called from a thread with a running event loop; "
                "use 'await sem.acquire(n)' there"
            )
        event = threading.Event()
        node = _Waiter(n, None, None, event)
        tracer = self._tracer
        if self._begin(node):
            try:
                if not event.wait(timeout):
                    with self._lock:
                        # Served or closed between the timeout and now?
                        served = not node.queued and node.assigned == node.needed
                        signalled = served or self._closed
                    if not signalled:
                        raise TimeoutError(f"no {n} permits within {timeout} s")
                if self._closed:
                    self._finish_closed(node)
            except BaseException:
                self._failed(node)
                raise
        if tracer is not None:
            self._trace(tracer, "granted", n)
        return Permit(self, n)

    # ------------------------------------------- asyncio.Semaphore drop-in

    async def __aenter__(self) -> None:
        """``async with sem:`` takes one permit for the block (FIFO, like ``acquire(1)``)."""
        # Unlocked peek, only a hint: with waiters queued the counter is 0 and
        # the fast path would fail, so go straight to queueing (which re-checks).
        if self._head is None:
            lock = self._lock
            lock.acquire()
            try:
                fast = self._fast and self._permits > 0
                if fast:
                    self._permits -= 1
            finally:
                lock.release()
            if fast:
                return
        await self._wait(1)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        fast = False
        if self._head is None:  # unlocked hint: with waiters queued, _put serves them
            lock = self._lock
            lock.acquire()
            try:
                fast = self._fast and self._head is None and self._permits < MAX_PERMITS
                if fast:
                    self._permits += 1
            finally:
                lock.release()
        if not fast:
            self._put(1)


class Permit:
    """Ownership of some permits of one semaphore, returned by ``acquire``/``try_acquire``.

    ``sem.acquire(n)`` returns a *pending* Permit: awaiting it (once) waits
    for the ``n`` permits and returns the same object, now holding them;
    ``async with sem.acquire(n) as permit:`` does the same and releases at
    exit. ``release()`` gives the permits back (idempotent); ``forget()``
    drops them without giving them back (the semaphore shrinks).
    ``with permit:`` and ``async with permit:`` release at exit. A Permit
    garbage-collected while still holding permits gives them back and emits
    ``ResourceWarning``.
    """

    __slots__ = ("_n", "_sem", "_want")

    def __init__(self, sem: Semaphore, n: int, want: int = -1) -> None:
        self._sem = sem
        # Permits held now.
        self._n = n
        # Permits still to acquire when awaited; -1 once acquired (or never pending).
        self._want = want

    def __await__(self) -> Generator[Any, None, Permit]:
        n = self._want
        if n < 0:
            raise RuntimeError("this Permit has already been acquired; call acquire() again")
        self._want = -1
        sem = self._sem
        fast = False
        if sem._head is None:  # unlocked hint, as in Semaphore.__aenter__
            lock = sem._lock
            lock.acquire()
            try:
                fast = sem._fast and sem._permits >= n
                if fast:
                    sem._permits -= n
            finally:
                lock.release()
        if not fast:
            # The slow path of Semaphore._wait, inline so that a wake-up or a
            # cancellation crosses one generator frame, not two.
            node = sem._new_async_waiter(n)
            if sem._begin(node):
                try:
                    yield from node.fut  # type: ignore[misc]
                    if sem._closed:  # see Semaphore._wait
                        sem._finish_closed(node)
                except BaseException:
                    sem._failed(node)
                    raise
            tracer = sem._tracer
            if tracer is not None:
                sem._trace(tracer, "granted", n)
        self._n = n
        return self

    @property
    def num_permits(self) -> int:
        """How many permits this object holds now (0 after release or forget)."""
        return self._n

    @property
    def semaphore(self) -> Semaphore:
        """The semaphore the permits belong to."""
        return self._sem

    def release(self) -> None:
        """Give the permits back to the semaphore. Calling it again does nothing."""
        n = self._n
        if n:
            self._n = 0
            self._sem._put(n)

    def forget(self) -> None:
        """Drop the permits without giving them back: the semaphore permanently has ``n`` fewer."""
        self._n = 0

    def split(self, n: int) -> Permit | None:
        """Move ``n`` permits into a new Permit; ``None`` (nothing moved) if fewer are held."""
        n = check_count(n)
        if n > self._n:
            return None
        self._n -= n
        return Permit(self._sem, n)

    def merge(self, other: Permit) -> None:
        """Move all of ``other``'s permits into this one; ``ValueError`` for another semaphore's."""
        if other is self:
            return
        if other._sem is not self._sem:
            raise ValueError("cannot merge permits of different semaphores")
        self._n += other._n
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
        if self._want >= 0:  # a pending ``sem.acquire(n)``: acquire for the block
            await self
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        pending = f" pending:{self._want}" if self._want >= 0 else ""
        return f"<batchsem.Permit permits:{self._n}{pending} of {self._sem!r}>"

    def __del__(self) -> None:
        n = self._n
        if not n:
            return
        self._n = 0
        with contextlib.suppress(Exception):  # warnings as errors, interpreter shutdown
            warnings.warn(
                f"a batchsem Permit holding {n} permit(s) was garbage-collected without "
                "release(); the permits were returned",
                ResourceWarning,
                source=self,
                stacklevel=2,
            )
        # Safe to take the lock here: the semaphore never allocates or drops a
        # reference while holding it, so this cannot run inside its own locked
        # region (see the lock discipline in Semaphore.__init__).
        with contextlib.suppress(Exception):
            self._sem._put(n)
