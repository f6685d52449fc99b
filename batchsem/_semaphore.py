"""A fair, thread-safe counting semaphore whose waiters may ask for many permits at once.

Implementation details
----------------------
This is a port of Tokio's ``batch_semaphore``. The semaphore is a counter of
free permits plus a FIFO queue of waiters. The queue is an intrusive doubly
linked list: every waiter is a node that carries its own ``prev``/``next``
links, so a cancelled waiter leaves the queue in O(1) without searching for
itself (``collections.deque.remove`` is O(n), which is what makes cancelling
many queued ``asyncio.Semaphore`` waiters quadratic).

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

Thread safety: all state lives behind one lock (a deque holding one token;
see the comment above ``_take_contended`` for why not a ``threading.Lock``).
A waiter belongs to the event loop it was created on; permits may be released
from any thread. Waiters are collected under the lock and woken after it is
released (waking runs arbitrary callbacks, and a waiter's loop may live on
another thread, in which case the wake-up goes through
``call_soon_threadsafe``).
Waking never decides who owns permits: ownership is decided under the lock
when permits are assigned to a node, and a waiter that never resumes
(cancelled, or its loop closed) gives its node's permits back under the lock.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
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


# A queued request is a node of the intrusive FIFO list. Nodes are plain lists
# indexed by the constants below (as in the pure-Python functools.lru_cache):
# every acquire that has to wait builds one, and on CPython 3.11 a 7-item list
# literal takes about 50 ns where constructing a slotted class instance takes
# about 170 ns. (The price: a list keeps its items in a second memory block.)
#
# _ASSIGNED, _QUEUED, _PREV and _NEXT may only be touched while the semaphore's
# lock is held, except that a node the semaphore has served or failed (no
# longer queued) is chained through _NEXT to the other nodes to wake, and
# Semaphore._wake clears that link. _WAKER and _THREAD are set before the node
# is queued and never change: another thread may serve the node as soon as
# the lock is released, and wakes it through them.
_Node = list[Any]
#: Previous node (towards the head), or None at the head.
_PREV: Final = 0
#: Next node (towards the tail, or in a chain of nodes to wake), or None.
_NEXT: Final = 1
#: Permits requested.
_NEEDED: Final = 2
#: Permits handed to the request so far; 0 <= assigned <= needed.
_ASSIGNED: Final = 3
#: True exactly while the node is linked into the queue.
_QUEUED: Final = 4
#: The asyncio.Future an async waiter awaits, or the threading.Event a blocking one waits on.
_WAKER: Final = 5
#: The ident of the thread running an async waiter's loop (the thread that made the
#: node); None for a blocking waiter. A loop moved to another thread while a task
#: waits on it is not supported.
_THREAD: Final = 6


# The semaphore's lock is a deque holding one token: ``lock.pop()`` takes it
# (IndexError if another thread has it), ``lock.append(True)`` puts it back.
# collections.deque documents its appends and pops as thread-safe (each is one
# step under the GIL, and locks the deque in free-threaded builds), so only one
# thread at a time can hold the token. On CPython 3.11 taking and returning it
# costs about 40 ns against about 90 ns for a threading.Lock round (argument
# parsing plus two atomic semaphore operations), and every acquire and release
# takes it once; an uncontended ``async with sem`` is about 1.3x faster for it.
# The hot paths spell it out:
#
#     try:
#         lock.pop()
#     except IndexError:
#         _take_contended(lock)
#     try:
#         ...
#     finally:
#         lock.append(True)
#
# and the cold ones write ``with self._hold:``. The lock is not reentrant: a
# thread that took it twice would wait for itself forever.
_Lock = collections.deque[bool]


def _take_contended(lock: _Lock) -> None:
    """Take the lock from another thread that holds it: wait until it is put back.

    The lock is held for a few dozen bytecodes at a time, never across a
    blocking call, an await or user code, so its holder is running or waiting
    for the GIL: release the GIL and retry. After a few tries, sleep a little
    instead: releasing the GIL voluntarily does not force a switch, and a thread
    that takes it straight back could keep the holder waiting for the whole
    switch interval (5 ms).
    """
    tries = 0
    while True:
        time.sleep(0.0 if tries < 4 else 1e-5)
        try:
            lock.pop()
        except IndexError:
            tries += 1
        else:
            return


class _Hold:
    """``with sem._hold:``: the lock for a block, on paths where a method call is cheap enough."""

    __slots__ = ("_lock",)

    def __init__(self, lock: _Lock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        try:
            self._lock.pop()
        except IndexError:
            _take_contended(self._lock)

    def __exit__(self, *exc_info: object) -> None:
        self._lock.append(True)


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
        "_hold",
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
        # served waiters are chained through their own ``_NEXT`` links instead
        # of being collected in a list.
        self._lock: _Lock = collections.deque((True,))
        self._hold = _Hold(self._lock)
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
        self._head: _Node | None = None
        self._tail: _Node | None = None
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
        with self._hold:
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

    def _assign_locked(self, rem: int) -> _Node | None:
        """Hand ``rem`` permits to the queue, head first; the rest to the counter.

        Returns the served waiters to wake (a prefix of the queue, still chained
        through ``_NEXT``). The caller has made sure the counter cannot exceed
        :data:`MAX_PERMITS` (with a non-empty queue it is 0, so it cannot).
        """
        node = self._head
        last = None
        while node is not None and rem:
            want = node[_NEEDED] - node[_ASSIGNED]
            if rem < want:
                node[_ASSIGNED] += rem
                rem = 0
                break
            rem -= want
            node[_ASSIGNED] = node[_NEEDED]
            node[_QUEUED] = False
            node[_PREV] = None
            self._waiting -= 1
            last = node
            node = node[_NEXT]
        self._permits += rem
        if last is None:
            return None
        served = self._head
        last[_NEXT] = None
        self._head = node
        if node is None:
            self._tail = None
        else:
            node[_PREV] = None
        return served

    # --------------------------------------------------------- unlocked steps

    def _wake(self, node: _Node | None) -> None:
        """Resume a chain of served (or failed) waiters, each on its own loop."""
        ident = _get_ident()
        while node is not None:
            nxt = node[_NEXT]
            node[_NEXT] = None
            waker = node[_WAKER]
            thread = node[_THREAD]
            if thread is None:  # a blocking waiter
                waker.set()
            elif thread == ident:  # on the waiter's own loop thread
                try:
                    waker.set_result(None)
                except asyncio.InvalidStateError:
                    pass  # cancelled meanwhile: its task gives the permits back
                except RuntimeError:  # its loop is closed: it will never resume
                    self._failed(node)
            else:
                try:
                    waker.get_loop().call_soon_threadsafe(_resolve, waker)
                except RuntimeError:
                    # The waiter's loop is closed: it will never resume and
                    # its permits would be lost. Take them back.
                    self._failed(node)
            node = nxt

    def _failed(self, node: _Node) -> None:
        """The request will not complete: unlink it and give back everything it had been handed.

        Called when its waiter was cancelled or failed (closed, timed out), and
        for a served waiter whose loop closed before it could resume. A second
        call gives back nothing more.
        """
        lock = self._lock
        try:
            lock.pop()
        except IndexError:
            _take_contended(lock)
        try:
            if node[_QUEUED]:
                prev = node[_PREV]
                nxt = node[_NEXT]
                if prev is None:
                    self._head = nxt
                else:
                    prev[_NEXT] = nxt
                if nxt is None:
                    self._tail = prev
                else:
                    nxt[_PREV] = prev
                node[_PREV] = node[_NEXT] = None
                node[_QUEUED] = False
                self._waiting -= 1
            n = node[_ASSIGNED]
            if n:
                node[_ASSIGNED] = 0
                woken = self._assign_locked(n)
            else:
                woken = None
        finally:
            lock.append(True)
        if woken is not None:
            self._wake(woken)
        tracer = self._tracer
        if tracer is not None:
            self._trace(tracer, "failed_closed" if self._closed else "cancelled", node[_NEEDED])

    def _trace(self, tracer: TraceFn, kind: str, n: int) -> None:
        with self._hold:
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
        try:
            lock.pop()
        except IndexError:
            _take_contended(lock)
        try:
            if self._fast:
                slow = False
                head = self._head
                if head is None:
                    if self._permits + n <= MAX_PERMITS:
                        self._permits += n
                    else:
                        slow = True
                elif head[_NEEDED] - head[_ASSIGNED] == n:
                    # The usual hand-over: exactly what the head still needs
                    # (_assign_locked's first step, inlined on this hot path).
                    head[_ASSIGNED] = head[_NEEDED]
                    head[_QUEUED] = False
                    self._waiting -= 1
                    nxt = head[_NEXT]
                    self._head = nxt
                    if nxt is None:
                        self._tail = None
                    else:
                        nxt[_PREV] = None
                        head[_NEXT] = None
                    woken = head
                else:
                    woken = self._assign_locked(n)
        finally:
            lock.append(True)
        if slow:  # closed, traced, or over MAX_PERMITS
            self._put_slow(n)
        elif woken is not None:
            if woken[_NEXT] is None and woken[_THREAD] == _get_ident():
                # One waiter, on this thread's loop: _wake's common case, inlined.
                try:
                    woken[_WAKER].set_result(None)
                except asyncio.InvalidStateError:
                    pass  # cancelled meanwhile: its task gives the permits back
                except RuntimeError:  # its loop is closed: it will never resume
                    self._failed(woken)
            else:
                self._wake(woken)

    def _put_slow(self, n: int) -> None:
        with self._hold:
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
        with self._hold:
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
        with self._hold:
            if self._closed:
                return
            self._closed = True
            self._fast = False
            failed = node = self._head
            while node is not None:
                self._permits += node[_ASSIGNED]
                node[_ASSIGNED] = 0
                node[_QUEUED] = False
                node[_PREV] = None
                node = node[_NEXT]
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
        lock = self._lock
        try:
            lock.pop()
        except IndexError:
            _take_contended(lock)
        try:
            closed = self._closed
            ok = not closed and self._permits >= n
            if ok:
                self._permits -= n
        finally:
            lock.append(True)
        if not ok:
            raise Closed() if closed else NoPermits()
        tracer = self._tracer
        if tracer is not None:
            self._trace(tracer, "granted", n)
        return Permit(self, n)

    def _begin(self, n: int, event: threading.Event | None = None) -> _Node | None:
        """Start a request the fast path did not serve; None if served at once, else its node.

        Under the lock: takes what is free if nobody is queued (all of it if
        enough), and links a new node at the tail for the rest. The returned
        node is woken, once served or failed, through its future (an async
        request, on the running loop) or through ``event`` (a blocking one).
        A request for 0 permits is served at once even behind queued waiters
        (as in Tokio). Raises :class:`AcquireError` if the semaphore is closed
        and ``RuntimeError`` for an async request without a running loop.
        """
        if event is None:
            loop = _get_running_loop()
            if loop is None:
                raise RuntimeError("no running event loop")
            node: _Node = [None, None, n, 0, False, loop.create_future(), _get_ident()]
        else:
            node = [None, None, n, 0, False, event, None]
        lock = self._lock
        try:
            lock.pop()
        except IndexError:
            _take_contended(lock)
        try:
            closed = self._closed
            wait = False
            if closed:
                pass
            elif self._head is None:
                free = self._permits
                if free >= n:
                    self._permits = free - n
                else:
                    node[_ASSIGNED] = free
                    self._permits = 0
                    wait = True
            elif n:
                wait = True
            if wait:
                node[_QUEUED] = True
                node[_PREV] = tail = self._tail
                if tail is None:
                    self._head = node
                else:
                    tail[_NEXT] = node
                self._tail = node
                self._waiting += 1
        finally:
            lock.append(True)
        tracer = self._tracer
        if tracer is not None:
            self._trace(tracer, "failed_closed" if closed else "acquire", n)
        if closed:
            raise AcquireError()
        return node if wait else None

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
        node = self._begin(n, event)
        if node is not None:
            try:
                if not event.wait(timeout):
                    with self._hold:
                        # Served or closed between the timeout and now?
                        served = not node[_QUEUED] and node[_ASSIGNED] == n
                        signalled = served or self._closed
                    if not signalled:
                        raise TimeoutError(f"no {n} permits within {timeout} s")
                if self._closed:
                    raise AcquireError()
            except BaseException:
                self._failed(node)
                raise
        tracer = self._tracer
        if tracer is not None:
            self._trace(tracer, "granted", n)
        return Permit(self, n)

    # ------------------------------------------- asyncio.Semaphore drop-in

    async def __aenter__(self) -> None:
        """``async with sem:`` takes one permit for the block (FIFO, like ``acquire(1)``).

        Raises :class:`AcquireError` if the semaphore is or becomes closed;
        cancellation while waiting hands back whatever the request was given.
        """
        lock = self._lock
        queued = False
        # Unlocked peeks at _head, _permits and _fast are only hints; each path
        # re-checks under the lock and falls back to _begin, which handles
        # every case.
        if self._head is None:
            if self._permits:
                try:
                    lock.pop()
                except IndexError:
                    _take_contended(lock)
                try:
                    fast = self._fast and self._permits > 0
                    if fast:
                        self._permits -= 1
                finally:
                    lock.append(True)
                if fast:
                    return
        elif self._fast:
            # Waiters are queued, so no permit is free (the counter invariant):
            # join the tail. This is _begin's contended case, inline: the call
            # alone measured about 2% of a contended acquire-release cycle.
            loop = _get_running_loop()
            if loop is None:
                raise RuntimeError("no running event loop")
            new: _Node = [None, None, 1, 0, False, loop.create_future(), _get_ident()]
            try:
                lock.pop()
            except IndexError:
                _take_contended(lock)
            try:
                tail = self._tail
                if self._fast and tail is not None:
                    queued = True
                    new[_QUEUED] = True
                    new[_PREV] = tail
                    tail[_NEXT] = new
                    self._tail = new
                    self._waiting += 1
            finally:
                lock.append(True)
        node = new if queued else self._begin(1)
        if node is not None:
            # The wait tail; Permit.__await__ repeats it so that a wake-up or a
            # cancellation crosses no generator frame of its own.
            try:
                await node[_WAKER]
                # _closed only goes from False to True, so reading it unlocked
                # is safe: a stale False means close() came after this grant.
                if self._closed:
                    raise AcquireError()
            except BaseException:
                self._failed(node)
                raise
        tracer = self._tracer
        if tracer is not None:
            self._trace(tracer, "granted", 1)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Give the block's permit back: to the oldest waiter if any, else to the counter."""
        woken = None
        lock = self._lock
        try:
            lock.pop()
        except IndexError:
            _take_contended(lock)
        try:
            # _put(1), inline for the same reason as the tail-joining in __aenter__.
            fast = self._fast
            if fast:
                head = self._head
                if head is None:
                    fast = self._permits < MAX_PERMITS
                    if fast:
                        self._permits += 1
                else:
                    # The head still needs at least one permit: this one is its.
                    assigned = head[_ASSIGNED] + 1
                    head[_ASSIGNED] = assigned
                    if assigned == head[_NEEDED]:
                        head[_QUEUED] = False
                        self._waiting -= 1
                        nxt = head[_NEXT]
                        self._head = nxt
                        if nxt is None:
                            self._tail = None
                        else:
                            nxt[_PREV] = None
                            head[_NEXT] = None
                        woken = head
        finally:
            lock.append(True)
        if not fast:  # closed, traced, or over MAX_PERMITS
            self._put_slow(1)
        elif woken is not None:
            if woken[_THREAD] == _get_ident():
                try:
                    woken[_WAKER].set_result(None)
                except asyncio.InvalidStateError:
                    pass  # cancelled meanwhile: its task gives the permit back
                except RuntimeError:  # its loop is closed: it will never resume
                    self._failed(woken)
            else:
                self._wake(woken)


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
        if sem._head is None and sem._permits >= n:  # unlocked hints, see Semaphore.__aenter__
            lock = sem._lock
            try:
                lock.pop()
            except IndexError:
                _take_contended(lock)
            try:
                fast = sem._fast and sem._permits >= n
                if fast:
                    sem._permits -= n
            finally:
                lock.append(True)
        if not fast:
            node = sem._begin(n)
            if node is not None:
                # Semaphore.__aenter__'s wait tail, inline so that a wake-up or
                # a cancellation crosses one generator frame, not two.
                try:
                    yield from node[_WAKER]
                    if sem._closed:  # see Semaphore.__aenter__
                        raise AcquireError()
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
