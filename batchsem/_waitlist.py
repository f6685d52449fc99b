"""The semaphore's wait queue: an intrusive FIFO list of :class:`Waiter` nodes.

Every waiter is a node carrying its own ``prev``/``next`` links, so a
cancelled waiter leaves the queue in O(1) without searching for itself
(``collections.deque.remove`` is O(n), which is what makes cancelling many
queued ``asyncio.Semaphore`` waiters quadratic).

This module owns every change to a node, except two copies in
``Semaphore.__aenter__``/``__aexit__`` (tagged "inline of", with their measured
gain) of :meth:`WaitList.push` and of the exact-fit case of
:meth:`WaitList.assign`. Permits are handed to the queue head first
(:meth:`WaitList.assign`); a head that needs more than it is given keeps what it
got (a partial reservation) and nothing goes past it. Served nodes are unlinked
and returned as a chain (through ``next``) for the caller to wake with
:func:`wake` once it has released its lock.

Lock discipline: every :class:`WaitList` method and every write to a node's
``prev``, ``next``, ``assigned`` or ``queued`` happens while the owning
semaphore's lock is held, with one exception: a chain of nodes the queue has
let go of (served or failed, no longer queued) belongs to the caller that
received it, and :func:`wake` unchains it. ``needed``, ``waker`` and ``thread``
are set before a node is queued and never change, so anyone may read them:
another thread may serve the node as soon as the lock is released and wakes
it through them. No method allocates a garbage-collected object (a garbage
collection inside a locked region could run a ``__del__`` that re-enters the
lock), except the :meth:`WaitList.snapshot` test hook.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

__all__ = [
    "RECHECK_FIRST",
    "RECHECK_MAX",
    "Signal",
    "WaitList",
    "Waiter",
    "next_recheck",
    "stranded",
    "wake",
]

_get_ident = threading.get_ident

#: The re-check of a queued waiter that a stranded node may block (see
#: :func:`stranded`): first after ``RECHECK_FIRST`` seconds, then at doubling
#: intervals up to ``RECHECK_MAX``. So permits held by a node whose loop was
#: closed reach the queue at most ``RECHECK_MAX`` seconds (plus the time the
#: waiter's own loop or thread takes to run the check) after the loop closed.
#: The compiled core uses the same two values.
RECHECK_FIRST = 0.01
RECHECK_MAX = 1.0


class Signal:
    """The waker of a blocking waiter: set by whoever serves or fails it, waited on by its thread.

    A ``threading.Event`` without the Condition: a lock, taken when made, that
    :meth:`set` releases. On CPython 3.11 it is made in about a tenth of the
    time of an Event, and a wait is one lock acquire. Only the waiting thread
    calls :meth:`wait`; any thread may call :meth:`set`, any number of times.
    """

    __slots__ = ("_flag", "_lock")

    def __init__(self) -> None:
        self._flag = False
        self._lock = threading.Lock()
        self._lock.acquire()

    def set(self) -> None:
        """Mark it set and let the waiting thread through (now or at its next wait)."""
        # The flag first: a wait that times out just before the release still
        # reports the signal.
        self._flag = True
        with contextlib.suppress(RuntimeError):  # set before, not taken back by a wait since
            self._lock.release()

    def is_set(self) -> bool:
        return self._flag

    def wait(self, timeout: float) -> bool:
        """True once set; False if ``timeout`` seconds (>= 0) passed first.

        Interruptible: a signal handler's exception (``KeyboardInterrupt``)
        propagates out of the wait.
        """
        if self._flag:
            return True
        return self._lock.acquire(True, timeout) or self._flag


class Waiter:
    """One queued request for ``needed`` permits.

    Made by :meth:`new`. The class has no ``__init__``, so that ``Waiter()``
    allocates without running Python code: the contended path of
    ``Semaphore.__aenter__`` builds its node as ``Waiter()`` plus slot stores
    (see the measurement there). Until a field is stored, reading it raises
    ``AttributeError``.
    """

    __slots__ = ("assigned", "needed", "next", "prev", "queued", "thread", "waker")

    #: Towards the head, or None at the head. Lock held.
    prev: Waiter | None
    #: Towards the tail, or, once let go of, the next node of a chain to wake.
    next: Waiter | None
    #: Permits requested. Constant.
    needed: int
    #: Permits handed to the request so far; 0 <= assigned <= needed. Lock held.
    assigned: int
    #: True exactly while the node is linked into a queue. Lock held.
    queued: bool
    #: The asyncio.Future an async waiter awaits, or the :class:`Signal` a
    #: blocking one waits on. Constant.
    waker: Any
    #: The ident of the thread running an async waiter's loop (the thread that
    #: made the node); None for a blocking waiter. Constant: a loop moved to
    #: another thread while a task waits on it is not supported.
    thread: int | None

    @classmethod
    def new(cls, needed: int, waker: Any, thread: int | None) -> Waiter:
        """A node not yet queued: no links, nothing assigned."""
        node = cls()
        node.prev = node.next = None
        node.needed = needed
        node.assigned = 0
        node.queued = False
        node.waker = waker
        node.thread = thread
        return node


class WaitList:
    """The FIFO queue of one semaphore. Every method requires the semaphore's lock."""

    __slots__ = ("count", "head", "leftover", "tail")

    def __init__(self) -> None:
        # Invariant: only the head may hold a partial reservation (assigned > 0
        # with assigned < needed); every other node has assigned == 0. Permits
        # are handed out head first, and a new node takes free permits (push's
        # ``assigned``) only when it becomes the head of an empty queue.
        self.head: Waiter | None = None
        self.tail: Waiter | None = None
        #: The number of linked nodes.
        self.count = 0
        #: What the last :meth:`assign` or :meth:`fail_all` left over.
        self.leftover = 0

    def push(self, node: Waiter, assigned: int = 0) -> None:
        """Link ``node`` at the tail, holding ``assigned`` permits (only for a new head)."""
        node.assigned = assigned
        node.queued = True
        node.prev = tail = self.tail
        if tail is None:
            self.head = node
        else:
            tail.next = node
        self.tail = node
        self.count += 1

    def withdraw(self, node: Waiter) -> int:
        """Unlink ``node`` if queued; take back and return what it had been handed.

        For a request that will not complete (cancelled, failed, or served but
        never resumed). A second call returns 0.
        """
        if node.queued:
            prev = node.prev
            nxt = node.next
            if prev is None:
                self.head = nxt
            else:
                prev.next = nxt
            if nxt is None:
                self.tail = prev
            else:
                nxt.prev = prev
            node.prev = node.next = None
            node.queued = False
            self.count -= 1
        n = node.assigned
        node.assigned = 0
        return n

    def assign(self, rem: int) -> Waiter | None:
        """Hand ``rem`` permits to the queue, head first; return the served nodes.

        Each node that becomes fully served is unlinked; the served nodes are
        returned as a chain through ``next`` (oldest first), for :func:`wake`.
        A head that needs more than what is left keeps it as a partial
        reservation. What no node needed is left in :attr:`leftover`.
        """
        node = self.head
        if node is not None and node.needed - node.assigned == rem:
            # The usual hand-over: exactly what the head still needs.
            node.assigned = node.needed
            node.queued = False
            self.count -= 1
            self.leftover = 0
            nxt = node.next
            self.head = nxt
            if nxt is None:
                self.tail = None
            else:
                nxt.prev = None
                node.next = None
            return node
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
            self.count -= 1
            last = node
            node = node.next
        self.leftover = rem
        if last is None:
            return None
        served = self.head
        last.next = None
        self.head = node
        if node is None:
            self.tail = None
        else:
            node.prev = None
        return served

    def fail_all(self) -> Waiter | None:
        """Unlink every node, taking back what each held; return them as a chain to wake.

        The permits taken back are left in :attr:`leftover`.
        """
        total = 0
        failed = node = self.head
        while node is not None:
            total += node.assigned
            node.assigned = 0
            node.queued = False
            node.prev = None
            node = node.next
        self.head = self.tail = None
        self.count = 0
        self.leftover = total
        return failed

    def head_assigned(self) -> int:
        """The partial reservation of the head (0 for an empty queue)."""
        head = self.head
        return 0 if head is None else head.assigned

    def wanted(self) -> int:
        """The permits the queued requests still need, in total. O(len)."""
        total = 0
        node = self.head
        while node is not None:
            total += node.needed - node.assigned
            node = node.next
        return total

    def snapshot(self) -> list[tuple[int, int]]:
        """``[(needed, assigned), ...]`` head first, after checking every link and invariant.

        Raises ``AssertionError`` if the structure is broken. A test hook: it
        allocates, so it must not be used where a collection could re-enter.
        """
        out: list[tuple[int, int]] = []
        prev = None
        node = self.head
        while node is not None:
            if node.prev is not prev:
                raise AssertionError("broken prev link")
            if not node.queued:
                raise AssertionError("linked node not flagged queued")
            if not 0 <= node.assigned <= node.needed:
                raise AssertionError("assigned outside 0..needed")
            if out and node.assigned:
                raise AssertionError("only the head may hold a partial reservation")
            out.append((node.needed, node.assigned))
            prev = node
            node = node.next
        if self.tail is not prev:
            raise AssertionError("tail does not point at the last node")
        if len(out) != self.count:
            raise AssertionError("count disagrees with the list")
        return out


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def wake(chain: Waiter | None, granted: set[Waiter]) -> list[Waiter] | None:
    """Resume every node of a chain the queue let go of, each on its own loop or thread.

    Call without the lock: waking runs callbacks. Each async node is added to
    ``granted`` (the semaphore's record of nodes woken but not yet resumed)
    before its wake-up is scheduled. Returns the nodes that will never resume
    because their loop is closed; the caller must take back what they hold. (A
    node whose future was cancelled meanwhile gives its permits back itself,
    when its task runs and sees the cancellation.)
    """
    lost: list[Waiter] | None = None
    ident = _get_ident()
    node = chain
    while node is not None:
        nxt = node.next
        node.next = None
        waker = node.waker
        thread = node.thread
        if thread is None:  # a blocking waiter
            waker.set()
        else:
            granted.add(node)
            try:
                if thread == ident:  # on the waiter's own loop thread
                    waker.set_result(None)
                else:
                    waker.get_loop().call_soon_threadsafe(_resolve, waker)
            except asyncio.InvalidStateError:
                # Cancelled meanwhile: its task gives the permits back when it
                # runs (as in Tokio; the FIFO model of the tests relies on it).
                pass
            except RuntimeError:
                # Its loop is closed: it will never resume.
                granted.discard(node)
                if lost is None:
                    lost = []
                lost.append(node)
        node = nxt
    return lost


def stranded(node: Waiter) -> bool:
    """True if ``node`` is an async waiter whose event loop is closed: it will never resume.

    Stranded nodes and the queue. A node woken (its wake-up scheduled on its
    loop) whose loop is then closed before the wake-up runs never resumes, and
    nothing runs when a loop is closed, so the permits it was handed come back
    only when someone looks: the semaphore's reclaim (``Semaphore._reclaim``)
    gives back every stranded node of its record of woken-but-unresumed nodes.
    Inspections and new requests run it; for the waiters already queued, the
    semaphore keeps this invariant:

    (S) Every queued waiter that a stranded node could block re-checks with a
    bounded delay (:data:`RECHECK_FIRST` doubling to :data:`RECHECK_MAX`)
    until it leaves the queue or the semaphore is closed. A blocking waiter
    always does (its wait is a series of timed waits). An async waiter does
    when it was queued after async waiters of two different event loops had
    queued (``Semaphore._home`` is then ``MANY``): a timer on its own loop.

    Why that is enough: a stranded node S blocks a queued waiter W only if W
    is on another loop than S (a waiter on S's loop never resumes either) and
    S was queued before W (FIFO: a node queued after W is served after W).
    When W queued, S's loop had therefore queued a waiter already, so W's
    queueing found or made ``MANY``. Single-loop use never sets ``MANY`` and
    pays nothing.
    """
    return node.thread is not None and node.waker.get_loop().is_closed()


def next_recheck(delay: float) -> float:
    """The interval after a re-check that waited ``delay`` seconds (doubling, capped)."""
    delay += delay
    return RECHECK_MAX if delay > RECHECK_MAX else delay
