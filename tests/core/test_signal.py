"""The pure-Python core's waker of a blocking waiter (batchsem._waitlist.Signal).

This tests a module of the Python implementation only; it takes no ``impl``.
The semaphore's blocking paths that use it run for both cores in test_threads.py.
"""

from __future__ import annotations

import threading
import time

from batchsem._waitlist import Signal


def test_a_new_signal_is_not_set_and_a_wait_times_out() -> None:
    signal = Signal()
    assert not signal.is_set()
    t0 = time.monotonic()
    assert signal.wait(0.05) is False
    assert time.monotonic() - t0 >= 0.04
    assert signal.wait(0) is False


def test_set_before_the_wait_lets_every_later_wait_through() -> None:
    signal = Signal()
    signal.set()
    assert signal.is_set()
    assert signal.wait(0) is True
    assert signal.wait(0) is True  # it stays set after a wait took the lock


def test_set_any_number_of_times_before_and_after_waits() -> None:
    signal = Signal()
    signal.set()
    signal.set()  # the lock is free already: nothing to release
    assert signal.wait(0)
    signal.set()  # releases the lock the wait took
    signal.set()
    assert signal.wait(0) and signal.is_set()


def test_set_from_another_thread_wakes_the_waiting_thread() -> None:
    signal = Signal()
    woke = []

    def waiter() -> None:
        woke.append(signal.wait(30))

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.05)  # most likely blocked in the wait by now; either order must work
    assert woke == []
    signal.set()
    thread.join(10)
    assert not thread.is_alive()
    assert woke == [True]


def _race(signal: Signal, results: list[bool]) -> None:
    start = threading.Barrier(2)

    def waiter() -> None:
        start.wait()
        results.append(signal.wait(0.001))

    def setter() -> None:
        start.wait()
        signal.set()

    threads = [threading.Thread(target=waiter), threading.Thread(target=setter)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)


def test_many_rounds_of_set_racing_wait() -> None:
    # One waiter and one setter per round, started together, with a short
    # timeout: whichever comes first, no thread is left behind, and afterwards
    # the signal is set for good.
    for _ in range(300):
        signal = Signal()
        results: list[bool] = []
        _race(signal, results)
        assert len(results) == 1
        assert signal.is_set() and signal.wait(0) is True
