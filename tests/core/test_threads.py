"""One Semaphore shared by several threads, each with its own event loop, and plain threads."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
from _support import HAVE_UVLOOP, new_loop, spin_until

from batchsem import AcquireError, Semaphore

JOIN_TIMEOUT = 60.0


def _loop_names(k: int) -> list[str]:
    names = ["asyncio", "uvloop"] if HAVE_UVLOOP else ["asyncio"]
    return [names[i % len(names)] for i in range(k)]


class LoopThread:
    """A thread running its own event loop until ``stop()``; ``call(coro_fn)`` runs work on it."""

    def __init__(self, loop_name: str) -> None:
        self.loop = new_loop(loop_name)
        self.errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _loop, ctx: self.errors.append(ctx))
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        self.ready.wait(JOIN_TIMEOUT)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self.ready.set)
        self.loop.run_forever()

    def submit(self, coro_fn: Callable[[], Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro_fn(), self.loop)

    def stop(self, close: bool = True) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(JOIN_TIMEOUT)
        assert not self.thread.is_alive()
        if close:
            self.loop.close()


def test_many_threads_many_loops_and_blocking_threads(fast_switching: None) -> None:
    permits = 8
    sem = Semaphore(permits)
    master = random.Random(1234)
    done = {"async": 0, "async_cancelled": 0, "blocking": 0, "blocking_timeout": 0}
    count_lock = threading.Lock()
    failures: list[BaseException] = []

    def bump(key: str) -> None:
        with count_lock:
            done[key] += 1

    loop_names = _loop_names(4)
    tasks_per_loop, ops_per_task = 8, 150
    blocking_threads, ops_per_blocking = 2, 500

    async def block(pause: int) -> None:
        async with sem:  # the inline one-permit paths of __aenter__/__aexit__
            for _ in range(pause):
                await asyncio.sleep(0)

    async def async_worker(rng: random.Random) -> None:
        for _ in range(ops_per_task):
            in_block = rng.random() < 0.3
            n = 1 if in_block else rng.randint(1, permits)
            fut: asyncio.Future[Any] = asyncio.ensure_future(
                block(rng.randint(0, 2)) if in_block else sem.acquire(n)
            )
            cancel_after = rng.randint(0, 3) if rng.random() < 0.15 else None
            if cancel_after is not None:
                for _ in range(cancel_after):
                    await asyncio.sleep(0)
                fut.cancel()  # may hit before, during, or after the grant
            await asyncio.wait([fut])
            if fut.cancelled():
                bump("async_cancelled")
                continue
            if in_block:
                fut.result()
                bump("async")
                continue
            permit = fut.result()
            assert permit.num_permits == n
            for _ in range(rng.randint(0, 2)):
                await asyncio.sleep(0)
            permit.release()
            bump("async")

    def loop_thread(name: str, seed: int) -> None:
        try:
            loop = new_loop(name)
            errors: list[dict[str, Any]] = []
            loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
            try:
                rngs = [random.Random(seed * 100 + i) for i in range(tasks_per_loop)]

                async def main() -> None:
                    await asyncio.gather(*(async_worker(r) for r in rngs))

                loop.run_until_complete(main())
            finally:
                loop.close()
            assert not errors, errors
        except BaseException as exc:
            failures.append(exc)

    def blocking_thread(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(ops_per_blocking):
                n = rng.randint(1, permits)
                short = rng.random() < 0.1
                try:
                    permit = sem.acquire_blocking(n, timeout=0.0005 if short else JOIN_TIMEOUT)
                except TimeoutError:
                    assert short
                    bump("blocking_timeout")
                    continue
                assert permit.num_permits == n
                permit.release()
                bump("blocking")
        except BaseException as exc:
            failures.append(exc)

    threads = [
        threading.Thread(target=loop_thread, args=(name, master.randrange(10**6)), daemon=True)
        for name in loop_names
    ] + [
        threading.Thread(target=blocking_thread, args=(master.randrange(10**6),), daemon=True)
        for _ in range(blocking_threads)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    alive = [t for t in threads if t.is_alive()]
    if alive:
        state = repr(sem)
        sem.close()  # unblock everything so the process can go on
        pytest.fail(f"deadlock: {len(alive)} threads still running; {state}")
    assert not failures, failures
    async_ops = len(loop_names) * tasks_per_loop * ops_per_task
    assert done["async"] + done["async_cancelled"] == async_ops
    assert done["blocking"] + done["blocking_timeout"] == blocking_threads * ops_per_blocking
    assert done["async"] > 0 and done["blocking"] > 0
    assert sem.waiting == 0
    assert sem.available_permits == permits


@pytest.mark.parametrize("loop_name", _loop_names(2))
def test_waiter_on_closed_loop_does_not_swallow_permits(loop_name: str) -> None:
    sem = Semaphore(0)
    lt = LoopThread(loop_name)
    stuck = lt.submit(lambda: _start_waiter(sem, 3)).result(JOIN_TIMEOUT)
    spin_until(lambda: sem.waiting == 1)
    lt.stop(close=True)  # the loop goes away without cancelling the waiter
    assert not stuck.done()

    sem.release(3)  # grants the waiter, whose loop can never resume it
    assert sem.waiting == 0
    assert sem.available_permits == 3
    p = sem.try_acquire(3)
    p.release()
    _dispose(stuck)


@pytest.mark.parametrize("loop_name", _loop_names(2))
def test_permits_of_closed_loop_waiter_go_to_next_waiter(loop_name: str) -> None:
    sem = Semaphore(0)
    dead = LoopThread(loop_name)
    stuck = dead.submit(lambda: _start_waiter(sem, 3)).result(JOIN_TIMEOUT)
    spin_until(lambda: sem.waiting == 1)
    live = LoopThread("asyncio")
    try:
        nxt = live.submit(lambda: _acquire_and_report(sem, 2))
        spin_until(lambda: sem.waiting == 2)
        dead.stop(close=True)
        sem.release(2)  # a partial reservation for the dead waiter (the head)
        assert sem.waiting == 2
        sem.release(1)  # completes it: reclaimed and handed on to the live waiter
        ident, n = nxt.result(JOIN_TIMEOUT)
        assert n == 2
        assert ident == live.thread.ident
        assert sem.waiting == 0
        assert sem.available_permits == 3
    finally:
        live.stop()
    _dispose(stuck)


@pytest.mark.parametrize("loop_name", _loop_names(2))
def test_cross_thread_wake_resumes_on_waiters_loop(loop_name: str) -> None:
    sem = Semaphore(0)
    lt = LoopThread(loop_name)
    try:
        fut = lt.submit(lambda: _acquire_and_report(sem, 2))
        spin_until(lambda: sem.waiting == 1)
        sem.release(2)  # from the main thread
        ident, n = fut.result(JOIN_TIMEOUT)
        assert n == 2
        assert ident == lt.thread.ident
        assert ident != threading.get_ident()
        assert sem.available_permits == 2
        assert not lt.errors
    finally:
        lt.stop()


def test_release_from_another_loop_thread() -> None:
    """A task on loop A is served by a release made by a task on loop B."""
    sem = Semaphore(0)
    a, b = LoopThread("asyncio"), LoopThread(_loop_names(2)[-1])
    try:
        fut = a.submit(lambda: _acquire_and_report(sem, 1))
        spin_until(lambda: sem.waiting == 1)

        async def release() -> int:
            sem.release(1)
            return threading.get_ident()

        releaser = b.submit(release).result(JOIN_TIMEOUT)
        ident, _ = fut.result(JOIN_TIMEOUT)
        assert ident == a.thread.ident != releaser
        assert sem.available_permits == 1
    finally:
        a.stop()
        b.stop()


def test_close_from_another_thread_fails_waiters_on_all_loops() -> None:
    sem = Semaphore(1)
    hold = sem.try_acquire(1)
    loops = [LoopThread(name) for name in _loop_names(3)]
    try:
        futs = [lt.submit(lambda: _acquire_and_report(sem, 2)) for lt in loops]
        spin_until(lambda: sem.waiting == len(loops))
        sem.close()
        for f in futs:
            with pytest.raises(AcquireError):
                f.result(JOIN_TIMEOUT)
        hold.release()
        assert sem.available_permits == 1
    finally:
        for lt in loops:
            lt.stop()


# ------------------------------------------------------------------ helpers


async def _start_waiter(sem: Semaphore, n: int) -> asyncio.Task[Any]:
    async def wait() -> Any:
        return await sem.acquire(n)

    return asyncio.get_running_loop().create_task(wait())


async def _acquire_and_report(sem: Semaphore, n: int) -> tuple[int, int]:
    permit = await sem.acquire(n)
    ident = threading.get_ident()
    n = permit.num_permits
    permit.release()
    return ident, n


def _dispose(task: asyncio.Task[Any]) -> None:
    """Drop a task stranded on a closed loop without the 'destroyed but pending' report."""
    task._log_destroy_pending = False  # type: ignore[attr-defined]
    task.get_coro().close()  # runs the acquire's clean-up (nothing left to give back)
