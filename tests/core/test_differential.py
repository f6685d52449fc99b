"""Differential test: random operation sequences applied to the implementation under test
and to the pure-Python reference must give the same observable results.

Every operation's outcome (return value or exception type), and after every operation
the public state (``available_permits``, ``waiting``, ``locked()``, ``statistics()``,
the queue through the ``_queue_snapshot`` test hook, and every task's state) is
recorded; the two records must be equal. Under the ``python`` parameter this compares
the reference with itself, which checks the harness is deterministic.
"""

from __future__ import annotations

import asyncio
from typing import Any

from _impls import PYTHON, Impl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

N = st.integers(0, 6)
IDX = st.integers(0, 7)

OPS = st.one_of(
    st.tuples(st.just("acquire"), N),
    st.tuples(st.just("step")),
    st.tuples(st.just("cancel"), IDX),
    st.tuples(st.just("release"), N),
    st.tuples(st.just("try"), N),
    st.tuples(st.just("permit_release"), IDX),
    st.tuples(st.just("permit_forget"), IDX),
    st.tuples(st.just("split"), IDX, N),
    st.tuples(st.just("merge"), IDX, IDX),
    st.tuples(st.just("forget_permits"), N),
    st.tuples(st.just("close")),
)


def _outcome(fn: Any, *args: Any) -> Any:
    try:
        value = fn(*args)
    except Exception as exc:  # the exception type is the observable result
        return ("raised", type(exc).__name__)
    return ("ok", value)


def record(impl: Impl, bounded: bool, initial: int, ops: list[tuple[Any, ...]]) -> list[Any]:
    """Apply ``ops`` to a fresh semaphore of ``impl`` on a fresh loop; return what was seen."""
    out: list[Any] = []

    async def main() -> None:
        cls = impl.BoundedSemaphore if bounded else impl.Semaphore
        sem = cls(initial)
        tasks: list[asyncio.Task[Any]] = []
        held: list[Any] = []

        def permit(i: int) -> Any:
            return held[i % len(held)] if held else None

        def state() -> Any:
            for t in tasks:  # a task's Permit becomes usable by permit_* ops once it is done
                if t.done() and not t.cancelled() and t.exception() is None:
                    p = t.result()
                    if all(p is not q for q in held):
                        held.append(p)
            return (
                sem.available_permits,
                sem.waiting,
                sem.locked(),
                sem.statistics(),
                sem._queue_snapshot(),
                [
                    "cancelled" if t.cancelled()
                    else type(t.exception()).__name__ if t.done() and t.exception()
                    else ("done", t.result().num_permits) if t.done()
                    else "pending"
                    for t in tasks
                ],
                [p.num_permits for p in held],
            )

        for op in ops:
            kind = op[0]
            if kind == "acquire":
                res = _outcome(sem.acquire, op[1])  # ValueError: above a bounded capacity
                if res[0] == "ok":
                    tasks.append(asyncio.ensure_future(res[1]))
                    res = ("ok", "queued")
                out.append(res)
            elif kind == "step":
                for _ in range(3):
                    await asyncio.sleep(0)
                out.append(("stepped",))
            elif kind == "cancel":
                out.append(("cancel", tasks[op[1] % len(tasks)].cancel() if tasks else None))
            elif kind == "release":
                out.append(_outcome(sem.release, op[1]))
            elif kind == "try":
                res = _outcome(sem.try_acquire, op[1])
                if res[0] == "ok":
                    held.append(res[1])
                    res = ("ok", res[1].num_permits)
                out.append(res)
            elif kind in ("permit_release", "permit_forget"):
                p = permit(op[1])
                fn = None if p is None else (p.release if kind == "permit_release" else p.forget)
                out.append(_outcome(fn) if fn is not None else ("no permit",))
            elif kind == "split":
                p = permit(op[1])
                if p is None:
                    out.append(("no permit",))
                else:
                    res = _outcome(p.split, op[2])
                    if res[0] == "ok" and res[1] is not None:
                        held.append(res[1])
                        res = ("ok", res[1].num_permits)
                    out.append(res)
            elif kind == "merge":
                a, b = permit(op[1]), permit(op[2])
                out.append(_outcome(a.merge, b) if a is not None else ("no permit",))
            elif kind == "forget_permits":
                out.append(_outcome(sem.forget_permits, op[1]))
            elif kind == "close":
                out.append(_outcome(sem.close))
            out.append(state())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        out.append(state())

    loop = asyncio.SelectorEventLoop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return out


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(bounded=st.booleans(), initial=st.integers(0, 6), ops=st.lists(OPS, max_size=30))
def test_same_observable_results_as_the_reference(
    impl: Impl, bounded: bool, initial: int, ops: list[tuple[Any, ...]]
) -> None:
    assert record(impl, bounded, initial, ops) == record(PYTHON, bounded, initial, ops)


def test_the_record_sees_differences() -> None:
    """The record is not blind: two different histories give different records."""
    assert record(PYTHON, False, 2, [("try", 1)]) != record(PYTHON, False, 2, [("try", 2)])
    assert record(PYTHON, False, 0, [("acquire", 1), ("step",), ("release", 1), ("step",)]) != (
        record(PYTHON, False, 0, [("acquire", 1), ("step",), ("step",)])
    )
