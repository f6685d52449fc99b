"""close-storm: W waiters queued behind holders, then close(); how fast do all of them fail?"""

from __future__ import annotations

import asyncio
import time

from batchsem import AcquireError

from .base import (
    Context,
    Param,
    ParamError,
    Workload,
    at_most_permits,
    close_limiter,
    prepare_close,
    run_cycles,
)


async def body(ctx: Context) -> None:
    await run_cycles(ctx, _cycle)


async def _cycle(ctx: Context, ident: int) -> int:
    """One cycle on a fresh limiter; returns the next free task id."""
    rec = ctx.recorder
    rng = ctx.rng
    waiters = ctx.params["waiters"]
    max_batch = ctx.params["max_batch"] or ctx.permits
    lim = ctx.new_limiter()
    if not prepare_close(lim):
        raise ParamError(f"{ctx.impl_name} has no close(): close-storm cannot run it")
    holder = await rec.acquire(lim, ctx.permits, ident, "holder")
    ident += 1
    observed: list[int] = []

    async def waiter(task: int, n: int) -> None:
        try:
            handle = await rec.acquire(lim, n, task, "waiter")
        except AcquireError:
            observed.append(time.perf_counter_ns())
            return
        await rec.release(lim, n, handle)  # granted after close: the invariant catches it

    tasks = [
        asyncio.ensure_future(waiter(ident + i, rng.randint(1, max_batch)))
        for i in range(waiters)
    ]
    ident += waiters
    while len(rec.pending) < waiters:
        await asyncio.sleep(0)
    rec.mark_close()
    t_close = time.perf_counter_ns()
    close_limiter(lim)
    await asyncio.gather(*tasks)
    if observed:
        rec.note("close_all_us", (max(observed) - t_close) / 1e3)
        rec.note("close_per_waiter_ns", (max(observed) - t_close) / len(observed))
    for t_obs in observed:
        rec.note_latency("waiter", t_obs - t_close)
    await rec.release(lim, ctx.permits, holder)
    rec.close_ns = None
    return ident


WORKLOAD = Workload(
    name="close-storm",
    description="fresh semaphore, W waiters of random sizes behind a holder, close(); repeat",
    params=(
        Param("waiters", int, 1000, "waiters queued per cycle", minimum=1),
        Param("max_batch", int, 0, "largest waiter batch (0 = P)", minimum=0),
    ),
    body=body,
    classes=("waiter",),
    closes=True,
    unit="failed/s",
    check=at_most_permits("max_batch"),
)
