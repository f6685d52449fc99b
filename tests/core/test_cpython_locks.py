"""CPython's asyncio lock tests, run against batchsem: ``SemaphoreTests`` and ``LockTests``.

Ported from CPython v3.12.1, ``Lib/test/test_asyncio/test_locks.py`` (PSF License;
Copyright (c) 2001-2023 Python Software Foundation). The test bodies are verbatim
except for the class under test (``asyncio.Semaphore`` -> ``Semaphore``,
``asyncio.BoundedSemaphore`` -> ``BoundedSemaphore``, ``asyncio.Lock`` -> ``Lock``, which
is ``batchsem.Mutex``) and reads of asyncio's private state, replaced by the public
equivalent and marked ``# ported:`` on the line. The harness: instead of
``unittest.IsolatedAsyncioTestCase``, each test method runs through the ``run`` fixture,
on a fresh asyncio *and* uvloop event loop, against each implementation (``impl``, see
``tests/core/conftest.py``); ``self.assert*`` are ``unittest.TestCase``'s.

Left out, with the reason:

* ``LockTests.test_repr``, ``SemaphoreTests.test_repr``: the exact ``repr`` format
  (asyncio's ``<asyncio.locks.Lock object at 0x... [unlocked]>``; batchsem shows its own
  state, e.g. ``<batchsem.Semaphore [open, permits:1, waiters:0]>``), and the semaphore
  test appends mock waiters to the private ``_waiters`` deque.
* ``test_lock_doesnt_accept_loop_parameter`` and ``test_lock_by_with_statement``: the
  ``asyncio.Condition`` and ``asyncio.Event`` entries of their lists (batchsem has no
  Condition or Event); the Lock, Semaphore and BoundedSemaphore entries are kept.
* In ``LockTests.test_cancel_race``, the line
  ``self.assertTrue(lock._waiters[0].cancelled())`` (asyncio's internal waiter future).
* ``LockTests.test_lock``: the expected message names the class, ``Mutex`` for ``Lock``.

Kept in the file but skipped (``EXCLUDED`` below; both are the accepted difference "the
resume order of a woken waiter that has not run yet"): batchsem hands permits to the
oldest waiter at ``release()`` (Tokio's hand-over, no barging), asyncio when the woken
waiter runs. So between a release and the woken task running, batchsem's lock is held
by that task (``locked()`` is True) and a task that releases and re-acquires without
yielding may run before it (it takes a permit released later, not the woken task's).

* ``LockTests.test_cancel_race`` asserts ``not lock.locked()`` in that window.
* ``SemaphoreTests.test_acquire_fifo_order_2`` expects ``[1, 2, 3, 4]``; batchsem gives
  ``[1, 2, 4, 3]``: c2 releases and re-acquires (4) while c3, already served, has not run.
* ``EventTests``, ``ConditionTests``, ``BarrierTests``: not primitives batchsem provides.
"""

# ruff: noqa: SIM117

from __future__ import annotations

import asyncio
import inspect
import re
import unittest
from typing import Any

import pytest

from batchsem import BoundedSemaphore, Semaphore
from batchsem import Mutex as Lock

STR_RGX_REPR = (
    r'^<(?P<class>.*?) object at (?P<address>.*?)'
    r'\[(?P<extras>'
    r'(set|unset|locked|unlocked|filling|draining|resetting|broken)'
    r'(, value:\d)?'
    r'(, waiters:\d+)?'
    r'(, waiters:\d+\/\d+)?' # barrier
    r')\]>\Z'
)
RGX_REPR = re.compile(STR_RGX_REPR)


class _Harness(unittest.TestCase):
    """Only for the ``assert*`` methods; pytest runs the tests (see the bottom of the file)."""

    __test__ = False

    def runTest(self) -> None:  # unittest wants a method to bind to
        pass


class LockTests(_Harness):

    async def test_lock(self):
        lock = Lock()

        with self.assertRaisesRegex(
            TypeError,
            "object Mutex can't be used in 'await' expression"  # ported: the class's name
        ):
            await lock

        self.assertFalse(lock.locked())

    async def test_lock_doesnt_accept_loop_parameter(self):
        primitives_cls = [
            Lock,
            Semaphore,
            BoundedSemaphore,
        ]

        loop = asyncio.get_running_loop()

        for cls in primitives_cls:
            with self.assertRaisesRegex(
                TypeError,
                rf"{cls.__name__}\.__init__\(\) got an unexpected "
                rf"keyword argument 'loop'"
            ):
                cls(loop=loop)

    async def test_lock_by_with_statement(self):
        primitives = [
            Lock(),
            Semaphore(),
            BoundedSemaphore(),
        ]

        for lock in primitives:
            await asyncio.sleep(0.01)
            self.assertFalse(lock.locked())
            with self.assertRaisesRegex(
                TypeError,
                r"object \w+ can't be used in 'await' expression"
            ):
                with await lock:
                    pass
            self.assertFalse(lock.locked())

    async def test_acquire(self):
        lock = Lock()
        result = []

        self.assertTrue(await lock.acquire())

        async def c1(result):
            if await lock.acquire():
                result.append(1)
            return True

        async def c2(result):
            if await lock.acquire():
                result.append(2)
            return True

        async def c3(result):
            if await lock.acquire():
                result.append(3)
            return True

        t1 = asyncio.create_task(c1(result))
        t2 = asyncio.create_task(c2(result))

        await asyncio.sleep(0)
        self.assertEqual([], result)

        lock.release()
        await asyncio.sleep(0)
        self.assertEqual([1], result)

        await asyncio.sleep(0)
        self.assertEqual([1], result)

        t3 = asyncio.create_task(c3(result))

        lock.release()
        await asyncio.sleep(0)
        self.assertEqual([1, 2], result)

        lock.release()
        await asyncio.sleep(0)
        self.assertEqual([1, 2, 3], result)

        self.assertTrue(t1.done())
        self.assertTrue(t1.result())
        self.assertTrue(t2.done())
        self.assertTrue(t2.result())
        self.assertTrue(t3.done())
        self.assertTrue(t3.result())

    async def test_acquire_cancel(self):
        lock = Lock()
        self.assertTrue(await lock.acquire())

        task = asyncio.create_task(lock.acquire())
        asyncio.get_running_loop().call_soon(task.cancel)
        with self.assertRaises(asyncio.CancelledError):
            await task
        self.assertFalse(lock.statistics().tasks_waiting)  # ported: lock._waiters

    async def test_cancel_race(self):
        # Several tasks:
        # - A acquires the lock
        # - B is blocked in acquire()
        # - C is blocked in acquire()
        #
        # Now, concurrently:
        # - B is cancelled
        # - A releases the lock
        #
        # If B's waiter is marked cancelled but not yet removed from
        # _waiters, A's release() call will crash when trying to set
        # B's waiter; instead, it should move on to C's waiter.

        # Setup: A has the lock, b and c are waiting.
        lock = Lock()

        async def lockit(name, blocker):
            await lock.acquire()
            try:
                if blocker is not None:
                    await blocker
            finally:
                lock.release()

        fa = asyncio.get_running_loop().create_future()
        ta = asyncio.create_task(lockit('A', fa))
        await asyncio.sleep(0)
        self.assertTrue(lock.locked())
        tb = asyncio.create_task(lockit('B', None))
        await asyncio.sleep(0)
        self.assertEqual(lock.statistics().tasks_waiting, 1)  # ported: len(lock._waiters)
        tc = asyncio.create_task(lockit('C', None))
        await asyncio.sleep(0)
        self.assertEqual(lock.statistics().tasks_waiting, 2)  # ported: len(lock._waiters)

        # Create the race and check.
        # Without the fix this failed at the last assert.
        fa.set_result(None)
        tb.cancel()
        # ported: self.assertTrue(lock._waiters[0].cancelled()) left out (internal future)
        await asyncio.sleep(0)
        self.assertFalse(lock.locked())
        self.assertTrue(ta.done())
        self.assertTrue(tb.cancelled())
        await tc

    async def test_cancel_release_race(self):
        # Issue 32734
        # Acquire 4 locks, cancel second, release first
        # and 2 locks are taken at once.
        loop = asyncio.get_running_loop()
        lock = Lock()
        lock_count = 0
        call_count = 0

        async def lockit():
            nonlocal lock_count
            nonlocal call_count
            call_count += 1
            await lock.acquire()
            lock_count += 1

        def trigger():
            t1.cancel()
            lock.release()

        await lock.acquire()

        t1 = asyncio.create_task(lockit())
        t2 = asyncio.create_task(lockit())
        t3 = asyncio.create_task(lockit())

        # Start scheduled tasks
        await asyncio.sleep(0)

        loop.call_soon(trigger)
        with self.assertRaises(asyncio.CancelledError):
            # Wait for cancellation
            await t1

        # Make sure only one lock was taken
        self.assertEqual(lock_count, 1)
        # While 3 calls were made to lockit()
        self.assertEqual(call_count, 3)
        self.assertTrue(t1.cancelled() and t2.done())

        # Cleanup the task that is stuck on acquire.
        t3.cancel()
        await asyncio.sleep(0)
        self.assertTrue(t3.cancelled())

    async def test_finished_waiter_cancelled(self):
        lock = Lock()

        await lock.acquire()
        self.assertTrue(lock.locked())

        tb = asyncio.create_task(lock.acquire())
        await asyncio.sleep(0)
        self.assertEqual(lock.statistics().tasks_waiting, 1)  # ported: len(lock._waiters)

        # Create a second waiter, wake up the first, and cancel it.
        # Without the fix, the second was not woken up.
        tc = asyncio.create_task(lock.acquire())
        tb.cancel()
        lock.release()
        await asyncio.sleep(0)

        self.assertTrue(lock.locked())
        self.assertTrue(tb.cancelled())

        # Cleanup
        await tc

    async def test_release_not_acquired(self):
        lock = Lock()

        self.assertRaises(RuntimeError, lock.release)

    async def test_release_no_waiters(self):
        lock = Lock()
        await lock.acquire()
        self.assertTrue(lock.locked())

        lock.release()
        self.assertFalse(lock.locked())

    async def test_context_manager(self):
        lock = Lock()
        self.assertFalse(lock.locked())

        async with lock:
            self.assertTrue(lock.locked())

        self.assertFalse(lock.locked())


class SemaphoreTests(_Harness):

    def test_initial_value_zero(self):
        sem = Semaphore(0)
        self.assertTrue(sem.locked())

    async def test_semaphore(self):
        sem = Semaphore()
        self.assertEqual(1, sem.available_permits)  # ported: sem._value

        with self.assertRaisesRegex(
            TypeError,
            "object Semaphore can't be used in 'await' expression",
        ):
            await sem

        self.assertFalse(sem.locked())
        self.assertEqual(1, sem.available_permits)  # ported: sem._value

    def test_semaphore_value(self):
        self.assertRaises(ValueError, Semaphore, -1)

    async def test_acquire(self):
        sem = Semaphore(3)
        result = []

        self.assertTrue(await sem.acquire())
        self.assertTrue(await sem.acquire())
        self.assertFalse(sem.locked())

        async def c1(result):
            await sem.acquire()
            result.append(1)
            return True

        async def c2(result):
            await sem.acquire()
            result.append(2)
            return True

        async def c3(result):
            await sem.acquire()
            result.append(3)
            return True

        async def c4(result):
            await sem.acquire()
            result.append(4)
            return True

        t1 = asyncio.create_task(c1(result))
        t2 = asyncio.create_task(c2(result))
        t3 = asyncio.create_task(c3(result))

        await asyncio.sleep(0)
        self.assertEqual([1], result)
        self.assertTrue(sem.locked())
        self.assertEqual(2, sem.waiting)  # ported: len(sem._waiters)
        self.assertEqual(0, sem.available_permits)  # ported: sem._value

        t4 = asyncio.create_task(c4(result))

        sem.release()
        sem.release()
        self.assertEqual(0, sem.available_permits)  # ported: sem._value

        await asyncio.sleep(0)
        self.assertEqual(0, sem.available_permits)  # ported: sem._value
        self.assertEqual(3, len(result))
        self.assertTrue(sem.locked())
        self.assertEqual(1, sem.waiting)  # ported: len(sem._waiters)
        self.assertEqual(0, sem.available_permits)  # ported: sem._value

        self.assertTrue(t1.done())
        self.assertTrue(t1.result())
        race_tasks = [t2, t3, t4]
        done_tasks = [t for t in race_tasks if t.done() and t.result()]
        self.assertEqual(2, len(done_tasks))

        # cleanup locked semaphore
        sem.release()
        await asyncio.gather(*race_tasks)

    async def test_acquire_cancel(self):
        sem = Semaphore()
        await sem.acquire()

        acquire = asyncio.create_task(sem.acquire())
        asyncio.get_running_loop().call_soon(acquire.cancel)
        with self.assertRaises(asyncio.CancelledError):
            await acquire
        self.assertEqual(sem.waiting, 0)  # ported: no sem._waiters left pending

    async def test_acquire_cancel_before_awoken(self):
        sem = Semaphore(value=0)

        t1 = asyncio.create_task(sem.acquire())
        t2 = asyncio.create_task(sem.acquire())
        t3 = asyncio.create_task(sem.acquire())
        t4 = asyncio.create_task(sem.acquire())

        await asyncio.sleep(0)

        t1.cancel()
        t2.cancel()
        sem.release()

        await asyncio.sleep(0)
        await asyncio.sleep(0)
        num_done = sum(t.done() for t in [t3, t4])
        self.assertEqual(num_done, 1)
        self.assertTrue(t3.done())
        self.assertFalse(t4.done())

        t3.cancel()
        t4.cancel()
        await asyncio.sleep(0)

    async def test_acquire_hang(self):
        sem = Semaphore(value=0)

        t1 = asyncio.create_task(sem.acquire())
        t2 = asyncio.create_task(sem.acquire())
        await asyncio.sleep(0)

        t1.cancel()
        sem.release()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        self.assertTrue(sem.locked())
        self.assertTrue(t2.done())

    async def test_acquire_no_hang(self):

        sem = Semaphore(1)

        async def c1():
            async with sem:
                await asyncio.sleep(0)
            t2.cancel()

        async def c2():
            async with sem:
                self.assertFalse(True)

        t1 = asyncio.create_task(c1())
        t2 = asyncio.create_task(c2())

        r1, r2 = await asyncio.gather(t1, t2, return_exceptions=True)
        self.assertTrue(r1 is None)
        self.assertTrue(isinstance(r2, asyncio.CancelledError))

        await asyncio.wait_for(sem.acquire(), timeout=1.0)

    def test_release_not_acquired(self):
        sem = BoundedSemaphore()

        self.assertRaises(ValueError, sem.release)

    async def test_release_no_waiters(self):
        sem = Semaphore()
        await sem.acquire()
        self.assertTrue(sem.locked())

        sem.release()
        self.assertFalse(sem.locked())

    async def test_acquire_fifo_order(self):
        sem = Semaphore(1)
        result = []

        async def coro(tag):
            await sem.acquire()
            result.append(f'{tag}_1')
            await asyncio.sleep(0.01)
            sem.release()

            await sem.acquire()
            result.append(f'{tag}_2')
            await asyncio.sleep(0.01)
            sem.release()

        async with asyncio.TaskGroup() as tg:
            tg.create_task(coro('c1'))
            tg.create_task(coro('c2'))
            tg.create_task(coro('c3'))

        self.assertEqual(
            ['c1_1', 'c2_1', 'c3_1', 'c1_2', 'c2_2', 'c3_2'],
            result
        )

    async def test_acquire_fifo_order_2(self):
        sem = Semaphore(1)
        result = []

        async def c1(result):
            await sem.acquire()
            result.append(1)
            return True

        async def c2(result):
            await sem.acquire()
            result.append(2)
            sem.release()
            await sem.acquire()
            result.append(4)
            return True

        async def c3(result):
            await sem.acquire()
            result.append(3)
            return True

        t1 = asyncio.create_task(c1(result))
        t2 = asyncio.create_task(c2(result))
        t3 = asyncio.create_task(c3(result))

        await asyncio.sleep(0)

        sem.release()
        sem.release()

        tasks = [t1, t2, t3]
        await asyncio.gather(*tasks)
        self.assertEqual([1, 2, 3, 4], result)

    async def test_acquire_fifo_order_3(self):
        sem = Semaphore(0)
        result = []

        async def c1(result):
            await sem.acquire()
            result.append(1)
            return True

        async def c2(result):
            await sem.acquire()
            result.append(2)
            return True

        async def c3(result):
            await sem.acquire()
            result.append(3)
            return True

        t1 = asyncio.create_task(c1(result))
        t2 = asyncio.create_task(c2(result))
        t3 = asyncio.create_task(c3(result))

        await asyncio.sleep(0)

        t1.cancel()

        await asyncio.sleep(0)

        sem.release()
        sem.release()

        tasks = [t1, t2, t3]
        await asyncio.gather(*tasks, return_exceptions=True)
        self.assertEqual([2, 3], result)


EXCLUDED = {
    "test_cancel_race": "woken waiter not yet run: the lock is already handed to it",
    "test_acquire_fifo_order_2": "woken waiter not yet run: resume order differs",
}


def _names(cls: type) -> list[Any]:
    return [
        pytest.param(name, marks=pytest.mark.skip(reason=EXCLUDED[name]))
        if name in EXCLUDED
        else name
        for name in sorted(vars(cls))
        if name.startswith("test_")
    ]


def _run_ported(cls: type[_Harness], name: str, run: Any) -> None:
    case = cls()
    method = getattr(case, name)
    if inspect.iscoroutinefunction(method):
        run(method)
    else:
        # A synchronous test still gets a running loop, as under IsolatedAsyncioTestCase.
        async def sync() -> None:
            method()

        run(sync)


@pytest.mark.parametrize("name", _names(LockTests))
def test_cpython_lock_tests(name: str, run: Any) -> None:
    _run_ported(LockTests, name, run)


@pytest.mark.parametrize("name", _names(SemaphoreTests))
def test_cpython_semaphore_tests(name: str, run: Any) -> None:
    _run_ported(SemaphoreTests, name, run)
