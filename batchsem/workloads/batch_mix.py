"""batch-mix: T tasks ask for random batch sizes (a pool / bandwidth-budget shape)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._common import closed_worker, open_loop
from .base import Context, Param, Workload, parse_sizes

DEFAULT_SIZES = "1:60,2:20,4:10,P/2:6,P:4"


async def body(ctx: Context) -> None:
    lim = ctx.new_limiter()
    sizes, weights = parse_sizes(ctx.params["sizes"], ctx.permits)
    rng = ctx.rng
    mean_hold = ctx.params["hold"]

    def size() -> int:
        return rng.choices(sizes, weights)[0]

    def hold_s() -> float:
        return rng.expovariate(1.0 / mean_hold) if mean_hold > 0 else 0.0

    if ctx.rate is not None:
        await open_loop(ctx, lim, lambda: ("all", size(), hold_s()))
        return
    await ctx.gather([closed_worker(ctx, lim, t, "all", size, hold_s) for t in range(ctx.tasks)])


def check(params: Mapping[str, Any], permits: int, tasks: int) -> None:
    parse_sizes(params["sizes"], permits)


WORKLOAD = Workload(
    name="batch-mix",
    description="T tasks ask for random batch sizes (mostly small, some near P), random holds",
    params=(
        Param(
            "sizes",
            str,
            DEFAULT_SIZES,
            "size:weight list; sizes are ints, P, P/k or P-k",
        ),
        Param("hold", float, 0.0, "mean hold in seconds, exponential (0 = one sleep(0))", 0.0),
    ),
    body=body,
    open_loop=True,
    ceiling=True,
    check=check,
)
