"""Worker loops shared by several workloads (closed-loop workers and open-loop arrivals)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .base import Context, Limiter, hold


async def closed_worker(
    ctx: Context,
    lim: Limiter,
    task: int,
    cls: str,
    size: Callable[[], int],
    hold_s: Callable[[], float],
) -> None:
    """Acquire ``size()`` permits, hold ``hold_s()`` seconds, release; until the deadline."""
    rec = ctx.recorder
    ctx.register(cls, task)
    while ctx.running():
        n = size()
        handle = await rec.acquire(lim, n, task, cls)
        await hold(hold_s())
        await rec.release(lim, n, handle)


async def open_loop(
    ctx: Context,
    lim: Limiter,
    pick: Callable[[], tuple[str, int, float]],
    max_outstanding: int = 100_000,
) -> None:
    """Poisson arrivals at ``ctx.rate`` per second until the deadline.

    Each arrival is its own task: ``pick()`` gives (class, size, hold). Its wait
    is measured from the arrival's *intended* time, so a stalled loop or
    limiter cannot hide the delay it causes (no coordinated omission). Arrivals
    beyond ``max_outstanding`` in flight are counted in the ``dropped`` metric.
    """
    assert ctx.rate is not None
    rec = ctx.recorder
    rng = ctx.rng
    rate = ctx.rate
    inflight: set[asyncio.Task[None]] = set()
    dropped = 0
    ident = 0

    async def one(task: int, cls: str, n: int, hold_for: float, t_intended: int) -> None:
        handle = await rec.acquire(lim, n, task, cls, t_req=t_intended)
        await hold(hold_for)
        await rec.release(lim, n, handle)

    next_ns = time.perf_counter_ns()
    while ctx.running():
        now = time.perf_counter_ns()
        while next_ns <= now:
            if len(inflight) >= max_outstanding:
                dropped += 1
            else:
                cls, n, hold_for = pick()
                t = asyncio.ensure_future(one(ident, cls, n, hold_for, next_ns))
                inflight.add(t)
                t.add_done_callback(inflight.discard)
                ident += 1
            next_ns += int(rng.expovariate(rate) * 1e9)
        await asyncio.sleep(max(0.0, (next_ns - time.perf_counter_ns()) / 1e9))
    rec.note("dropped", float(dropped))
    rec.note("arrivals", float(ident))
    if inflight:
        await ctx.gather(list(inflight))
