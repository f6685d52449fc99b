"""Mutex (asyncio.Lock-compatible) and RwLock (fair, writer-preferring by FIFO)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _support import steps, until

from batchsem import MAX_READS, NoPermits, ReadGuard, RwLock, WriteGuard
from batchsem import Mutex as BMutex

# ------------------------------------------------------------------ Mutex


def test_mutex_lock_api(run: Any) -> None:
    async def main() -> None:
        m = BMutex()
        assert not m.locked()
        assert await m.acquire() is True
        assert m.locked()
        assert m.try_acquire() is False
        m.release()
        assert not m.locked()
        with pytest.raises(RuntimeError):
            m.release()
        assert not m.locked()
        assert m.try_acquire() is True
        assert m.locked()
        m.release()
        async with m:
            assert m.locked()
        assert not m.locked()
        with pytest.raises(KeyError):
            async with m:
                raise KeyError
        assert not m.locked()

    run(main)


def test_mutex_matches_asyncio_lock_surface() -> None:
    for name in ("acquire", "release", "locked", "__aenter__", "__aexit__"):
        assert hasattr(BMutex, name), name
        assert hasattr(asyncio.Lock, name), name


def test_mutex_fifo(run: Any) -> None:
    async def main() -> None:
        m = BMutex()
        order: list[int] = []
        active = 0

        async def worker(i: int) -> None:
            nonlocal active
            async with m:
                active += 1
                assert active == 1
                order.append(i)
                await asyncio.sleep(0)
                active -= 1

        await m.acquire()
        tasks = []
        for i in range(50):
            tasks.append(asyncio.create_task(worker(i)))
            await asyncio.sleep(0)
        assert m.try_acquire() is False  # no barging past the queue
        m.release()
        await asyncio.gather(*tasks)
        assert order == list(range(50))
        assert not m.locked()

    run(main)


def test_mutex_try_acquire_does_not_barge(run: Any) -> None:
    async def main() -> None:
        m = BMutex()
        await m.acquire()
        waiter = asyncio.create_task(m.acquire())
        await until(lambda: "waiters:1" in repr(m))
        m.release()  # handed to the waiter, which has not resumed yet
        assert m.locked()
        assert m.try_acquire() is False
        assert await waiter is True
        m.release()
        assert not m.locked()

    run(main)


def test_mutex_cancellation_leaves_it_usable(run: Any) -> None:
    async def main() -> None:
        m = BMutex()
        await m.acquire()
        a = asyncio.create_task(m.acquire())
        b = asyncio.create_task(m.acquire())
        await until(lambda: "waiters:2" in repr(m))
        a.cancel()
        await asyncio.gather(a, return_exceptions=True)
        assert a.cancelled()
        m.release()
        assert await b is True
        m.release()
        # cancelled after being handed the lock, before resuming
        await m.acquire()
        c = asyncio.create_task(m.acquire())
        await until(lambda: "waiters:1" in repr(m))
        m.release()
        c.cancel()
        await asyncio.gather(c, return_exceptions=True)
        assert c.cancelled()
        assert not m.locked()
        async with asyncio.timeout(5):
            assert await m.acquire() is True
        m.release()
        assert not m.locked()

    run(main)


def test_mutex_repr() -> None:
    m = BMutex()
    assert repr(m) == "<batchsem.Mutex [unlocked, waiters:0]>"
    assert m.try_acquire()
    assert repr(m) == "<batchsem.Mutex [locked, waiters:0]>"


# ------------------------------------------------------------------ RwLock construction


@pytest.mark.parametrize("bad", [0, -1, MAX_READS + 1])
def test_rwlock_value_errors(bad: int) -> None:
    with pytest.raises(ValueError):
        RwLock(bad)


@pytest.mark.parametrize("bad", [True, 1.0, "3"])
def test_rwlock_type_errors(bad: Any) -> None:
    with pytest.raises(TypeError):
        RwLock(bad)


def test_rwlock_bounds() -> None:
    assert RwLock().max_readers == MAX_READS
    assert RwLock(1).max_readers == 1
    assert RwLock(MAX_READS).semaphore.available_permits == MAX_READS


# ------------------------------------------------------------------ RwLock behaviour


def test_many_readers_concurrently(run: Any) -> None:
    async def main() -> None:
        rw = RwLock(max_readers=100)
        inside = 0
        peak = 0
        all_in = asyncio.Event()

        async def reader() -> None:
            nonlocal inside, peak
            async with rw.read() as guard:
                assert isinstance(guard, ReadGuard)
                inside += 1
                peak = max(peak, inside)
                if inside == 20:
                    all_in.set()
                await all_in.wait()  # nobody leaves before all 20 are inside at once
                inside -= 1

        await asyncio.gather(*(reader() for _ in range(20)))
        assert peak == 20
        assert rw.semaphore.available_permits == 100

    run(main)


def test_writer_is_exclusive(run: Any) -> None:
    async def main() -> None:
        rw = RwLock(max_readers=10)
        w = await rw.write()
        assert isinstance(w, WriteGuard)
        with pytest.raises(NoPermits):
            rw.try_read()
        with pytest.raises(NoPermits):
            rw.try_write()
        reader = asyncio.create_task(_read(rw))
        writer2 = asyncio.create_task(_write(rw))
        await until(lambda: rw.semaphore.waiting == 2)
        await steps()
        assert not reader.done() and not writer2.done()
        w.release()
        r = await reader
        await steps()
        assert not writer2.done()  # the reader holds it
        r.release()
        w2 = await writer2
        assert rw.semaphore.available_permits == 0
        w2.release()
        assert rw.semaphore.available_permits == 10

    run(main)


async def _read(rw: RwLock) -> ReadGuard:
    return await rw.read()


async def _write(rw: RwLock) -> WriteGuard:
    return await rw.write()


def test_queued_writer_blocks_later_readers(run: Any) -> None:
    async def main() -> None:
        rw = RwLock(max_readers=5)
        r1 = rw.try_read()
        writer = asyncio.create_task(_write(rw))
        await until(lambda: rw.semaphore.waiting == 1)
        with pytest.raises(NoPermits):
            rw.try_read()
        late_reader = asyncio.create_task(_read(rw))
        await until(lambda: rw.semaphore.waiting == 2)
        await steps()
        assert not late_reader.done()
        r1.release()
        w = await writer
        await steps()
        assert not late_reader.done()
        w.release()
        r2 = await late_reader
        r2.release()
        assert rw.semaphore.available_permits == 5

    run(main)


def test_writer_not_starved_by_reader_stream(run: Any) -> None:
    async def main() -> None:
        rw = RwLock(max_readers=4)
        stop = False
        starved = False
        reads = 0

        async def reader() -> None:
            nonlocal starved, reads
            while not stop:
                reads += 1
                if reads > 5000:
                    starved = True
                    return
                async with rw.read():
                    await asyncio.sleep(0)

        readers = [asyncio.create_task(reader()) for _ in range(8)]
        await until(lambda: rw.semaphore.waiting > 0)  # readers are contending
        async with rw.write():
            assert rw.semaphore.available_permits == 0
            stop = True
        assert not starved
        await asyncio.gather(*readers)
        assert rw.semaphore.available_permits == 4

    run(main)


def test_try_read_and_try_write(run: Any) -> None:
    async def main() -> None:
        rw = RwLock(max_readers=3)
        r = rw.try_read()
        assert isinstance(r, ReadGuard)
        with pytest.raises(NoPermits):
            rw.try_write()
        r2 = rw.try_read()
        r.release()
        r2.release()
        w = rw.try_write()
        assert isinstance(w, WriteGuard)
        with pytest.raises(NoPermits):
            rw.try_read()
        w.release()
        assert rw.semaphore.available_permits == 3

    run(main)


def test_downgrade_lets_queued_readers_in_but_not_writer(run: Any) -> None:
    async def main() -> None:
        rw = RwLock(max_readers=10)
        w = await rw.write()
        r1 = asyncio.create_task(_read(rw))
        r2 = asyncio.create_task(_read(rw))
        await until(lambda: rw.semaphore.waiting == 2)
        w2 = asyncio.create_task(_write(rw))
        await until(lambda: rw.semaphore.waiting == 3)
        r3 = asyncio.create_task(_read(rw))  # behind the queued writer
        await until(lambda: rw.semaphore.waiting == 4)
        mine = w.downgrade()
        assert isinstance(mine, ReadGuard)
        assert w.released
        assert not mine.released
        g1, g2 = await r1, await r2
        await steps()
        assert not w2.done()
        assert not r3.done()
        assert rw.semaphore.waiting == 2
        with pytest.raises(NoPermits):
            rw.try_read()
        with pytest.raises(RuntimeError):
            w.downgrade()
        for g in (g1, g2):
            g.release()
        await steps()
        assert not w2.done()  # still waiting for the downgraded reader
        mine.release()
        writer_guard = await w2
        await steps()
        assert not r3.done()
        writer_guard.release()
        (await r3).release()
        assert rw.semaphore.available_permits == 10

    run(main)


def test_guard_release_is_idempotent(run: Any) -> None:
    async def main() -> None:
        rw = RwLock(max_readers=4)
        r = await rw.read()
        assert not r.released
        r.release()
        r.release()
        assert r.released
        assert rw.semaphore.available_permits == 4
        w = await rw.write()
        w.release()
        w.release()
        assert rw.semaphore.available_permits == 4
        with rw.try_read() as g:
            assert rw.semaphore.available_permits == 3
        assert g.released
        assert rw.semaphore.available_permits == 4

    run(main)


def test_async_with_read_and_write(run: Any) -> None:
    async def main() -> None:
        rw = RwLock(max_readers=4)
        async with rw.read() as r:
            assert isinstance(r, ReadGuard)
            assert rw.semaphore.available_permits == 3
        assert r.released
        async with rw.write() as w:
            assert isinstance(w, WriteGuard)
            assert rw.semaphore.available_permits == 0
        assert w.released
        with pytest.raises(KeyError):
            async with rw.write():
                raise KeyError
        assert rw.semaphore.available_permits == 4

    run(main)


def test_rwlock_repr(run: Any) -> None:
    async def main() -> None:
        rw = RwLock(max_readers=4)
        assert repr(rw) == "<batchsem.RwLock [unlocked, waiters:0]>"
        r = await rw.read()
        assert repr(rw) == "<batchsem.RwLock [readers:1, waiters:0]>"
        r.release()
        w = await rw.write()
        assert repr(rw) == "<batchsem.RwLock [locked, waiters:0]>"
        w.release()

    run(main)


def test_rwlock_cancelled_writer_lets_readers_through(run: Any) -> None:
    async def main() -> None:
        rw = RwLock(max_readers=4)
        r1 = rw.try_read()
        writer = asyncio.create_task(_write(rw))  # takes 3, waits for r1
        await until(lambda: rw.semaphore.waiting == 1)
        reader = asyncio.create_task(_read(rw))
        await until(lambda: rw.semaphore.waiting == 2)
        writer.cancel()
        r2 = await reader
        assert writer.cancelled()
        assert rw.semaphore.available_permits == 2
        r1.release()
        r2.release()
        assert rw.semaphore.available_permits == 4

    run(main)
