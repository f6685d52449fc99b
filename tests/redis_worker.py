"""A worker process for the RedisSemaphore fault tests and the soak benchmark.

    python redis_worker.py URL NAME PERMITS LEASE LEDGER MODE ARGS...

Modes:

* ``hold N``: acquire N permits, print ``held``, then sleep until killed.
* ``queue N``: acquire N permits (the test makes it queue), print ``granted`` if it ever is.
* ``pause N SECONDS``: acquire N, print ``held``, sleep SECONDS (the test stops and
  continues the process meanwhile), then release: print ``released`` or ``LeaseLost``.
* ``loop SECONDS TASKS SEED``: TASKS tasks acquire random sizes, hold, release, some
  cancelled by timeouts, for SECONDS; a lost lease (Redis restart) is survived by
  joining again with a new object. Prints one JSON line of counts at the end.

The ledger is the independent check against over-admission: every holder
appends ``start end n`` (``time.monotonic()``, one clock for all processes on
one Linux host) for the interval in which it *validly* held ``n`` permits:
from the moment ``acquire`` returned until it called ``release``, cut at the
end of its lease as the object knew it (``lease_valid_until``). A correct
semaphore never lets those intervals add up to more than the permits.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time

from redis.exceptions import RedisError

from batchsem import AcquireError
from batchsem.redis import LeaseLost, RedisPermit, RedisSemaphore


def ledger_write(path: str, start: float, end: float, n: int) -> None:
    if end <= start:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{start:.6f} {end:.6f} {n}\n".encode())
    finally:
        os.close(fd)


def ledger_max(path: str) -> int:
    """The most permits the ledger's intervals ever add up to at one instant."""
    if not os.path.exists(path):
        return 0
    events: list[tuple[float, int]] = []
    with open(path) as f:
        for line in f:
            start, end, n = line.split()
            events.append((float(start), int(n)))
            events.append((float(end), -int(n)))
    # At equal times the end comes first: a release happens before the grant it causes.
    events.sort(key=lambda e: (e[0], e[1]))
    most = cur = 0
    for _, d in events:
        cur += d
        most = max(most, cur)
    return most


async def release_logged(path: str, sem: RedisSemaphore, permit: RedisPermit, start: float) -> str:
    """Log the valid interval, then release; 'released' or 'LeaseLost'."""
    n = permit.num_permits
    ledger_write(path, start, min(time.monotonic(), sem.lease_valid_until), n)
    try:
        await permit.release()
    except LeaseLost:
        return "LeaseLost"
    return "released"


async def main(argv: list[str]) -> None:
    url, name, permits, lease, ledger, mode, *rest = argv
    sem = RedisSemaphore(url, name, int(permits), lease=float(lease))
    if mode == "hold":
        await sem.acquire(int(rest[0]))
        print("held", flush=True)
        await asyncio.sleep(3600)
    elif mode == "queue":
        await sem.acquire(int(rest[0]))
        print("granted", flush=True)
        await asyncio.sleep(3600)
    elif mode == "pause":
        permit = await sem.acquire(int(rest[0]))
        start = time.monotonic()
        print("held", flush=True)
        await asyncio.sleep(float(rest[1]))
        print(await release_logged(ledger, sem, permit, start), flush=True)
        await sem.disconnect()
    elif mode == "loop":
        await loop(url, name, int(permits), float(lease), ledger, float(rest[0]), int(rest[1]),
                   int(rest[2]))
    else:
        raise SystemExit(f"unknown mode {mode}")


async def loop(
    url: str, name: str, permits: int, lease: float, ledger: str, seconds: float, tasks: int,
    seed: int,
) -> None:
    rng = random.Random(seed)
    counts = {"granted": 0, "timeouts": 0, "cancels": 0, "lease_lost": 0, "closed": 0,
              "rejoins": 0, "unreachable": 0}
    state = {"sem": RedisSemaphore(url, name, permits, lease=lease)}
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < deadline:
            sem = state["sem"]
            n = rng.randint(1, permits)
            try:
                if rng.random() < 0.1:
                    task = asyncio.ensure_future(sem.acquire(n))
                    await asyncio.sleep(rng.random() * 0.01)
                    task.cancel()
                    try:
                        permit = await task
                    except asyncio.CancelledError:
                        counts["cancels"] += 1
                        continue
                else:
                    async with asyncio.timeout(rng.choice((0.05, 0.5, 5.0))):
                        permit = await sem.acquire(n)
            except TimeoutError:
                counts["timeouts"] += 1
                continue
            except LeaseLost:
                counts["lease_lost"] += 1
                if state["sem"] is sem:  # the first task to notice joins again
                    state["sem"] = RedisSemaphore(url, name, permits, lease=lease)
                    counts["rejoins"] += 1
                    await sem.disconnect()
                await asyncio.sleep(0.01)
                continue
            except AcquireError:
                counts["closed"] += 1
                return
            except RedisError:  # joining again while the server is down
                counts["unreachable"] += 1
                await asyncio.sleep(0.05)
                continue
            start = time.monotonic()
            if not counts["granted"]:
                with open(f"{ledger}.{seed}.started", "w"):
                    pass
            counts["granted"] += 1
            await asyncio.sleep(rng.random() * 0.02)
            if await release_logged(ledger, sem, permit, start) == "LeaseLost":
                counts["lease_lost"] += 1

    await asyncio.gather(*(worker() for _ in range(tasks)))
    await state["sem"].disconnect()
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
