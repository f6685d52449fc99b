"""Helpers shared by the batchsem core tests: event loops, a reference model, white-box checks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batchsem import Semaphore
from batchsem._semaphore import _ASSIGNED, _NEEDED, _NEXT, _PREV, _QUEUED

uvloop: Any
try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is optional
    uvloop = None

HAVE_UVLOOP = uvloop is not None
LOOP_NAMES = ("asyncio", "uvloop")
HANG_GUARD = 15.0


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    """A fresh event loop of the named kind."""
    if name == "asyncio":
        return asyncio.SelectorEventLoop()
    if name == "uvloop":
        if uvloop is None:
            raise RuntimeError("uvloop is not installed")
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    raise ValueError(name)


def run_async(coro_fn: Callable[[], Any], loop_name: str) -> Any:
    """Run ``coro_fn()`` to completion on a fresh loop; fail on any unhandled loop error."""
    errors: list[dict[str, Any]] = []

    def factory() -> asyncio.AbstractEventLoop:
        loop = new_loop(loop_name)
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        return loop

    async def guarded() -> Any:
        # A hang guard, not a timing assertion: a lost wake-up must fail the test
        # rather than block the whole run. Real tests finish in milliseconds.
        guard = asyncio.timeout(HANG_GUARD)
        try:
            async with guard:
                return await coro_fn()
        except TimeoutError:
            if guard.expired():
                raise AssertionError(f"test still blocked after {HANG_GUARD} s") from None
            raise

    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(guarded())
    assert not errors, f"unhandled errors on the event loop: {errors}"
    return result


async def acquire(sem: Semaphore, n: int = 1) -> Any:
    """``await sem.acquire(n)`` as a coroutine, so it can be wrapped in a Task."""
    return await sem.acquire(n)


def spawn(sem: Semaphore, n: int = 1) -> asyncio.Task[Any]:
    return asyncio.create_task(acquire(sem, n))


async def steps(k: int = 5) -> None:
    """Let the loop run ``k`` iterations."""
    for _ in range(k):
        await asyncio.sleep(0)


async def until(pred: Callable[[], bool], max_steps: int = 10_000) -> None:
    """Step the loop until ``pred()`` holds; fail (instead of hanging) if it never does."""
    for _ in range(max_steps):
        if pred():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def spin_until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll from a plain thread until ``pred()`` holds (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached from thread")
        time.sleep(0.0002)


def real_queue(sem: Semaphore) -> list[tuple[int, int]]:
    """White-box walk of the intrusive queue: [(needed, assigned)] head first, links checked."""
    out: list[tuple[int, int]] = []
    prev = None
    node = sem._head
    while node is not None:
        assert node[_PREV] is prev, "broken prev link"
        assert node[_QUEUED], "linked node not flagged queued"
        assert 0 <= node[_ASSIGNED] <= node[_NEEDED]
        if out:
            assert node[_ASSIGNED] == 0, "only the head may hold a partial reservation"
        out.append((node[_NEEDED], node[_ASSIGNED]))
        prev = node
        node = node[_NEXT]
    assert sem._tail is prev, "tail does not point at the last node"
    assert len(out) == sem.waiting, "waiting count disagrees with the list"
    assert list(sem._lock) == [True], "the lock is held, or its token was duplicated"
    if out:
        assert sem.available_permits == 0, "free permits while someone is queued"
    return out


class RecordingSemaphore(Semaphore):
    """A Semaphore that records, at decision time under its lock, which request got permits.

    The test sets ``next_rid`` right before awaiting ``acquire``; the request's node is
    mapped to it. ``grants`` is the real grant order. Use with a tracer so every
    ``acquire`` goes through ``_begin`` (the tracer-less fast path bypasses it).
    """

    def __init__(self, permits: int, **kwargs: Any) -> None:
        super().__init__(permits, **kwargs)
        self.next_rid: int | None = None
        # id(node) -> request id. Nodes are lists (unhashable); an id reused by a
        # later node is remapped in that node's _begin before it can be served.
        self.rid_of: dict[int, int | None] = {}
        self.grants: list[int | None] = []
        self._in_put = False

    def _begin(self, n: int, event: Any = None) -> Any:
        node = super()._begin(n, event)
        # Mapped before anyone can serve the node: these tests are single-threaded.
        if node is not None:
            self.rid_of[id(node)] = self.next_rid
        # Immediate grants are recorded only when traced (then every acquire comes
        # here); untraced, they may also take the unrecorded fast path.
        elif self._tracer is not None:
            self.grants.append(self.next_rid)
        return node

    def _assign_locked(self, rem: int) -> Any:
        served = super()._assign_locked(rem)
        node = served
        while node is not None and not self._in_put:  # served waiters, chained by _NEXT
            self.grants.append(self.rid_of.get(id(node)))
            node = node[_NEXT]
        return served

    def _put(self, n: int) -> None:
        # _put serves the head in place when it needs exactly n (no _assign_locked
        # call to hook). These tests drive the semaphore from one thread, so the
        # queue cannot change between this prediction and the call; afterwards
        # every predicted node must really have been served.
        predicted = []
        node, rem = (self._head, n) if self._fast else (None, 0)
        while node is not None and rem >= node[_NEEDED] - node[_ASSIGNED]:
            rem -= node[_NEEDED] - node[_ASSIGNED]
            predicted.append(node)
            node = node[_NEXT]
        self._in_put = bool(predicted) or self._fast
        try:
            super()._put(n)
        finally:
            self._in_put = False
        for node in predicted:
            assert not node[_QUEUED] and node[_ASSIGNED] == node[_NEEDED], "served out of order"
            self.grants.append(self.rid_of.get(id(node)))


@dataclass
class Req:
    rid: int
    needed: int
    assigned: int = 0


class Model:
    """A sequential reference model of the semaphore (the spec the tests check against).

    ``pending`` holds requests that were fully granted but whose task has not resumed yet.
    """

    def __init__(self, permits: int) -> None:
        self.counter = permits
        self.closed = False
        self.queue: list[Req] = []
        self.pending: dict[int, int] = {}
        self.grant_order: list[int] = []
        self.queued_ever: set[int] = set()

    def check(self) -> None:
        if self.queue:
            assert self.counter == 0
            assert all(r.assigned == 0 for r in self.queue[1:])

    def request(self, rid: int, n: int) -> str:
        if self.closed:
            return "closed"
        if n == 0 or (not self.queue and self.counter >= n):
            self.counter -= n
            self.pending[rid] = n
            self.grant_order.append(rid)
            return "granted"
        assigned = 0
        if not self.queue:
            assigned, self.counter = self.counter, 0
        self.queue.append(Req(rid, n, assigned))
        self.queued_ever.add(rid)
        return "queued"

    def add(self, k: int) -> None:
        while self.queue and k:
            head = self.queue[0]
            want = head.needed - head.assigned
            if k < want:
                head.assigned += k
                return
            k -= want
            self.queue.pop(0)
            self.pending[head.rid] = head.needed
            self.grant_order.append(head.rid)
        self.counter += k

    def abandon(self, rid: int) -> None:
        for i, r in enumerate(self.queue):
            if r.rid == rid:
                del self.queue[i]
                if r.assigned:
                    self.add(r.assigned)
                return
        n = self.pending.pop(rid, 0)
        if n:
            self.add(n)

    def resume_ok(self, rid: int) -> int:
        assert not self.closed, f"request {rid} succeeded after close"
        assert rid in self.pending, f"request {rid} got permits the FIFO model did not grant"
        return self.pending.pop(rid)

    def resume_closed(self, rid: int) -> None:
        assert self.closed
        assert all(r.rid != rid for r in self.queue)
        n = self.pending.pop(rid, 0)
        if n:
            self.add(n)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for r in self.queue:
            self.counter += r.assigned
        self.queue.clear()

    def try_acquire(self, k: int) -> str:
        if self.closed:
            return "closed"
        if k and self.queue:  # no barging
            return "none"
        if self.counter < k:
            return "none"
        self.counter -= k
        return "ok"

    def forget(self, k: int) -> int:
        taken = min(k, self.counter)
        self.counter -= taken
        return taken

    def reserved(self) -> int:
        """Permits handed to requests that do not hold a Permit yet (partial or whole)."""
        return sum(r.assigned for r in self.queue) + sum(self.pending.values())

    def snapshot(self) -> list[tuple[int, int]]:
        return [(r.needed, r.assigned) for r in self.queue]
