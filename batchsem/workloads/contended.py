"""contended: T tasks compete for P permits, one permit each, holding for a while."""

from __future__ import annotations

from ._common import closed_worker, open_loop
from .base import Context, Param, Workload


async def body(ctx: Context) -> None:
    lim = ctx.new_limiter()
    hold_s = ctx.params["hold"]
    if ctx.rate is not None:
        await open_loop(ctx, lim, lambda: ("all", 1, hold_s))
        return
    await ctx.gather(
        [
            closed_worker(ctx, lim, t, "all", lambda: 1, lambda: hold_s)
            for t in range(ctx.tasks)
        ]
    )


WORKLOAD = Workload(
    name="contended",
    description="T tasks compete for P permits, 1 each, holding for --param hold seconds",
    params=(
        Param("hold", float, 0.0, "seconds a permit is held (0 = one sleep(0))", minimum=0.0),
    ),
    body=body,
    open_loop=True,
    batches=False,
    ceiling=True,
)
