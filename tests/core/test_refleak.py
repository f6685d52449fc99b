"""Reference-leak check: repeating the whole API must leave object counts and memory flat.

Like CPython's ``regrtest -R``: run a workload a few times to warm caches, then
several more times, and require that the number of live GC objects, the
interpreter's allocated blocks and the ``tracemalloc`` total stop growing. One
workload makes about two thousand calls (acquire in every form, hand-over,
cancellation at every stage, close, blocking acquires from a thread, split and
merge, every error path), so leaking one object or one block per call, or a
Permit or a future per wait, shows as a growth of hundreds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import sys
import threading
import tracemalloc
from collections.abc import Iterator

from _impls import Impl

from batchsem._errors import AcquireError, Closed, NoPermits

WARMUP = 3
RUNS = 5
#: Allowed growth per run once warm: caches (type attribute cache, interned
#: strings, the loop's internals) settle within a few objects.
MAX_OBJECTS = 10
MAX_BLOCKS = 40
MAX_BYTES = 8 * 1024


@contextlib.contextmanager
def raises(*expected: type[BaseException]) -> Iterator[None]:
    try:
        yield
    except expected:
        return
    raise AssertionError(f"expected one of {expected}")


async def api_round(mod: Impl) -> None:
    sem = mod.Semaphore(4, name="leak")
    for _ in range(50):
        async with sem:
            pass
        permit = await sem.acquire(2)
        part = permit.split(1)
        permit.merge(part)
        permit.release()
        async with sem.acquire(3) as permit:
            assert permit.num_permits == 3
        await sem.acquire()
        sem.release()
        with sem.try_acquire(1):
            pass
        sem.try_acquire(1).forget()
        sem.add_permits(1)
        with raises(ValueError, TypeError):
            sem.acquire(-1)
        with raises(TypeError):
            sem.try_acquire(1.5)  # type: ignore[arg-type]
    # hand-over, partial grants and cancellation at every stage
    blocker = sem.try_acquire(4)
    tasks = [asyncio.create_task(sem.acquire(3)) for _ in range(30)]
    await asyncio.sleep(0)
    for t in tasks[::3]:
        t.cancel()
    blocker.split(2).release()
    await asyncio.sleep(0)
    blocker.release()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            (await t).release()
    assert sem.available_permits == 4
    # timeouts
    held = sem.try_acquire(4)
    for _ in range(10):
        with raises(TimeoutError):
            await asyncio.wait_for(sem.acquire(1), 0)
    with raises(NoPermits):
        sem.try_acquire(1)
    held.release()
    # blocking waiters from a thread
    box: list[object] = []
    held = sem.try_acquire(4)
    thread = threading.Thread(target=lambda: box.append(sem.acquire_blocking(2)))
    thread.start()
    while sem.waiting == 0:
        await asyncio.sleep(0.0005)
    held.release()
    thread.join()
    box.pop().release()  # type: ignore[attr-defined]
    with raises(TimeoutError):
        await asyncio.to_thread(sem.acquire_blocking, 10, 0.0)
    # close with waiters
    sem.try_acquire(4).forget()
    waiters = [asyncio.create_task(sem.acquire(1)) for _ in range(10)]
    await asyncio.sleep(0)
    sem.close()
    for w in waiters:
        with raises(AcquireError):
            await w
    with raises(Closed):
        sem.try_acquire(1)
    # bounded
    bounded = mod.BoundedSemaphore(2)
    with raises(ValueError):
        bounded.release()
    with raises(ValueError):
        bounded.try_acquire(3)
    # tracer
    events: list[object] = []
    traced = mod.Semaphore(1, tracer=events.append)
    async with traced:
        pass
    assert events


def measure(run: object) -> tuple[int, int, int]:
    gc.collect()
    return len(gc.get_objects()), sys.getallocatedblocks(), tracemalloc.get_traced_memory()[0]


def test_api_leaves_no_garbage(impl: Impl) -> None:
    mod = impl
    loop = asyncio.new_event_loop()
    try:
        for _ in range(WARMUP):
            loop.run_until_complete(api_round(mod))
        tracemalloc.start()
        try:
            loop.run_until_complete(api_round(mod))
            samples = [measure(None)]
            for _ in range(RUNS):
                loop.run_until_complete(api_round(mod))
                samples.append(measure(None))
        finally:
            tracemalloc.stop()
    finally:
        loop.close()
    pairs = itertools.pairwise(samples)
    deltas = [tuple(b - a for a, b in zip(x, y, strict=True)) for x, y in pairs]
    limits = (MAX_OBJECTS, MAX_BLOCKS, MAX_BYTES)
    # A run may wobble (another test's thread or loop finishing, a cache filling);
    # a leak grows on every run.
    leaking = [
        name
        for i, name in enumerate(("gc objects", "allocated blocks", "tracemalloc bytes"))
        if all(d[i] > limits[i] for d in deltas)
    ]
    assert not leaking, f"{impl.name}: growth per run {deltas} (objects, blocks, bytes): {leaking}"
