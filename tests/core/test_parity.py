"""asyncio parity and "nothing lost at the edges" (issue 8): the asyncio idiom, Tasks
wrapping ``acquire``, ``locked()``, ``BoundedSemaphore``, ``statistics()``, weak
references, Permits as handles, the opt-in leak detector, and the edge cases."""

from __future__ import annotations

import asyncio
import collections.abc
import gc
import math
import threading
import warnings
import weakref
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from _support import new_loop, real_queue, spawn, steps, until

from batchsem import (
    MAX_PERMITS,
    AcquireError,
    BoundedSemaphore,
    Mutex,
    NoPermits,
    Permit,
    RwLock,
    Semaphore,
    SemaphoreStatistics,
)

# ------------------------------------------------------------------ the asyncio idiom


@pytest.mark.parametrize("initial", [1, 2])
def test_asyncio_idiom_keeps_mutual_exclusion(run: Any, initial: int) -> None:
    """``await sem.acquire()`` (result discarded) ... ``sem.release()``, 5 workers."""

    async def main() -> None:
        sem = Semaphore(initial)
        inside = 0
        most = 0

        async def worker() -> None:
            nonlocal inside, most
            await sem.acquire()  # result not kept, as with asyncio
            try:
                inside += 1
                most = max(most, inside)
                gc.collect()  # the discarded Permit is collected: nothing happens
                await asyncio.sleep(0.01)
                inside -= 1
            finally:
                sem.release()

        await asyncio.gather(*[worker() for _ in range(5)])
        gc.collect()
        assert most == initial
        assert sem.available_permits == initial
        assert sem.waiting == 0

    run(main)


def test_release_defaults_to_one() -> None:
    sem = Semaphore(0)
    sem.release()
    assert sem.available_permits == 1
    sem.add_permits(2)
    assert sem.available_permits == 3


# ------------------------------------------------------------------ acquire in Tasks


def test_acquire_is_coroutine_like() -> None:
    sem = Semaphore(1)
    req = sem.acquire(1)
    assert asyncio.iscoroutine(req)
    assert isinstance(req, collections.abc.Coroutine)
    assert isinstance(req, collections.abc.Awaitable)
    req.close()  # never started: nothing taken, nothing queued
    assert sem.available_permits == 1 and sem.waiting == 0


def test_acquire_with_create_task_taskgroup_ensure_future_wait_for_timeout(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(2)
        p = await asyncio.create_task(sem.acquire(2))
        assert isinstance(p, Permit) and p.num_permits == 2
        p.release()
        async with asyncio.TaskGroup() as tg:
            t1 = tg.create_task(sem.acquire(1))
            t2 = tg.create_task(sem.acquire(1))
        assert sem.available_permits == 0
        t1.result().release()
        t2.result().release()
        p = await asyncio.ensure_future(sem.acquire(2))
        p.release()
        p = await asyncio.wait_for(sem.acquire(2), timeout=5)
        p.release()
        async with asyncio.timeout(5):
            p = await sem.acquire(2)
        p.release()
        assert sem.available_permits == 2

    run(main)


def test_wait_for_timeout_on_queued_acquire_hands_back(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(3)
        hold = sem.try_acquire(2)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(sem.acquire(3), timeout=0.01)
        assert sem.available_permits == 1 and sem.waiting == 0
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await sem.acquire(3)
        assert sem.available_permits == 1 and sem.waiting == 0
        hold.release()
        assert sem.available_permits == 3

    run(main)


def test_cancel_task_wrapping_acquire(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(1)
        hold = sem.try_acquire(1)
        waiter = asyncio.create_task(sem.acquire(3))
        await until(lambda: sem.waiting == 1)
        hold.release()  # partial reservation: the head holds 1 of 3
        assert real_queue(sem) == [(3, 1)]
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert sem.available_permits == 1 and sem.waiting == 0
        # cancelled before its first step: nothing is ever queued
        early = asyncio.create_task(sem.acquire(5))
        early.cancel()
        with pytest.raises(asyncio.CancelledError):
            await early
        assert sem.available_permits == 1 and sem.waiting == 0

    run(main)


def test_acquire_closed_semaphore_in_a_task(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(0)
        waiter = asyncio.create_task(sem.acquire(1))
        await until(lambda: sem.waiting == 1)
        sem.close()
        with pytest.raises(AcquireError):
            await waiter

    run(main)


@pytest.mark.parametrize("how", ["on the loop", "by a subclass"])
def test_waits_take_their_future_from_the_loops_create_future(how: str) -> None:
    """A wait's future comes from ``loop.create_future()`` as the loop resolves it: one set
    on the loop object, or overridden by the loop's class, is the one called."""
    made: list[asyncio.Future[Any]] = []

    class CountingLoop(asyncio.SelectorEventLoop):
        def create_future(self) -> asyncio.Future[Any]:
            fut = super().create_future()
            made.append(fut)
            return fut

    loop: asyncio.AbstractEventLoop
    if how == "by a subclass":
        loop = CountingLoop()
    else:
        loop = asyncio.SelectorEventLoop()
        stock = loop.create_future

        def counting() -> asyncio.Future[Any]:
            fut = stock()
            made.append(fut)
            return fut

        loop.create_future = counting  # type: ignore[method-assign]

    async def main() -> None:
        sem = Semaphore(0)

        async def block() -> None:
            async with sem:
                pass

        waiters = [
            asyncio.create_task(sem.acquire(1)),
            asyncio.create_task(sem.acquire(2)),
            asyncio.create_task(block()),
        ]
        await until(lambda: sem.waiting == 3)
        assert len(made) == 3
        sem.release(4)
        one, two, _ = await asyncio.gather(*waiters)
        one.release()
        two.release()
        assert sem.available_permits == 4 and all(f.done() for f in made)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


# ------------------------------------------------------------------ locked()


def test_locked_means_acquire_would_wait(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(2)
        assert not sem.locked()
        a = await sem.acquire()
        assert not sem.locked()
        b = await sem.acquire()
        assert sem.locked()
        a.release()
        assert not sem.locked()
        waiter = spawn(sem, 2)  # takes the free one, queues for the other
        await until(lambda: sem.waiting == 1)
        assert sem.locked()
        b.release()
        (await waiter).release()
        assert not sem.locked()
        assert Semaphore(0).locked()

    run(main)


# ------------------------------------------------------------------ BoundedSemaphore


def test_bounded_release_beyond_initial_value_changes_nothing() -> None:
    sem = BoundedSemaphore()
    assert sem.available_permits == 1
    with pytest.raises(ValueError):
        sem.release()
    assert sem.available_permits == 1
    p = sem.try_acquire()
    sem.release()
    assert sem.available_permits == 1
    with pytest.raises(ValueError):
        p.release()  # the anonymous release already gave this permit back
    assert p.num_permits == 1  # refused: the Permit keeps it
    assert sem.available_permits == 1
    assert isinstance(sem, Semaphore)


def test_bounded_refuses_requests_above_capacity_at_once(run: Any) -> None:
    async def main() -> None:
        sem = BoundedSemaphore(3)
        with pytest.raises(ValueError, match="capacity"):
            sem.acquire(4)
        with pytest.raises(ValueError, match="capacity"):
            sem.try_acquire(4)
        with pytest.raises(ValueError, match="capacity"):
            sem.acquire_blocking(4)
        async with sem.acquire(3) as p:
            assert p.num_permits == 3
        assert sem.available_permits == 3 and sem.waiting == 0
        assert sem.statistics().capacity == 3

    run(main)


def test_bounded_counts_a_partial_reservation(run: Any) -> None:
    """The head's partial reservation is not held by anyone: releasing past it is refused."""

    async def main() -> None:
        sem = BoundedSemaphore(3)
        hold = sem.try_acquire(2)
        waiter = spawn(sem, 3)
        await until(lambda: sem.waiting == 1)
        assert real_queue(sem) == [(3, 1)]
        with pytest.raises(ValueError):
            sem.release(3)
        assert real_queue(sem) == [(3, 1)]
        hold.release()
        (await waiter).release()
        assert sem.available_permits == 3

    run(main)


def test_bounded_forget_lowers_capacity() -> None:
    sem = BoundedSemaphore(4)
    sem.try_acquire(1).forget()
    assert sem.statistics().capacity == 3
    assert sem.forget_permits(1) == 1
    assert sem.statistics().capacity == 2
    with pytest.raises(ValueError):
        sem.release()
    with pytest.raises(ValueError):
        sem.acquire(3)


def test_bounded_forget_of_permits_released_already_changes_nothing(run: Any) -> None:
    """A Permit whose permits went back through a release() without it (the asyncio
    idiom) cannot also forget them: the capacity would fall below the free permits (it
    went to -1 with a later forget_permits). Refused, nothing changed, as for its
    release(); a reservation handed to the queue's head counts as not held too."""
    sem = BoundedSemaphore(1)
    p = sem.try_acquire()
    sem.release()  # gives p's permit back
    with pytest.raises(ValueError, match="not held"):
        p.forget()
    assert p.num_permits == 1  # the Permit keeps it
    assert sem.statistics().capacity == 1 and sem.available_permits == 1
    assert sem.forget_permits(1) == 1
    assert sem.statistics().capacity == 0 and sem.available_permits == 0

    async def main() -> None:
        sem = BoundedSemaphore(3)
        a, b = sem.try_acquire(2), sem.try_acquire(1)
        waiter = spawn(sem, 3)
        await until(lambda: sem.waiting == 1)
        sem.release(2)  # a's permits, handed to the waiter at the head (2 of its 3)
        with pytest.raises(ValueError, match="not held"):
            a.forget()
        assert a.num_permits == 2 and sem.statistics().capacity == 3
        b.forget()  # held for real: the capacity shrinks to 2
        assert sem.statistics().capacity == 2
        with pytest.raises(ValueError):  # the waiter can never get 3 now: it waits at the
            sem.release(1)  # head holding 2 of a capacity of 2, and nothing is free
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert sem.available_permits == 2 and sem.statistics().capacity == 2

    run(main)


def test_plain_semaphore_large_request_waits_at_the_head(run: Any) -> None:
    """Tokio's behaviour, documented: a request larger than anything free blocks the queue."""

    async def main() -> None:
        sem = Semaphore(2)
        big = spawn(sem, 5)
        await until(lambda: sem.waiting == 1)
        small = spawn(sem, 1)
        await steps(10)
        assert not small.done() and sem.waiting == 2
        sem.release(3)
        (await big).release()
        (await small).release()
        assert sem.available_permits == 5

    run(main)


# ------------------------------------------------------------------ statistics, weakref


def test_statistics(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(2)
        st = sem.statistics()
        assert st == SemaphoreStatistics(2, 0, 0, False, None)
        with pytest.raises(AttributeError):
            st.available_permits = 3  # type: ignore[misc]
        hold = sem.try_acquire(1)
        a = spawn(sem, 3)
        await until(lambda: sem.waiting == 1)
        b = spawn(sem, 2)
        await until(lambda: sem.waiting == 2)
        assert sem.statistics() == SemaphoreStatistics(0, 2, 2 + 2, False, None)
        sem.close()
        for t in (a, b):
            with pytest.raises(AcquireError):
                await t
        assert sem.statistics() == SemaphoreStatistics(1, 0, 0, True, None)
        hold.release()

        m = Mutex()
        assert m.statistics() == SemaphoreStatistics(1, 0, 0, False, 1)
        await m.acquire()
        assert m.statistics().available_permits == 0
        m.release()
        rw = RwLock(4)
        async with rw.read():
            assert rw.statistics() == SemaphoreStatistics(3, 0, 0, False, 4)

    run(main)


def test_weak_references(run: Any) -> None:
    async def main() -> None:
        locks: weakref.WeakValueDictionary[str, Mutex] = weakref.WeakValueDictionary()
        m = locks.setdefault("key", Mutex())
        assert locks["key"] is m
        del m
        gc.collect()
        assert "key" not in locks
        rw = RwLock(2)
        assert weakref.ref(rw)() is rw
        guard = await rw.write()
        assert weakref.ref(guard)() is guard
        guard.release()
        read = rw.try_read()
        assert weakref.ref(read)() is read
        read.release()
        sem = Semaphore(1)
        assert weakref.ref(sem)() is sem

    run(main)


# ------------------------------------------------------------------ edges


def test_stranded_waiter_of_a_closed_loop_gives_permits_back(loop_name: str) -> None:
    """The wake-up is scheduled, then the loop is closed without running it: the permits
    come back, and the queue moves, with the garbage collector switched off."""
    sem = Semaphore(3)
    hold = sem.try_acquire(3)
    loop = new_loop(loop_name)
    loop.set_exception_handler(lambda _loop, _ctx: None)  # "Task was destroyed" at exit

    async def take() -> Any:
        return await sem.acquire(3)

    stuck = loop.create_task(take())
    loop.run_until_complete(until(lambda: sem.waiting == 1))
    t = threading.Thread(target=hold.release)  # wakes through call_soon_threadsafe
    t.start()
    t.join()
    assert sem.waiting == 0
    loop.close()  # the scheduled wake-up never runs
    gc.disable()
    try:
        assert sem.available_permits == 3
        assert sem.statistics() == SemaphoreStatistics(3, 0, 0, False, None)

        async def again() -> int:
            p = await asyncio.wait_for(sem.acquire(3), 5)
            n: int = p.num_permits
            p.release()
            return n

        assert asyncio.run(again()) == 3
    finally:
        gc.enable()
    assert not stuck.done()
    del stuck
    gc.collect()  # the coroutine is closed now: it gives back nothing more
    assert sem.available_permits == 3


def test_stranded_waiter_woken_from_its_own_thread(loop_name: str) -> None:
    """The same, released from the loop's own thread while the loop is not running."""
    sem = Semaphore(3)
    hold = sem.try_acquire(3)
    loop = new_loop(loop_name)
    loop.set_exception_handler(lambda _loop, _ctx: None)
    stuck = loop.create_task(_acquire(sem, 3))
    loop.run_until_complete(until(lambda: sem.waiting == 1))
    hold.release()  # set_result here; the wake-up waits in the loop's ready queue
    assert sem.waiting == 0
    loop.close()
    gc.disable()
    try:
        assert sem.available_permits == 3
        assert sem.try_acquire(3).num_permits == 3
    finally:
        gc.enable()
    del stuck


def test_stranded_waiter_reclaimed_when_a_new_request_queues(loop_name: str) -> None:
    """Without any inspection: a request that finds nobody queued and too few free
    reclaims what a stranded waiter holds."""
    sem = Semaphore(2)
    hold = sem.try_acquire(2)
    loop = new_loop(loop_name)
    loop.set_exception_handler(lambda _loop, _ctx: None)
    stuck = loop.create_task(_acquire(sem, 2))
    loop.run_until_complete(until(lambda: sem.waiting == 1))
    t = threading.Thread(target=hold.release)
    t.start()
    t.join()
    loop.close()
    gc.disable()
    try:
        other = new_loop(loop_name)
        try:
            p = other.run_until_complete(asyncio.wait_for(sem.acquire(2), 5))
        finally:
            other.close()
        assert p.num_permits == 2
        p.release()
    finally:
        gc.enable()
    del stuck


async def _acquire(sem: Any, n: int) -> Any:
    return await sem.acquire(n)


def test_acquire_blocking_timeout_inf_and_nan() -> None:
    sem = Semaphore(1)
    p = sem.acquire_blocking(1, timeout=math.inf)
    assert p.num_permits == 1
    threading.Timer(0.05, p.release).start()
    q = sem.acquire_blocking(1, timeout=math.inf)  # waits, no OverflowError
    q.release()
    with pytest.raises(ValueError):
        sem.acquire_blocking(1, timeout=math.nan)
    with pytest.raises(ValueError):
        sem.acquire_blocking(1, timeout=-math.inf)
    assert sem.available_permits == 1 and sem.waiting == 0


def test_permit_release_refused_keeps_the_permit() -> None:
    sem = Semaphore(1)
    p = sem.try_acquire(1)
    sem.release(MAX_PERMITS)  # the counter is now full
    with pytest.raises(ValueError):
        p.release()
    assert p.num_permits == 1  # still held: nothing lost
    assert sem.available_permits == MAX_PERMITS
    sem.forget_permits(1)
    p.release()
    assert p.num_permits == 0 and sem.available_permits == MAX_PERMITS


def test_merge_refuses_more_than_max_permits() -> None:
    sem = Semaphore(MAX_PERMITS)
    a = sem.try_acquire(MAX_PERMITS - 1)
    b = sem.try_acquire(1)
    a.merge(b)
    assert (a.num_permits, b.num_permits) == (MAX_PERMITS, 0)
    sem.release(1)
    c = sem.try_acquire(1)
    with pytest.raises(ValueError):
        a.merge(c)
    assert (a.num_permits, c.num_permits) == (MAX_PERMITS, 1)


class _Index:
    def __init__(self, n: int) -> None:
        self.n = n

    def __index__(self) -> int:
        return self.n


def test_counts_accept_index_integers_and_refuse_the_rest(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(_Index(4))  # type: ignore[arg-type]
        p = await sem.acquire(_Index(2))  # type: ignore[arg-type]
        q = sem.try_acquire(_Index(1))  # type: ignore[arg-type]
        sem.release(_Index(1))  # type: ignore[arg-type]
        part = p.split(_Index(1))  # type: ignore[arg-type]
        assert part is not None and part.num_permits == 1
        assert sem.forget_permits(_Index(1)) == 1  # type: ignore[arg-type]
        for bad in (True, 1.0, Decimal(1), Fraction(1), "1", None):
            for call in (
                sem.release,
                sem.try_acquire,
                sem.acquire,
                sem.forget_permits,
                sem.add_permits,
                p.split,
                Semaphore,
                BoundedSemaphore,
            ):
                with pytest.raises(TypeError):
                    call(bad)
        p.release()
        q.release()
        part.release()
        assert sem.available_permits == 4
        assert RwLock(_Index(3)).max_readers == 3  # type: ignore[arg-type]

    run(main)


# ------------------------------------------------------------------ debug mode


def test_debug_mode_reports_unreleased_acquisitions(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(3, name="leaky", debug=True)

        async def leak(sem: Any) -> None:
            await sem.acquire()  # never released

        async def fine(sem: Any) -> None:
            await sem.acquire()  # the asyncio idiom: released anonymously
            sem.release()

        await asyncio.create_task(leak(sem))
        await asyncio.gather(fine(sem), fine(sem))
        p = await sem.acquire(2)
        part = p.split(1)
        assert part is not None
        part.release()
        p.release()
        del p, part  # they refer to the semaphore
        gc.collect()
        assert sem.available_permits == 2  # reported, never released on our behalf
        with pytest.warns(ResourceWarning, match=r"(?s)'leaky' has 1 permit.*acquired at:.*leak"):
            del sem
            gc.collect()

    run(main)


def test_debug_mode_quiet_when_everything_is_released(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(2, debug=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            await sem.acquire()
            sem.release()
            p = await sem.acquire(2)
            part = p.split(1)
            assert part is not None
            p.merge(part)
            p.release()
            async with sem.acquire(2):
                pass
            with sem.try_acquire(1):
                pass
            sem.try_acquire(1).forget()
            sem.release()
            assert sem.available_permits == 2
            del sem, p, part
            gc.collect()

    run(main)


def test_try_acquire_refusal_does_not_change_state() -> None:
    sem = Semaphore(1)
    with pytest.raises(NoPermits):
        sem.try_acquire(2)
    assert sem.available_permits == 1
