"""cancel-storm: W queued waiters, a random fraction time out, the rest are served."""

from __future__ import annotations

import asyncio
import time

from .base import Context, Param, Workload, at_most_permits, run_cycles


async def body(ctx: Context) -> None:
    await run_cycles(ctx, _cycle)


async def _cycle(ctx: Context, ident: int) -> int:
    """One cycle on a fresh limiter; returns the next free task id."""
    rec = ctx.recorder
    rng = ctx.rng
    waiters = ctx.params["waiters"]
    fraction = ctx.params["fraction"]
    max_batch = ctx.params["max_batch"]
    loop = asyncio.get_running_loop()
    lim = ctx.new_limiter()
    holder = await rec.acquire(lim, ctx.permits, ident, "holder")
    ident += 1
    timeouts: list[asyncio.Timeout] = []
    timed_out: list[int] = []
    served = 0

    async def waiter(task: int, n: int, victim: bool) -> None:
        nonlocal served
        if victim:
            try:
                async with asyncio.timeout(None) as cm:
                    timeouts.append(cm)
                    handle = await rec.acquire(lim, n, task, "victim")
            except TimeoutError:
                timed_out.append(time.perf_counter_ns())
                return
            await rec.release(lim, n, handle)
            raise AssertionError("a waiter meant to time out was granted")
        handle = await rec.acquire(lim, n, task, "served")
        served += 1
        await rec.release(lim, n, handle)

    victims = [rng.random() < fraction for _ in range(waiters)]
    ordered = [
        asyncio.ensure_future(waiter(ident + i, rng.randint(1, max_batch), v))
        for i, v in enumerate(victims)
    ]
    ident += waiters
    while len(rec.pending) < waiters:
        await asyncio.sleep(0)
    # Expire the victims' timeouts in random order: the same path as a real timeout.
    rng.shuffle(timeouts)
    victim_tasks = [t for t, v in zip(ordered, victims, strict=True) if v]
    t0 = time.perf_counter_ns()
    now = loop.time()
    for cm in timeouts:
        cm.reschedule(now)
    if victim_tasks:
        await asyncio.gather(*victim_tasks)
    cancel_ns = time.perf_counter_ns() - t0
    if victim_tasks:
        rec.note("cancel_ns_per_waiter", cancel_ns / len(victim_tasks))
        for t_obs in timed_out:
            rec.note_latency("victim", t_obs - t0)
    await rec.release(lim, ctx.permits, holder)
    await asyncio.gather(*ordered)
    if served != waiters - len(victim_tasks):
        raise AssertionError(f"{served} served, expected {waiters - len(victim_tasks)}")
    return ident


WORKLOAD = Workload(
    name="cancel-storm",
    description="W waiters queue behind a holder; a random fraction time out; the rest are served",
    params=(
        Param("waiters", int, 2000, "waiters queued per cycle", minimum=1),
        Param("fraction", float, 0.5, "fraction of waiters that time out", 0.0, 1.0),
        Param("max_batch", int, 1, "largest waiter batch (sizes uniform in 1..max_batch)", 1),
    ),
    body=body,
    classes=("served", "victim"),
    check=at_most_permits("max_batch"),
)
