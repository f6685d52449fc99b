#!/usr/bin/env python
"""Exercise every path of the compiled core, for ``make memcheck`` (valgrind) and the refleak test.

Covers: uncontended and contended acquire (``await sem.acquire(n)``, ``async with
sem``, ``async with sem.acquire(n)``), hand-over to queued waiters with partial
grants, cancellation at every stage (queued, partially granted, served but not
resumed), ``close()`` with waiters, ``try_acquire`` (NoPermits and Closed),
``acquire_blocking`` from threads (served, timed out, closed), wake-ups across
threads and event loops, ``Permit.split``/``merge``/``forget``, ``forget_permits``,
``BoundedSemaphore`` errors, bad arguments, tracers, and ``asyncio.create_task`` /
``wait_for`` over the acquire awaitable.

Every round checks that the semaphores end with the permits they started with,
so a wrong count fails loudly, not just a memory error.

    python benchmarks/stress_memcheck.py [--rounds N] [--impl c|python]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batchsem._errors import AcquireError, Closed, NoPermits


@contextlib.contextmanager
def raises(*expected: type[BaseException]) -> Iterator[None]:
    """Fail unless the block raises one of ``expected``."""
    try:
        yield
    except expected:
        return
    raise AssertionError(f"expected one of {expected}")


def load(impl: str) -> ModuleType:
    """The module holding Semaphore/BoundedSemaphore for ``impl`` ("c" or "python")."""
    if impl == "c":
        from batchsem import _cbatchsem

        return _cbatchsem
    from batchsem import _semaphore

    return _semaphore


async def async_round(mod: ModuleType, seed: int) -> None:
    sem = mod.Semaphore(4, name=f"stress{seed}")
    # uncontended, every form
    for _ in range(20):
        async with sem:
            pass
        permit = await sem.acquire(2)
        permit.release()
        permit.release()  # idempotent
        async with sem.acquire(3) as permit:
            part = permit.split(1)
            assert part is not None
            assert permit.split(5) is None
            permit.merge(part)
        await sem.acquire()
        sem.release()
    assert sem.available_permits == 4

    # contended: hand-over with partial grants, FIFO across sizes
    async def worker(n: int) -> None:
        for _ in range(3):
            async with sem.acquire(n):
                await asyncio.sleep(0)

    await asyncio.gather(*(worker(1 + i % 4) for i in range(12)))
    assert sem.available_permits == 4, sem

    # cancellation: queued, partially granted, served but not resumed
    async def take_and_give(n: int) -> None:
        permit = await sem.acquire(n)
        permit.release()

    blocker = await sem.acquire(4)
    tasks = [asyncio.create_task(take_and_give(3)) for _ in range(6)]
    await asyncio.sleep(0)
    tasks[2].cancel()
    blocker.split(2).release()  # the head gets 2 of its 3
    await asyncio.sleep(0)
    tasks[0].cancel()  # partially granted: gives its 2 back to the next
    blocker.release()  # serves the next head...
    tasks[1].cancel()  # ...which is cancelled before it resumes
    await asyncio.gather(*tasks, return_exceptions=True)
    assert sem.available_permits == 4, sem
    assert sem.waiting == 0

    # wait_for timeouts and create_task over the awaitable
    held = sem.try_acquire(4)
    for _ in range(5):
        with raises(TimeoutError):
            await asyncio.wait_for(sem.acquire(1), 0.0005)
    task = asyncio.create_task(sem.acquire(2))
    await asyncio.sleep(0)
    held.release()
    (await task).release()
    assert sem.available_permits == 4, sem

    # try_acquire errors and bad arguments
    sem.try_acquire(4).forget()
    with raises(NoPermits):
        sem.try_acquire(1)
    sem.add_permits(4)
    for bad in (-1, 1.5, True, "x", 2**70):
        with raises(TypeError, ValueError):
            sem.acquire(bad)
        with raises(TypeError, ValueError):
            sem.release(bad)
    assert sem.forget_permits(1) == 1
    sem.release()
    assert sem.available_permits == 4

    # Bounded
    bounded = mod.BoundedSemaphore(2)
    with raises(ValueError):
        bounded.release()
    with raises(ValueError):
        await bounded.acquire(3)
    async with bounded.acquire(2):
        pass
    assert bounded.available_permits == 2

    # tracer
    events: list[Any] = []
    traced = mod.Semaphore(1, tracer=events.append)
    async with traced:
        pass
    (await traced.acquire()).release()
    traced.tracer = None
    assert events

    # cross-thread: a blocking thread and another loop's task wait on this semaphore
    shared = mod.Semaphore(0)
    got: list[int] = []

    def blocking() -> None:
        permit = shared.acquire_blocking(2, timeout=10)
        got.append(permit.num_permits)
        permit.release()
        with raises(TimeoutError):
            shared.acquire_blocking(100, timeout=0.001)

    def other_loop() -> None:
        async def take() -> None:
            async with shared.acquire(1) as permit:
                got.append(permit.num_permits)

        asyncio.run(take())

    threads = [threading.Thread(target=blocking), threading.Thread(target=other_loop)]
    for t in threads:
        t.start()
    while shared.waiting < 2:
        await asyncio.sleep(0.001)
    shared.release(3)
    for t in threads:
        await asyncio.to_thread(t.join)
    assert sorted(got) == [1, 2], got
    assert shared.available_permits == 3, shared

    # close with every kind of waiter queued
    closing = mod.Semaphore(1)
    waiters = [asyncio.create_task(closing.acquire(2)) for _ in range(4)]
    failed_blocking: list[BaseException] = []

    def blocked() -> None:
        try:
            closing.acquire_blocking(1)
        except AcquireError as exc:
            failed_blocking.append(exc)

    while closing.waiting < 4:  # the tasks queue first, so the thread cannot take the free one
        await asyncio.sleep(0)
    thread = threading.Thread(target=blocked)
    thread.start()
    while closing.waiting < 5:
        await asyncio.sleep(0.001)
    closing.close()
    for r in await asyncio.gather(*waiters, return_exceptions=True):
        assert isinstance(r, AcquireError), r
    await asyncio.to_thread(thread.join)
    assert failed_blocking
    with raises(Closed):
        closing.try_acquire()
    with raises(AcquireError):
        await closing.acquire()
    assert closing.available_permits == 1


def stranded_round(mod: ModuleType) -> None:
    """A waiter woken on a loop that is closed before it runs again gives its permits back."""
    sem = mod.Semaphore(0)
    loop = asyncio.new_event_loop()
    task = loop.create_task(sem.acquire(2))
    task._log_destroy_pending = False  # type: ignore[attr-defined]  # it never finishes, by design
    while sem.waiting == 0:
        loop.run_until_complete(asyncio.sleep(0))
    sem.release(2)  # handed to the waiter, its wake-up scheduled on the idle loop
    loop.close()  # ...which will never run it
    assert sem.available_permits == 2, sem  # reclaimed on inspection
    del task


def stranded_queue_round(mod: ModuleType, queued: bool) -> None:
    """The queue behind a stranded waiter moves by itself: the re-check timer of a waiter
    on a second loop (armed, fired, re-armed, reclaiming), the timed slices of a blocking
    waiter, and a re-check that finds its waiter gone (cancelled). ``queued``: the
    stranded waiter is the queue's head, handed 2 of the 3 it wants, when its loop is
    closed (the re-checks fail it); otherwise it was served and woken first."""
    sem = mod.Semaphore(0)
    stuck_loop = asyncio.new_event_loop()
    stuck = stuck_loop.create_task(sem.acquire(3))
    stuck._log_destroy_pending = False  # type: ignore[attr-defined]  # never finishes, by design
    while sem.waiting == 0:
        stuck_loop.run_until_complete(asyncio.sleep(0))
    if queued:
        sem.release(2)  # handed to the head, 2 of its 3
    served: list[int] = []
    settled = threading.Event()

    async def behind() -> None:
        gone = asyncio.ensure_future(sem.acquire(1))  # its re-check finds it gone
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.gather(gone, return_exceptions=True)
        settled.set()
        async with sem.acquire(1) as permit:
            served.append(permit.num_permits)

    def blocking() -> None:
        with sem.acquire_blocking(1, timeout=60) as permit:
            served.append(permit.num_permits)

    other = threading.Thread(target=asyncio.run, args=(behind(),))
    other.start()
    settled.wait()
    while sem.waiting < 2:
        time.sleep(0.001)
    thread = threading.Thread(target=blocking)
    thread.start()
    while sem.waiting < 3:
        time.sleep(0.001)
    if not queued:
        releaser = threading.Thread(target=sem.release, args=(3,))  # wakes through the loop
        releaser.start()
        releaser.join()
    stuck_loop.close()  # the stranded waiter's permits: the re-checks give them back
    other.join()
    thread.join()
    held = 2 if queued else 3
    assert sorted(served) == [1, 1], served
    assert sem.waiting == 0, sem
    assert sem.available_permits == held, sem
    stuck.get_coro().close()  # the acquire's clean-up gives back nothing more
    assert sem.available_permits == held, sem


async def debug_round(mod: ModuleType) -> None:
    """Debug mode: records opened and closed by every kind of release, one leak reported."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        sem = mod.Semaphore(3, name="debug", debug=True)
        await sem.acquire()
        sem.release()
        permit = await sem.acquire(2)
        part = permit.split(1)
        assert part is not None
        permit.merge(part)
        permit.release()
        with sem.try_acquire(1):
            pass
        sem.try_acquire(1).forget()
        await sem.acquire()  # never released: reported when the semaphore goes
        del sem
        gc.collect()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--impl", choices=("c", "python"), default="c")
    args = parser.parse_args(argv)
    mod = load(args.impl)
    for seed in range(args.rounds):
        asyncio.run(async_round(mod, seed))
        stranded_round(mod)
        stranded_queue_round(mod, queued=False)
        stranded_queue_round(mod, queued=True)
        asyncio.run(debug_round(mod))
    print(f"stress_memcheck: {args.rounds} rounds against {mod.__name__}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
