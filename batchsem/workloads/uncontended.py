"""uncontended: one task acquires and releases 1 permit in a loop (the fast path)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Context, Param, ParamError, Workload


async def body(ctx: Context) -> None:
    lim = ctx.new_limiter()
    rec = ctx.recorder
    batch = ctx.params["batch"]
    ctx.register("all", 0)
    while ctx.running():
        handle = await rec.acquire(lim, batch, 0, "all")
        await rec.release(lim, batch, handle)


def check(params: Mapping[str, Any], permits: int, tasks: int) -> None:
    batch = params["batch"]
    if batch > permits:
        raise ParamError(f"--param batch={batch} exceeds --permits {permits}: it would never run")


WORKLOAD = Workload(
    name="uncontended",
    description="one task acquires and releases permits with nobody else around: the fast path",
    params=(Param("batch", int, 1, "permits per acquire", minimum=1),),
    body=body,
    ceiling=True,
    check=check,
)
