"""One Semaphore shared by several threads, each with its own event loop, and plain threads."""

from __future__ import annotations

import asyncio
import functools
import gc
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
from _support import HAVE_UVLOOP, acquire, new_loop, real_queue, spin_until

from batchsem import Acquire, AcquireError, Closed, NoPermits, Permit, Semaphore

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

    def loop_thread(name_seed: tuple[str, int]) -> None:
        name, seed = name_seed
        rngs = [random.Random(seed * 100 + i) for i in range(tasks_per_loop)]

        async def main() -> None:
            await asyncio.gather(*(async_worker(r) for r in rngs))

        _run_loop(name, main)

    def blocking_thread(seed: int) -> None:
        rng = random.Random(seed)
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

    _run_threads(
        sem,
        [(loop_thread, (name, master.randrange(10**6))) for name in loop_names]
        + [(blocking_thread, master.randrange(10**6)) for _ in range(blocking_threads)],
    )
    async_ops = len(loop_names) * tasks_per_loop * ops_per_task
    assert done["async"] + done["async_cancelled"] == async_ops
    assert done["blocking"] + done["blocking_timeout"] == blocking_threads * ops_per_blocking
    assert done["async"] > 0 and done["blocking"] > 0
    assert sem.waiting == 0
    assert sem.available_permits == permits


def test_every_operation_at_once_then_close_conserves_permits(fast_switching: None) -> None:
    """All of the API at once on one semaphore, closed mid-run: no permit is lost or made.

    Loop threads (each with its own loop) acquire with random cancels; plain threads
    use acquire_blocking (some timing out) and try_acquire; every Permit obtained is
    split, merged, partly forgotten and released. A chaos thread adds and forgets free
    permits and inspects the semaphore. The worker that makes the CLOSE_AFTER-th
    operation closes it; everyone then stops. On a free-threaded build all of it runs
    in parallel. At the end nothing is held, so the counter must equal the initial
    permits plus those added minus those forgotten, and nobody may be queued.
    """
    initial, biggest, close_after = 6, 4, 3000
    sem = Semaphore(initial)
    ledger = {"added": 0, "forgotten": 0, "ops": 0, "granted": 0}
    ledger_lock = threading.Lock()

    def account(key: str, n: int = 1) -> int:
        with ledger_lock:
            ledger[key] += n
            return ledger[key]

    def step() -> None:
        if account("ops") == close_after:
            sem.close()  # from whichever worker thread (or loop) gets there

    def use(permit: Permit, rng: random.Random) -> None:
        n = permit.num_permits
        k = rng.randint(0, n)
        part = permit.split(k)
        assert part is not None and part.num_permits == k and permit.num_permits == n - k
        if k and rng.random() < 0.25:
            part.forget()
            account("forgotten", k)
        else:
            permit.merge(part)
            assert part.num_permits == 0
        permit.release()
        assert permit.num_permits == 0
        account("granted")

    async def async_worker(rng: random.Random) -> None:
        while not sem.closed:
            fut = asyncio.ensure_future(acquire(sem, rng.randint(1, biggest)))
            if rng.random() < 0.2:
                for _ in range(rng.randint(0, 2)):
                    await asyncio.sleep(0)
                fut.cancel()  # before, during or after the grant
            await asyncio.wait([fut])
            step()
            if fut.cancelled():
                continue
            if fut.exception() is not None:
                with pytest.raises(AcquireError):
                    fut.result()
                return
            permit = fut.result()
            await asyncio.sleep(0)
            use(permit, rng)

    def loop_thread(rng: random.Random) -> None:
        seeds = [rng.randrange(10**6) for _ in range(6)]

        async def main() -> None:
            await asyncio.gather(*(async_worker(random.Random(s)) for s in seeds))

        _run_loop("asyncio", main)

    def blocking_thread(rng: random.Random) -> None:
        while True:
            n = rng.randint(1, biggest)
            try:
                if rng.random() < 0.3:
                    permit = sem.try_acquire(n)
                else:
                    short = rng.random() < 0.2
                    permit = sem.acquire_blocking(n, timeout=0.0005 if short else JOIN_TIMEOUT)
            except (NoPermits, TimeoutError):
                step()
                continue
            except (Closed, AcquireError):
                assert sem.closed
                return
            step()
            use(permit, rng)

    def chaos_thread(rng: random.Random) -> None:
        while not sem.closed:
            with ledger_lock:
                total = initial + ledger["added"] - ledger["forgotten"]
            # keep the total between the biggest request and a little above the start
            if total <= biggest or (total < initial + 4 and rng.random() < 0.5):
                k = rng.randint(1, 3)
                sem.add_permits(k)
                account("added", k)
            else:
                account("forgotten", sem.forget_permits(rng.randint(1, 3)))
            stats = sem.statistics()
            assert stats.available_permits >= 0 and stats.tasks_waiting >= 0
            assert not (stats.available_permits and stats.tasks_waiting)
            repr(sem)
            sem.locked()

    master = random.Random(4321)
    targets = [loop_thread] * 3 + [blocking_thread] * 2 + [chaos_thread]
    _run_threads(sem, [(t, random.Random(master.randrange(10**6))) for t in targets])
    assert sem.closed
    assert sem.waiting == 0 and real_queue(sem) == []
    assert sem.available_permits == initial + ledger["added"] - ledger["forgotten"]
    assert ledger["ops"] >= close_after and ledger["granted"] > 0


def _run_loop(loop_name: str, main: Callable[[], Any]) -> None:
    """Run ``main()`` on a new loop of this thread; fail on any error the loop reported."""
    loop = new_loop(loop_name)
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert not errors, errors


def _run_threads(sem: Semaphore, targets: list[tuple[Callable[..., None], Any]]) -> None:
    """Run each ``target(arg)`` in its own thread; fail on a hang or on any thread's error."""
    failures: list[BaseException] = []

    def run(target: Callable[..., None], arg: Any) -> None:
        try:
            target(arg)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=pair, daemon=True) for pair in targets]
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


def test_waiters_cancelled_while_being_woken_leave_nothing_behind(fast_switching: None) -> None:
    """One release() here serves K waiters of a loop thread while that thread cancels them.

    The waker wakes the K served waiters one after the other, so a waiter can be
    cancelled between being served and being woken: it gives back its permits, and the
    semaphore must not record it as woken-but-not-resumed afterwards (such a record is
    kept until the waiter resumes or its loop closes). So, once every task is done and
    with the loop still running, all permits are back and no request object is alive.
    """
    k, rounds = 200, 30
    sem = Semaphore(0)
    gc.collect()
    before = _count_requests()
    lt = LoopThread("asyncio")
    try:
        for _ in range(rounds):
            tasks = lt.submit(lambda: _start_waiters(sem, k)).result(JOIN_TIMEOUT)
            spin_until(lambda: sem.waiting == k)
            cancelled = lt.submit(functools.partial(_cancel_and_release, tasks))
            sem.release(k)
            cancelled.result(JOIN_TIMEOUT)
            assert sem.waiting == 0
            assert sem.forget_permits(k) == k
            del tasks
        gc.collect()
        assert _count_requests() == before
        assert not lt.errors
    finally:
        lt.stop()


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


async def _start_waiters(sem: Semaphore, k: int) -> list[asyncio.Task[Any]]:
    return [asyncio.ensure_future(acquire(sem, 1)) for _ in range(k)]


async def _cancel_and_release(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel every task, then release what the ones served before the cancel got."""
    for task in tasks:
        task.cancel()
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, Permit):
            result.release()


def _count_requests() -> int:
    return sum(1 for o in gc.get_objects() if type(o) is Acquire)


def _dispose(task: asyncio.Task[Any]) -> None:
    """Drop a task stranded on a closed loop without the 'destroyed but pending' report."""
    task._log_destroy_pending = False  # type: ignore[attr-defined]
    task.get_coro().close()  # runs the acquire's clean-up (nothing left to give back)
