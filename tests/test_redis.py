"""RedisSemaphore against a real, private redis-server (Debian package ``redis-server``).

Contract tests run several ``RedisSemaphore`` objects (each one lease, one
owner, its own connections) in one process; fault tests run worker processes
(``redis_worker.py``) and kill, stop or outlive them. Every fault test checks
two things: no over-admission (the workers' ledger of validly held intervals
never adds up to more than the permits) and no permit lost (once the leases
have expired, the statistics add up and every permit can be taken again).

With env CI set, a missing redis-server fails these tests instead of skipping.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("redis", reason="the 'redis' extra is not installed")

from redis_worker import ledger_max

from batchsem import AcquireError, Closed, NoPermits
from batchsem.bench.redis_impls import TOOL_LEASE
from batchsem.bench.redis_server import RedisServer, find_redis_server
from batchsem.redis import LeaseLost, PermitsMismatch, RedisPermit, RedisSemaphore, _Call

LEASE = 0.5
WORKER = str(Path(__file__).with_name("redis_worker.py"))


def _need_server() -> None:
    if find_redis_server() is None:
        msg = "redis-server not found: install the Debian package 'redis-server'"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    _need_server()
    with RedisServer() as srv:
        yield srv


@pytest.fixture
def fresh_server() -> Iterator[RedisServer]:
    """A server of the test's own (the restart test kills it)."""
    _need_server()
    with RedisServer() as srv:
        yield srv


_names = iter(range(10**9))


def new_name() -> str:
    return f"t{os.getpid()}-{next(_names)}"


def sems(url: str, name: str, permits: int, k: int, lease: float = LEASE) -> list[RedisSemaphore]:
    return [RedisSemaphore(url, name, permits, lease=lease) for _ in range(k)]


async def disconnect(*objs: RedisSemaphore) -> None:
    for s in objs:
        await s.disconnect()


async def wait_for_queue(sem: RedisSemaphore, waiting: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (await sem.statistics()).tasks_waiting != waiting:
        assert time.monotonic() < deadline, f"queue never reached {waiting}"
        await asyncio.sleep(0.005)


async def conserved(sem: RedisSemaphore) -> Any:
    """Statistics, after checking that permits add up (the scripts' conservation invariant)."""
    s = await sem.statistics()
    assert s.capacity + s.debt == s.available_permits + s.withheld + s.assigned + s.held, s
    assert s.tasks_waiting > 0 or s.assigned == 0, s
    assert s.tasks_waiting == 0 or s.available_permits == 0, s
    return s


# --------------------------------------------------------------- contract


def test_fifo_across_objects_with_partial_handoff(server: RedisServer) -> None:
    """Mixed sizes queued from different owners are granted in request order; the big head
    accumulates single released permits and nobody behind it overtakes."""

    async def main() -> None:
        name = new_name()
        objs = sems(server.url, name, 4, 5)
        holder = objs[0]
        held = [await holder.acquire(1) for _ in range(4)]
        sizes = [4, 1, 2, 1, 3, 1]
        order: list[tuple[int, int]] = []

        async def waiter(i: int, n: int) -> None:
            permit = await objs[1 + i % 4].acquire(n)
            order.append((permit.seqs[1], i))
            await asyncio.sleep(0.01)
            await permit.release()

        tasks = []
        for i, n in enumerate(sizes):
            tasks.append(asyncio.ensure_future(waiter(i, n)))
            await wait_for_queue(holder, i + 1)
        s = await conserved(holder)
        assert (s.available_permits, s.tasks_waiting, s.permits_wanted) == (0, 6, sum(sizes))
        # Released one at a time: the head (4) collects them; no smaller one jumps ahead.
        for k, permit in enumerate(held[:3]):
            await permit.release()
            s = await conserved(holder)
            assert (s.assigned, s.tasks_waiting, order) == (k + 1, 6, [])
        await held[3].release()
        await asyncio.gather(*tasks)
        assert [i for _, i in sorted(order)] == list(range(len(sizes)))
        s = await conserved(holder)
        assert (s.available_permits, s.held, s.tasks_waiting) == (4, 0, 0)
        await disconnect(*objs)

    asyncio.run(main())


def test_cancel_and_timeout_return_partial_grants(server: RedisServer) -> None:
    async def main() -> None:
        a, b, c = sems(server.url, new_name(), 5, 3)
        p = await a.acquire(3)
        head = asyncio.ensure_future(b.acquire(4))  # takes the 2 free, waits for 2 more
        await wait_for_queue(a, 1)
        behind = asyncio.ensure_future(c.acquire(2))
        await wait_for_queue(a, 2)
        assert (await conserved(a)).assigned == 2
        head.cancel()
        with pytest.raises(asyncio.CancelledError):
            await head
        # The head's partial grant went to the next in line, who is now served.
        q = await behind
        s = await conserved(a)
        assert (s.held, s.available_permits, s.tasks_waiting) == (5, 0, 0)
        await q.release()
        # A timeout is a cancellation too; asyncio.timeout and wait_for both work.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await b.acquire(5)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(c.acquire(4), 0.05)
        s = await conserved(a)
        assert (s.available_permits, s.held, s.tasks_waiting, s.assigned) == (2, 3, 0, 0)
        await p.release()
        assert (await conserved(a)).available_permits == 5
        await disconnect(a, b, c)

    asyncio.run(main())


def test_disconnect_closes_every_connection(server: RedisServer) -> None:
    """After ``disconnect()`` an object holds no connection to the server: the server
    counts as many clients as before the objects were made."""
    import redis.asyncio as aioredis

    async def clients(r: aioredis.Redis) -> int:
        return int((await r.info("clients"))["connected_clients"])

    async def settled(r: aioredis.Redis) -> int:
        """The count once it stops moving (connections closed elsewhere reach the server)."""
        last = await clients(r)
        for _ in range(50):
            await asyncio.sleep(0.01)
            now = await clients(r)
            if now == last:
                return now
            last = now
        return last

    async def main() -> None:
        watcher = aioredis.from_url(server.url)
        try:
            gc.collect()
            before = await settled(watcher)
            a, b = sems(server.url, new_name(), 1, 2)
            held = await a.acquire(1)
            waiter = asyncio.ensure_future(b.acquire(1))
            await wait_for_queue(a, 1)
            await held.release()
            await (await waiter).release()
            await a.statistics()
            assert await clients(watcher) > before
            await disconnect(a, b)
            deadline = time.monotonic() + 5
            while (left := await clients(watcher) - before) > 0:
                assert time.monotonic() < deadline, f"{left} connections left open"
                await asyncio.sleep(0.01)
        finally:
            await watcher.aclose()

    asyncio.run(main())


def test_grant_racing_cancel_is_given_back(server: RedisServer) -> None:
    """Cancel the waiter right as it is served, over many rounds: nothing leaks."""

    async def main() -> None:
        a, b = sems(server.url, new_name(), 2, 2)
        rng = random.Random(7)
        for _ in range(40):
            p = await a.acquire(2)
            w = asyncio.ensure_future(b.acquire(2))
            await wait_for_queue(a, 1)
            rel = asyncio.ensure_future(p.release())
            await asyncio.sleep(rng.random() * 0.002)
            w.cancel()
            await rel
            try:
                got = await w
            except asyncio.CancelledError:
                pass
            else:
                await got.release()
            s = await conserved(a)
            assert (s.available_permits, s.held, s.tasks_waiting) == (2, 0, 0), s
        await disconnect(a, b)

    asyncio.run(main())


def test_close_fails_every_waiter_and_try_acquire(server: RedisServer) -> None:
    async def main() -> None:
        a, b, c = sems(server.url, new_name(), 3, 3)
        p = await a.acquire(2)
        with pytest.raises(NoPermits):
            await b.try_acquire(2)
        waiters = [asyncio.ensure_future(b.acquire(3)), asyncio.ensure_future(c.acquire(1))]
        await wait_for_queue(a, 2)
        # A queue blocks try_acquire even when enough is free for it (no barging).
        with pytest.raises(NoPermits):
            await c.try_acquire(1)
        assert await a.locked()
        await c.close()
        for w in waiters:
            with pytest.raises(AcquireError):
                await w
        with pytest.raises(Closed):
            await b.try_acquire(1)
        with pytest.raises(AcquireError):
            await b.acquire(1)
        s = await conserved(a)
        assert (s.closed, s.available_permits, s.held, s.tasks_waiting) == (True, 1, 2, 0)
        await p.release()  # held permits stay valid after close
        assert (await conserved(a)).available_permits == 3
        await disconnect(a, b, c)

    asyncio.run(main())


def test_permits_mismatch_resize_add_forget(server: RedisServer) -> None:
    async def main() -> None:
        name = new_name()
        a = RedisSemaphore(server.url, name, 4, lease=LEASE)
        p = await a.acquire(3)
        other = RedisSemaphore(server.url, name, 6, lease=LEASE)
        with pytest.raises(PermitsMismatch, match="exists with 4 permits, not 6"):
            await other.open()
        # Shrink to 2 while 3 are held: the 1 free is taken now, 1 more from releases.
        shrink = RedisSemaphore(server.url, name, 2, lease=LEASE, resize=True)
        await shrink.open()
        s = await conserved(a)
        assert (s.capacity, s.available_permits, s.debt) == (2, 0, 1)
        await p.release()
        s = await conserved(a)
        assert (s.capacity, s.available_permits, s.debt, s.held) == (2, 2, 0, 0)
        await a.add_permits(3)
        assert (await conserved(a)).available_permits == 5
        assert await a.forget_permits(10) == 5
        s = await conserved(a)
        assert (s.capacity, s.available_permits) == (0, 0)
        with pytest.raises(ValueError, match="holds only 0"):
            await a.release(1)
        await a.add_permits(2)
        q = await a.acquire(2)
        await q.forget()  # dropped for good: the capacity shrinks
        assert (await conserved(a)).capacity == 0
        await disconnect(a, other, shrink)

    asyncio.run(main())


def test_acquire_passes_throw_on_in_the_form_it_was_given() -> None:
    """A Task cancelling ``create_task(sem.acquire())`` calls ``throw(exc)``; the request's
    coroutine must get that one argument (the 3-argument form warns from CPython 3.12)."""

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[Any, ...]] = []

        def throw(self, *args: Any) -> str:
            self.calls.append(args)
            return "suspended"

    inner = Recorder()
    call = _Call(cast("Coroutine[Any, Any, RedisPermit]", inner))
    exc = asyncio.CancelledError("stop")
    assert call.throw(exc) == "suspended"
    assert inner.calls == [(exc,)]
    tb_exc = ValueError("x")
    call.throw(ValueError, tb_exc, None)
    assert inner.calls[-1] == (ValueError, tb_exc, None)


def test_asyncio_idiom_and_coroutine_compat(server: RedisServer) -> None:
    """``await sem.acquire(); ...; await sem.release()`` with 5 workers on 1 permit,
    create_task / ensure_future / TaskGroup / wait_for on acquire."""

    async def main() -> None:
        objs = sems(server.url, new_name(), 1, 5)
        inside = 0
        most = 0

        async def worker(sem: RedisSemaphore) -> None:
            nonlocal inside, most
            for _ in range(3):
                await sem.acquire()
                try:
                    inside += 1
                    most = max(most, inside)
                    await asyncio.sleep(0.002)
                    inside -= 1
                finally:
                    await sem.release()

        async with asyncio.TaskGroup() as tg:
            for sem in objs:
                tg.create_task(worker(sem))
        assert most == 1
        t = asyncio.create_task(objs[0].acquire(1))
        permit = await t
        async with permit:
            pass
        async with objs[1].acquire(1) as held:
            assert held.num_permits == 1
        async with objs[2]:
            assert (await objs[2].statistics()).held == 1
        assert (await conserved(objs[0])).available_permits == 1
        await disconnect(*objs)

    asyncio.run(main())


@pytest.mark.parametrize("seed", range(4))
def test_random_schedules_conserve_and_stay_fifo(server: RedisServer, seed: int) -> None:
    """Random sizes, holds, cancels and timeouts from 4 owners; the server's request and
    grant sequences must never show an overtake, and permits add up at every step."""

    async def main() -> None:
        rng = random.Random(seed)
        permits = rng.randint(2, 6)
        objs = sems(server.url, new_name(), permits, 4)
        grants: list[tuple[int, int]] = []

        async def worker(sem: RedisSemaphore) -> None:
            for _ in range(15):
                n = rng.randint(1, permits)
                try:
                    async with asyncio.timeout(rng.choice((0.005, 0.05, 2.0))):
                        permit = await sem.acquire(n)
                except TimeoutError:
                    continue
                grants.append(permit.seqs)
                await asyncio.sleep(rng.random() * 0.003)
                await permit.release()

        async def checker() -> None:
            while True:
                await conserved(objs[0])
                await asyncio.sleep(0.003)

        check = asyncio.ensure_future(checker())
        work = asyncio.gather(*(worker(s) for s in objs))
        await asyncio.wait([check, work], return_when=asyncio.FIRST_COMPLETED)
        if check.done():
            work.cancel()
            check.result()  # the invariant failed: raise it
        check.cancel()
        await work
        by_request = sorted(grants)
        assert [g for _, g in by_request] == sorted(g for _, g in by_request), "overtaken"
        s = await conserved(objs[0])
        assert (s.available_permits, s.held, s.tasks_waiting) == (permits, 0, 0)
        await disconnect(*objs)

    asyncio.run(main())


# ------------------------------------------------------------------ faults


class Ledger:
    """The workers' log of validly held intervals (see redis_worker.py)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def max_concurrent(self) -> int:
        return ledger_max(str(self.path))

    def record(self, start: float, end: float, n: int) -> None:
        with self.path.open("a") as f:
            f.write(f"{start:.6f} {end:.6f} {n}\n")


def spawn(url: str, name: str, permits: int, ledger: Ledger, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.Popen(
        [sys.executable, WORKER, url, name, str(permits), str(LEASE), str(ledger.path), *args],
        stdout=subprocess.PIPE, text=True, env=env,
    )


def expect_line(proc: subprocess.Popen[str], word: str, timeout: float = 15.0) -> None:
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    deadline = time.monotonic() + timeout
    buf = ""
    while time.monotonic() < deadline:
        chunk = proc.stdout.readline()
        buf += chunk or ""
        if word in buf:
            return
        if proc.poll() is not None and not chunk:
            break
        time.sleep(0.01)
    raise AssertionError(f"worker never printed {word!r} (got {buf!r}, rc={proc.poll()})")


def reap(proc: subprocess.Popen[str]) -> str:
    """Kill the worker if it still runs; what it printed that was not read yet."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    if proc.stdout is None or proc.stdout.closed:  # communicate() read and closed it
        return ""
    with proc.stdout:
        return proc.stdout.read() or ""


def test_kill_9_holder_permits_come_back_within_a_lease(
    server: RedisServer, tmp_path: Path
) -> None:
    name = new_name()
    ledger = Ledger(tmp_path / "ledger")
    proc = spawn(server.url, name, 3, ledger, "hold", "3")
    try:
        expect_line(proc, "held")

        async def main() -> float:
            sem = RedisSemaphore(server.url, name, 3, lease=LEASE)
            waiter = asyncio.ensure_future(sem.acquire(3))
            await wait_for_queue(sem, 1)
            killed = time.monotonic()
            os.kill(proc.pid, signal.SIGKILL)
            permit = await asyncio.wait_for(waiter, 10)
            back = time.monotonic() - killed
            start = time.monotonic()
            await asyncio.sleep(0.01)
            ledger.record(start, min(time.monotonic(), sem.lease_valid_until), 3)
            await permit.release()
            s = await conserved(sem)
            assert (s.available_permits, s.held, s.holders) == (3, 0, 0)
            await sem.disconnect()
            return back

        back = asyncio.run(main())
        # Reaped by the waiter's own renewal, at most lease/3 after the deadline.
        assert back <= LEASE * 1.34 + 0.3, back
        assert ledger.max_concurrent() <= 3
    finally:
        reap(proc)


def test_kill_9_queued_process_with_partial_grant(server: RedisServer, tmp_path: Path) -> None:
    """The killed head had 1 permit handed to it; it comes back, and the waiter behind the
    dead entry is served within a lease."""
    name = new_name()
    ledger = Ledger(tmp_path / "ledger")

    async def main() -> None:
        a, b = sems(server.url, name, 4, 2)
        p = await a.acquire(3)
        proc = spawn(server.url, name, 4, ledger, "queue", "4")
        try:
            await wait_for_queue(a, 1, timeout=15)
            assert (await conserved(a)).assigned == 1
            behind = asyncio.ensure_future(b.acquire(2))
            await wait_for_queue(a, 2)
            os.kill(proc.pid, signal.SIGKILL)
            await p.release()  # the dead head would take these if it were not reaped
            q = await asyncio.wait_for(behind, 10)
            s = await conserved(a)
            assert (s.tasks_waiting, s.held, s.available_permits) == (0, 2, 2)
            await q.release()
            assert (await conserved(a)).available_permits == 4
        finally:
            rest = reap(proc)
        assert "granted" not in rest
        await disconnect(a, b)

    asyncio.run(main())


def test_paused_past_its_lease_gets_lease_lost(server: RedisServer, tmp_path: Path) -> None:
    name = new_name()
    ledger = Ledger(tmp_path / "ledger")
    proc = spawn(server.url, name, 2, ledger, "pause", "2", "0.3")
    try:
        expect_line(proc, "held")
        os.kill(proc.pid, signal.SIGSTOP)

        async def main() -> None:
            sem = RedisSemaphore(server.url, name, 2, lease=LEASE)
            permit = await asyncio.wait_for(sem.acquire(2), 10)  # the lease ran out
            start = time.monotonic()
            os.kill(proc.pid, signal.SIGCONT)
            expect_line(proc, "LeaseLost")
            ledger.record(start, min(time.monotonic(), sem.lease_valid_until), 2)
            await permit.release()
            s = await conserved(sem)
            assert (s.available_permits, s.held) == (2, 0)
            await sem.disconnect()

        asyncio.run(main())
        assert proc.wait(10) == 0
        assert ledger.max_concurrent() <= 2
    finally:
        os.kill(proc.pid, signal.SIGCONT) if proc.poll() is None else None
        reap(proc)


def test_redis_restart_mid_run(fresh_server: RedisServer, tmp_path: Path) -> None:
    """Three processes loop over the semaphore; Redis is killed and restarted empty.
    Every holder of the lost state learns LeaseLost, the re-created semaphore waits out
    the old leases, and the ledger never shows more than the permits held."""
    name = new_name()
    permits = 3
    ledger = Ledger(tmp_path / "ledger")
    procs = [
        spawn(fresh_server.url, name, permits, ledger, "loop", "4.0", "4", str(seed))
        for seed in range(3)
    ]
    try:
        deadline = time.monotonic() + 20
        while not all(Path(f"{ledger.path}.{seed}.started").exists() for seed in range(3)):
            assert time.monotonic() < deadline, "the workers never got going"
            time.sleep(0.01)
        time.sleep(0.3)
        fresh_server.restart()
        outs = []
        for p in procs:
            out, _ = p.communicate(timeout=30)
            assert p.returncode == 0
            outs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            reap(p)
    assert all(o["lease_lost"] > 0 for o in outs), outs
    assert not any(o["closed"] for o in outs), outs
    assert all(o["granted"] > 0 for o in outs), outs
    assert ledger.max_concurrent() <= permits

    async def after() -> None:
        sem = RedisSemaphore(fresh_server.url, name, permits, lease=LEASE)
        s = await conserved(sem)
        assert (s.available_permits + s.withheld, s.held, s.tasks_waiting) == (permits, 0, 0), s
        await sem.disconnect()

    asyncio.run(after())


def test_ledger_catches_over_admission(tmp_path: Path) -> None:
    """The checker itself: overlapping intervals adding up to 3 are caught."""
    ledger = Ledger(tmp_path / "ledger")
    ledger.record(0.0, 2.0, 2)
    ledger.record(1.0, 3.0, 1)
    assert ledger.max_concurrent() == 3
    ledger.record(2.0, 4.0, 2)  # starts exactly when the first ends: not concurrent
    assert ledger.max_concurrent() == 3


def test_unreachable_redis_fails_waiters_with_lease_lost(fresh_server: RedisServer) -> None:
    async def main() -> None:
        a, b = sems(fresh_server.url, new_name(), 1, 2)
        p = await a.acquire(1)
        w = asyncio.ensure_future(b.acquire(1))
        await wait_for_queue(a, 1)
        fresh_server.kill()
        with pytest.raises(LeaseLost):
            await asyncio.wait_for(w, 10)
        with pytest.raises(LeaseLost):
            await p.release()
        await disconnect(a, b)

    asyncio.run(main())


# -------------------------------------------------------------------- tool


def test_tool_processes_workload_redis_vs_naive(server: RedisServer, tmp_path: Path) -> None:
    """The processes workload across 2 real processes, starvation variant: the server's
    sequence numbers show no overtake for redis, and the capacity held for both."""
    from _cli import invoke

    server.wait_uptime(TOOL_LEASE + 1.0)
    out = tmp_path / "run.json"
    result = invoke(
        "bench", "processes", "--impl", "redis,redis-naive", "--redis-url", server.url,
        "--loop", "asyncio", "--duration", "0.6", "--repeat", "1", "--tasks", "3",
        "--permits", "3", "--param", "processes=2", "--param", "large=3", "--json",
        "-o", str(out),
    )
    run = json.loads(out.read_text())
    cases = {c["impl"]: c for c in run["cases"]}
    redis_case = cases["redis"]
    assert redis_case["status"] == "ok", (result.output, redis_case.get("errors"))
    assert redis_case["summary"]["fairness"]["overtakes"] == 0
    assert redis_case["summary"]["classes"]["large"]["completed"] > 0
    assert redis_case["repeats"][0]["extra"]["jain_processes"] > 0, redis_case["repeats"]
    naive = cases["redis-naive"]
    assert naive["invariants"]["capacity_respected"], naive


def test_tool_starve_test_redis(server: RedisServer, tmp_path: Path) -> None:
    from _cli import invoke

    server.wait_uptime(TOOL_LEASE + 1.0)
    result = invoke(
        "starve-test", "--impl", "redis", "--redis-url", server.url, "--loop", "asyncio",
        "--permits", "4", "--small-tasks", "8", "--duration", "1.0", "--deadline", "2.0",
        "-o", str(tmp_path / "starve.json"),
    )
    assert result.exit_code == 0, result.output
    assert "ok" in result.output


def test_tool_missing_redis_server_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from _cli import assert_one_line_error, run_main

    import batchsem.bench.redis_server as redis_server

    monkeypatch.setattr(redis_server, "find_redis_server", lambda: None)
    code, _, err = run_main(monkeypatch, capsys, "starve-test", "--impl", "redis")
    assert_one_line_error(code, err, "install the Debian package 'redis-server'")


# ------------------------------------------------------- stateful, against a model


class _Model:
    """Tokio's batch semaphore, as the scripts should implement it (server-side state)."""

    def __init__(self, permits: int) -> None:
        self.free = permits
        self.queue: list[list[int]] = []  # [key, need, assigned], oldest first
        self.served: list[int] = []  # keys served while queued, in order

    def put(self, n: int) -> None:
        while n and self.queue:
            head = self.queue[0]
            want = head[1] - head[2]
            if n < want:
                head[2] += n
                return
            n -= want
            self.queue.pop(0)
            self.served.append(head[0])
        self.free += n

    def acquire(self, key: int, n: int) -> bool:
        """True if granted at once."""
        if not self.queue and self.free >= n:
            self.free -= n
            return True
        assigned = 0
        if not self.queue:
            assigned, self.free = self.free, 0
        self.queue.append([key, n, assigned])
        return False


def test_stateful_against_model(server: RedisServer) -> None:
    """Hypothesis drives acquire / release / cancel / try_acquire / add / forget from three
    owners; after every step the server's state must equal the model's."""
    from hypothesis import Phase, settings
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

    permits = 4

    class Machine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.objs = sems(server.url, new_name(), permits, 3)
            for obj in self.objs:  # joined before forget/add change the capacity
                self.run(obj.open())
            self.model = _Model(permits)
            self.keys = iter(range(10**9))
            self.tasks: dict[int, tuple[asyncio.Future[Any], int]] = {}
            self.held: list[Any] = []

        def run(self, coro: Any) -> Any:
            return self.loop.run_until_complete(coro)

        async def settle(self) -> None:
            """Wait for the tasks the model says were served to hold their permits."""
            for key in self.model.served:
                fut, _ = self.tasks.pop(key)
                self.held.append(await asyncio.wait_for(fut, 5))
            self.model.served.clear()

        @rule(obj=st.integers(0, 2), n=st.integers(1, permits))
        def acquire(self, obj: int, n: int) -> None:
            key = next(self.keys)
            waiting = len(self.model.queue)
            now = self.model.acquire(key, n)

            async def go() -> None:
                fut = asyncio.ensure_future(self.objs[obj].acquire(n))
                if now:
                    self.held.append(await asyncio.wait_for(fut, 5))
                    return
                self.tasks[key] = (fut, obj)
                while (await self.objs[0].statistics()).tasks_waiting != waiting + 1:
                    await asyncio.sleep(0.001)

            self.run(go())

        @precondition(lambda self: self.held)
        @rule(data=st.data())
        def release(self, data: st.DataObject) -> None:
            permit = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
            n = permit.num_permits
            self.run(permit.release())
            self.model.put(n)
            self.run(self.settle())

        @precondition(lambda self: self.model.queue)
        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            entry = self.model.queue[data.draw(st.integers(0, len(self.model.queue) - 1))]
            fut, _ = self.tasks.pop(entry[0])
            fut.cancel()

            async def go() -> None:
                with pytest.raises(asyncio.CancelledError):
                    await fut

            self.run(go())
            self.model.queue.remove(entry)
            self.model.put(entry[2])
            self.run(self.settle())

        @rule(obj=st.integers(0, 2), n=st.integers(0, permits))
        def try_acquire(self, obj: int, n: int) -> None:
            ok = self.model.free >= n and (n == 0 or not self.model.queue)
            if ok:
                self.model.free -= n
                self.held.append(self.run(self.objs[obj].try_acquire(n)))
            else:
                with pytest.raises(NoPermits):
                    self.run(self.objs[obj].try_acquire(n))

        @rule(n=st.integers(0, 3))
        def add(self, n: int) -> None:
            self.run(self.objs[1].add_permits(n))
            self.model.put(n)
            self.run(self.settle())

        @rule(n=st.integers(0, 3))
        def forget(self, n: int) -> None:
            taken = self.run(self.objs[2].forget_permits(n))
            assert taken == min(n, self.model.free)
            self.model.free -= taken

        @invariant()
        def same_state(self) -> None:
            s = self.run(conserved(self.objs[0]))
            m = self.model
            assert s.available_permits == m.free
            assert s.tasks_waiting == len(m.queue)
            assert s.permits_wanted == sum(e[1] - e[2] for e in m.queue)
            assert s.assigned == sum(e[2] for e in m.queue)

        def teardown(self) -> None:
            for fut, _ in self.tasks.values():
                fut.cancel()
            self.run(disconnect(*self.objs))
            self.loop.close()

    Machine.TestCase.settings = settings(
        max_examples=15, stateful_step_count=15, deadline=None, database=None,
        # No shrinking: each failing step can wait seconds for a server round trip.
        phases=(Phase.generate,),
    )
    Machine.TestCase().runTest()
