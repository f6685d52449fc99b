"""The pure-Python semaphore's internal lock (batchsem._lock): mutual exclusion across threads.

This tests a module of the Python implementation only; it takes no ``impl``.
"""

from __future__ import annotations

import threading
import time

from batchsem._lock import Hold, new_lock, take_contended

THREADS = 4
ROUNDS = 1500


def test_one_thread_at_a_time_inside(fast_switching: None) -> None:
    # Each critical section does a read-modify-write with a GIL hand-off in the
    # middle (something the semaphore itself never does inside its lock), so
    # any thread let in while another is inside loses an update or sees
    # `inside` above 1. Half the threads use the hot-path spelling, half `with`.
    lock = new_lock()
    hold = Hold(lock)
    state = {"inside": 0, "most_inside": 0, "total": 0}
    start = threading.Barrier(THREADS)

    def section() -> None:
        state["inside"] += 1
        state["most_inside"] = max(state["most_inside"], state["inside"])
        total = state["total"]
        time.sleep(0)  # releases the GIL: another thread runs now
        state["total"] = total + 1
        state["inside"] -= 1

    def hot() -> None:
        start.wait()
        for _ in range(ROUNDS):
            try:
                lock.pop()
            except IndexError:
                take_contended(lock)
            try:
                section()
            finally:
                lock.append(True)

    def cold() -> None:
        start.wait()
        for _ in range(ROUNDS):
            with hold:
                section()

    threads = [threading.Thread(target=hot if i % 2 else cold) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive()
    assert state["most_inside"] == 1
    assert state["total"] == THREADS * ROUNDS
    assert list(lock) == [True], "the token was lost or duplicated"


def test_waiter_takes_the_lock_only_once_it_is_put_back() -> None:
    lock = new_lock()
    hold = Hold(lock)
    lock.pop()  # held by this thread
    assert hold.held()
    taken = threading.Event()

    def other() -> None:
        with hold:
            taken.set()

    t = threading.Thread(target=other)
    t.start()
    assert not taken.wait(0.05)
    lock.append(True)
    assert taken.wait(10)
    t.join(10)
    assert list(lock) == [True]

