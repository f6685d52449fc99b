"""Randomised-schedule interleaving test (the role ``loom`` plays for Tokio).

A SelectorEventLoop subclass puts every newly scheduled callback at a random position
of its ready queue (seeded), so ready tasks run in shuffled order. For many seeds a
mixed scenario runs (random-size acquires, holds over loop steps, random cancellations,
try_acquire, add/forget, sometimes a close near the end) and is checked against the
sequential FIFO model of ``_support.Model``:

* every semaphore operation happens in one task step, and the task updates the model in
  the same step, so after each step the real free counter, queue (white-box) and the
  conservation of permits must equal the model's;
* the real grant decisions, recorded under the semaphore's lock, must come in exactly
  the model's (FIFO) order; every Permit a task receives must be one the model granted;
* no acquire succeeds after ``close()``; every task finishes.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from _support import Model, real_queue

from batchsem import AcquireError, Closed, NoPermits, Permit, Semaphore


class ShuffledLoop(asyncio.SelectorEventLoop):
    """Runs ready callbacks in a seeded random order."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self._shuffle = random.Random(seed)

    def _call_soon(self, callback: Any, args: Any, context: Any) -> Any:
        handle = super()._call_soon(callback, args, context)  # type: ignore[misc]
        ready = self._ready  # type: ignore[attr-defined]
        if len(ready) > 1 and ready[-1] is handle:
            ready.pop()
            ready.insert(self._shuffle.randrange(len(ready) + 1), handle)
        return handle


class Scenario:
    def __init__(self, seed: int, traced: bool = True) -> None:
        self.rng = random.Random(seed * 7919 + 1)
        self.permits = self.rng.randint(1, 8)
        # A tracer forces every acquire through the slow paths; untraced, the fast paths
        # run. FIFO order is checked by the queue snapshot after every step and by
        # resume_ok, which fails for a request resumed before the model granted it.
        self.traced = traced
        self.events: list[str] = []
        self.sem = Semaphore(
            self.permits, tracer=(lambda e: self.events.append(e.kind)) if traced else None
        )
        self.model = Model(self.permits)
        self.held: dict[int, Permit] = {}
        self.held_by_blocks = 0  # permits held inside `async with sem:` blocks
        self.added = 0
        self.forgotten = 0
        self.next_rid = 0
        self.progress = 0
        self.successes = 0
        self.grants_after_close = 0

    # -------------------------------------------------------------- checking

    def sync(self) -> None:
        sem, model = self.sem, self.model
        model.check()
        assert sem.closed == model.closed
        assert sem.available_permits == model.counter
        assert sem.waiting == len(model.queue)
        assert real_queue(sem) == model.snapshot()
        held = sum(p.num_permits for p in self.held.values()) + self.held_by_blocks
        assert (
            sem.available_permits + held + model.reserved()
            == self.permits + self.added - self.forgotten
        )

    # -------------------------------------------------------------- actors

    async def worker(self, rounds: int) -> None:
        rng, sem, model = self.rng, self.sem, self.model
        for _ in range(rounds):
            self.progress += 1
            roll = rng.random()
            if roll < 0.12:
                k = rng.randint(0, self.permits)
                expected = model.try_acquire(k)
                try:
                    permit = sem.try_acquire(k)
                except Closed:
                    assert expected == "closed"
                except NoPermits:
                    assert expected == "none"
                else:
                    assert expected == "ok"
                    permit.release()
                    model.add(k)
                self.sync()
                await asyncio.sleep(0)
                continue
            if roll < 0.18:
                # add some permits, later take back what is free (capacity never shrinks
                # below the initial count, so every request of size <= permits can finish)
                k = rng.randint(1, 3)
                sem.add_permits(k)
                model.add(k)
                self.added += k
                self.sync()
                await asyncio.sleep(0)
                taken = sem.forget_permits(k)
                assert taken == model.forget(k)
                self.forgotten += taken
                self.sync()
                continue
            n = rng.choice([0, *range(1, self.permits + 1)])
            self.next_rid += 1
            rid = self.next_rid
            model.request(rid, n)
            if n == 1 and rng.random() < 0.5:
                if not await self.block(rid):
                    return
                continue
            try:
                permit = await sem.acquire(n)
            except asyncio.CancelledError:
                model.abandon(rid)
                self.sync()
                raise
            except AcquireError:
                model.resume_closed(rid)
                self.sync()
                return
            self.progress += 1
            if sem.closed:
                self.grants_after_close += 1
            assert model.resume_ok(rid) == n
            assert permit.num_permits == n
            self.successes += 1
            self.held[rid] = permit
            self.sync()
            try:
                for _ in range(rng.randint(0, 3)):
                    await asyncio.sleep(0)
            finally:
                del self.held[rid]
                if rng.random() < 0.3 and n:
                    part = permit.split(rng.randint(0, n))
                    assert part is not None
                    part.release()
                permit.release()
                model.add(n)
                self.sync()

    async def block(self, rid: int) -> bool:
        """One ``async with sem:`` block for request ``rid``; False if the semaphore closed."""
        sem, model = self.sem, self.model
        inside = False
        try:
            async with sem:
                inside = True
                self.progress += 1
                if sem.closed:
                    self.grants_after_close += 1
                assert model.resume_ok(rid) == 1
                self.successes += 1
                self.held_by_blocks += 1
                self.sync()
                for _ in range(self.rng.randint(0, 3)):
                    await asyncio.sleep(0)
                self.held_by_blocks -= 1
                # __aexit__ releases right after this line, in the same loop step.
                model.add(1)
        except asyncio.CancelledError:
            if inside:  # cancelled in the body: __aexit__ gave the permit back
                self.held_by_blocks -= 1
                model.add(1)
            else:
                model.abandon(rid)
            self.sync()
            raise
        except AcquireError:
            assert not inside
            model.resume_closed(rid)
            self.sync()
            return False
        self.sync()
        return True

    async def canceller(self, tasks: list[asyncio.Task[None]], count: int) -> None:
        for _ in range(count):
            for _ in range(self.rng.randint(0, 6)):
                await asyncio.sleep(0)
            alive = [t for t in tasks if not t.done()]
            if alive:
                self.rng.choice(alive).cancel()

    async def closer(self, delay: int) -> None:
        for _ in range(delay):
            await asyncio.sleep(0)
        self.sem.close()
        self.model.close()
        self.sync()

    async def main(self) -> None:
        workers = [
            asyncio.create_task(self.worker(self.rng.randint(1, 8)))
            for _ in range(self.rng.randint(3, 14))
        ]
        others = [asyncio.create_task(self.canceller(workers, self.rng.randint(0, 4)))]
        closing = self.rng.random() < 0.3
        if closing:
            others.append(asyncio.create_task(self.closer(self.rng.randint(5, 60))))
        everything = workers + others
        idle = 0
        last = -1
        while not all(t.done() for t in everything):
            if self.progress == last:
                idle += 1
                assert idle < 2000, f"no progress: {self.sem!r}, model queue {self.model.queue}"
            else:
                idle, last = 0, self.progress
            await asyncio.sleep(0)
        for t in everything:
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
        self.sync()
        assert self.sem.waiting == 0
        assert self.held == {}
        assert self.model.pending == {}
        assert self.sem.available_permits == self.permits + self.added - self.forgotten
        assert self.grants_after_close == 0
        if self.traced:
            assert self.events.count("granted") >= self.successes


def run_shuffled(seed: int, traced: bool = True) -> Scenario:
    scenario = Scenario(seed, traced)
    errors: list[dict[str, Any]] = []

    def factory() -> asyncio.AbstractEventLoop:
        loop = ShuffledLoop(seed)
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        return loop

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(scenario.main())
    assert not errors, errors
    return scenario


def test_shuffled_loop_reorders() -> None:
    """The scheduler really shuffles: ready callbacks do not run in FIFO order."""
    loop = ShuffledLoop(3)
    seen: list[int] = []
    try:
        for i in range(20):
            loop.call_soon(seen.append, i)
        loop.run_until_complete(asyncio.sleep(0))
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    assert sorted(seen) == list(range(20))
    assert seen != list(range(20))


@pytest.mark.parametrize("traced", [True, False], ids=["traced", "fast-paths"])
@pytest.mark.parametrize("block", range(8))
def test_random_schedules(block: int, traced: bool) -> None:
    closed = successes = 0
    for seed in range(block * 50, block * 50 + 50):
        scenario = run_shuffled(seed, traced)
        closed += scenario.sem.closed
        successes += scenario.successes
    assert successes > 0
    assert closed > 0  # some seeds exercise close()
