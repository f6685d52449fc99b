"""The speed probe: a fixed piece of interpreter work, timed at every window edge.

Why. The CPU a benchmark runs on does not run at one speed. On the project's
2-vCPU KVM guest a pure-Python loop's rate in 20 ms windows varied with a
coefficient of variation of 5-11%, consecutive windows were correlated
(lag-1 autocorrelation 0.7-0.8), and whole 0.2 s blocks still varied by
4-8%: frequency changes, a neighbour on the host's sibling thread, cache
pressure. Two runs of the same code made a few seconds apart therefore
differ by more than the 10% a regression gate has to see. A reference
measured at another time (the ``null`` ceiling, run in the next slot of a
round) does not share the slow phase; a reference measured *at the same
moment* does: alternating 20 ms of one loop with 20 ms of another gave a
ratio that varied by 0.6% between 0.4 s groups, against 15% when the
alternation was 100 ms.

So the engine runs :func:`probe_ns` on the event loop's thread at every
window edge (:func:`batchsem.bench.engine.sample_windows`), and each window's
throughput is divided by the probe's speed at its two edges (see
:class:`batchsem.bench.schema.Windows`, ``probe_us``). The probe blocks the
loop for about 30 µs per 20 ms window (0.15% of the run); that time is taken
out of the window's span, so the window's throughput is not lowered by it.

Guarantees: the work is the same in every run of every version of the tool
that records ``probe_us`` under this name (it is a unit of measure, so it must
not change; a new probe needs a new field). The value is the fastest of
:data:`ROUNDS` timings, so an interrupt that lands in one of them does not
make the machine look slow.
"""

from __future__ import annotations

import time

__all__ = ["ROUNDS", "probe_ns"]

#: Timings per probe; the fastest counts.
ROUNDS = 3
_ITERATIONS = 100


def _work() -> int:
    # A little of what an event loop does: a loop, small-int arithmetic, dict
    # stores, a builtin call. Returns its result so nothing is skipped.
    table: dict[int, int] = {}
    total = 0
    for i in range(_ITERATIONS):
        table[i & 31] = total
        total = (total + len(table) * i) & 0xFFFF
    return total


def probe_ns() -> int:
    """Nanoseconds the probe's fixed work took on this thread now (the fastest of
    :data:`ROUNDS`); never less than 1."""
    best = 0
    for _ in range(ROUNDS):
        t0 = time.perf_counter_ns()
        _work()
        took = time.perf_counter_ns() - t0
        if best == 0 or took < best:
            best = took
    return max(best, 1)
