"""Stranded waiters and the queue behind them (issue 8): the queue moves by itself.

A waiter is stranded when its event loop is closed after a release has already
scheduled its wake-up: it never resumes, and it holds the permits it was handed.
The waiters queued behind it must get those permits within a bounded delay (the
re-check of invariant (S) in ``batchsem._waitlist.stranded``: at most ~1 s, 10 ms
doubling), with no further call into the semaphore and the garbage collector off.

Each loop that is to strand a waiter is a :class:`Driven` loop: it runs in its own
thread but only when told to, so a wake-up sent to it waits in its ready queue
until the loop is closed, which drops it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _support import new_loop, until

from batchsem import AcquireError, Semaphore

#: How long a test waits for the queue to move with no call into the semaphore.
#: The re-check interval is capped at 1 s; the first re-checks come after 10, 20,
#: 40 ms, so these tests normally finish in tens of milliseconds.
BOUND = 5.0


class Driven:
    """An event loop in its own thread, run only on request (``run``, ``start``/``stop``)."""

    def __init__(self, loop_name: str) -> None:
        self.errors: list[dict[str, Any]] = []
        self._cmds: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        self.loop: asyncio.AbstractEventLoop = self.call(lambda: new_loop(loop_name))
        self.loop.set_exception_handler(lambda _loop, ctx: self.errors.append(ctx))

    def _main(self) -> None:
        while True:
            item = self._cmds.get()
            if item is None:
                return
            fn, fut = item
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` in the loop's thread and return its result."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._cmds.put((fn, fut))
        return fut.result(BOUND)

    def run(self, coro_fn: Callable[[], Any]) -> Any:
        """``loop.run_until_complete(coro_fn())`` in the loop's thread; the loop stops after."""
        return self.call(lambda: self.loop.run_until_complete(coro_fn()))

    def start(self) -> None:
        """Let the loop run (``run_forever``) until :meth:`stop`."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._cmds.put((self.loop.run_forever, fut))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.call(lambda: None)  # returns once run_forever has returned

    def close(self) -> None:
        """Close the (stopped) loop: the wake-ups waiting in it are dropped."""
        self.call(self.loop.close)

    def finish(self) -> None:
        if not self.loop.is_closed():
            if self.loop.is_running():
                self.stop()
            self.close()
        self._cmds.put(None)
        self.thread.join(BOUND)


@contextlib.contextmanager
def driven(loop_name: str, k: int) -> Iterator[list[Driven]]:
    loops = [Driven(loop_name) for _ in range(k)]
    try:
        yield loops
    finally:
        for d in loops:
            d.finish()


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """The permits must come back without the collector."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Waiting:
    """A task on a driven loop that waits for ``n`` permits and records when it got them."""

    def __init__(self, sem: Any, d: Driven, n: int, hold: bool = False) -> None:
        self.sem, self.n, self.hold, self.driven = sem, n, hold, d
        self.served = threading.Event()
        self.failed: BaseException | None = None
        before = sem.waiting

        async def queue_it() -> asyncio.Task[None]:
            task = asyncio.get_running_loop().create_task(self._body())
            await until(lambda: sem.waiting > before)
            return task

        self.task: asyncio.Task[None] = d.run(queue_it)

    async def _body(self) -> None:
        try:
            permit = await self.sem.acquire(self.n)
        except BaseException as exc:
            self.failed = exc
            self.served.set()
            raise
        assert permit.num_permits == self.n
        self.served.set()
        if not self.hold:
            permit.release()

    def dispose(self) -> None:
        """Drop a task stranded on a closed loop (runs the acquire's clean-up)."""
        self.task._log_destroy_pending = False  # type: ignore[attr-defined]
        self.task.get_coro().close()


class Blocking:
    """A plain thread blocked in ``acquire_blocking(n)``; releases what it got."""

    def __init__(self, sem: Any, n: int) -> None:
        self.served = threading.Event()
        self.error: BaseException | None = None
        before = sem.waiting

        def body() -> None:
            try:
                permit = sem.acquire_blocking(n, timeout=BOUND * 4)
                self.served.set()
                permit.release()
            except BaseException as exc:
                self.error = exc
                self.served.set()

        self.thread = threading.Thread(target=body, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + BOUND
        while sem.waiting == before:
            assert time.monotonic() < deadline, "the blocking waiter never queued"
            time.sleep(0.001)


def release_from_another_thread(sem: Any, n: int) -> None:
    """Release so that every async waiter is woken through call_soon_threadsafe."""
    t = threading.Thread(target=sem.release, args=(n,))
    t.start()
    t.join(BOUND)


# ----------------------------------------------------------- the scenario of the issue


@pytest.mark.parametrize("behind", ["async", "blocking"])
@pytest.mark.parametrize("closed", ["woken", "queued"])
def test_the_queue_behind_a_stranded_waiter_moves_by_itself(
    loop_name: str, behind: str, closed: str
) -> None:
    """T1 waits for 3 on Semaphore(0); a waiter on T2's loop (or a blocking thread) queues
    behind for 1 or 2. ``woken``: 3 are released, T1's wake-up is scheduled, T1's loop is
    closed before it runs. ``queued``: 2 are released, handed to T1's waiter at the head
    (2 of its 3), and T1's loop is closed while it still waits; with no more permits
    coming everyone behind it would wait for ever. Either way, with no further call
    into the semaphore, the waiter behind gets what T1's waiter held."""
    sem = Semaphore(0)
    released = 3 if closed == "woken" else 2
    with driven(loop_name, 2) as (t1, t2):
        stuck = Waiting(sem, t1, 3)
        want = 1 if closed == "woken" else 2
        if behind == "async":
            w: Any = Waiting(sem, t2, want)
            t2.start()
        else:
            w = Blocking(sem, want)
        assert sem.waiting == 2
        release_from_another_thread(sem, released)  # T1's waiter: served, or handed 2
        assert sem.waiting == (1 if closed == "woken" else 2)
        assert sem.available_permits == 0
        with no_gc():
            t1.close()  # T1's waiter never resumes
            assert w.served.wait(BOUND), "the waiter behind a stranded one was never served"
        if behind == "async":
            assert w.failed is None
            t2.stop()
        else:
            assert w.error is None
            w.thread.join(BOUND)
        assert sem.available_permits == released
        assert sem.waiting == 0
        stuck.dispose()  # the acquire's clean-up gives back nothing more
        assert sem.available_permits == released
        assert not t1.errors and not t2.errors


def test_a_resumed_waiter_whose_loop_closed_later_keeps_its_permit(loop_name: str) -> None:
    """The dead-head check looks only at queued waiters: a waiter that was served and
    resumed, then had its loop closed, holds a real Permit, and nothing gives it back."""
    sem = Semaphore(0)
    with driven(loop_name, 2) as (t1, t2):
        holder = Waiting(sem, t1, 1, hold=True)
        t1.start()
        release_from_another_thread(sem, 1)
        assert holder.served.wait(BOUND)  # served and resumed: it holds a Permit
        t1.stop()
        w = Waiting(sem, t2, 1)  # a second loop: its waiter re-checks
        t2.start()
        with no_gc():
            t1.close()
            time.sleep(0.3)  # re-checks at 10, 20, 40, 80, 160 ms
        assert not w.served.is_set()  # mutual exclusion holds
        assert sem.waiting == 1 and sem.available_permits == 0
        release_from_another_thread(sem, 1)  # the holder's permit, released by its owner
        assert w.served.wait(BOUND)
        t2.stop()
        assert sem.available_permits == 1


def test_woken_from_its_own_thread_while_stopped(loop_name: str) -> None:
    """The stranded waiter is woken by a release from its own loop's thread while the loop
    is stopped (the inline same-thread wake), then the loop is closed."""
    sem = Semaphore(0)
    with driven(loop_name, 2) as (t1, t2):
        stuck = Waiting(sem, t1, 2)
        w = Waiting(sem, t2, 2)
        t2.start()
        t1.call(lambda: sem.release(2))
        with no_gc():
            t1.close()
            assert w.served.wait(BOUND)
        t2.stop()
        assert sem.available_permits == 2
        stuck.dispose()
        assert not t2.errors


def test_two_loops_on_one_thread(loop_name: str) -> None:
    """The stranded waiter's loop and the waiter behind it run on the same thread, one
    after the other: the re-check is keyed on loops, not threads."""
    sem = Semaphore(0)
    with driven(loop_name, 1) as (t1,):
        stuck = Waiting(sem, t1, 1)
        old = t1.loop
        t1.loop = t1.call(lambda: new_loop(loop_name))
        w = Waiting(sem, t1, 1)
        t1.start()
        release_from_another_thread(sem, 1)  # to the old, stopped loop
        with no_gc():
            old.close()
            assert w.served.wait(BOUND)
        t1.stop()
        assert sem.available_permits == 1
        stuck.dispose()


@pytest.mark.parametrize("late_close", [False, True])
def test_several_stranded_waiters_in_a_row(loop_name: str, late_close: bool) -> None:
    """Two stranded waiters on two loops, then a live one. With ``late_close`` the second
    is still queued when its loop closes: it is served from the first one's permits, its
    wake-up fails, and it passes them on."""
    sem = Semaphore(0)
    with driven(loop_name, 3) as (a, b, c):
        s1 = Waiting(sem, a, 2)
        s2 = Waiting(sem, b, 1)
        w = Waiting(sem, c, 1)
        c.start()
        if late_close:
            release_from_another_thread(sem, 2)  # only s1 is served
            assert sem.waiting == 2
        else:
            release_from_another_thread(sem, 3)  # s1 and s2 are served
            assert sem.waiting == 1
        with no_gc():
            a.close()
            b.close()
            if late_close:
                release_from_another_thread(sem, 1)
            assert w.served.wait(BOUND)
        c.stop()
        assert sem.available_permits == 3
        assert sem.waiting == 0
        s1.dispose()
        s2.dispose()
        assert sem.available_permits == 3


@pytest.mark.parametrize("how", ["cancel", "close"])
def test_the_waiter_behind_leaves_first(loop_name: str, how: str) -> None:
    """The waiter behind a stranded one is cancelled, or the semaphore is closed, before
    its re-check runs: its re-check stops, nothing is reported on its loop, and nothing
    is lost."""
    sem = Semaphore(0)
    with driven(loop_name, 2) as (t1, t2):
        stuck = Waiting(sem, t1, 2)
        w = Waiting(sem, t2, 1)
        release_from_another_thread(sem, 2)
        t1.close()
        if how == "cancel":
            t2.call(w.task.cancel)
        else:
            sem.close()
        t2.start()
        assert w.served.wait(BOUND)
        expected = asyncio.CancelledError if how == "cancel" else AcquireError
        assert isinstance(w.failed, expected)
        time.sleep(0.1)  # let the re-check timers fire (they find the waiter gone)
        t2.stop()
        assert not t2.errors
        assert sem.waiting == 0
        assert sem.available_permits == 2  # the stranded permits, reclaimed here
        stuck.dispose()
        assert sem.available_permits == 2


@pytest.mark.parametrize("how", ["async", "blocking"])
def test_a_new_request_takes_stranded_permits_back_in_the_same_call(
    loop_name: str, how: str
) -> None:
    """A request that finds nobody queued and too few permits first looks for woken
    waiters whose loop closed: it is served by that very call, before any re-check
    could run (an async request on a second loop; a blocking one with timeout 0)."""
    sem = Semaphore(0)
    with driven(loop_name, 2) as (t1, t2):
        stuck = Waiting(sem, t1, 1)
        release_from_another_thread(sem, 1)  # its wake-up waits in the stopped loop
        assert sem.waiting == 0
        with no_gc():
            t1.close()
            if how == "async":

                async def first_step() -> Any:
                    gen = sem.acquire(1).__await__()
                    try:
                        fut = gen.send(None)
                    except StopIteration as stop:  # no suspension at all
                        return stop.value
                    assert fut.done() and sem.waiting == 0  # served inside the call
                    await fut
                    with pytest.raises(StopIteration) as stop:
                        gen.send(None)
                    return stop.value.value

                permit = t2.run(first_step)
            else:
                permit = sem.acquire_blocking(1, timeout=0)
        assert permit.num_permits == 1
        permit.release()
        assert sem.available_permits == 1
        stuck.dispose()
        assert sem.available_permits == 1
        assert not t2.errors


def test_a_single_loop_arms_no_recheck(loop_name: str) -> None:
    """Waiters of one loop never re-check: nothing is scheduled on the loop for them."""
    if loop_name != "asyncio":
        pytest.skip("reads the asyncio loop's timer heap")

    async def main() -> None:
        sem = Semaphore(0)
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(_take(sem, 1)) for _ in range(3)]
        await until(lambda: sem.waiting == 3)
        assert not loop._scheduled  # type: ignore[attr-defined]
        sem.release(3)
        await asyncio.gather(*tasks)

    loop = new_loop(loop_name)
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


async def _take(sem: Any, n: int) -> None:
    (await sem.acquire(n)).release()


# ------------------------------------------------------------- randomized, many seeds


@pytest.mark.parametrize("seed", range(12))
def test_random_loops_closed_at_random_points(loop_name: str, seed: int) -> None:
    """Random waiters (sizes, loops, blocking threads) queue on a semaphore whose permits
    are all held; the permits come back in random chunks while some loops are closed at
    random points (stranding whatever was woken on them). Then, with no call into the
    semaphore and the collector off, every waiter of a live loop and every blocking
    waiter is served within the bound, and afterwards all permits are accounted for."""
    rng = random.Random(seed)
    initial = rng.randint(1, 4)
    sem = Semaphore(initial)
    hold = sem.try_acquire(initial)
    k = 3
    with driven(loop_name, k) as loops:
        doomed = set(rng.sample(range(k), rng.randint(1, k - 1)))
        waiters: list[tuple[int | None, Any]] = []
        for _ in range(rng.randint(3, 7)):
            n = rng.randint(1, initial)
            if rng.random() < 0.2:
                waiters.append((None, Blocking(sem, n)))
            else:
                i = rng.randrange(k)
                waiters.append((i, Waiting(sem, loops[i], n)))
        for i in range(k):
            if i not in doomed:
                loops[i].start()
        # Release in chunks; close each doomed loop after a random chunk.
        chunks: list[int] = []
        left = initial
        while left:
            c = rng.randint(1, left)
            chunks.append(c)
            left -= c
        close_at = {i: rng.randrange(len(chunks) + 1) for i in doomed}
        with no_gc():
            for step in range(len(chunks) + 1):
                for i, at in close_at.items():
                    if at == step:
                        loops[i].close()
                if step < len(chunks):
                    hold.split(chunks[step]).release()  # type: ignore[union-attr]
            # From here on nothing calls into the semaphore until the live are served.
            live = [w for i, w in waiters if i is None or i not in doomed]
            deadline = time.monotonic() + BOUND
            for w in live:
                assert w.served.wait(max(0.0, deadline - time.monotonic())), (
                    f"seed {seed}: a live waiter was not served"
                )
        for i, w in waiters:
            if isinstance(w, Blocking):
                w.thread.join(BOUND)
                assert w.error is None
            elif i not in doomed:
                assert w.failed is None
        for i in range(k):
            if i not in doomed:
                loops[i].stop()
                assert not loops[i].errors
        # Every permit is free, or reserved by a waiter of a closed loop that is still
        # queued (it was never served: it gives back when served or disposed of).
        free = sem.available_permits  # reclaims what stranded waiters still hold
        queued = sem._queue_snapshot()
        assert len(queued) <= sum(1 for i, _ in waiters if i in doomed)
        assert free + sum(assigned for _, assigned in queued) == initial
        for i, w in waiters:
            if i in doomed:
                w.dispose()
        assert sem.waiting == 0
        assert sem.available_permits == initial


def test_reclaim_skips_a_waiter_that_resumed_before_its_loop_closed(
    impl: Any, loop_name: str
) -> None:
    """A reclaim that listed a woken waiter, which then resumed (keeping its permit)
    before its loop was closed, must not give that permit back a second time."""
    if impl.name != "python":
        pytest.skip("replaces the Python core's record of woken waiters (_granted)")
    sem = Semaphore(0)
    loop = new_loop(loop_name)
    try:
        task = loop.create_task(_hold(sem))
        loop.run_until_complete(until(lambda: sem.waiting == 1))
        sem.release(1)  # from the loop's thread while it is stopped: woken, recorded
        (node,) = sem._granted
        loop.run_until_complete(task)  # resumes, leaves the record, keeps the permit
    finally:
        loop.close()
    permit = task.result()

    class Listed(set):  # type: ignore[type-arg]
        """What the reclaim listed before the waiter resumed."""

        def __iter__(self) -> Iterator[Any]:
            return iter([node])

    sem._granted = Listed()
    sem._reclaim()
    assert sem.available_permits == 0
    assert permit.num_permits == 1
    permit.release()
    assert sem.available_permits == 1


async def _hold(sem: Any) -> Any:
    return await sem.acquire(1)
