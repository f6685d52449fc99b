"""threads: tasks on several threads' event loops (and blocking threads) share one limiter."""

from __future__ import annotations

import asyncio
import threading

from ._common import closed_worker
from .base import Context, Param, ParamError, Workload, at_most_permits


async def body(ctx: Context) -> None:
    if not ctx.thread_safe:
        raise ParamError(f"{ctx.impl_name} is not thread-safe")
    lim = ctx.new_limiter()
    nthreads = ctx.params["threads"]
    nblocking = ctx.params["blocking_threads"]
    max_batch = ctx.params["max_batch"]
    loop_factory = ctx.loop_factory or asyncio.new_event_loop
    errors: list[BaseException] = []
    per_thread = max(1, ctx.tasks // nthreads)
    sem = getattr(lim, "sem", None)
    blocking_ok = nblocking > 0 and hasattr(sem, "acquire_blocking")

    def loop_thread(index: int) -> None:
        import random

        rng = random.Random(ctx.rng.random() + index)

        async def main() -> None:
            await ctx.gather(
                [
                    closed_worker(
                        ctx,
                        lim,
                        index * per_thread + t,
                        "all",
                        lambda: rng.randint(1, max_batch),
                        lambda: 0.0,
                    )
                    for t in range(per_thread)
                ]
            )

        try:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(main())
        except BaseException as exc:
            errors.append(exc)

    def blocking_thread(index: int) -> None:
        import random

        rng = random.Random(ctx.rng.random() - index)
        rec = ctx.recorder
        task = nthreads * per_thread + index
        ctx.register("all", task)
        try:
            while ctx.running():
                n = rng.randint(1, max_batch)
                permit = rec.acquire_sync(sem.acquire_blocking, n, task, "all")  # type: ignore[union-attr]
                rec.release_sync(n)
                permit.release()
        except BaseException as exc:
            errors.append(exc)

    # Daemon threads: if the limiter hangs one of them, the engine's watchdog fails the
    # repeat and the process can still exit.
    threads = [threading.Thread(target=loop_thread, args=(i,), daemon=True)
               for i in range(nthreads)]
    if blocking_ok:
        threads += [
            threading.Thread(target=blocking_thread, args=(i,), daemon=True)
            for i in range(nblocking)
        ]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        await asyncio.sleep(0.005)
    if errors:
        raise errors[0]


WORKLOAD = Workload(
    name="threads",
    description="tasks on several threads' own event loops (+ acquire_blocking threads) share one",
    params=(
        Param("threads", int, 2, "threads, each running its own event loop", minimum=1,
              maximum=256),
        Param("blocking_threads", int, 1, "plain threads using acquire_blocking (batchsem)", 0,
              256),
        Param("max_batch", int, 2, "largest batch (uniform in 1..max_batch)", minimum=1),
    ),
    body=body,
    threaded=True,
    check=at_most_permits("max_batch"),
)
