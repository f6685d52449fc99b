"""rw-mix: readers (1 permit) and writers (all P permits) on a reader-writer lock."""

from __future__ import annotations

from .base import Context, Param, Workload, hold


async def body(ctx: Context) -> None:
    lim = ctx.new_limiter()
    rec = ctx.recorder
    rng = ctx.rng
    ratio = ctx.params["read_ratio"]
    read_hold = ctx.params["read_hold"]
    write_hold = ctx.params["write_hold"]
    permits = ctx.permits

    async def worker(task: int) -> None:
        ctx.register("reader", task)
        ctx.register("writer", task)
        while ctx.running():
            if rng.random() < ratio:
                cls, n, held = "reader", 1, read_hold
            else:
                cls, n, held = "writer", permits, write_hold
            handle = await rec.acquire(lim, n, task, cls)
            await hold(held)
            await rec.release(lim, n, handle)

    await ctx.gather([worker(t) for t in range(ctx.tasks)])


WORKLOAD = Workload(
    name="rw-mix",
    description="readers take 1 permit, writers all P (batchsem: its RwLock); per-class results",
    params=(
        Param("read_ratio", float, 0.9, "probability that a request is a read", 0.0, 1.0),
        Param("read_hold", float, 0.0, "seconds a read is held (0 = one sleep(0))", 0.0),
        Param("write_hold", float, 0.0, "seconds a write is held (0 = one sleep(0))", 0.0),
    ),
    body=body,
    classes=("reader", "writer"),
    rwlock=True,
    ceiling=True,
)
