"""processes: W worker processes, each with T tasks, share one limiter.

For a limiter that can be shared across processes (``--impl redis``,
``redis-naive``: its limiter has ``spec()``), the workload starts W Python
processes (``batchsem.workloads._process_worker``); each joins the same
semaphore and runs T closed-loop tasks (sizes uniform in ``1..max_batch``,
holding ``hold`` seconds). With ``large=K`` process 0 also runs one task that
repeatedly asks for K permits (the starvation variant, class ``large``). The
clock starts when every process is ready, so start-up is not measured.

Order is judged by the *server's* sequence numbers: each request draws one
when it reaches the server and each grant another, from one counter per
semaphore, so overtakes are counted across processes exactly as within one.
Capacity is checked from the intervals in which tasks held permits (from
``acquire`` returning to ``release`` being called; one monotonic clock for
every process on the host).

For an in-process limiter the same W x T tasks run in this one process (W
groups): the figure to compare a cross-process limiter with.

Workload metrics: ``jain_processes`` (Jain's index of the permits each
process acquired in the window), ``acq_per_s_window`` (grants in the window
per second; the generic throughput also counts process start-up) and
``process_startup_s``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Mapping
from typing import Any

from batchsem.bench.stats import jain_index

from .base import Context, Param, ParamError, Workload

#: How long the processes get to start and join before the run is abandoned.
STARTUP_TIMEOUT = 60.0
#: After the deadline, how long tasks still waiting get before they are cancelled.
GRACE = 5.0


async def body(ctx: Context) -> None:
    lim = ctx.new_limiter()
    if callable(getattr(lim, "spec", None)):
        await _cross_process(ctx, lim)
    else:
        await _in_process(ctx, lim)


def _check(params: Mapping[str, Any], permits: int, tasks: int) -> None:
    for key in ("max_batch", "large"):
        if params[key] > permits:
            raise ParamError(
                f"--param {key}={params[key]} exceeds --permits {permits}: "
                "a request that large could never be served"
            )


# ------------------------------------------------------------------ in-process


async def _in_process(ctx: Context, lim: Any) -> None:
    from ._common import closed_worker

    w, t = ctx.params["processes"], ctx.tasks
    max_batch, hold_s, large = ctx.params["max_batch"], ctx.params["hold"], ctx.params["large"]
    rng = ctx.rng
    coros: list[Awaitable[None]] = [
        closed_worker(ctx, lim, task, "small", lambda: rng.randint(1, max_batch), lambda: hold_s)
        for task in range(w * t)
    ]
    if large:
        coros.append(
            closed_worker(ctx, lim, w * t, "large", lambda: large, lambda: hold_s)
        )
    await ctx.gather(coros)
    rec = ctx.recorder
    _note_processes(ctx, [(g[0], g[2], g[4]) for g in rec.grants], w, t)
    window = [g for g in rec.grants if g[4] <= ctx.deadline_ns]
    rec.note("acq_per_s_window", len(window) / ctx.duration)


# --------------------------------------------------------------- cross-process


async def _cross_process(ctx: Context, lim: Any) -> None:
    w, t = ctx.params["processes"], ctx.tasks
    # Until the processes are ready the run has not started, and this body's own
    # timeouts bound the wait: the engine's watchdog must not take the start-up
    # for a stall, so the deadline is its latest possible value until then.
    ctx.deadline_ns = time.perf_counter_ns() + int((STARTUP_TIMEOUT + ctx.duration) * 1e9)
    await lim.prepare()
    loop_name = "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else (
        "asyncio"
    )
    started = time.perf_counter()
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "batchsem.workloads._process_worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**30,
        )
        for _ in range(w)
    ]
    try:
        for index, proc in enumerate(procs):
            config = {
                "spec": lim.spec(), "index": index, "tasks": t, "first_task": index * t,
                "large_task": w * t if (index == 0 and ctx.params["large"]) else None,
                "large": ctx.params["large"], "max_batch": ctx.params["max_batch"],
                "hold": ctx.params["hold"], "seed": ctx.rng.random(), "loop": loop_name,
                "duration": ctx.duration, "grace": GRACE,
            }
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(config) + "\n").encode())
            await proc.stdin.drain()
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), STARTUP_TIMEOUT)
            if line.strip() != b"ready":
                raise RuntimeError(f"a worker process failed to start: {line.decode()[:200]!r}")
        ctx.recorder.note("process_startup_s", time.perf_counter() - started)
        go = time.perf_counter_ns() + 20_000_000
        ctx.deadline_ns = go + int(ctx.duration * 1e9)
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{go}\n".encode())
            await proc.stdin.drain()
        outputs = []
        for proc in procs:
            assert proc.stdout is not None
            raw = await asyncio.wait_for(
                proc.stdout.readline(), ctx.duration + GRACE + STARTUP_TIMEOUT
            )
            outputs.append(json.loads(raw))
            await proc.wait()
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    _feed(ctx, outputs, w, t)


def _feed(ctx: Context, outputs: list[dict[str, Any]], w: int, t: int) -> None:
    """Hand the processes' records to the recorder, with the server's sequence numbers."""
    rec = ctx.recorder
    intervals: list[tuple[int, int]] = []
    waiting: list[tuple[int, str, int, int]] = []
    for out in outputs:
        if out.get("error"):
            raise RuntimeError(f"worker process failed: {out['error']}")
        for task, cls, n, t_req, t_grant, t_rel, rs, gs in out["grants"]:
            rec.grants.append((task, cls, n, t_req, t_grant, rs, gs))
            rec.released += n
            intervals.append((t_grant, n))
            intervals.append((t_rel, -n))
        waiting.extend((p[0], p[1], p[2], p[3]) for p in out["pending"])
    # A request still waiting has no server number the client knows: number them
    # above every server number, in request order, so they count as granted last.
    top = max((g[6] for g in rec.grants), default=0) + 1
    for i, (task, cls, n, t_req) in enumerate(sorted(waiting, key=lambda p: p[3])):
        rec.pending[top + i] = (task, cls, n, t_req)
    for out in outputs:
        for task in out["registered"]:
            ctx.register("large" if task == w * t else "small", task)
        ctx.unfinished += out["unfinished"]
    # Releases sort before grants at the same instant: a release happens before
    # the grant it causes.
    intervals.sort(key=lambda e: (e[0], e[1]))
    cur = 0
    for _, d in intervals:
        cur += d
        rec.max_in_use = max(rec.max_in_use, cur)
    window = [g for g in rec.grants if g[4] <= ctx.deadline_ns]
    rec.note("acq_per_s_window", len(window) / ctx.duration)
    _note_processes(ctx, [(g[0], g[2], g[4]) for g in rec.grants], w, t)


def _note_processes(ctx: Context, grants: list[tuple[int, int, int]], w: int, t: int) -> None:
    """Jain's index over processes of the permits each acquired within the window."""
    work = [0.0] * w
    for task, n, t_grant in grants:
        if t_grant <= ctx.deadline_ns and task < w * t:
            work[task // t] += n
    ctx.recorder.note("jain_processes", jain_index(work))


WORKLOAD = Workload(
    name="processes",
    description="W worker processes x T tasks share one limiter (cross-process for redis impls)",
    params=(
        Param("processes", int, 4, "W, the worker processes", minimum=1, maximum=64),
        Param("max_batch", int, 1, "largest request (uniform in 1..max_batch)", minimum=1),
        Param("hold", float, 0.0, "seconds each request holds (0 = one sleep(0))", 0.0),
        Param("large", int, 0, "K: process 0 adds one task asking for K (0 = none)", 0),
    ),
    body=body,
    classes=("small", "large"),
    check=_check,
    windowed=False,
)
