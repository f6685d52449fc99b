"""The public contract of batchsem.Semaphore and batchsem.Permit."""

from __future__ import annotations

import asyncio
import gc
import random
import threading
import warnings
from typing import Any

import pytest
from _impls import load
from _support import real_queue, spawn, spin_until, steps, until

import batchsem
from batchsem import (
    MAX_PERMITS,
    MAX_READS,
    AcquireError,
    Closed,
    NoPermits,
    Permit,
    Semaphore,
    TryAcquireError,
)
from batchsem.tracing import MemoryTracer

# ------------------------------------------------------------------ constants, errors


def test_public_names_and_limits() -> None:
    assert MAX_PERMITS == 2**61 - 1
    assert MAX_READS == 2**29 - 1
    for name in ("Semaphore", "Permit", "Mutex", "RwLock", "AcquireError", "TryAcquireError",
                 "NoPermits", "Closed", "MAX_PERMITS", "MAX_READS"):
        assert name in batchsem.__all__
    # The public names are the active implementation's (whichever this test runs against).
    assert batchsem.Mutex._semaphore_class is batchsem.BoundedSemaphore
    assert batchsem.RwLock._semaphore_class is batchsem.BoundedSemaphore
    assert batchsem.Semaphore is load(batchsem.IMPLEMENTATION).Semaphore


def test_error_hierarchy_and_messages() -> None:
    assert issubclass(NoPermits, TryAcquireError)
    assert not issubclass(NoPermits, AcquireError)
    assert issubclass(Closed, TryAcquireError)
    assert issubclass(Closed, AcquireError)
    assert not issubclass(AcquireError, TryAcquireError)
    assert str(AcquireError()) == "semaphore closed"
    assert str(Closed()) == "semaphore closed"
    assert str(NoPermits()) == "no permits available"


# ------------------------------------------------------------------ argument checking

BAD_VALUES = [(-1, ValueError), (MAX_PERMITS + 1, ValueError), (2**64, ValueError),
              (1.0, TypeError), ("1", TypeError), (None, TypeError),
              (True, TypeError), (False, TypeError)]


@pytest.mark.parametrize(("value", "exc"), BAD_VALUES)
def test_constructor_rejects(value: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        Semaphore(value)


def test_constructor_accepts_bounds() -> None:
    assert Semaphore().available_permits == 1  # asyncio.Semaphore's default
    assert Semaphore(value=3).available_permits == 3
    assert Semaphore(0).available_permits == 0
    assert Semaphore(MAX_PERMITS).available_permits == MAX_PERMITS


@pytest.mark.parametrize(("value", "exc"), BAD_VALUES)
def test_count_arguments_rejected(value: Any, exc: type[Exception]) -> None:
    sem = Semaphore(5)
    permit = sem.try_acquire(2)
    with pytest.raises(exc):
        sem.add_permits(value)
    with pytest.raises(exc):
        sem.release(value)
    with pytest.raises(exc):
        sem.forget_permits(value)
    with pytest.raises(exc):
        sem.try_acquire(value)
    with pytest.raises(exc):
        sem.acquire(value)  # checked at call time, before any await
    with pytest.raises(exc):
        sem.acquire_blocking(value)
    with pytest.raises(exc):
        permit.split(value)
    assert sem.available_permits == 3
    assert permit.num_permits == 2
    assert sem.waiting == 0
    permit.release()
    assert sem.available_permits == 5


def test_acquire_blocking_rejects_negative_timeout() -> None:
    sem = Semaphore(1)
    with pytest.raises(ValueError):
        sem.acquire_blocking(1, timeout=-1)
    assert sem.available_permits == 1


# ------------------------------------------------------------------ basic acquire


def test_acquire_and_release(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(3)
        p = await sem.acquire(2)
        assert isinstance(p, Permit)
        assert p.num_permits == 2
        assert p.semaphore is sem
        assert sem.available_permits == 1
        q = await sem.acquire()
        assert q.num_permits == 1
        assert sem.available_permits == 0
        p.release()
        q.release()
        assert sem.available_permits == 3

    run(main)


def test_partial_reservation_sequence(run: Any) -> None:
    """sem 5; hold 1; acquire(5) takes 4 and waits; acquire(3) waits; releasing 1 serves the 5."""

    async def main() -> None:
        sem = Semaphore(5)
        hold = await sem.acquire(1)
        big = spawn(sem, 5)
        await until(lambda: sem.waiting == 1)
        assert sem.available_permits == 0
        assert real_queue(sem) == [(5, 4)]
        small = spawn(sem, 3)
        await until(lambda: sem.waiting == 2)
        assert real_queue(sem) == [(5, 4), (3, 0)]
        hold.release()
        await until(big.done)
        await steps()
        assert not small.done()
        assert big.result().num_permits == 5
        assert sem.available_permits == 0
        assert sem.waiting == 1
        big.result().release()
        permit = await small
        assert permit.num_permits == 3
        assert sem.available_permits == 2
        permit.release()
        assert sem.available_permits == 5

    run(main)


def test_fifo_over_hundreds_of_random_waiters(run: Any) -> None:
    async def main() -> None:
        rng = random.Random(20240501)
        sizes = [rng.randint(1, 12) for _ in range(300)]
        sem = Semaphore(0)
        granted: list[int] = []
        permits: list[Permit] = []

        async def waiter(i: int) -> None:
            permits.append(await sem.acquire(sizes[i]))
            granted.append(i)

        tasks = []
        for i in range(len(sizes)):
            tasks.append(asyncio.create_task(waiter(i)))
            await asyncio.sleep(0)  # request i is queued before request i + 1 starts
        assert sem.waiting == len(sizes)
        released = 0
        while released < sum(sizes):
            chunk = rng.randint(1, 20)
            released += chunk
            sem.release(chunk)
            await steps(3)
            # exactly the longest prefix that fits in what was released has been served
            expected = 0
            total = 0
            while expected < len(sizes) and total + sizes[expected] <= released:
                total += sizes[expected]
                expected += 1
            assert granted == list(range(expected))
            assert sem.available_permits == (released - total if expected == len(sizes) else 0)
        await asyncio.gather(*tasks)
        assert granted == list(range(len(sizes)))
        for p in permits:
            p.release()
        assert sem.available_permits == released

    run(main)


def test_large_acquire_doesnt_starve(run: Any) -> None:
    """Go's TestLargeAcquireDoesntStarve: small holders cycling cannot starve acquire(n)."""

    async def main() -> None:
        n = 4
        sem = Semaphore(n)
        running = True
        starved = False

        async def holder(p: Permit) -> None:
            nonlocal starved
            rounds = 0
            try:
                while running:
                    rounds += 1
                    if rounds > 1000:
                        starved = True
                        return
                    await asyncio.sleep(0)
                    p.release()
                    p = await sem.acquire(1)
            finally:
                p.release()

        holders = [asyncio.create_task(holder(await sem.acquire(1))) for _ in range(n)]
        await steps(3)
        big = await sem.acquire(n)
        running = False
        assert not starved
        assert big.num_permits == n
        big.release()
        await asyncio.gather(*holders)
        assert sem.available_permits == n

    run(main)


def test_alloc_cancel_doesnt_starve(run: Any) -> None:
    """Go's TestAllocCancelDoesntStarve: cancelling a queued big request serves the one behind."""

    async def main() -> None:
        sem = Semaphore(10)
        hold = await sem.acquire(1)
        big = spawn(sem, 10)
        await until(lambda: sem.waiting == 1)
        with pytest.raises(NoPermits):
            sem.try_acquire(1)
        small = spawn(sem, 1)
        await until(lambda: sem.waiting == 2)
        big.cancel()
        permit = await small
        assert big.cancelled()
        assert permit.num_permits == 1
        assert sem.available_permits == 8
        permit.release()
        hold.release()
        assert sem.available_permits == 10

    run(main)


# ------------------------------------------------------------------ no barging, acquire(0)


def test_no_barging(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(5)
        hold = sem.try_acquire(3)
        waiter = spawn(sem, 4)  # takes the 2 free permits, waits for 2 more
        await until(lambda: sem.waiting == 1)
        sem.release(1)  # now it holds 3 of its 4; one small request would "fit"
        assert sem.available_permits == 0
        with pytest.raises(NoPermits):
            sem.try_acquire(1)
        late = spawn(sem, 1)
        await until(lambda: sem.waiting == 2)
        assert not late.done()
        hold.release()  # 1 completes the waiter, 1 serves `late`, 1 to the counter
        p4 = await waiter
        p1 = await late
        assert (p4.num_permits, p1.num_permits) == (4, 1)
        assert sem.available_permits == 1
        p4.release()
        p1.release()
        assert sem.available_permits == 6  # 5 + the 1 released above

    run(main)


@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
def test_acquire_zero(run: Any, traced: bool) -> None:
    async def main() -> None:
        sem = Semaphore(0, tracer=MemoryTracer() if traced else None)
        waiter = spawn(sem, 2)
        await until(lambda: sem.waiting == 1)
        # returns at once even with a request queued (as Tokio's acquire_many(0))
        empty = await asyncio.wait_for(sem.acquire(0), timeout=5)
        assert empty.num_permits == 0
        assert sem.waiting == 1
        assert sem.try_acquire(0).num_permits == 0
        empty.release()
        assert sem.available_permits == 0
        sem.close()
        with pytest.raises(AcquireError):
            await sem.acquire(0)
        with pytest.raises(Closed):
            sem.try_acquire(0)
        with pytest.raises(AcquireError):
            await waiter

    run(main)


def test_acquire_blocking_zero_does_not_queue() -> None:
    sem = Semaphore(0)
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(_blocking(sem, 1)))
    t.start()
    spin_until(lambda: sem.waiting == 1)
    permit = sem.acquire_blocking(0, timeout=5)
    assert permit.num_permits == 0
    assert sem.waiting == 1
    sem.release(1)
    t.join(30)
    assert not t.is_alive()
    assert isinstance(result[0], Permit)
    result[0].release()
    assert sem.available_permits == 1


def _blocking(sem: Semaphore, n: int, timeout: float | None = 30) -> Any:
    try:
        return sem.acquire_blocking(n, timeout=timeout)
    except Exception as exc:  # returned for the main thread to assert on
        return exc


# ------------------------------------------------------------------ cancellation


def test_cancel_before_any_grant(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(2)
        hold = await sem.acquire(2)
        first = spawn(sem, 1)
        second = spawn(sem, 2)
        await until(lambda: sem.waiting == 2)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert sem.waiting == 1
        assert real_queue(sem) == [(2, 0)]
        hold.release()
        p = await second
        assert sem.available_permits == 0
        p.release()
        assert sem.available_permits == 2

    run(main)


def test_cancel_partially_granted_hands_to_next_waiter(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(3)
        hold = sem.try_acquire(2)
        big = spawn(sem, 3)
        await until(lambda: sem.waiting == 1)
        assert real_queue(sem) == [(3, 1)]
        small = spawn(sem, 1)
        await until(lambda: sem.waiting == 2)
        big.cancel()
        p = await small  # served by the permit the cancelled request held
        assert big.cancelled()
        assert sem.available_permits == 0
        assert sem.available_permits + hold.num_permits + p.num_permits == 3
        p.release()
        hold.release()
        assert sem.available_permits == 3

    run(main)


def test_cancel_partially_granted_returns_to_counter(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(4)
        hold = sem.try_acquire(1)
        big = spawn(sem, 6)
        await until(lambda: sem.waiting == 1)
        assert sem.available_permits == 0
        big.cancel()
        await asyncio.gather(big, return_exceptions=True)
        assert big.cancelled()
        assert sem.waiting == 0
        assert sem.available_permits == 3
        hold.release()
        assert sem.available_permits == 4

    run(main)


@pytest.mark.parametrize("with_next_waiter", [False, True])
def test_cancel_fully_granted_before_resume(run: Any, with_next_waiter: bool) -> None:
    async def main() -> None:
        sem = Semaphore(0)
        waiter = spawn(sem, 3)
        await until(lambda: sem.waiting == 1)
        nxt = spawn(sem, 2) if with_next_waiter else None
        await until(lambda: sem.waiting == (2 if with_next_waiter else 1))
        sem.release(3)  # grants `waiter` fully ...
        assert sem.waiting == (1 if with_next_waiter else 0)
        waiter.cancel()  # ... but it is cancelled before it runs again
        await asyncio.gather(waiter, return_exceptions=True)
        assert waiter.cancelled()
        if nxt is not None:
            p = await nxt
            assert p.num_permits == 2
            assert sem.available_permits == 1
            p.release()
        assert sem.available_permits == 3
        assert sem.waiting == 0

    run(main)


@pytest.mark.parametrize("released", [2, 3])
def test_release_reaching_a_cancelled_waiter_before_it_runs(run: Any, released: int) -> None:
    # The waiter's future is already cancelled when the release serves it: waking it
    # must not raise, and its task hands the permits on when it runs. 2 is the
    # exact hand-over to the head, 3 serves both waiters as one chain.
    async def main() -> None:
        sem = Semaphore(0)
        first = spawn(sem, 2)
        await until(lambda: sem.waiting == 1)
        second = spawn(sem, 1)
        await until(lambda: sem.waiting == 2)
        first.cancel()
        sem.release(released)
        await asyncio.gather(first, return_exceptions=True)
        assert first.cancelled()
        p = await second
        assert p.num_permits == 1
        assert sem.available_permits == released - 1
        assert sem.waiting == 0

    run(main)


def test_cancel_after_cross_thread_grant_before_resume(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(0)
        waiter = spawn(sem, 2)
        await until(lambda: sem.waiting == 1)
        t = threading.Thread(target=sem.release, args=(2,))
        t.start()
        t.join()  # the wake-up is now a call_soon_threadsafe that has not run
        assert sem.waiting == 0
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert waiter.cancelled()
        assert sem.available_permits == 2

    run(main)


def test_cancel_with_asyncio_timeout(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(5)
        hold = sem.try_acquire(2)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await sem.acquire(4)  # takes 3 at once, never gets the 4th
        assert sem.waiting == 0
        assert sem.available_permits == 3
        hold.release()
        assert sem.available_permits == 5

    run(main)


def test_cancel_with_wait_for(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(5)
        hold = sem.try_acquire(4)
        timed = asyncio.create_task(asyncio.wait_for(sem.acquire(3), timeout=0.5))
        await until(lambda: sem.waiting == 1)  # took the 1 free permit, waits for 2 more
        behind = spawn(sem, 1)
        await until(lambda: sem.waiting == 2)
        with pytest.raises(TimeoutError):
            await timed
        p = await behind  # the permit the timed-out request held goes to the next in line
        assert sem.available_permits == 0
        assert sem.waiting == 0
        p.release()
        hold.release()
        assert sem.available_permits == 5

    run(main)


def test_cancel_middle_waiter_keeps_queue_consistent(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(0)
        order: list[int] = []

        async def waiter(i: int) -> None:
            p = await sem.acquire(1)
            order.append(i)
            p.forget()

        tasks = []
        for i in range(201):
            tasks.append(asyncio.create_task(waiter(i)))
            await asyncio.sleep(0)
        assert sem.waiting == 201
        for victim in (100, 0, 200, 57):  # middle, head, tail, middle again
            tasks[victim].cancel()
            await asyncio.gather(tasks[victim], return_exceptions=True)
        assert sem.waiting == 197
        assert real_queue(sem) == [(1, 0)] * 197
        expected = [i for i in range(201) if i not in (100, 0, 200, 57)]
        for k in range(1, len(expected) + 1):
            sem.release(1)
            await until(lambda: len(order) >= k)  # noqa: B023 - evaluated before k changes
            assert len(order) == k
        assert order == expected
        assert sem.waiting == 0
        assert sem.available_permits == 0

    run(main)


# ------------------------------------------------------------------ close


def test_close_is_idempotent() -> None:
    tracer = MemoryTracer()
    sem = Semaphore(2, tracer=tracer)
    assert not sem.closed
    sem.close()
    sem.close()
    assert sem.closed
    assert tracer.kinds().count("close") == 1
    assert sem.available_permits == 2


def test_close_fails_waiters_and_returns_partial_reservations(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(3)
        hold = sem.try_acquire(1)
        a = spawn(sem, 5)
        await until(lambda: sem.waiting == 1)
        b = spawn(sem, 1)
        await until(lambda: sem.waiting == 2)
        assert sem.available_permits == 0
        sem.close()
        assert sem.waiting == 0
        assert sem.available_permits == 2
        for task in (a, b):
            with pytest.raises(AcquireError):
                await task
        with pytest.raises(AcquireError):
            await sem.acquire(1)
        with pytest.raises(Closed):
            sem.try_acquire(1)  # even though permits are free
        with pytest.raises(AcquireError):  # Closed is an AcquireError too
            sem.try_acquire(1)
        hold.release()  # outstanding permits may still be released
        assert sem.available_permits == 3
        sem.add_permits(4)
        assert sem.available_permits == 7
        assert sem.closed
        with pytest.raises(AcquireError):
            await sem.acquire(1)

    run(main)


def test_close_after_full_grant_before_resume(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(0)
        waiter = spawn(sem, 2)
        await until(lambda: sem.waiting == 1)
        sem.release(2)  # fully granted, has not resumed
        assert sem.waiting == 0
        assert sem.available_permits == 0
        sem.close()
        with pytest.raises(AcquireError):
            await waiter
        assert sem.available_permits == 2

    run(main)


def test_close_storm(run: Any) -> None:
    async def main() -> None:
        rng = random.Random(7)
        sem = Semaphore(10)
        holds = [sem.try_acquire(3), sem.try_acquire(2)]
        tasks = []
        for _ in range(300):
            tasks.append(spawn(sem, rng.randint(1, 9)))
            if rng.random() < 0.2:
                await asyncio.sleep(0)
            if holds and rng.random() < 0.05:
                holds.pop().release()
        await until(lambda: sum(t.done() for t in tasks) + sem.waiting == len(tasks))
        granted = [t.result() for t in tasks if t.done()]
        sem.close()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        failed = [r for r in results if isinstance(r, AcquireError)]
        assert len(failed) == len(tasks) - len(granted)
        assert len(failed) > 0
        held = sum(p.num_permits for p in granted) + sum(p.num_permits for p in holds)
        assert sem.available_permits + held == 10
        for p in granted + holds:
            p.release()
        assert sem.available_permits == 10

    run(main)


# ------------------------------------------------------------------ add / release / forget


def test_add_permits_over_max_changes_nothing(run: Any) -> None:
    async def main() -> None:
        full = Semaphore(MAX_PERMITS - 1)
        with pytest.raises(ValueError):
            full.add_permits(2)
        assert full.available_permits == MAX_PERMITS - 1
        full.add_permits(1)
        assert full.available_permits == MAX_PERMITS
        with pytest.raises(ValueError):
            full.release(1)
        assert full.available_permits == MAX_PERMITS

        sem = Semaphore(2)
        waiter = spawn(sem, 5)
        await until(lambda: sem.waiting == 1)
        with pytest.raises(ValueError):
            sem.add_permits(MAX_PERMITS + 1)
        assert sem.available_permits == 0
        assert sem.waiting == 1
        assert real_queue(sem) == [(5, 2)]
        sem.add_permits(2)
        await steps()
        assert not waiter.done()
        sem.add_permits(1)
        p = await waiter
        assert p.num_permits == 5
        p.release()
        assert sem.available_permits == 5

    run(main)


def test_release_is_add_permits() -> None:
    sem = Semaphore(1)
    sem.release()
    assert sem.available_permits == 2
    sem.release(2)
    assert sem.available_permits == 4
    sem.add_permits(2)
    assert sem.available_permits == 6
    sem.release(0)
    assert sem.available_permits == 6


def test_forget_permits(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(5)
        assert sem.forget_permits(2) == 2
        assert sem.available_permits == 3
        assert sem.forget_permits(10) == 3
        assert sem.available_permits == 0
        assert sem.forget_permits(1) == 0
        sem.add_permits(2)
        waiter = spawn(sem, 4)
        await until(lambda: sem.waiting == 1)
        assert sem.forget_permits(10) == 0  # never touches a waiter's partial reservation
        assert real_queue(sem) == [(4, 2)]
        sem.add_permits(2)
        p = await waiter
        assert p.num_permits == 4
        p.release()
        sem.close()
        assert sem.forget_permits(1) == 1
        assert sem.closed
        assert sem.available_permits == 3

    run(main)


# ------------------------------------------------------------------ Permit


def test_permit_release_is_idempotent() -> None:
    sem = Semaphore(4)
    p = sem.try_acquire(3)
    p.release()
    p.release()
    assert p.num_permits == 0
    assert sem.available_permits == 4


def test_permit_forget() -> None:
    sem = Semaphore(4)
    p = sem.try_acquire(3)
    p.forget()
    assert p.num_permits == 0
    p.release()
    assert sem.available_permits == 1


def test_permit_split_and_merge() -> None:
    sem = Semaphore(10)
    p = sem.try_acquire(6)
    q = p.split(2)
    assert q is not None
    assert (p.num_permits, q.num_permits) == (4, 2)
    assert q.semaphore is sem
    assert p.split(5) is None
    assert p.num_permits == 4
    z = p.split(0)
    assert z is not None and z.num_permits == 0
    p.merge(q)
    assert (p.num_permits, q.num_permits) == (6, 0)
    p.merge(p)
    assert p.num_permits == 6
    other = Semaphore(1).try_acquire(1)
    with pytest.raises(ValueError):
        p.merge(other)
    assert (p.num_permits, other.num_permits) == (6, 1)
    other.release()
    q.release()
    assert sem.available_permits == 4
    p.release()
    assert sem.available_permits == 10


def test_permit_context_managers(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(5)
        with sem.try_acquire(2) as p:
            assert p.num_permits == 2
            assert sem.available_permits == 3
        assert sem.available_permits == 5
        async with await sem.acquire(4) as p:
            assert sem.available_permits == 1
        assert p.num_permits == 0
        assert sem.available_permits == 5
        async with sem.acquire(3) as p:
            assert isinstance(p, Permit)
            assert p.num_permits == 3
            assert sem.available_permits == 2
        assert sem.available_permits == 5
        with pytest.raises(KeyError):
            async with sem.acquire(3):
                raise KeyError("boom")
        assert sem.available_permits == 5

    run(main)


def test_semaphore_async_with_drop_in(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(1)
        inside: list[int] = []

        async def user(i: int) -> None:
            async with sem:
                inside.append(i)
                assert sem.available_permits == 0
                await asyncio.sleep(0)

        async with sem:
            assert sem.available_permits == 0
            tasks = [asyncio.create_task(user(i)) for i in range(5)]
            await until(lambda: sem.waiting == 5)
        await asyncio.gather(*tasks)
        assert inside == [0, 1, 2, 3, 4]
        assert sem.available_permits == 1

    run(main)


def test_aexit_result_is_a_plain_awaitable(run: Any) -> None:
    """``__aexit__`` releases when called and returns a completed awaitable that is not
    a Future: awaiting it again, or wrapping it (``wait_for``, ``gather``,
    ``ensure_future``) on any loop, returns None and releases nothing more."""

    async def main() -> None:
        sem = Semaphore(2)
        await sem.__aenter__()
        await sem.__aenter__()
        done = sem.__aexit__(None, None, None)
        assert sem.available_permits == 1  # released by the call, before any await
        assert not asyncio.isfuture(done)
        assert await done is None
        assert await asyncio.wait_for(sem.__aexit__(None, None, None), 1) is None
        assert sem.available_permits == 2
        assert await asyncio.gather(done, asyncio.ensure_future(done)) == [None, None]
        assert sem.available_permits == 2

    run(main)


def test_garbage_collected_permit_keeps_its_permits(run: Any) -> None:
    """Permits are handles: dropping the Permit releases nothing, silently."""

    async def main() -> None:
        sem = Semaphore(3)
        p = await sem.acquire(2)
        waiter = spawn(sem, 3)
        await until(lambda: sem.waiting == 1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # not even a ResourceWarning
            del p
            gc.collect()
        await steps()
        assert not waiter.done()
        assert sem.available_permits == 0 and real_queue(sem) == [(3, 1)]
        sem.release(2)
        q = await waiter
        assert q.num_permits == 3
        q.release()
        assert sem.available_permits == 3

    run(main)


def test_garbage_collected_permit_in_cycle_keeps_its_permits() -> None:
    sem = Semaphore(2)
    holder: dict[str, Any] = {"p": sem.try_acquire(2)}
    holder["self"] = holder  # only the cyclic collector can free it
    del holder
    gc.collect()
    assert sem.available_permits == 0
    sem.release(2)
    assert sem.available_permits == 2


# ------------------------------------------------------------------ acquire_blocking


def test_acquire_blocking_served_by_other_thread() -> None:
    sem = Semaphore(1)
    hold = sem.try_acquire(1)

    def releaser() -> None:
        spin_until(lambda: sem.waiting == 1)
        hold.release()
        sem.release(1)

    t = threading.Thread(target=releaser)
    t.start()
    p = sem.acquire_blocking(2, timeout=30)
    t.join(30)
    assert p.num_permits == 2
    assert sem.available_permits == 0
    p.release()
    assert sem.available_permits == 2


def test_acquire_blocking_immediate() -> None:
    sem = Semaphore(3)
    p = sem.acquire_blocking(2)
    assert p.num_permits == 2
    assert sem.available_permits == 1
    p.release()


def test_acquire_blocking_timeout_hands_back_partial() -> None:
    sem = Semaphore(3)
    hold = sem.try_acquire(2)
    with pytest.raises(TimeoutError):
        sem.acquire_blocking(3, timeout=0.01)  # took 1, waited for 2 more
    assert sem.waiting == 0
    assert sem.available_permits == 1
    hold.release()
    assert sem.available_permits == 3


def test_acquire_blocking_timeout_hands_partial_to_next(run: Any) -> None:
    sem = Semaphore(3)
    hold = sem.try_acquire(2)
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(_blocking(sem, 3, timeout=0.2)))
    t.start()
    spin_until(lambda: sem.waiting == 1)

    async def main() -> None:
        p = await sem.acquire(1)  # queued behind, served by the timed-out request's permit
        assert p.num_permits == 1
        p.release()

    run(main)
    t.join(30)
    assert isinstance(result[0], TimeoutError)
    hold.release()
    assert sem.available_permits == 3
    assert sem.waiting == 0


def test_acquire_blocking_close() -> None:
    sem = Semaphore(1)
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(_blocking(sem, 3)))
    t.start()
    spin_until(lambda: sem.waiting == 1)
    sem.close()
    t.join(30)
    assert isinstance(result[0], AcquireError)
    assert sem.available_permits == 1
    with pytest.raises(AcquireError):
        sem.acquire_blocking(1)


def test_acquire_blocking_inside_running_loop(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(1)
        with pytest.raises(RuntimeError):
            sem.acquire_blocking(1)
        assert sem.available_permits == 1
        assert sem.waiting == 0

    run(main)


def test_blocking_and_async_waiters_share_fifo(run: Any) -> None:
    sem = Semaphore(0)
    order: list[str] = []
    result: list[Any] = []

    def blocker() -> None:
        result.append(_blocking(sem, 2))
        order.append("blocking")

    t = threading.Thread(target=blocker)
    t.start()
    spin_until(lambda: sem.waiting == 1)

    async def main() -> None:
        async def aw() -> None:
            p = await sem.acquire(1)
            order.append("async")
            p.release()

        task = asyncio.create_task(aw())
        await until(lambda: sem.waiting == 2)
        sem.release(1)  # partial for the blocking head; the async one must keep waiting
        await steps()
        assert not task.done()
        assert order == []
        sem.release(2)  # completes the blocking head, then serves the async waiter
        await task

    run(main)
    t.join(30)
    assert sorted(order) == ["async", "blocking"]
    result[0].release()
    assert sem.available_permits == 3


# ------------------------------------------------------------------ repr


def test_repr_shows_state(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(3, name="db")
        assert sem.name == "db"
        assert repr(sem) == "<batchsem.Semaphore 'db' [open, permits:3, waiters:0]>"
        p = await sem.acquire(3)
        assert "permits:3" in repr(p)
        waiter = spawn(sem, 2)
        await until(lambda: sem.waiting == 1)
        assert repr(sem) == "<batchsem.Semaphore 'db' [open, permits:0, waiters:1]>"
        assert "pending:5" in repr(sem.acquire(5))
        sem.close()
        assert repr(sem) == "<batchsem.Semaphore 'db' [closed, permits:0, waiters:0]>"
        assert repr(Semaphore(1)) == "<batchsem.Semaphore [open, permits:1, waiters:0]>"
        with pytest.raises(AcquireError):
            await waiter
        p.release()
        assert "permits:0" in repr(p)

    run(main)


# ------------------------------------------------------------------ misc


def test_acquire_outside_await_does_nothing() -> None:
    sem = Semaphore(2)
    req = sem.acquire(2)  # the queue position is taken only when awaited
    assert sem.available_permits == 2
    assert sem.waiting == 0
    del req


def test_tracer_releasing_during_acquire_is_safe(run: Any) -> None:
    """The node must be wakeable as soon as it is queued: a release from another thread can
    come before the acquiring task gets to its next line (here forced via the tracer)."""

    async def main() -> None:
        sem = Semaphore(0)

        def tracer(event: Any) -> None:
            if event.kind == "acquire":
                t = threading.Thread(target=sem.add_permits, args=(2,))
                t.start()
                t.join()

        sem.tracer = tracer
        p = await asyncio.wait_for(sem.acquire(2), timeout=5)
        assert p.num_permits == 2
        assert sem.available_permits == 0
        p.release()
        assert sem.available_permits == 2

    run(main)


def test_acquire_returns_a_request_awaitable_once(run: Any) -> None:
    async def main() -> None:
        sem = Semaphore(4)
        pending = sem.acquire(3)
        assert not isinstance(pending, Permit)
        assert sem.available_permits == 4  # nothing taken before it is awaited
        permit = await pending
        assert isinstance(permit, Permit) and permit.num_permits == 3
        with pytest.raises(RuntimeError, match="already awaited"):
            await pending
        permit.release()
        granted = sem.try_acquire(1)
        with pytest.raises(TypeError):
            await granted  # a Permit is not awaitable
        granted.release()
        assert sem.available_permits == 4
        async with sem.acquire(2) as held:
            assert held.num_permits == 2 and sem.available_permits == 2
        assert sem.available_permits == 4

    run(main)
