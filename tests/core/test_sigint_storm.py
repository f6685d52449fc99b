"""A KeyboardInterrupt storm against the compiled core: no wedged state, no lost permits.

The main thread loops on ``try_acquire`` / ``Permit.release`` / ``add_permits`` /
``release`` / ``forget_permits`` while another thread sends it SIGINT about every
100 µs. Every call is made from C (``list.extend(map(...))``), so between two
calls no bytecode of this test runs and the results of completed calls are
never dropped: an interrupt can land only between calls, or inside Python code
the core calls (an exception's ``__init__``). The books must then balance
exactly, and the semaphore must still work from another thread.

The pure-Python fallback fails this test (interrupts land inside its locked
regions); docs/development.md states that window.
"""

from __future__ import annotations

import collections
import gc
import operator
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any

import pytest
from _impls import Impl

from batchsem._errors import NoPermits

# Each step makes 8 calls of one kind; 100 µs between signals.
ONES = (1,) * 8
SIGNAL_PERIOD = 1e-4
DURATION = float(os.environ.get("BATCHSEM_STORM_SECONDS", "3"))
INITIAL = 16


@dataclass(frozen=True)
class Storm:
    """What one storm left behind."""

    interrupts: int  # KeyboardInterrupts that landed
    wedged: bool  # another thread could not use the semaphore within 10 s afterwards
    free: int  # available_permits afterwards (not read if wedged: -1)
    outstanding: int  # permits the surviving Permits hold
    expected: int  # what was put in: INITIAL + adds - forgets

    @property
    def lost(self) -> int:
        """Permits missing from the books (negative: permits gained); 0 if wedged."""
        return 0 if self.wedged else self.expected - self.free - self.outstanding


def storm(sem: Any, duration: float = DURATION) -> Storm:
    """Run the storm for ``duration`` seconds against ``sem`` (a ``Semaphore(INITIAL)``).

    Also used by ``benchmarks/cython_core/storm.py`` against the Cython builds. A
    wedged semaphore leaves a daemon thread spinning on it: run that case in a
    process of its own.
    """
    release = operator.methodcaller("release")
    num_permits = operator.attrgetter("num_permits")
    held: list[Any] = []  # Permits; a released one holds 0
    adds: list[None] = []  # one None per completed add_permits / release call
    forgets: list[int] = []  # what each completed forget_permits took

    # The handler raises only while armed and disarms itself (it runs no
    # interruptible bytecode between the check and the raise), so the
    # bookkeeping in the except clause is never interrupted itself.
    armed = [False]
    interrupts = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        if armed[0]:
            armed[0] = False
            raise KeyboardInterrupt

    stop = threading.Event()
    main = threading.get_ident()

    def sender() -> None:
        while not stop.is_set():
            signal.pthread_kill(main, signal.SIGINT)
            time.sleep(SIGNAL_PERIOD)

    # No collections during the storm: a gc callback (hypothesis installs one) is
    # Python code, and an interrupt landing there is reported, not raised.
    gc.disable()
    old_handler = signal.signal(signal.SIGINT, handler)
    # The sender needs the GIL to send; switch often so the signals keep coming.
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(SIGNAL_PERIOD / 2)
    thread = threading.Thread(target=sender, daemon=True)
    deadline = time.monotonic() + duration
    try:
        thread.start()
        while time.monotonic() < deadline:
            try:
                armed[0] = True
                while True:
                    try:  # noqa: SIM105 (suppress's __exit__ is Python code, this is not)
                        held.extend(map(sem.try_acquire, ONES))
                    except NoPermits:
                        pass
                    collections.deque(map(release, held), maxlen=0)
                    adds.extend(map(sem.add_permits, ONES))
                    forgets.extend(map(sem.forget_permits, ONES))
                    adds.extend(map(sem.release, ONES))
                    forgets.extend(map(sem.forget_permits, ONES))
                    if len(held) > 10_000:
                        # filter(), not a comprehension: on 3.13 an interrupt raised on a
                        # comprehension's loop can skip the except below (CPython gh-130279)
                        held[:] = filter(num_permits, held)
                    if time.monotonic() >= deadline:
                        armed[0] = False  # before leaving the try: none may land outside it
                        break
            except KeyboardInterrupt:
                interrupts += 1
    finally:
        armed[0] = False
        stop.set()
        thread.join()
        signal.signal(signal.SIGINT, old_handler)
        sys.setswitchinterval(old_interval)
        gc.enable()

    # Wedged? Another thread must still be able to use every operation.
    done = threading.Event()

    def use() -> None:
        p = sem.try_acquire(1)
        p.release()
        sem.add_permits(1)
        sem.forget_permits(1)
        done.set()

    other = threading.Thread(target=use, daemon=True)
    other.start()
    other.join(10)
    wedged = not done.is_set()
    return Storm(
        interrupts=interrupts,
        wedged=wedged,
        free=-1 if wedged else sem.available_permits,
        outstanding=sum(p.num_permits for p in held),
        expected=INITIAL + len(adds) - sum(forgets),
    )


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill")
def test_sigint_storm_loses_nothing(impl: Impl) -> None:
    if impl.name != "c":
        pytest.skip("the pure-Python core has an interrupt window (docs/development.md)")
    sem = impl.Semaphore(INITIAL)
    result = storm(sem)
    assert result.interrupts >= 100, (
        f"only {result.interrupts} interrupts landed; the storm did not happen"
    )
    assert not result.wedged, "the semaphore is wedged after the storm"
    # Nothing lost: what is free plus what the Permits hold is what was put in.
    assert result.lost == 0, (
        f"{result.interrupts} interrupts: {result.free} free + {result.outstanding} held "
        f"!= {result.expected} put in"
    )
    assert sem.waiting == 0
