#!/usr/bin/env python
"""Benchmark ``batchsem.Semaphore`` against ``asyncio.Semaphore``, side by side, in one run.

Run from the repository root::

    .venv/bin/python benchmarks/bench_library.py            # default: 7 rounds, ~1-2 min
    .venv/bin/python benchmarks/bench_library.py --quick    # ~15 s smoke run
    .venv/bin/python benchmarks/bench_library.py --json results/bench_library.json

Every scenario is run on the stock asyncio event loop and on uvloop (skipped,
with a note, if uvloop cannot be imported). Within a round each scenario runs
the two semaphores back to back, alternating which one goes first, and the
best (shortest) time of all rounds is kept for each. Every timed run gets a
fresh event loop; the garbage collector is collected before and disabled
during a run (like ``timeit``) unless ``--gc`` is given. The only
dependencies are the standard library, batchsem itself and (optionally) uvloop.

See ``benchmarks/README.md`` for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import batchsem
except ImportError:  # a checkout that was not installed with `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import batchsem

#: The Semaphore class under test (set by --impl; default: the active core).
Sem: Any = batchsem.Semaphore
CORE: str = batchsem.IMPLEMENTATION

perf_counter = time.perf_counter
process_time = time.process_time

#: (wall-clock seconds from time.perf_counter, CPU seconds of this process from
#: time.process_time) over the same measured region.
Timing = tuple[float, float]

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
#: One timed run: takes the round number (a seed), returns its Timing.
RunFn = Callable[[int], Coroutine[Any, Any, Timing]]
Task = asyncio.Task[None]

IMPLS: tuple[str, str] = ("batchsem", "asyncio")


# ----------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Sizes:
    """Work per timed run. Chosen so one run takes roughly 0.1-0.5 s on a laptop-class CPU."""

    uncontended_iters: int = 200_000
    batch_iters: int = 60_000
    batch_permits: int = 8
    cancel_waiters: int = 20_000
    contended_tasks: int = 64
    contended_permits: int = 8
    contended_per_task: int = 500
    handoff_per_task: int = 20_000
    thread_iters: int = 20_000
    thread_permits: int = 2

    def scaled(self, factor: float, *, keep_cancel: bool) -> Sizes:
        """Smaller work (for ``--quick`` and the warm-up); ``keep_cancel`` keeps the waiter count.

        The cancel target is defined for 20,000 waiters, and asyncio's cost there
        grows quadratically, so a shorter run keeps that size.
        """
        return Sizes(
            uncontended_iters=max(1, int(self.uncontended_iters * factor)),
            batch_iters=max(1, int(self.batch_iters * factor)),
            batch_permits=self.batch_permits,
            cancel_waiters=(
                self.cancel_waiters if keep_cancel else max(1, int(self.cancel_waiters * factor))
            ),
            contended_tasks=self.contended_tasks,
            contended_permits=self.contended_permits,
            contended_per_task=max(1, int(self.contended_per_task * factor)),
            handoff_per_task=max(1, int(self.handoff_per_task * factor)),
            thread_iters=max(1, int(self.thread_iters * factor)),
            thread_permits=self.thread_permits,
        )


# ------------------------------------------------------------ scenarios
#
# Each coroutine builds its own semaphore, times only the measured part (wall
# clock with time.perf_counter, CPU with time.process_time) and returns both.
# The batchsem and asyncio versions of a scenario do the same work in the same
# shape.


async def uncontended_batchsem(iters: int) -> Timing:
    """Scenario 1, batchsem: ``async with sem:`` in a loop, one task, Semaphore(1)."""
    sem = Sem(1)
    t0 = _start()
    for _ in range(iters):
        async with sem:
            pass
    elapsed = _stop(t0)
    _check(sem.available_permits == 1 and sem.waiting == 0, "batchsem uncontended")
    return elapsed


async def uncontended_asyncio(iters: int) -> Timing:
    """Scenario 1, asyncio: ``async with sem:`` in a loop, one task, Semaphore(1)."""
    sem = asyncio.Semaphore(1)
    t0 = _start()
    for _ in range(iters):
        async with sem:
            pass
    elapsed = _stop(t0)
    _check(sem._value == 1 and _asyncio_waiting(sem) == 0, "asyncio uncontended")
    return elapsed


class NoopAsyncCM:
    """The floor for ``async with``: a class-based async context manager doing nothing."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        return None


async def uncontended_noop(iters: int) -> Timing:
    """Scenario 1b, baseline: ``async with NoopAsyncCM():`` (one instance) in a loop."""
    cm = NoopAsyncCM()
    t0 = _start()
    for _ in range(iters):
        async with cm:
            pass
    return _stop(t0)


async def _idiom(sem: Any, iters: int) -> Timing:
    """Scenario 1c: the asyncio idiom ``await sem.acquire(); sem.release()`` on Semaphore(1)."""
    acquire = sem.acquire
    release = sem.release
    t0 = _start()
    for _ in range(iters):
        await acquire()
        release()
    return _stop(t0)


async def idiom_batchsem(iters: int) -> Timing:
    """Scenario 1c on batchsem.Semaphore(1) (the Permit is discarded, as with asyncio)."""
    sem = Sem(1)
    elapsed = await _idiom(sem, iters)
    _check(sem.available_permits == 1 and sem.waiting == 0, "batchsem idiom")
    return elapsed


async def idiom_asyncio(iters: int) -> Timing:
    """Scenario 1c on asyncio.Semaphore(1)."""
    sem = asyncio.Semaphore(1)
    elapsed = await _idiom(sem, iters)
    _check(sem._value == 1 and _asyncio_waiting(sem) == 0, "asyncio idiom")
    return elapsed


async def batch_batchsem(iters: int, permits: int) -> Timing:
    """Scenario 2, batchsem: ``p = await sem.acquire(8); p.release()`` on Semaphore(8)."""
    sem = Sem(permits)
    t0 = _start()
    for _ in range(iters):
        p = await sem.acquire(permits)
        p.release()
    elapsed = _stop(t0)
    _check(sem.available_permits == permits and sem.waiting == 0, "batchsem batch")
    return elapsed


async def batch_asyncio(iters: int, permits: int) -> Timing:
    """Scenario 2, asyncio: eight ``await sem.acquire()`` then eight ``sem.release()``.

    Unrolled for the default of 8 permits (the fastest way to write it with
    asyncio.Semaphore); other sizes use inner loops.
    """
    sem = asyncio.Semaphore(permits)
    acquire = sem.acquire
    release = sem.release
    t0 = _start()
    if permits == 8:
        for _ in range(iters):
            await acquire()
            await acquire()
            await acquire()
            await acquire()
            await acquire()
            await acquire()
            await acquire()
            await acquire()
            release()
            release()
            release()
            release()
            release()
            release()
            release()
            release()
    else:
        for _ in range(iters):
            for _ in range(permits):
                await acquire()
            for _ in range(permits):
                release()
    elapsed = _stop(t0)
    _check(sem._value == permits and _asyncio_waiting(sem) == 0, "asyncio batch")
    return elapsed


def _cancel_order(tasks: list[Task], order: str, seed: int) -> list[Task]:
    victims = list(tasks)
    if order == "random":
        random.Random(seed).shuffle(victims)
    elif order != "fifo":
        raise ValueError(f"unknown cancel order {order!r}")
    return victims


async def _time_cancel(tasks: list[Task], victims: list[Task], wait: str) -> Timing:
    """The measured part of scenario 3: cancel every task and run the loop until all are done.

    ``wait="drain"`` yields to the loop until every task has finished: their
    wake-ups are already scheduled, so one loop iteration runs them all, and
    nothing but the cancellations themselves is timed. ``wait="gather"`` awaits
    ``asyncio.gather(*tasks, return_exceptions=True)`` instead, which adds
    gather's own done-callback and result slot per task to both sides.
    """
    t0 = _start()
    for t in victims:
        t.cancel()
    if wait == "gather":
        await asyncio.gather(*tasks, return_exceptions=True)
    elif wait == "drain":
        while not all(t.done() for t in tasks):
            await asyncio.sleep(0)
    else:
        raise ValueError(f"unknown wait {wait!r}")
    return _stop(t0)


async def cancel_batchsem(waiters: int, order: str, seed: int, wait: str = "drain") -> Timing:
    """Scenario 3, batchsem: cancel ``waiters`` tasks queued in ``acquire(1)`` on Semaphore(0)."""
    sem = Sem(0)

    async def waiter() -> None:
        await sem.acquire(1)

    tasks = [asyncio.create_task(waiter()) for _ in range(waiters)]
    while sem.waiting < waiters:
        await asyncio.sleep(0)
    victims = _cancel_order(tasks, order, seed)
    elapsed = await _time_cancel(tasks, victims, wait)
    _check(all(t.cancelled() for t in tasks), "batchsem cancel: a task was not cancelled")
    _check(sem.waiting == 0 and sem.available_permits == 0, "batchsem cancel: queue not empty")
    return elapsed


async def cancel_floor(waiters: int, order: str, seed: int, wait: str = "drain") -> Timing:
    """Scenario 3's floor: ``waiters`` tasks each awaiting a bare future of its own.

    The same cancellations with nothing but asyncio's share (``Task.cancel``, the
    future's cancel and wake-up, ``CancelledError`` out of the task, the task
    finishing): no semaphore, no queue. Any asyncio primitive whose waiters await a
    future pays at least this much per cancelled waiter.
    """
    loop = asyncio.get_running_loop()
    parked = 0

    async def waiter() -> None:
        nonlocal parked
        fut = loop.create_future()
        parked += 1
        await fut

    tasks = [asyncio.create_task(waiter()) for _ in range(waiters)]
    while parked < waiters:
        await asyncio.sleep(0)
    victims = _cancel_order(tasks, order, seed)
    elapsed = await _time_cancel(tasks, victims, wait)
    _check(all(t.cancelled() for t in tasks), "cancel floor: a task was not cancelled")
    return elapsed


async def cancel_asyncio(waiters: int, order: str, seed: int, wait: str = "drain") -> Timing:
    """Scenario 3, asyncio: cancel ``waiters`` tasks queued in ``acquire()`` on Semaphore(0)."""
    sem = asyncio.Semaphore(0)

    async def waiter() -> None:
        await sem.acquire()

    tasks = [asyncio.create_task(waiter()) for _ in range(waiters)]
    while _asyncio_waiting(sem) < waiters:
        await asyncio.sleep(0)
    victims = _cancel_order(tasks, order, seed)
    elapsed = await _time_cancel(tasks, victims, wait)
    _check(all(t.cancelled() for t in tasks), "asyncio cancel: a task was not cancelled")
    _check(_asyncio_waiting(sem) == 0 and sem._value == 0, "asyncio cancel: queue not empty")
    return elapsed


async def _contended(sem: Any, tasks: int, per_task: int) -> Timing:
    """Scenario 4: ``tasks`` tasks, each ``per_task`` x ``async with sem: sleep(0)``."""

    async def worker() -> None:
        for _ in range(per_task):
            async with sem:
                await asyncio.sleep(0)

    t0 = _start()
    await asyncio.gather(*[worker() for _ in range(tasks)])
    return _stop(t0)


async def contended_batchsem(tasks: int, permits: int, per_task: int) -> Timing:
    """Scenario 4 on batchsem.Semaphore(permits)."""
    sem = Sem(permits)
    elapsed = await _contended(sem, tasks, per_task)
    _check(sem.available_permits == permits and sem.waiting == 0, "batchsem contended")
    return elapsed


async def contended_asyncio(tasks: int, permits: int, per_task: int) -> Timing:
    """Scenario 4 on asyncio.Semaphore(permits)."""
    sem = asyncio.Semaphore(permits)
    elapsed = await _contended(sem, tasks, per_task)
    _check(sem._value == permits and _asyncio_waiting(sem) == 0, "asyncio contended")
    return elapsed


async def handoff_batchsem(per_task: int) -> Timing:
    """Scenario 5 on batchsem: 2 tasks, Semaphore(1); every acquire waits for a hand-over."""
    sem = Sem(1)
    elapsed = await _contended(sem, 2, per_task)
    _check(sem.available_permits == 1 and sem.waiting == 0, "batchsem hand-off")
    return elapsed


async def handoff_asyncio(per_task: int) -> Timing:
    """Scenario 5 on asyncio.Semaphore(1)."""
    sem = asyncio.Semaphore(1)
    elapsed = await _contended(sem, 2, per_task)
    _check(sem._value == 1 and _asyncio_waiting(sem) == 0, "asyncio hand-off")
    return elapsed


async def handoff_floor(per_task: int) -> Timing:
    """Scenario 5's floor: the same hand-offs with nothing but the event loop's share.

    Per wait: find the running loop and await a new future; per hand-off: the
    releasing task resolves it. Any asyncio primitive that can be used from any
    loop pays at least that much; this pays nothing else (no queue, no checks:
    a 1-permit hand-off for exactly 2 tasks, not a semaphore). batchsem's speed
    against it says how much of a hand-off is the semaphore's own.
    """
    held = False
    waiter: asyncio.Future[None] | None = None

    async def worker() -> None:
        nonlocal held, waiter
        for _ in range(per_task):
            if held:
                fut = asyncio.get_running_loop().create_future()
                waiter = fut
                await fut
            else:
                held = True
            await asyncio.sleep(0)
            woken = waiter
            if woken is None:
                held = False
            else:
                waiter = None
                woken.set_result(None)

    t0 = _start()
    await asyncio.gather(worker(), worker())
    elapsed = _stop(t0)
    _check(not held and waiter is None, "hand-off floor")
    return elapsed


THREADS = 4


def _threaded(body: Callable[[], None]) -> Timing:
    """Run ``body`` on THREADS threads at once; the time from the start signal to the last join."""
    import threading

    start = threading.Barrier(THREADS + 1)

    def run() -> None:
        start.wait()
        body()

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for t in threads:
        t.start()
    t0 = _start()
    start.wait()
    for t in threads:
        t.join()
    return _stop(t0)


async def threads_batchsem(iters: int, permits: int) -> Timing:
    """Scenario 6, batchsem: 4 threads each ``acquire_blocking(); release()`` in a loop."""
    sem = Sem(permits)

    def body() -> None:
        acquire = sem.acquire_blocking
        for _ in range(iters):
            acquire().release()

    elapsed = _threaded(body)
    _check(sem.available_permits == permits and sem.waiting == 0, "batchsem threads")
    return elapsed


async def threads_threading(iters: int, permits: int) -> Timing:
    """Scenario 6, threading.Semaphore: 4 threads each ``acquire(); release()`` in a loop."""
    import threading

    sem = threading.Semaphore(permits)

    def body() -> None:
        acquire, release = sem.acquire, sem.release
        for _ in range(iters):
            acquire()
            release()

    elapsed = _threaded(body)
    _check(sem._value == permits, "threading.Semaphore threads")
    return elapsed


def _start() -> Timing:
    return perf_counter(), process_time()


def _stop(t0: Timing) -> Timing:
    wall, cpu = perf_counter(), process_time()
    return wall - t0[0], cpu - t0[1]


def _asyncio_waiting(sem: asyncio.Semaphore) -> int:
    waiters = sem._waiters
    return len(waiters) if waiters else 0


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise AssertionError(f"benchmark sanity check failed: {what}")


# ------------------------------------------------------------- registry


@dataclass(frozen=True)
class Scenario:
    """One row of the table: the same workload for both semaphores."""

    key: str
    title: str
    unit: str  # what one "op" is, for ops/s
    ops: int
    target: float | None  # minimum ratio; None = informational row
    target_text: str
    runs: dict[str, RunFn]  # impl name -> timed run; "asyncio" is the baseline side
    baseline: str = "asyncio.Semaphore"
    #: Run on these loops only (None: every loop); for rows that do not use the loop.
    loops: tuple[str, ...] | None = None


#: Minimum ratios per core. The compiled core's are the bars of issue 9; the
#: Python core keeps the targets it was built to (None: information only).
TARGETS: dict[str, dict[str, float]] = {
    "c": {
        "uncontended": 1.8,
        "noop_cm": 0.85,
        "idiom": 1.8,
        "batch": 8.0,
        "cancel_random": 25.0,
        "contended": 1.2,
        "handoff": 1.2,
        "threads": 1.0,
    },
    "python": {
        "uncontended": 1.2,
        "batch": 3.0,
        "cancel_random": 10.0,
        "contended": 1.0,
        "handoff": 1.0,
    },
}

SCENARIO_KEYS = (
    "uncontended",
    "noop_cm",
    "idiom",
    "batch",
    "cancel_random",
    "cancel_fifo",
    "cancel_gather",
    "cancel_floor",
    "contended",
    "handoff",
    "handoff_floor",
    "threads",
)


def build_scenarios(sizes: Sizes, core: str | None = None) -> list[Scenario]:
    """The scenarios, in table order, sized by ``sizes``, with the targets of ``core``."""
    s = sizes
    n_cancel = s.cancel_waiters
    per_task = s.contended_per_task
    contended_ops = s.contended_tasks * per_task
    k = s.batch_permits
    targets = TARGETS[core or CORE]

    def target(key: str) -> tuple[float | None, str]:
        t = targets.get(key)
        if t is None:
            return None, "(info)"
        return t, f">={t:g}x"

    def cancel(order: str, wait: str = "drain") -> dict[str, RunFn]:
        async def run_bs(seed: int) -> Timing:
            return await cancel_batchsem(n_cancel, order, seed, wait)

        async def run_aio(seed: int) -> Timing:
            return await cancel_asyncio(n_cancel, order, seed, wait)

        return {"batchsem": run_bs, "asyncio": run_aio}

    async def cancel_floor_run(seed: int) -> Timing:
        return await cancel_floor(n_cancel, "random", seed)

    def pair(
        bs: Callable[[], Coroutine[Any, Any, Timing]],
        base: Callable[[], Coroutine[Any, Any, Timing]],
    ) -> dict[str, RunFn]:
        async def run_bs(seed: int) -> Timing:
            return await bs()

        async def run_base(seed: int) -> Timing:
            return await base()

        return {"batchsem": run_bs, "asyncio": run_base}

    def row(
        key: str, title: str, unit: str, ops: int, runs: dict[str, RunFn], **kw: Any
    ) -> Scenario:
        t, text = target(key)
        return Scenario(key, title, unit, ops, t, text, runs, **kw)

    n = s.uncontended_iters
    return [
        row(
            "uncontended",
            "1 uncontended `async with` (Sem(1), 1 task)",
            "acquire+release",
            n,
            pair(lambda: uncontended_batchsem(n), lambda: uncontended_asyncio(n)),
        ),
        row(
            "noop_cm",
            "1b uncontended `async with` vs a no-op async CM",
            "async with",
            n,
            pair(lambda: uncontended_batchsem(n), lambda: uncontended_noop(n)),
            baseline="no-op async CM",
        ),
        row(
            "idiom",
            "1c `await sem.acquire(); sem.release()`",
            "acquire+release",
            n,
            pair(lambda: idiom_batchsem(n), lambda: idiom_asyncio(n)),
        ),
        row(
            "batch",
            f"2 acquire({k}) vs {k}x acquire() (Sem({k}))",
            f"{k}-permit acquire+release",
            s.batch_iters,
            pair(lambda: batch_batchsem(s.batch_iters, k), lambda: batch_asyncio(s.batch_iters, k)),
        ),
        row(
            "cancel_random",
            f"3 cancel {n_cancel:,} queued waiters, random order",
            "cancellation",
            n_cancel,
            cancel("random"),
        ),
        row(
            "cancel_fifo",
            f"3b cancel {n_cancel:,} queued waiters, front-to-back",
            "cancellation",
            n_cancel,
            cancel("fifo"),
        ),
        row(
            "cancel_gather",
            f"3c cancel {n_cancel:,}, random order, then gather()",
            "cancellation",
            n_cancel,
            cancel("random", "gather"),
        ),
        row(
            "cancel_floor",
            f"3d cancel {n_cancel:,}, random order, vs the loop's floor (bare futures)",
            "cancellation",
            n_cancel,
            {"batchsem": cancel("random")["batchsem"], "asyncio": cancel_floor_run},
            baseline="bare futures",
        ),
        row(
            "contended",
            f"4 {s.contended_tasks} tasks / {s.contended_permits} permits, `async with: sleep(0)`",
            "acquire+release",
            contended_ops,
            pair(
                lambda: contended_batchsem(s.contended_tasks, s.contended_permits, per_task),
                lambda: contended_asyncio(s.contended_tasks, s.contended_permits, per_task),
            ),
        ),
        row(
            "handoff",
            "5 2 tasks / 1 permit, every acquire a hand-off",
            "acquire+release",
            2 * s.handoff_per_task,
            pair(
                lambda: handoff_batchsem(s.handoff_per_task),
                lambda: handoff_asyncio(s.handoff_per_task),
            ),
        ),
        row(
            "handoff_floor",
            "5b hand-off vs the loop's floor (bare futures)",
            "acquire+release",
            2 * s.handoff_per_task,
            pair(
                lambda: handoff_batchsem(s.handoff_per_task),
                lambda: handoff_floor(s.handoff_per_task),
            ),
            baseline="bare futures",
        ),
        row(
            "threads",
            f"6 {THREADS} threads acquire_blocking+release (Sem({s.thread_permits}))",
            "acquire+release",
            THREADS * s.thread_iters,
            pair(
                lambda: threads_batchsem(s.thread_iters, s.thread_permits),
                lambda: threads_threading(s.thread_iters, s.thread_permits),
            ),
            baseline="threading.Semaphore",
            loops=("asyncio",),
        ),
    ]


# ---------------------------------------------------------------- loops


def available_loops(wanted: Sequence[str]) -> tuple[dict[str, LoopFactory], list[str]]:
    """Event loop factories by name, and notes about loops that had to be skipped."""
    loops: dict[str, LoopFactory] = {}
    notes: list[str] = []
    for name in wanted:
        if name == "asyncio":
            loops[name] = asyncio.new_event_loop
        elif name == "uvloop":
            try:
                import uvloop
            except ImportError as exc:
                notes.append(f"uvloop skipped: it cannot be imported ({exc})")
                continue
            loops[name] = uvloop.new_event_loop
        else:
            raise ValueError(f"unknown event loop {name!r}")
    return loops, notes


def uvloop_version() -> str | None:
    try:
        import uvloop
    except ImportError:
        return None
    return str(getattr(uvloop, "__version__", "?"))


# ---------------------------------------------------------------- running


def run_once(factory: LoopFactory, fn: RunFn, seed: int, *, keep_gc: bool) -> Timing:
    """One timed run on a fresh event loop; returns the (wall, CPU) seconds it measured."""
    gc.collect()
    if not keep_gc:
        gc.disable()
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(fn(seed))
    finally:
        if not keep_gc:
            gc.enable()


#: A best run whose wall time exceeds its CPU time by more than this was
#: probably preempted (another process had the CPU); the table flags it.
PREEMPTED = 1.10


@dataclass
class Cell:
    """All timings of one scenario on one loop."""

    loop: str
    scenario: Scenario
    times: dict[str, list[Timing]]
    first: list[str]

    def walls(self, impl: str) -> list[float]:
        return [wall for wall, _ in self.times[impl]]

    def cpus(self, impl: str) -> list[float]:
        return [cpu for _, cpu in self.times[impl]]

    def best(self, impl: str) -> float:
        """The shortest wall-clock time of all rounds."""
        return min(self.walls(impl))

    def best_cpu(self, impl: str) -> float:
        """The shortest CPU time of all rounds."""
        return min(self.cpus(impl))

    def ops_per_s(self, impl: str) -> float:
        return self.scenario.ops / self.best(impl)

    def ratio(self) -> float:
        """batchsem throughput / asyncio throughput (= asyncio time / batchsem time), best-of-N."""
        return self.best("asyncio") / self.best("batchsem")

    def median_ratio(self) -> float:
        return statistics.median(self.walls("asyncio")) / statistics.median(self.walls("batchsem"))

    def cpu_ratio(self) -> float:
        """The same ratio from the best CPU times (insensitive to preemption by other processes)."""
        return self.best_cpu("asyncio") / max(self.best_cpu("batchsem"), 1e-9)

    def preempted(self) -> bool:
        """True if a best wall time looks inflated by preemption (wall >> CPU in that run)."""
        for impl in IMPLS:
            wall, cpu = min(self.times[impl])
            if wall > PREEMPTED * cpu:
                return True
        return False

    def passed(self) -> bool | None:
        target = self.scenario.target
        return None if target is None else self.ratio() >= target

    def as_dict(self) -> dict[str, Any]:
        sc = self.scenario
        return {
            "loop": self.loop,
            "scenario": sc.key,
            "title": sc.title,
            "unit": sc.unit,
            "ops": sc.ops,
            "target_ratio": sc.target,
            "baseline": sc.baseline,
            "ratio_kind": (
                "asyncio time / batchsem time"
                if sc.key.startswith("cancel")
                else "batchsem ops/s / asyncio ops/s"
            ),
            "wall_seconds": {impl: self.walls(impl) for impl in IMPLS},
            "cpu_seconds": {impl: self.cpus(impl) for impl in IMPLS},
            "first_in_round": list(self.first),
            "best_wall_seconds": {impl: self.best(impl) for impl in IMPLS},
            "best_cpu_seconds": {impl: self.best_cpu(impl) for impl in IMPLS},
            "best_ops_per_s": {impl: self.ops_per_s(impl) for impl in IMPLS},
            "ratio_best": self.ratio(),
            "ratio_median": self.median_ratio(),
            "ratio_cpu": self.cpu_ratio(),
            "preempted": self.preempted(),
            "pass": self.passed(),
        }


def warm_up(
    loops: dict[str, LoopFactory], scenarios: list[Scenario], *, keep_gc: bool
) -> dict[str, dict[str, dict[str, Timing]]]:
    """One small run of everything, not used in the table (imports, caches, allocator)."""
    out: dict[str, dict[str, dict[str, Timing]]] = {}
    for loop_name, factory in loops.items():
        out[loop_name] = {}
        for sc in scenarios:
            if sc.loops is not None and loop_name not in sc.loops:
                continue
            out[loop_name][sc.key] = {
                impl: run_once(factory, sc.runs[impl], 0, keep_gc=keep_gc) for impl in IMPLS
            }
    return out


def run_all(
    loops: dict[str, LoopFactory],
    scenarios: list[Scenario],
    rounds: int,
    *,
    keep_gc: bool,
    progress: bool = True,
) -> list[Cell]:
    """Best of ``rounds``; each round runs every (loop, scenario) pair A/B, alternating order."""
    cells = {
        (loop_name, sc.key): Cell(loop_name, sc, {impl: [] for impl in IMPLS}, [])
        for loop_name in loops
        for sc in scenarios
        if sc.loops is None or loop_name in sc.loops
    }
    started = perf_counter()
    for rnd in range(rounds):
        for loop_name, factory in loops.items():
            for i, sc in enumerate(scenarios):
                if (loop_name, sc.key) not in cells:
                    continue
                cell = cells[(loop_name, sc.key)]
                order = IMPLS if (rnd + i) % 2 == 0 else IMPLS[::-1]
                cell.first.append(order[0])
                for impl in order:
                    # Same seed for both: random cancel order is identical within a round.
                    cell.times[impl].append(run_once(factory, sc.runs[impl], rnd, keep_gc=keep_gc))
        if progress:
            print(
                f"  round {rnd + 1}/{rounds} done ({perf_counter() - started:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    return list(cells.values())


# ---------------------------------------------------------------- extras


async def _queued_bytes(kind: str, n: int) -> float:
    """tracemalloc bytes per task while ``n`` tasks wait: on batchsem, asyncio or a bare future.

    Counted from before the tasks are created until all of them are waiting, so
    the figure includes the Task and the waiting coroutine; the ``future`` kind
    (every task awaits one shared future) is that common part alone.
    """
    import tracemalloc

    loop = asyncio.get_running_loop()
    started = 0
    if kind == "batchsem":
        sem: Any = Sem(0)

        def wait() -> Any:
            return sem.acquire(1)

        def count() -> int:
            return int(sem.waiting)
    elif kind == "asyncio":
        sem = asyncio.Semaphore(0)
        wait = sem.acquire

        def count() -> int:
            return _asyncio_waiting(sem)
    else:
        shared = loop.create_future()

        def wait() -> Any:
            return shared

        def count() -> int:
            return started

    async def waiter() -> None:
        nonlocal started
        started += 1
        await wait()

    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tasks = [asyncio.create_task(waiter()) for _ in range(n)]
        while count() < n:
            await asyncio.sleep(0)
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return used / n


def memory_per_waiter(n: int = 10_000, rounds: int = 3) -> dict[str, Any]:
    """Bytes per queued waiter (smallest of ``rounds``), on the asyncio loop."""
    best: dict[str, float] = {}
    for _ in range(rounds):
        for kind in ("batchsem", "asyncio", "future"):
            per = asyncio.run(_queued_bytes(kind, n))
            best[kind] = min(best.get(kind, per), per)
    share = {k: best[k] - best["future"] for k in ("batchsem", "asyncio")}
    return {
        "waiters": n,
        "bytes_per_task": best,
        "semaphore_bytes_per_waiter": share,
        "pass": share["batchsem"] <= share["asyncio"],
    }


async def _storm(kind: str, n: int, seed: int) -> tuple[float, float]:
    """Queue ``n`` waiters on Sem(0), then cancel them all (random order) or close().

    ``kind="bare"`` is asyncio's own share, for reference: ``n`` tasks each awaiting
    its own future, cancelled in random order (no semaphore involved).
    Returns (seconds per waiter for the cancel calls / the close() call alone,
    seconds per waiter until every task has finished).
    """
    sem = Sem(0)
    loop = asyncio.get_running_loop()
    started = 0

    async def waiter() -> None:
        nonlocal started
        started += 1
        if kind == "bare":
            await loop.create_future()
            return
        with contextlib.suppress(batchsem.AcquireError):  # the close storm's outcome
            await sem.acquire(1)

    tasks = [asyncio.create_task(waiter()) for _ in range(n)]
    while started < n or (kind != "bare" and sem.waiting < n):
        await asyncio.sleep(0)
    victims = _cancel_order(tasks, "random", seed)
    gc.collect()
    gc.disable()
    try:
        t0 = perf_counter()
        if kind in ("cancel", "bare"):
            for t in victims:
                t.cancel()
        else:
            sem.close()
        t1 = perf_counter()
        while not all(t.done() for t in tasks):
            await asyncio.sleep(0)
        t2 = perf_counter()
    finally:
        gc.enable()
    _check(sem.waiting == 0 and sem.available_permits == 0, f"{kind} storm: queue not empty")
    return (t1 - t0) / n, (t2 - t0) / n


async def _throw_storm(
    n: int, seed: int, order_kind: str = "random", *, bare: bool = False
) -> float:
    """The semaphore's own part of a cancel storm: seconds per waiter.

    ``n`` coroutines each wait in ``await sem.acquire(1)``, driven by hand (no
    Tasks, so no event-loop work is timed); then CancelledError is thrown into
    them in a random order: each throw unlinks one node and fails the await.
    ``bare=True`` is its floor: the coroutines await a bare future each instead,
    so the throws touch the same kind of scattered objects with no semaphore.
    """
    sem = Sem(0)
    loop = asyncio.get_running_loop()

    async def waiter() -> None:
        if bare:
            await loop.create_future()
        else:
            await sem.acquire(1)

    coros = [waiter() for _ in range(n)]
    for c in coros:
        c.send(None)
    _check(bare or sem.waiting == n, "throw storm: not all queued")
    order = list(range(n))
    if order_kind == "random":
        random.Random(seed).shuffle(order)
    gc.collect()
    gc.disable()
    try:
        t0 = perf_counter()
        for i in order:
            with contextlib.suppress(asyncio.CancelledError):
                coros[i].throw(asyncio.CancelledError)
        elapsed = perf_counter() - t0
    finally:
        gc.enable()
    _check(sem.waiting == 0 and sem.available_permits == 0, "throw storm: queue not empty")
    return elapsed / n


def run_storm(what: str, n: int, seed: int, order: str = "random") -> Any:
    """One storm, measured in the calling process: ``_storm`` for "cancel", "close" and
    "bare", ``_throw_storm`` for "throw" and "throw_bare" (JSON-able result)."""
    if what in ("throw", "throw_bare"):
        return asyncio.run(_throw_storm(n, seed, order, bare=what == "throw_bare"))
    return list(asyncio.run(_storm(what, n, seed)))


def storm_in_fresh_process(what: str, n: int, seed: int, order: str = "random") -> Any:
    """:func:`run_storm` in a new interpreter with the same core.

    No storm inherits another's heap: after a storm of 10^6 waiters the allocator's
    free lists are scattered over about a gigabyte, and every later storm in the same
    process chases pointers across it, whatever its size.
    """
    cmd = [sys.executable, __file__, "--impl", CORE, "--storm-child", what, str(n), str(seed)]
    cmd.append(order)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"storm {what} of {n:,} failed in its interpreter:\n{done.stderr}")
    return json.loads(done.stdout)


def storm_scaling(
    small: int = 10_000, large: int = 1_000_000, rounds: int = 5, *, fresh: bool = True
) -> dict[str, Any]:
    """Per-waiter cost of cancel and close storms at ``small`` and ``large`` waiters.

    Best of ``rounds`` runs at ``small``, of 2 at ``large``; each run in a fresh
    interpreter unless ``fresh`` is false (then all in this process, one after another).
    """
    storm = storm_in_fresh_process if fresh else run_storm
    out: dict[str, Any] = {"small": small, "large": large, "fresh_process_per_run": fresh}
    sizes = ((small, rounds), (large, 2))
    for kind in ("cancel", "close", "bare"):
        per: dict[int, tuple[float, float]] = {}
        for size, reps in sizes:
            runs = [storm(kind, size, seed) for seed in range(reps)]
            per[size] = (min(r[0] for r in runs), min(r[1] for r in runs))
        growth = per[large][1] / per[small][1]
        out[kind] = {
            "op_seconds_per_waiter": {str(k): v[0] for k, v in per.items()},
            "total_seconds_per_waiter": {str(k): v[1] for k, v in per.items()},
            "growth_total": growth,
            "growth_op": per[large][0] / per[small][0],
            "pass": growth <= 1.5,
        }
    throws = (("random", "throw"), ("fifo", "throw"), ("random", "throw_bare"))
    for order_kind, what in throws:
        per_throw = {
            size: min(float(storm(what, size, seed, order_kind)) for seed in range(reps))
            for size, reps in sizes
        }
        name = "bare_futures" if what == "throw_bare" else "semaphore_only"
        out[f"{name}_cancel_{order_kind}"] = {
            "seconds_per_waiter": {str(k): v for k, v in per_throw.items()},
            "growth": per_throw[large] / per_throw[small],
            "pass": per_throw[large] / per_throw[small] <= 1.5,
        }
    return out


def render_extras(memory: dict[str, Any] | None, scaling: dict[str, Any] | None) -> str:
    lines: list[str] = []
    if memory is not None:
        b, sh = memory["bytes_per_task"], memory["semaphore_bytes_per_waiter"]
        lines.append(
            f"memory per queued waiter ({memory['waiters']:,} tasks, tracemalloc): "
            f"task total batchsem {b['batchsem']:.0f} B, asyncio {b['asyncio']:.0f} B, "
            f"bare future {b['future']:.0f} B; the semaphore's share: batchsem "
            f"{sh['batchsem']:.0f} B vs asyncio {sh['asyncio']:.0f} B -> "
            + ("PASS" if memory["pass"] else "MISS")
        )
    if scaling is not None:
        small, large = str(scaling["small"]), str(scaling["large"])

        def at(per: dict[str, float], scale: float, unit: str) -> str:
            return (
                f"{float(per[small]) * scale:.2f} {unit} at {int(small):,}, "
                f"{float(per[large]) * scale:.2f} {unit} at {int(large):,}"
            )

        for kind in ("cancel", "close", "bare"):
            r = scaling[kind]
            label = "asyncio alone (own futures, cancel)" if kind == "bare" else kind
            lines.append(
                f"{label} storm per waiter: {at(r['total_seconds_per_waiter'], 1e6, 'us')} "
                f"(x{r['growth_total']:.2f}, bar <= 1.5: {'PASS' if r['pass'] else 'MISS'}); "
                f"the {'close call' if kind == 'close' else 'cancel calls'} alone: "
                f"{at(r['op_seconds_per_waiter'], 1e9, 'ns')} (x{r['growth_op']:.2f})"
            )
        for order_kind in ("random", "fifo"):
            r = scaling[f"semaphore_only_cancel_{order_kind}"]
            lines.append(
                f"the semaphore's own cancel, {order_kind} order (throw into hand-driven "
                f"waiters, no Tasks): {at(r['seconds_per_waiter'], 1e9, 'ns')} "
                f"(x{r['growth']:.2f})"
            )
        r = scaling.get("bare_futures_cancel_random")
        if r is not None:  # absent from files written before it was measured
            lines.append(
                "the same throws into coroutines awaiting bare futures (no semaphore), "
                f"random order: {at(r['seconds_per_waiter'], 1e9, 'ns')} (x{r['growth']:.2f})"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------- output


def fmt_rate(ops_per_s: float) -> str:
    if ops_per_s >= 1e6:
        return f"{ops_per_s / 1e6:.2f}M/s"
    if ops_per_s >= 1e3:
        return f"{ops_per_s / 1e3:.1f}k/s"
    return f"{ops_per_s:.1f}/s"


def fmt_time(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}ms"


def render_table(cells: list[Cell]) -> str:
    headers = (
        "loop",
        "scenario",
        "batchsem ops/s (best)",
        "baseline",
        "baseline ops/s (best)",
        "ratio",
        "median",
        "cpu",
        "target",
        "result",
    )
    rows: list[tuple[str, ...]] = []
    for c in cells:
        passed = c.passed()
        rows.append(
            (
                c.loop,
                c.scenario.title,
                f"{fmt_rate(c.ops_per_s('batchsem'))} ({fmt_time(c.best('batchsem'))})",
                c.scenario.baseline,
                f"{fmt_rate(c.ops_per_s('asyncio'))} ({fmt_time(c.best('asyncio'))})",
                f"{c.ratio():.2f}x" + ("*" if c.preempted() else ""),
                f"{c.median_ratio():.2f}x",
                f"{c.cpu_ratio():.2f}x",
                c.scenario.target_text,
                "-" if passed is None else ("PASS" if passed else "MISS"),
            )
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    right = {2, 4, 5, 6, 7}

    def line(cols: Sequence[str]) -> str:
        parts = [
            col.rjust(widths[i]) if i in right else col.ljust(widths[i])
            for i, col in enumerate(cols)
        ]
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    prev_loop: str | None = None
    for r in rows:
        if prev_loop is not None and r[0] != prev_loop:
            out.append("")
        prev_loop = r[0]
        out.append(line(r))
    return "\n".join(out)


#: Floor rows (batchsem against bare futures) and the row each one bounds.
FLOORS = {"cancel_floor": "cancel_random", "handoff_floor": "handoff"}


def ceilings(cells: list[Cell]) -> list[dict[str, Any]]:
    """What a semaphore costing nothing would reach on each bounded row, per loop.

    That is the best time of ``asyncio.Semaphore`` on the row over the best time
    of bare futures on its floor row (the floor row's baseline), from the same run.
    """
    by_key = {(c.loop, c.scenario.key): c for c in cells}
    out = []
    for floor_key, key in FLOORS.items():
        for loop in dict.fromkeys(c.loop for c in cells):
            main, floor = by_key.get((loop, key)), by_key.get((loop, floor_key))
            if main is not None and floor is not None:
                ceiling = main.best("asyncio") / floor.best("asyncio")
                out.append(
                    {
                        "loop": loop,
                        "scenario": key,
                        "ceiling": ceiling,
                        "target_ratio": main.scenario.target,
                    }
                )
    return out


def render_ceilings(rows: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"ceiling of {r['scenario']} on {r['loop']}: {r['ceiling']:.2f}x for a semaphore "
        "costing nothing (bare futures against asyncio.Semaphore)"
        + ("" if r["target_ratio"] is None else f"; target {r['target_ratio']:g}x")
        for r in rows
    )


def describe_env(sizes: Sizes, rounds: int, loops: Sequence[str], keep_gc: bool) -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "batchsem": getattr(batchsem, "__version__", "?"),
        "batchsem_implementation": batchsem.IMPLEMENTATION,  # the one `import batchsem` chose
        "batchsem_core": CORE,  # the one measured (--impl)
        "uvloop": uvloop_version(),
        "loops": list(loops),
        "rounds": rounds,
        "gc_during_timing": keep_gc,
        "timer": "time.perf_counter",
        "sizes": sizes.__dict__.copy(),
        "batchsem_file": getattr(batchsem, "__file__", None),
        "batchsem_semaphore_sha256": _source_digest(),
        "loadavg": _loadavg(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _source_digest() -> str | None:
    """sha256 over the library's core modules that were measured (the library may be edited)."""
    package = Path(getattr(batchsem, "__file__", "")).parent
    digest = hashlib.sha256()
    for name in ("_semaphore.py", "_waitlist.py", "_lock.py", "_sync.py", "_cbatchsem.c"):
        try:
            digest.update((package / name).read_bytes())
        except OSError:
            continue
    return digest.hexdigest()


def _loadavg() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


# ------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="batchsem.Semaphore vs asyncio.Semaphore, on asyncio and uvloop.",
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds (best of N; default 7, 2 with --quick)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="short run: 2 rounds, smaller work (~15 s)"
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write raw timings")
    parser.add_argument(
        "--loop",
        choices=("all", "asyncio", "uvloop"),
        default="all",
        help="event loop(s) to run on (default: all)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIO_KEYS,
        help="run only this scenario (repeatable)",
    )
    parser.add_argument(
        "--gc", action="store_true", help="keep the garbage collector enabled while timing"
    )
    parser.add_argument("--no-warmup", action="store_true", help="skip the warm-up pass")
    parser.add_argument(
        "--impl",
        choices=("active", "c", "python"),
        default="active",
        help="which batchsem core to measure (default: the one `import batchsem` chose)",
    )
    parser.add_argument(
        "--extras",
        choices=("none", "memory", "scaling", "all"),
        default="all",
        help="after the table: memory per queued waiter and cancel/close storm scaling",
    )
    parser.add_argument(
        "--scaling-max",
        type=int,
        default=1_000_000,
        help="the large waiter count of the scaling check (default 10^6)",
    )
    parser.add_argument(
        "--scaling-in-process",
        action="store_true",
        help="run every storm of the scaling check in this process (default: each in a "
        "fresh interpreter)",
    )
    parser.add_argument("--storm-child", nargs=4, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be >= 1")
    return args


def select_core(impl: str) -> None:
    """Point the scenarios at the chosen core's Semaphore (``--impl``)."""
    global Sem, CORE
    if impl == "c":
        from batchsem import _cbatchsem

        Sem, CORE = _cbatchsem.Semaphore, "c"
    elif impl == "python":
        from batchsem import _semaphore

        Sem, CORE = _semaphore.Semaphore, "python"


def use_semaphore(cls: Any) -> None:
    """Point the batchsem scenarios at any Semaphore class with batchsem's API.

    For scripts that import this module and measure other builds of the core side
    by side (``benchmarks/cython_core/compare.py``): the scenario functions read the
    class when they run, so set it before each run.
    """
    global Sem
    Sem = cls


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    select_core(args.impl)
    if args.storm_child is not None:  # one storm of storm_in_fresh_process
        what, n, seed, order = args.storm_child
        print(json.dumps(run_storm(what, int(n), int(seed), order)))
        return 0
    rounds: int = args.rounds if args.rounds is not None else (2 if args.quick else 7)
    sizes = Sizes()
    if args.quick:
        sizes = sizes.scaled(0.35, keep_cancel=True)
    wanted = ["asyncio", "uvloop"] if args.loop == "all" else [args.loop]
    loops, notes = available_loops(wanted)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if not loops:
        print("error: no event loop to run on", file=sys.stderr)
        return 2
    scenarios = build_scenarios(sizes)
    if args.scenario:
        scenarios = [sc for sc in scenarios if sc.key in args.scenario]
    env = describe_env(sizes, rounds, list(loops), args.gc)

    print(
        f"batchsem {env['batchsem']} ({CORE} core) vs asyncio.Semaphore | Python {env['python']} "
        f"({env['implementation']}) | uvloop {env['uvloop'] or 'not available'} | "
        f"{env['platform']} | {env['cpu_count']} CPUs",
        file=sys.stderr,
    )
    print(
        f"best of {rounds} rounds, A/B interleaved, fresh loop per run, "
        f"gc {'on' if args.gc else 'off'} while timing",
        file=sys.stderr,
    )

    started = perf_counter()
    warmup: dict[str, dict[str, dict[str, Timing]]] = {}
    if not args.no_warmup:
        print("  warming up", file=sys.stderr, flush=True)
        keys = {sc.key for sc in scenarios}
        small = [
            sc for sc in build_scenarios(sizes.scaled(0.1, keep_cancel=False)) if sc.key in keys
        ]
        warmup = warm_up(loops, small, keep_gc=args.gc)
    cells = run_all(loops, scenarios, rounds, keep_gc=args.gc)
    memory = scaling = None
    if args.extras in ("memory", "all"):
        print("  memory per queued waiter", file=sys.stderr, flush=True)
        memory = memory_per_waiter()
    if args.extras in ("scaling", "all"):
        where = "all in this process" if args.scaling_in_process else "each in a fresh interpreter"
        print(
            f"  storm scaling 10^4 vs {args.scaling_max:,} ({where})", file=sys.stderr, flush=True
        )
        scaling = storm_scaling(large=args.scaling_max, fresh=not args.scaling_in_process)
    total = perf_counter() - started

    print()
    print(render_table(cells))
    extras = render_extras(memory, scaling)
    if extras:
        print()
        print(extras)
    print()
    print(
        "ratio  = batchsem ops/s / asyncio ops/s (cancel rows: asyncio time / batchsem time),\n"
        "         from each side's best wall-clock run; PASS/MISS compares it with the target.\n"
        "median = the same ratio from median wall times; cpu = from best CPU (process) times.\n"
        f"*      = a best run's wall time exceeded its CPU time by >{PREEMPTED - 1:.0%}"
        " (preempted: machine busy).\n"
        f"Total {total:.1f} s."
    )
    if any(c.preempted() for c in cells):
        print(
            "warning: some best runs were preempted; rerun on an idle machine "
            "or compare the 'cpu' column."
        )
    bounds = ceilings(cells)
    if bounds:
        print(render_ceilings(bounds))
    for note in notes:
        print(f"note: {note}")
    missed = [c for c in cells if c.passed() is False]
    if missed:
        print("MISSED: " + ", ".join(f"{c.scenario.key} on {c.loop}" for c in missed))

    if args.json is not None:
        payload = {
            "meta": env | {"total_seconds": total, "loadavg_end": _loadavg(), "notes": notes},
            "warmup_seconds": warmup,
            "results": [c.as_dict() for c in cells],
            "ceilings": bounds,
            "memory_per_waiter": memory,
            "storm_scaling": scaling,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"raw timings written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
