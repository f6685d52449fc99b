"""Trace events: what a tracer receives, and the shipped tracers."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from typing import Any

import pytest
from _support import spawn, spin_until, until

import batchsem._semaphore as semaphore_module
from batchsem import AcquireError, Mutex, Permit, RwLock, Semaphore, TraceEvent
from batchsem.tracing import JsonLinesTracer, LoggingTracer, MemoryTracer


def _fields(e: TraceEvent) -> tuple[str, int, int, int]:
    return (e.kind, e.permits, e.available, e.waiting)


def test_event_sequence(run: Any) -> None:
    async def main() -> None:
        tracer = MemoryTracer()
        sem = Semaphore(3, name="t", tracer=tracer)
        p = await sem.acquire(2)
        assert [_fields(e) for e in tracer.events] == [
            ("acquire", 2, 1, 0),
            ("granted", 2, 1, 0),
        ]
        tracer.events.clear()

        waiter = spawn(sem, 4)
        await until(lambda: sem.waiting == 1)
        assert [_fields(e) for e in tracer.events] == [("acquire", 4, 0, 1)]
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert [_fields(e) for e in tracer.events][1:] == [("cancelled", 4, 1, 0)]
        tracer.events.clear()

        p.release()
        assert [_fields(e) for e in tracer.events] == [("release", 2, 3, 0)]
        tracer.events.clear()

        assert sem.forget_permits(1) == 1
        assert [_fields(e) for e in tracer.events] == [("forget", 1, 2, 0)]
        tracer.events.clear()

        q = sem.try_acquire(1)
        assert [_fields(e) for e in tracer.events] == [("granted", 1, 1, 0)]
        tracer.events.clear()

        waiter = spawn(sem, 3)
        await until(lambda: sem.waiting == 1)
        sem.close()
        with pytest.raises(AcquireError):
            await waiter
        assert [_fields(e) for e in tracer.events] == [
            ("acquire", 3, 0, 1),
            ("close", 0, 1, 0),
            ("failed_closed", 3, 1, 0),
        ]
        tracer.events.clear()

        with pytest.raises(AcquireError):
            await sem.acquire(2)
        assert [_fields(e) for e in tracer.events] == [("failed_closed", 2, 1, 0)]
        q.release()

        for e in tracer.events:
            assert e.name == "t"
            assert e.thread == threading.get_native_id()
            assert isinstance(e.time, float)
        assert tracer.kinds() == [e.kind for e in tracer.events]

    run(main)


def test_granted_after_wait_and_blocking_events() -> None:
    tracer = MemoryTracer()
    sem = Semaphore(0, tracer=tracer)
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(sem.acquire_blocking(2, timeout=30)))
    t.start()
    spin_until(lambda: len(tracer.events) == 1)  # the "acquire" event follows the queueing
    assert sem.waiting == 1
    sem.release(2)
    t.join(30)
    assert not t.is_alive()
    result[0].release()
    kinds = tracer.kinds()
    assert kinds[0] == "acquire"
    assert sorted(kinds[1:3]) == ["granted", "release"]  # the two threads race to report
    assert kinds[3] == "release"
    granted = next(e for e in tracer.events if e.kind == "granted")
    assert granted.permits == 2
    assert granted.thread == t.native_id


def test_tracer_can_be_replaced_and_removed() -> None:
    first, second = MemoryTracer(), MemoryTracer()
    sem = Semaphore(1, tracer=first)
    assert sem.tracer is first
    sem.try_acquire(1).release()
    sem.tracer = second
    sem.try_acquire(1).release()
    sem.tracer = None
    sem.try_acquire(1).release()
    assert first.kinds() == ["granted", "release"]
    assert second.kinds() == ["granted", "release"]


def test_no_tracer_no_events(run: Any, monkeypatch: pytest.MonkeyPatch, impl: Any) -> None:
    if impl.name != "python":
        pytest.skip("counts TraceEvent objects by patching a name of the Python module")
    created: list[str] = []
    real = semaphore_module.TraceEvent

    def counting(kind: str, *args: Any) -> TraceEvent:
        created.append(kind)
        return real(kind, *args)

    monkeypatch.setattr(semaphore_module, "TraceEvent", counting)

    async def main() -> None:
        sem = Semaphore(2)
        p = await sem.acquire(2)
        w = spawn(sem, 1)
        await until(lambda: sem.waiting == 1)
        p.release()
        (await w).release()
        sem.try_acquire(1).forget()
        sem.forget_permits(1)
        sem.close()
        with pytest.raises(AcquireError):
            await sem.acquire(1)

    run(main)
    assert created == []
    # and the patch is effective: with a tracer, events are created through it
    Semaphore(1, tracer=MemoryTracer()).try_acquire(1).release()
    assert created == ["granted", "release"]


def test_mutex_and_rwlock_forward_tracer(run: Any) -> None:
    async def main() -> None:
        tm, tr = MemoryTracer(), MemoryTracer()
        m = Mutex(name="m", tracer=tm)
        async with m:
            pass
        rw = RwLock(2, name="rw", tracer=tr)
        async with rw.write():
            pass
        assert tm.kinds() == ["acquire", "granted", "release"]
        assert m.try_acquire()
        m.release()
        assert tm.kinds()[3:] == ["granted", "release"]
        assert _fields(tm.events[-1]) == ("release", 1, 1, 0)
        assert [e.permits for e in tr.events if e.kind == "granted"] == [2]
        assert {e.name for e in tm.events} == {"m"}
        assert {e.name for e in tr.events} == {"rw"}

    run(main)


def test_json_lines_tracer(run: Any) -> None:
    buf = io.StringIO()
    tracer = JsonLinesTracer(buf, case="unit")

    async def main() -> None:
        sem = Semaphore(2, name="j", tracer=tracer)
        p = await sem.acquire(1)
        w = spawn(sem, 2)
        await until(lambda: sem.waiting == 1)
        w.cancel()
        await asyncio.gather(w, return_exceptions=True)
        p.release()
        sem.close()

    run(main)
    lines = buf.getvalue().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["event"] for r in records] == [
        "acquire", "granted", "acquire", "cancelled", "release", "close"
    ]
    for r in records:
        assert set(r) == {"time", "event", "semaphore", "permits", "available", "waiting",
                          "thread", "case"}
        assert r["semaphore"] == "j"
        assert r["case"] == "unit"
    assert (records[2]["permits"], records[2]["available"], records[2]["waiting"]) == (2, 0, 1)


def test_logging_tracer(run: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        sem = Semaphore(1, name="L", tracer=LoggingTracer())
        p = await sem.acquire(1)
        p.release()

    with caplog.at_level(logging.DEBUG, logger="batchsem"):
        run(main)
    records = [r for r in caplog.records if r.name == "batchsem"]
    assert [r.getMessage() for r in records] == [
        "L acquire permits=1 available=0 waiting=0",
        "L granted permits=1 available=0 waiting=0",
        "L release permits=1 available=1 waiting=0",
    ]
    assert all(r.levelno == logging.DEBUG for r in records)
    assert records[0].__dict__["batchsem_event"]["event"] == "acquire"


def test_logging_tracer_respects_level(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("batchsem.test")
    sem = Semaphore(1, tracer=LoggingTracer(logger, level=logging.INFO))
    with caplog.at_level(logging.WARNING, logger="batchsem.test"):
        sem.try_acquire(1).release()
    assert [r for r in caplog.records if r.name == "batchsem.test"] == []
    with caplog.at_level(logging.INFO, logger="batchsem.test"):
        sem.try_acquire(1).release()
    msgs = [r.getMessage() for r in caplog.records if r.name == "batchsem.test"]
    assert msgs == ["semaphore granted permits=1 available=0 waiting=0",
                    "semaphore release permits=1 available=1 waiting=0"]


def test_replacing_a_tracer_whose_finaliser_releases_does_not_deadlock() -> None:
    """Dropping the old tracer may run user code (here a ``__del__`` that releases a
    Permit of the same semaphore, taking its lock): that must not happen while the
    setter holds the lock."""
    sem = Semaphore(2)

    class Owner:
        def __init__(self, permit: Permit) -> None:
            self.permit = permit

        def __call__(self, event: TraceEvent) -> None:
            pass

        def __del__(self) -> None:
            self.permit.release()

    sem.tracer = Owner(sem.try_acquire(1))  # the only reference to the Owner

    def replace() -> None:
        sem.tracer = None

    t = threading.Thread(target=replace, daemon=True)  # a deadlock must not hang the run
    t.start()
    t.join(10)
    assert not t.is_alive(), "tracer setter deadlocked"
    assert sem.tracer is None
    assert sem.available_permits == 2


def test_a_raising_tracer_never_breaks_the_semaphore(
    run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A tracer that raises (e.g. writing to a closed file) is logged; nothing is lost."""

    def broken(event: TraceEvent) -> None:
        raise OSError("trace file closed")

    async def main() -> None:
        sem = Semaphore(2, tracer=broken)
        held = await sem.acquire(2)
        waiter = spawn(sem, 2)
        await until(lambda: sem.waiting == 1)
        held.release()
        permit = await waiter
        assert permit.num_permits == 2 and sem.waiting == 0
        permit.release()
        one = sem.try_acquire(1)
        assert sem.forget_permits(5) == 1
        sem.add_permits(2)
        one.release()
        sem.close()
        assert sem.available_permits == 3

    with caplog.at_level(logging.ERROR, logger="batchsem"):
        run(main)
    assert "trace file closed" in caplog.text
