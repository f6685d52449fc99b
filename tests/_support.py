"""Helpers shared by the batchsem tests: event loops, a reference model, the queue check."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batchsem import Semaphore

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


def real_queue(sem: Any) -> list[tuple[int, int]]:
    """The queue as [(needed, assigned)] head first, through the one test hook.

    ``_queue_snapshot()`` (both implementations have it) checks the links, the
    counter invariant and that the internal lock is free; the count is checked here.
    """
    out: list[tuple[int, int]] = sem._queue_snapshot()
    assert len(out) == sem.waiting, "waiting count disagrees with the queue"
    return out


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
