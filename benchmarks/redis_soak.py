#!/usr/bin/env python
"""Soak batchsem.redis.RedisSemaphore: processes x tasks, random sizes, cancels, timeouts, kills.

Run from the repository root (needs the ``redis`` extra and Debian's ``redis-server``)::

    .venv/bin/python benchmarks/redis_soak.py                 # 60 s, 4 processes x 8 tasks
    .venv/bin/python benchmarks/redis_soak.py --seconds 20 --json results/redis_soak.json

A private redis-server is started on a free loopback port. W worker
processes (``tests/redis_worker.py`` in ``loop`` mode) each run T tasks that
acquire 1..P permits, hold up to 20 ms and release; 10% of requests are
cancelled after up to 10 ms and the rest run under a timeout of 50 ms, 0.5 s
or 5 s. Every ``--kill-every`` seconds one worker is killed with SIGKILL
(its permits and queue entries must come back within a lease) and a new one
takes its place.

Checked at the end (exit 1 if either fails):

* **no over-admission**: the workers' ledger of validly held intervals never
  adds up to more than P (the intervals of a killed worker that were still
  open when it died are not in the ledger);
* **no permit lost**: once the leases have expired, every permit is free,
  nothing is held and nobody waits.

Then it measures how long a killed holder's permits take to come back: a
process takes all P permits, a waiter queues for all P, the holder is
killed, and the time until the waiter is served is recorded (``--kill-rounds``
times).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from redis_worker import ledger_max  # noqa: E402

from batchsem.bench.redis_server import RedisServer  # noqa: E402
from batchsem.redis import RedisSemaphore  # noqa: E402

WORKER = str(ROOT / "tests" / "redis_worker.py")


def spawn(
    url: str, name: str, args: argparse.Namespace, ledger: str, *mode: str
) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path]))
    return subprocess.Popen(
        [sys.executable, WORKER, url, name, str(args.permits), str(args.lease), ledger, *mode],
        stdout=subprocess.PIPE, text=True, env=env,
    )


def soak(server: RedisServer, args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    name = "soak"
    ledger = os.path.join(workdir, "ledger")
    started = time.monotonic()
    end = started + args.seconds
    seed = 0
    procs: list[subprocess.Popen[str]] = []

    def start(seconds: float) -> None:
        nonlocal seed
        procs.append(spawn(server.url, name, args, ledger, "loop", f"{seconds:.2f}",
                           str(args.tasks), str(seed)))
        seed += 1

    for _ in range(args.processes):
        start(args.seconds)
    kills = 0
    next_kill = started + args.kill_every
    while time.monotonic() < end - args.kill_every / 2:
        time.sleep(0.05)
        if time.monotonic() >= next_kill:
            victim = procs.pop(0)  # the oldest worker
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()
            kills += 1
            start(max(1.0, end - time.monotonic()))
            next_kill += args.kill_every
    counts: dict[str, int] = {}
    for p in procs:
        out, _ = p.communicate(timeout=args.seconds + 60)
        if p.returncode != 0:
            raise SystemExit(f"a worker failed (rc={p.returncode}): {out[-500:]}")
        for k, v in json.loads(out.strip().splitlines()[-1]).items():
            counts[k] = counts.get(k, 0) + v
    elapsed = time.monotonic() - started

    async def after() -> dict[str, Any]:
        await asyncio.sleep(args.lease * 1.5)  # the killed workers' leases run out
        sem = RedisSemaphore(server.url, name, args.permits, lease=args.lease)
        s = await sem.statistics()
        await sem.disconnect()
        return dict(s.__dict__)

    final = asyncio.run(after())
    return {
        "elapsed_s": elapsed,
        "counts": counts,
        "kills": kills,
        "grants_per_s": counts.get("granted", 0) / elapsed,
        "ledger_max_in_use": ledger_max(ledger),
        "final": final,
        "over_admission": ledger_max(ledger) > args.permits,
        "permits_lost": not (
            final["available_permits"] == args.permits
            and final["held"] == 0
            and final["tasks_waiting"] == 0
        ),
    }


def kill_rounds(server: RedisServer, args: argparse.Namespace, workdir: str) -> list[float]:
    """Seconds from SIGKILL of a holder of all permits to a queued waiter being served."""
    times: list[float] = []
    for i in range(args.kill_rounds):
        name = f"killed-{i}"
        proc = spawn(server.url, name, args, os.path.join(workdir, "k"), "hold",
                     str(args.permits))
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "held":
            raise SystemExit("the holder process did not start")

        async def wait_back(proc: subprocess.Popen[str] = proc, name: str = name) -> float:
            sem = RedisSemaphore(server.url, name, args.permits, lease=args.lease)
            waiter = asyncio.ensure_future(sem.acquire(args.permits))
            while (await sem.statistics()).tasks_waiting != 1:
                await asyncio.sleep(0.005)
            t0 = time.monotonic()
            os.kill(proc.pid, signal.SIGKILL)
            permit = await waiter
            back = time.monotonic() - t0
            await permit.release()
            await sem.disconnect()
            return back

        times.append(asyncio.run(wait_back()))
        proc.wait()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--permits", type=int, default=6)
    ap.add_argument("--lease", type=float, default=1.0)
    ap.add_argument("--kill-every", type=float, default=10.0)
    ap.add_argument("--kill-rounds", type=int, default=5)
    ap.add_argument("--json", default=None, help="write the figures to this file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as workdir, RedisServer() as server:
        server.wait_uptime(args.lease + 0.5)
        result = soak(server, args, workdir)
        back = kill_rounds(server, args, workdir)
    result["killed_holder_back_s"] = {
        "lease_s": args.lease, "rounds": back, "min": min(back), "median": statistics.median(back),
        "max": max(back),
    }
    result["settings"] = vars(args)
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if result["over_admission"] or result["permits_lost"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
