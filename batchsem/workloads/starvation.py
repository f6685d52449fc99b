"""starvation: small requests keep the semaphore saturated while one task asks for K permits."""

from __future__ import annotations

from ._common import closed_worker
from .base import Context, Param, Workload, at_most_permits, hold


async def body(ctx: Context) -> None:
    lim = ctx.new_limiter()
    rec = ctx.recorder
    k = ctx.params["batch"] or ctx.permits
    small_hold = ctx.params["hold"]
    large_hold = ctx.params["large_hold"]
    large = ctx.tasks  # the large task's id comes after the small ones

    async def large_worker() -> None:
        ctx.register("large", large)
        while ctx.running():
            handle = await rec.acquire(lim, k, large, "large")
            await hold(large_hold)
            await rec.release(lim, k, handle)

    small = [
        closed_worker(ctx, lim, t, "small", lambda: 1, lambda: small_hold)
        for t in range(ctx.tasks)
    ]
    await ctx.gather([*small, large_worker()])


WORKLOAD = Workload(
    name="starvation",
    description="T one-permit tasks saturate P permits while one task repeatedly asks for K",
    params=(
        Param("batch", int, 0, "K, the large request's size (0 = all P permits)", minimum=0),
        Param("hold", float, 0.0, "seconds a small task holds (0 = one sleep(0))", 0.0),
        Param("large_hold", float, 0.0, "seconds the large task holds (0 = one sleep(0))", 0.0),
    ),
    body=body,
    classes=("small", "large"),
    check=at_most_permits("batch"),
)
