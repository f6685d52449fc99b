"""uncontended: one task acquires and releases 1 permit in a loop (the fast path)."""

from __future__ import annotations

from .base import Context, Param, Workload, at_most_permits


async def body(ctx: Context) -> None:
    lim = ctx.new_limiter()
    rec = ctx.recorder
    batch = ctx.params["batch"]
    ctx.register("all", 0)
    while ctx.running():
        handle = await rec.acquire(lim, batch, 0, "all")
        await rec.release(lim, batch, handle)


WORKLOAD = Workload(
    name="uncontended",
    description="one task acquires and releases permits with nobody else around: the fast path",
    params=(Param("batch", int, 1, "permits per acquire", minimum=1),),
    body=body,
    ceiling=True,
    check=at_most_permits("batch"),
)
