"""One worker process of the ``processes`` workload (run as ``python -m``).

Reads a JSON config line on stdin, joins the shared limiter
(:func:`batchsem.bench.redis_impls.attach`), prints ``ready``, waits for the
start time (a ``time.perf_counter_ns()`` value: CLOCK_MONOTONIC, the same in
every process of the host) on stdin, runs its tasks until the deadline, and
prints one JSON line: every grant as ``[task, cls, n, t_req, t_grant,
t_release, req_seq, grant_seq]`` (the sequence numbers are the server's),
requests still pending, the tasks it registered, and tasks it had to cancel.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import traceback
from typing import Any

from batchsem.bench import loops
from batchsem.bench.redis_impls import attach


async def run(config: dict[str, Any]) -> dict[str, Any]:
    lim = attach(config["spec"])
    await lim.prepare()
    rng = random.Random(config["seed"])
    grants: list[list[Any]] = []
    pending: dict[int, list[Any]] = {}
    registered: list[int] = []
    print("ready", flush=True)
    go = int(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
    deadline = go + int(config["duration"] * 1e9)
    await asyncio.sleep(max(0.0, (go - time.perf_counter_ns()) / 1e9))
    hold_s = config["hold"]

    async def task(ident: int, cls: str, size: Any) -> None:
        registered.append(ident)
        while time.perf_counter_ns() < deadline:
            n = size()
            t_req = time.perf_counter_ns()
            pending[ident] = [ident, cls, n, t_req]
            handle = await lim.acquire(n)
            t_grant = time.perf_counter_ns()
            del pending[ident]
            rs, gs = lim.last_seqs
            await asyncio.sleep(hold_s)
            t_rel = time.perf_counter_ns()
            await lim.release(n, handle)
            grants.append([ident, cls, n, t_req, t_grant, t_rel, rs, gs])

    max_batch = config["max_batch"]
    coros = [
        task(config["first_task"] + i, "small", lambda: rng.randint(1, max_batch))
        for i in range(config["tasks"])
    ]
    if config["large_task"] is not None:
        large = config["large"]
        coros.append(task(config["large_task"], "large", lambda: large))
    tasks = [asyncio.ensure_future(c) for c in coros]
    await asyncio.wait(tasks, timeout=max(0.0, (deadline - time.perf_counter_ns()) / 1e9))
    _, stuck = await asyncio.wait(tasks, timeout=config["grace"])
    for t in stuck:
        t.cancel()
    if stuck:
        await asyncio.wait(stuck)
    for t in tasks:
        if not t.cancelled() and t.exception() is not None:
            raise t.exception()  # type: ignore[misc]
    await lim.aclose()
    waiting = [p[:4] for p in pending.values()]
    return {"grants": grants, "pending": waiting, "registered": registered,
            "unfinished": len(stuck), "error": None}


def main() -> None:
    config = json.loads(sys.stdin.readline())
    try:
        with asyncio.Runner(loop_factory=loops.factory(config["loop"])) as runner:
            out = runner.run(run(config))
    except BaseException as exc:
        out = {"error": "".join(traceback.format_exception_only(exc)).strip()}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
