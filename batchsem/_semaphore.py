"""A fair, thread-safe counting semaphore whose waiters may ask for many permits at once.

Implementation details
----------------------
This is a port of Tokio's ``batch_semaphore``, and the readable reference for
the compiled core (``batchsem._cbatchsem``), which implements the same
semantics. The semaphore is a counter of free permits plus a FIFO queue of
waiters (:mod:`batchsem._waitlist`, an intrusive doubly linked list: a
cancelled waiter leaves in O(1)).

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

Permits are handles. ``await sem.acquire(n)`` takes ``n`` permits and they
stay taken until ``sem.release(n)``, ``permit.release()`` or the end of an
``async with``/``with`` block, whether or not the returned :class:`Permit` is
kept. The garbage collector never gives permits back (Python's convention, as
``threading`` and ``asyncio`` semaphores; unlike Tokio's ``Drop``). An opt-in
debug mode (:class:`DebugLedger`) reports acquisitions never released.

Thread safety: all state lives behind one lock (:mod:`batchsem._lock`). A
waiter belongs to the event loop it was created on; permits may be released
from any thread. Waiters are collected under the lock and woken after it is
released (waking runs arbitrary callbacks, and a waiter's loop may live on
another thread, in which case the wake-up goes through
``call_soon_threadsafe``). There is one hand-over path
(:meth:`WaitList.assign`, called under the lock) and one wake path
(:meth:`Semaphore._wake`, called after it). Waking never decides who owns
permits: ownership is decided under the lock when permits are assigned to a
node, and a waiter that will never resume (cancelled, or its loop closed)
gives its node's permits back under the lock.

Modules: :mod:`batchsem._waitlist` (the queue, its nodes, waking),
:mod:`batchsem._lock` (the internal lock), :mod:`batchsem._permit` (the
handle), :mod:`batchsem._counts` (limits and argument checks),
:mod:`batchsem._debug` (debug mode), :mod:`batchsem._trace` (trace events,
statistics). This module is the policy: the counter, who gets permits when,
and the request objects.
"""

from __future__ import annotations

import asyncio
import collections.abc
import threading
import time
import weakref
from collections.abc import Generator
from types import TracebackType
from typing import Any, ClassVar, cast

from ._counts import MAX_PERMITS, check_count, check_timeout
from ._debug import DEBUG_DEFAULT, DebugLedger, _TrackedPermit
from ._errors import AcquireError, Closed, NoPermits
from ._lock import Hold, new_lock, take_contended
from ._permit import Permit
from ._trace import SemaphoreStatistics, TraceEvent, TraceFn, emit
from ._waitlist import RECHECK_FIRST, Signal, Waiter, WaitList, next_recheck, stranded, wake

# Names defined in the small modules are re-exported for code that imports them
# from here (the tool, the compiled core's debug helper).
__all__ = [
    "DEBUG_DEFAULT",
    "MAX_PERMITS",
    "Acquire",
    "BoundedSemaphore",
    "DebugLedger",
    "Permit",
    "Semaphore",
    "TraceEvent",
    "TraceFn",
    "check_count",
    "check_timeout",
]

_get_running_loop = asyncio.events._get_running_loop
# Hot paths build Acquire and Permit objects as ``_new(cls)`` plus slot stores
# ("inline of X.__init__"): about 50 ns less than calling the class, which runs
# __init__ as a Python frame (CPython 3.11; 105 ns against 158 ns).
_new = object.__new__
# Waking compares thread idents, not loops: on CPython 3.11 every
# _get_running_loop() call makes a getpid() system call (cpython#100363).
_get_ident = threading.get_ident
_monotonic = time.monotonic
#: ``Semaphore._home`` once async waiters of two event loops have queued.
MANY: Any = object()


class _Ready:
    """An awaitable that is already complete: ``await`` returns None at once.

    ``__await__`` is the bound ``__iter__`` of an exhausted iterator, a C call
    that returns that (empty) iterator: no frame, unlike an ``async def`` (0.7%
    of a contended cycle, cachegrind, 64 tasks / 8 permits). Not a Future, so
    ``ensure_future`` / ``wait_for`` wrap it like any awaitable, on any loop.
    """

    __slots__ = ()
    __await__ = staticmethod(iter(()).__iter__)


#: What ``Semaphore.__aexit__`` returns (the C core's ready_none is the same).
_READY = cast("collections.abc.Awaitable[None]", _Ready())


class Semaphore:
    """A counting semaphore where a task may wait for many permits at once, strictly FIFO.

    A drop-in for ``asyncio.Semaphore``: ``async with sem:``, ``await
    sem.acquire()`` / ``sem.release()``, ``locked()``. On top of it:
    ``acquire(n)`` / ``release(n)`` for many permits, :meth:`try_acquire`,
    :meth:`acquire_blocking` for threads, :meth:`close`, :meth:`statistics`.

    Guarantees:

    * **FIFO, no barging.** Requests are served in the order they started
      waiting, whatever their sizes. A request that cannot be served at once
      takes what is free and queues for the rest; while anyone is queued the
      free counter is 0, so no later ``acquire`` or ``try_acquire`` can take
      permits ahead of a queued request. A request larger than anything that
      will ever be free waits at the head, and everyone behind it waits too,
      until permits are added, it is cancelled, or the semaphore is closed
      (as in Tokio; :class:`BoundedSemaphore` refuses such a request at once).
    * **Permits are handles.** Taken permits stay taken until released
      (``sem.release(n)``, :meth:`Permit.release`, the end of an ``async
      with``/``with`` block), whether or not the :class:`Permit` is kept. The
      garbage collector never releases them. With ``debug=True`` (or
      ``BATCHSEM_DEBUG=1`` in the environment) the semaphore records where
      each Permit was acquired and, when it is collected or at exit, warns
      (``ResourceWarning``) about acquisitions never released
      (:class:`DebugLedger`).
    * **Nothing is lost.** A cancelled or failed request gives back every
      permit it had been handed. A waiter that was served but whose event loop
      was closed before it could resume (stranded) gives its permits back, and
      the queue moves on, without the garbage collector: waiters queued behind
      it re-check on their own, the first time after 10 ms and then at
      doubling intervals up to 1 s, so they are served at most about 1 s after
      the loop was closed, with no other call into the semaphore. A request
      that finds the queue empty and too few permits free, and every
      inspection (``available_permits``, ``locked()``, ``statistics()``, a
      failing ``try_acquire``), reclaim them at once. The same re-checks fail a
      queue head whose loop was closed while it waited, so what it was handed
      reaches the waiters behind it.
    * **Thread-safe.** Every method may be called from any thread; tasks on
      different event loops may wait on the same semaphore; a waiter is always
      resumed on its own loop.

    Counts accept any integer (``__index__``): ``TypeError`` for ``bool``,
    ``float`` and other non-integers, ``ValueError`` for a negative count or
    one above :data:`MAX_PERMITS`.
    """

    __slots__ = (
        "__weakref__",
        "_closed",
        "_debug",
        "_fast",
        "_fast_loop",
        "_granted",
        "_hold",
        "_home",
        "_limit",
        "_lock",
        "_name",
        "_permits",
        "_tracer",
        "_waiters",
    )

    #: True for :class:`BoundedSemaphore`: ``_limit`` is then a capacity.
    _bounded: ClassVar[bool] = False

    def __init__(
        self,
        value: int = 1,
        *,
        name: str | None = None,
        tracer: TraceFn | None = None,
        debug: bool | None = None,
    ) -> None:
        # Lock discipline: every field below is written only while holding
        # _lock (reads of single fields without it are hints, re-checked under
        # it). While the lock is held nothing is allocated that the cyclic GC
        # tracks and no last reference is dropped, so no garbage collection and
        # no __del__ (which could release permits) runs inside a locked region
        # and re-enters this non-reentrant lock. Exceptions, trace events and
        # Permits are therefore created after unlocking.
        self._lock = new_lock()
        self._hold = Hold(self._lock)
        # The free counter. Invariant: the queue is non-empty => _permits == 0.
        # Consequences used below: a request can take from the counter only
        # when nobody is queued (no barging), _permits >= 1 alone proves the
        # queue empty, and the leftover of a release is exactly what the
        # counter gains, so the limit can be checked before anything changes.
        self._permits = check_count(value, "value")
        # Invariant: _permits + (the head's partial reservation) <= _limit.
        # MAX_PERMITS for a Semaphore; the capacity of a BoundedSemaphore.
        self._limit = self._permits if self._bounded else MAX_PERMITS
        self._closed = False
        self._waiters = WaitList()
        # Async waiters woken (their wake-up scheduled) but not yet resumed.
        # Not guarded by _lock: a set's add/discard are atomic on their own.
        # A node is added before its wake-up is scheduled and discarded when it
        # resumes or gives its permits back, so any node left in it whose loop
        # is closed will never resume (see _reclaim).
        self._granted: set[Waiter] = set()
        # The event loop of every async waiter queued so far while they were all
        # on one loop (None before the first), MANY from the first waiter of a
        # second loop on. Written under _lock. An async waiter queued while it is
        # MANY re-checks for stranded nodes (invariant (S) of _waitlist.stranded).
        self._home: Any = None
        self._name = name
        self._tracer = tracer
        if debug is None:
            debug = DEBUG_DEFAULT
        self._debug: DebugLedger | None = None
        if debug:
            self._debug = DebugLedger(name)
            weakref.finalize(self, self._debug.report)
        # True while not closed, untraced and not in debug mode: the fast
        # paths may then skip everything but the counter.
        self._fast = tracer is None and not debug
        # _home while it is one loop and _fast holds, else None: the contended
        # `async with` joins the tail inline only for a waiter of this loop
        # (one test for both conditions). Written under _lock.
        self._fast_loop: Any = None

    # ------------------------------------------------------------------ state

    @property
    def available_permits(self) -> int:
        """Permits free in the counter. Permits already handed to queued waiters are not in it."""
        if self._granted:
            self._reclaim()
        return self._permits

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    @property
    def waiting(self) -> int:
        """The number of queued acquire calls (async and blocking)."""
        return self._waiters.count

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
        with self._hold:
            # Keep the old tracer alive until the lock is released: dropping its
            # last reference in here could run a __del__ that re-enters the lock.
            old = self._tracer
            self._tracer = tracer
            self._fast = tracer is None and not self._closed and self._debug is None
            home = self._home
            self._fast_loop = home if self._fast and home is not None and home is not MANY else None
        del old

    def locked(self) -> bool:
        """True if ``acquire()`` (of one permit) would wait right now (asyncio's meaning)."""
        if self._granted:
            self._reclaim()
        return self._permits == 0

    def statistics(self) -> SemaphoreStatistics:
        """A consistent snapshot: free permits, queued requests, what they need, closed, capacity.

        O(number of waiters): the permits still wanted are summed over the queue.
        """
        if self._granted:
            self._reclaim()
        with self._hold:
            free = self._permits
            waiting = self._waiters.count
            wanted = self._waiters.wanted()
            closed = self._closed
            limit = self._limit
        return SemaphoreStatistics(
            available_permits=free,
            tasks_waiting=waiting,
            permits_wanted=wanted,
            closed=closed,
            capacity=limit if self._bounded else None,
        )

    def _queue_snapshot(self) -> list[tuple[int, int]]:
        """Test hook: the queued requests head first as ``(needed, assigned)``.

        Checks the queue's internal structure first and raises ``AssertionError``
        if it is broken or if the internal lock is held by anyone (call it only
        when no other thread uses the semaphore). The one non-public method the
        test suite uses; the compiled core provides it too.
        """
        if self._hold.held():
            raise AssertionError("the semaphore's internal lock is held")
        with self._hold:
            out = self._waiters.snapshot()
            free = self._permits
        if out and free:
            raise AssertionError("free permits while someone is queued")
        return out

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        name = f" {self._name!r}" if self._name is not None else ""
        cap = f"/{self._limit}" if self._bounded else ""
        return (
            f"<batchsem.{type(self).__name__}{name} [{state}, permits:{self._permits}{cap}, "
            f"waiters:{self._waiters.count}]>"
        )

    # ---------------------------------------------------- steps without the lock

    def _wake(self, chain: Waiter | None) -> None:
        """The one wake path: resume a chain of served (or failed) waiters, each on its own loop.

        A waiter whose loop is closed will never resume: it gives back what it
        was handed at once, so the queue moves on.
        """
        lost = wake(chain, self._granted)
        if lost is not None:
            for node in lost:
                self._give_back(node)

    def _give_back(self, node: Waiter, queued_only: bool = False) -> bool:
        """The request will not complete: unlink it and give back everything it had been handed.

        Called when its waiter was cancelled or failed (closed, timed out), and
        for a served waiter that will never resume. A second call gives back
        nothing more. With ``queued_only``, nothing happens unless the node is
        still queued when the lock is taken (a node that left the queue may have
        resumed and turned what it was handed into a Permit). Returns whether
        the node was queued.
        """
        self._granted.discard(node)
        lock = self._lock
        try:
            lock.pop()
        except IndexError:
            take_contended(lock)
        try:
            waiters = self._waiters
            was_queued = node.queued
            if queued_only and not was_queued:
                return False
            n = waiters.withdraw(node)
            woken = None
            if n:
                woken = waiters.assign(n)
                self._permits += waiters.leftover
        finally:
            lock.append(True)
        if woken is not None:
            self._wake(woken)
        tracer = self._tracer
        if tracer is not None:
            self._trace(tracer, "failed_closed" if self._closed else "cancelled", node.needed)
        return was_queued

    def _reap_dead_head(self) -> None:
        """Fail queue heads whose event loop was closed while they waited.

        Such a waiter never resumes, and the permits already handed to it
        towards its request (permits go to the head first, so only the head
        holds any) would make everyone behind it wait forever. Failing it gives
        them back and makes the next node the head, which is checked in turn.
        Run by the re-checks of invariant (S) of ``stranded``: the waiters a
        dead head blocks are exactly those a stranded node could block.
        """
        while True:
            head = self._waiters.head  # unlocked: _give_back re-checks under the lock
            if head is None or not stranded(head):
                return
            self._give_back(head, queued_only=True)

    def _reclaim(self) -> None:
        """Give back the permits of woken waiters whose loop was closed before they resumed."""
        granted = self._granted
        for node in list(granted):
            if stranded(node):
                # A node that resumed before its loop was closed has left the set
                # (its task discards it on resume, and keeps node.assigned): only
                # the one call that removes the node may give back what it holds.
                # One still in the set after its loop was seen closed never resumes.
                try:
                    granted.remove(node)
                except KeyError:
                    continue
                self._give_back(node)

    def _recheck(self, node: Waiter, delay: float) -> None:
        """Timer callback on a queued async waiter's own loop: invariant (S) of ``stranded``.

        Reclaims what stranded nodes hold and fails dead queue heads, then, if
        ``node`` is still queued and the semaphore open, runs again after a
        doubled ``delay`` (capped).
        It stops by itself once the waiter has left the queue (served,
        cancelled, failed): it is not cancelled when the waiter leaves, which
        would cost every wait a check, so it fires at most once more.
        """
        # Unlocked reads: `queued` and `_closed` change only once (True to
        # False, False to True); a stale True costs one more round.
        if not node.queued or self._closed:
            return
        if self._granted:
            self._reclaim()
        self._reap_dead_head()
        if not node.queued:
            return
        delay = next_recheck(delay)
        node.waker.get_loop().call_later(delay, self._recheck, node, delay)

    def _trace(self, tracer: TraceFn, kind: str, n: int) -> None:
        with self._hold:
            available = self._permits
            waiting = self._waiters.count
        emit(tracer, TraceEvent(kind, self._name, n, available, waiting))

    def _grant(self, n: int) -> Permit:
        """The Permit for ``n`` permits just granted on a slow path (traced, tracked)."""
        tracer = self._tracer
        if tracer is not None:
            self._trace(tracer, "granted", n)
        return self._new_permit(n)

    def _new_permit(self, n: int) -> Permit:
        debug = self._debug
        if debug is None:
            return Permit(self, n)
        return _TrackedPermit(self, n, debug.acquired(n))

    # ------------------------------------------------------------ releasing

    def release(self, n: int = 1) -> None:
        """Give ``n`` permits back (``add_permits``): to queued requests oldest first, then free.

        Need not be called by the task that acquired (as ``asyncio.Semaphore``).
        Works after :meth:`close` (the counter grows; the semaphore stays
        closed). Raises ``ValueError``, changing nothing, if the permits not
        held by anyone would exceed :data:`MAX_PERMITS` (a
        :class:`BoundedSemaphore`: its capacity).
        """
        if type(n) is not int or not 0 <= n <= MAX_PERMITS:
            n = check_count(n)
        # inline of _put(n) for its common case, nobody queued and untraced
        # (the asyncio idiom `await sem.acquire(); sem.release()`: ~6% of its time).
        lock = self._lock
        try:
            lock.pop()
        except IndexError:
            take_contended(lock)
        try:
            free = self._permits + n
            fast = self._fast and self._waiters.head is None and free <= self._limit
            if fast:
                self._permits = free
        finally:
            lock.append(True)
        if not fast:
            self._put(n)
            if self._debug is not None:
                self._debug.cover(n)

    #: Tokio's name for :meth:`release` (one call frame, not two: a shorter window
    #: for a KeyboardInterrupt between the state change and the return).
    add_permits = release

    def _put(self, n: int) -> None:
        """Release ``n`` checked permits: the limit check, then the one hand-over path."""
        woken = None
        lock = self._lock
        try:
            lock.pop()
        except IndexError:
            take_contended(lock)
        try:
            waiters = self._waiters
            head = waiters.head
            if head is None:
                free = self._permits + n
                over = free > self._limit
                if not over:
                    self._permits = free
            else:
                # Queued: the counter is 0 and only the head can hold a partial
                # reservation (a read of the node, under the lock).
                over = head.assigned + n > self._limit
                if not over:
                    woken = waiters.assign(n)
                    self._permits = waiters.leftover
            tracer = self._tracer
            if tracer is not None:
                available = self._permits
                waiting = waiters.count
        finally:
            lock.append(True)
        if over:
            self._over_release(n)
        if woken is not None:
            if woken.next is None and woken.thread == _get_ident():
                # inline of wake() for its common case, one waiter on this thread's
                # loop (contended `async with`: about 3% of a hand-over cycle).
                self._granted.add(woken)
                try:
                    woken.waker.set_result(None)
                except asyncio.InvalidStateError:
                    pass  # cancelled meanwhile: its task gives the permits back
                except RuntimeError:  # its loop is closed: it will never resume
                    self._give_back(woken)
            else:
                self._wake(woken)
        if tracer is not None:
            emit(tracer, TraceEvent("release", self._name, n, available, waiting))

    def _over_release(self, n: int) -> None:
        free = self._permits
        if self._bounded:
            raise ValueError(
                f"BoundedSemaphore released too many times: {n} more would exceed its "
                f"capacity of {self._limit} ({free} free)"
            )
        raise ValueError(
            f"adding {n} permits would exceed MAX_PERMITS ({MAX_PERMITS}); {free} are free"
        )

    def _forgotten(self, n: int) -> None:
        """``n`` held permits are dropped (:meth:`Permit.forget`): a bounded capacity shrinks.

        ``ValueError``, changing nothing, if the capacity would fall below the
        permits not held by anyone (free, or handed to the queue's head): the
        release check's invariant, ``free + head's reservation <= capacity``.
        """
        if self._bounded:
            with self._hold:
                outside = self._permits + self._waiters.head_assigned()
                limit = self._limit
                if limit - n >= outside:
                    self._limit = limit - n
                    return
            raise ValueError(
                f"cannot forget {n} permits of a BoundedSemaphore that are not held: "
                f"{outside} of its capacity of {limit} are free (a release() without the "
                "Permit gave them back already)"
            )

    def forget_permits(self, n: int) -> int:
        """Remove up to ``n`` permits from the free counter (never from waiters); return how many.

        A :class:`BoundedSemaphore`'s capacity shrinks by as many. The closed
        state is unchanged.
        """
        n = check_count(n)
        with self._hold:
            taken = min(n, self._permits)
            self._permits -= taken
            if self._bounded:
                self._limit -= taken
            available = self._permits
            waiting = self._waiters.count
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
        with self._hold:
            if self._closed:
                return
            self._closed = True
            self._fast = False
            self._fast_loop = None
            failed = self._waiters.fail_all()
            self._permits += self._waiters.leftover
            available = self._permits
        self._wake(failed)
        tracer = self._tracer
        if tracer is not None:
            emit(tracer, TraceEvent("close", self._name, 0, available, 0))

    # ------------------------------------------------------------ acquiring

    def _check_request(self, n: object) -> int:
        n = check_count(n)
        if n > self._limit:
            raise ValueError(
                f"cannot acquire {n} permits from a {type(self).__name__} "
                f"with capacity {self._limit}"
            )
        return n

    def acquire(self, n: int = 1) -> Acquire:
        """Request ``n`` permits: ``await sem.acquire(n)`` or ``async with sem.acquire(n) as p:``.

        Awaiting the request returns a :class:`Permit` holding the ``n``
        permits; they stay taken until released (``sem.release(n)``,
        ``permit.release()``, the end of the ``async with`` block), whether or
        not the Permit is kept. The request is a coroutine-like object:
        ``asyncio.create_task``, ``TaskGroup.create_task``, ``ensure_future``
        and ``wait_for`` accept it. It can be awaited once. Its queue position
        is taken when it starts, not when ``acquire()`` is called.

        Free permits are taken at once and the request queues for the rest; it
        is served in FIFO order. Raises :class:`AcquireError` if the semaphore
        is or becomes closed (handing back anything it had been given), and
        ``ValueError`` at once if ``n`` exceeds a :class:`BoundedSemaphore`'s
        capacity. Cancellation at any point hands back everything it had been
        given. ``acquire(0)`` is served at once unless closed.
        """
        if type(n) is not int or not 0 <= n <= self._limit:
            n = self._check_request(n)
        req = _new(Acquire)  # inline of Acquire.__init__
        req._sem = self
        req._n = n
        return req

    def try_acquire(self, n: int = 1) -> Permit:
        """Take ``n`` permits now, or raise :class:`Closed` (checked first) or :class:`NoPermits`.

        Never takes permits ahead of a queued request. ``ValueError`` if ``n``
        exceeds a :class:`BoundedSemaphore`'s capacity.
        """
        if type(n) is not int or not 0 <= n <= self._limit:
            n = self._check_request(n)
        lock = self._lock
        try:
            lock.pop()
        except IndexError:
            take_contended(lock)
        try:
            closed = self._closed
            ok = not closed and self._permits >= n
            if ok:
                self._permits -= n
        finally:
            lock.append(True)
        if not ok:
            if closed:
                raise Closed()
            if self._granted and self._reclaim_then_take(n):
                return self._grant(n)
            raise NoPermits()
        if self._fast:
            permit = _new(Permit)  # inline of Permit.__init__
            permit._sem = self
            permit._n = n
            return permit
        return self._grant(n)

    def _reclaim_then_take(self, n: int) -> bool:
        self._reclaim()
        with self._hold:
            ok = not self._closed and self._permits >= n
            if ok:
                self._permits -= n
        return ok

    def _begin(self, n: int, event: Signal | None = None) -> Waiter | None:
        """Start a request the fast path did not serve; None if served at once, else its node.

        Under the lock: takes what is free if nobody is queued (all of it if
        enough), and links a new node at the tail for the rest. The returned
        node is woken, once served or failed, through its future (an async
        request, on the running loop) or through ``event`` (a blocking one).
        A request for 0 permits is served at once even behind queued waiters
        (as in Tokio). Raises :class:`AcquireError` if the semaphore is closed
        and ``RuntimeError`` for an async request without a running loop.
        """
        loop: asyncio.AbstractEventLoop | None = None
        if event is None:
            loop = _get_running_loop()
            if loop is None:
                raise RuntimeError("no running event loop")
            node = Waiter.new(n, loop.create_future(), _get_ident())
        else:
            node = Waiter.new(n, event, None)
        lock = self._lock
        try:
            lock.pop()
        except IndexError:
            take_contended(lock)
        try:
            closed = self._closed
            wait = scan = recheck = False
            if not closed:
                waiters = self._waiters
                if waiters.head is None:
                    free = self._permits
                    if free >= n:
                        self._permits = free - n
                    else:
                        # Becomes the head holding what is free.
                        self._permits = 0
                        waiters.push(node, free)
                        wait = True
                        # Nobody queued, too few free: maybe a woken waiter's
                        # loop closed before it resumed and holds them.
                        scan = bool(self._granted)
                elif n:
                    waiters.push(node)
                    wait = True
                if wait and event is None:
                    home = self._home
                    if home is not loop:
                        if home is None:
                            self._home = loop
                            if self._fast:
                                self._fast_loop = loop
                        else:
                            self._home = MANY
                            self._fast_loop = None
                            recheck = True
                    elif scan:
                        # Every async waiter so far was on this loop, so is every
                        # woken one: it is running, hence not closed, and none of
                        # them is stranded.
                        scan = False
        finally:
            lock.append(True)
        tracer = self._tracer
        if tracer is not None:
            self._trace(tracer, "failed_closed" if closed else "acquire", n)
        if closed:
            raise AcquireError()
        if recheck and loop is not None:
            try:
                loop.call_later(RECHECK_FIRST, self._recheck, node, RECHECK_FIRST)
            except BaseException:
                self._give_back(node)
                raise
        if scan:
            self._reclaim()
        return node if wait else None

    def _wait_blocking(self, event: Signal, timeout: float | None) -> bool:
        """Wait for a blocking request's ``event``; False if ``timeout`` passed first.

        The wait is a series of timed waits (:data:`RECHECK_FIRST` doubling up
        to ``RECHECK_MAX``) with a reclaim between them: invariant (S) of
        ``stranded``.
        """
        deadline = None if timeout is None else _monotonic() + timeout
        delay = RECHECK_FIRST
        while True:
            wait = delay
            if deadline is not None:
                left = deadline - _monotonic()
                if left <= 0:
                    return event.is_set()
                if left < wait:
                    wait = left
            if event.wait(wait):
                return True
            if self._granted:
                self._reclaim()
            self._reap_dead_head()
            delay = next_recheck(delay)

    def acquire_blocking(self, n: int = 1, timeout: float | None = None) -> Permit:
        """Block the calling thread until ``n`` permits are granted (FIFO with async waiters).

        ``timeout`` is in seconds; None or ``math.inf`` wait without limit.
        Raises ``TimeoutError`` after ``timeout`` (handing back what it had
        been given), :class:`AcquireError` if closed, ``ValueError`` for a
        negative or nan timeout, and ``RuntimeError`` if the calling thread is
        running an event loop (it would deadlock it).
        """
        if type(n) is not int or not 0 <= n <= self._limit:
            n = self._check_request(n)
        timeout = check_timeout(timeout)
        if _get_running_loop() is not None:
            raise RuntimeError(
                "acquire_blocking() called from a thread with a running event loop; "
                "use 'await sem.acquire(n)' there"
            )
        if self._fast:
            # Served at once when nobody is queued and enough are free (the
            # counter invariant: with a queue the counter is 0), without making
            # the waker. Anything else goes through _begin. The lock spelled out
            # (no call while it is held): with `with self._hold:` instead, 4
            # threads on Semaphore(2) ran at 2.0-2.1x threading.Semaphore's
            # throughput against 3.2-3.3x (bench_library row 6, 3 A/B runs).
            lock = self._lock
            try:
                lock.pop()
            except IndexError:
                take_contended(lock)
            try:
                served = self._fast and self._permits >= n
                if served:
                    self._permits -= n
            finally:
                lock.append(True)
            if served:
                return Permit(self, n)
        event = Signal()
        node = self._begin(n, event)
        if node is not None:
            try:
                if not self._wait_blocking(event, timeout):
                    with self._hold:
                        # Served or closed between the timeout and now? (Reads.)
                        served = not node.queued and node.assigned == n
                        signalled = served or self._closed
                    if not signalled:
                        raise TimeoutError(f"no {n} permits within {timeout} s")
                if self._closed:
                    raise AcquireError()
            except BaseException:
                self._give_back(node)
                raise
        return self._grant(n)

    # ------------------------------------------- asyncio.Semaphore drop-in

    async def __aenter__(self) -> None:
        """``async with sem:`` takes one permit for the block (FIFO, like ``acquire(1)``).

        Raises :class:`AcquireError` if the semaphore is or becomes closed;
        cancellation while waiting hands back whatever the request was given.
        """
        # An unlocked peek: _permits >= 1 means nobody is queued (the counter
        # invariant); re-checked under the lock, else _begin handles every case.
        node: Waiter | None
        if self._permits:
            lock = self._lock
            try:
                lock.pop()
            except IndexError:
                take_contended(lock)
            try:
                fast = self._fast and self._permits > 0
                if fast:
                    self._permits -= 1
            finally:
                lock.append(True)
            if fast:
                return
            node = self._begin(1)
        elif self._fast:
            # Nothing free: join the tail (the head, if nobody is queued). inline
            # of _begin's queueing case, Waiter.new and WaitList.push (together
            # about 3% of a contended cycle, 11% of a 2-task hand-over).
            loop = _get_running_loop()
            if loop is None:
                raise RuntimeError("no running event loop")
            # inline of Waiter.new. Waiter() rather than object.__new__(Waiter):
            # 300 instructions less per contended hand-over cycle (cachegrind,
            # 64 tasks / 8 permits: 0.8% on the asyncio loop, 1.3% on uvloop).
            new = Waiter()
            new.needed = 1
            new.waker = loop.create_future()
            new.thread = _get_ident()
            new.next = None
            lock = self._lock
            try:
                lock.pop()
            except IndexError:
                take_contended(lock)
            try:
                # Not for a waiter of a second loop (_fast_loop is not loop):
                # _begin records it (_home) and arms its re-check. Nor when
                # permits came back meanwhile (then nobody is queued): _begin
                # takes them. As the head of an empty queue it takes the 0 free
                # and, all async waiters being on this running loop, none of the
                # woken ones can be stranded: nothing to reclaim (as in _begin).
                queued = self._permits == 0 and self._fast_loop is loop
                if queued:
                    # inline of WaitList.push
                    waiters = self._waiters
                    new.assigned = 0
                    new.queued = True
                    new.prev = tail = waiters.tail
                    if tail is None:
                        waiters.head = new
                    else:
                        tail.next = new
                    waiters.tail = new
                    waiters.count += 1
            finally:
                lock.append(True)
            node = new if queued else self._begin(1)
        else:
            node = self._begin(1)
        if node is not None:
            try:
                await node.waker
                # _closed only goes from False to True, so reading it unlocked
                # is safe: a stale False means close() came after this grant.
                if self._closed:
                    raise AcquireError()
            except BaseException:
                self._give_back(node)
                raise
            self._granted.discard(node)
        tracer = self._tracer
        if tracer is not None:
            self._trace(tracer, "granted", 1)

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> collections.abc.Awaitable[None]:
        """Give the block's permit back: to the oldest waiter if any, else to the counter.

        The permit goes back when this is called; the awaitable it returns is
        already complete (as with the C core). Raises what ``release(1)`` raises.
        """
        # inline of _put(1), untraced: the release half of every `async with`
        # (about 10% of an uncontended block, CPython 3.11).
        woken = None
        lock = self._lock
        try:
            lock.pop()
        except IndexError:
            take_contended(lock)
        try:
            fast = self._fast
            if fast:
                waiters = self._waiters
                head = waiters.head
                if head is None:
                    free = self._permits + 1
                    fast = free <= self._limit
                    if fast:
                        self._permits = free
                elif head.needed - head.assigned == 1 and head.needed <= self._limit:
                    # inline of WaitList.assign(1) when the head needs just this one
                    # (about 3% of a contended hand-over cycle on uvloop).
                    head.assigned = head.needed
                    head.queued = False
                    waiters.count -= 1
                    nxt = head.next
                    waiters.head = nxt
                    if nxt is None:
                        waiters.tail = None
                    else:
                        nxt.prev = None
                        head.next = None
                    woken = head
                else:
                    fast = False
        finally:
            lock.append(True)
        if not fast:  # traced, debug, closed, over the limit, or a partial hand-over
            self._put(1)
        elif woken is not None:
            # A single node (next is None): no chain to walk.
            if woken.thread == _get_ident():
                # inline of wake(), as in _put
                self._granted.add(woken)
                try:
                    woken.waker.set_result(None)
                except asyncio.InvalidStateError:
                    pass  # cancelled meanwhile: its task gives the permit back
                except RuntimeError:  # its loop is closed: it will never resume
                    self._give_back(woken)
            else:
                self._wake(woken)
        return _READY


class BoundedSemaphore(Semaphore):
    """A :class:`Semaphore` that knows its capacity, with ``asyncio.BoundedSemaphore``'s contract.

    ``release()`` that would make more permits free than the initial
    ``value`` raises ``ValueError`` and changes nothing. ``acquire(n)``,
    ``try_acquire(n)`` and ``acquire_blocking(n)`` with ``n`` above the
    capacity raise ``ValueError`` at once instead of blocking the queue
    forever. Forgetting permits (:meth:`Permit.forget`,
    :meth:`forget_permits`) lowers the capacity by as many; ``add_permits``
    cannot raise it.
    """

    __slots__ = ()

    _bounded: ClassVar[bool] = True

    def __init__(
        self,
        value: int = 1,
        *,
        name: str | None = None,
        tracer: TraceFn | None = None,
        debug: bool | None = None,
    ) -> None:
        # The same signature as Semaphore's, so errors name BoundedSemaphore.
        super().__init__(value, name=name, tracer=tracer, debug=debug)


class Acquire:
    """A pending ``sem.acquire(n)``: await it once for a :class:`Permit`, or ``async with`` it.

    It is coroutine-like (``send``/``throw``/``close``, registered as a
    ``collections.abc.Coroutine``), so ``asyncio.create_task(sem.acquire())``,
    ``TaskGroup.create_task``, ``ensure_future`` and ``wait_for`` accept it.
    Closing or throwing into it before it ran acquires nothing.
    """

    __slots__ = ("_gen", "_n", "_permit", "_sem")

    # Set on first use only, not by every acquire() (the common await never needs them):
    #: The generator driving it when a Task runs it through send/throw.
    _gen: Generator[Any, None, Permit] | None
    #: The Permit taken by ``async with``, released at exit.
    _permit: Permit | None

    def __init__(self, sem: Semaphore, n: int) -> None:
        self._sem = sem
        # Permits to acquire; -1 once started.
        self._n = n

    def __await__(self) -> Generator[Any, None, Permit]:
        n = self._n
        if n < 0:
            raise RuntimeError("this acquire() request was already awaited; call acquire() again")
        self._n = -1
        sem = self._sem
        # Unlocked peek, as in Semaphore.__aenter__ (n >= 1 free proves the queue empty;
        # n == 0 is served at once anyway).
        if sem._permits >= n:
            lock = sem._lock
            try:
                lock.pop()
            except IndexError:
                take_contended(lock)
            try:
                fast = sem._fast and sem._permits >= n
                if fast:
                    sem._permits -= n
            finally:
                lock.append(True)
            if fast:
                permit = _new(Permit)  # inline of Permit.__init__
                permit._sem = sem
                permit._n = n
                return permit
        node = sem._begin(n)
        if node is not None:
            # Semaphore.__aenter__'s wait tail, spelled out so that a wake-up or
            # a cancellation crosses one generator frame, not two.
            try:
                yield from node.waker
                if sem._closed:  # see Semaphore.__aenter__
                    raise AcquireError()
            except BaseException:
                sem._give_back(node)
                raise
            sem._granted.discard(node)
        return sem._grant(n)

    # The coroutine protocol, for Tasks that drive the request directly.

    def _driver(self) -> Generator[Any, None, Permit]:
        gen = getattr(self, "_gen", None)
        if gen is None:
            gen = self._gen = self.__await__()
        return gen

    def send(self, value: Any) -> Any:
        """Coroutine protocol: run the request to its next suspension point."""
        return self._driver().send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        """Coroutine protocol: raise an exception (a cancellation) at the suspension point."""
        gen = self._driver()
        if val is None and tb is None:
            return gen.throw(typ)
        return gen.throw(typ, val, tb)  # the deprecated 3-argument form, passed through

    def close(self) -> None:
        """Coroutine protocol: abandon the request; a queued one hands back what it was given."""
        gen = getattr(self, "_gen", None)
        if gen is None:
            self._n = -1
        else:
            gen.close()

    async def __aenter__(self) -> Permit:
        permit = self._permit = await self
        return permit

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        permit = getattr(self, "_permit", None)
        if permit is not None:
            self._permit = None
            permit.release()

    def __repr__(self) -> str:
        state = "started" if self._n < 0 else f"pending:{self._n}"
        return f"<batchsem.Acquire [{state}] of {self._sem!r}>"


collections.abc.Coroutine.register(Acquire)
