"""pyperf micro-benchmarks of the semaphore primitives themselves.

Run ``python -m batchsem.micro [pyperf options] [--impl a,b] [--loop asyncio,uvloop]``,
e.g. ``python -m batchsem.micro --fast -o micro.json`` and then
``python -m pyperf show micro.json`` or ``python -m pyperf compare_to a.json b.json``.
pyperf re-runs this module in worker processes (``python -m batchsem.micro
--worker ...``); ``--impl``/``--loop`` are forwarded to them. Defaults: impls
batchsem, asyncio and aiologic if installed (``condition`` on request), every
loop available here, 4 worker processes x 3 values per benchmark (far fewer
than pyperf's 20 processes, to keep the default run under ~3 minutes).

Every benchmark is named ``<op>[<impl>,<loop>]`` and measured with
``Runner.bench_async_func(..., loop_factory=...)``: pyperf creates a fresh
event loop of the chosen kind for each value and awaits the benchmark
function ``loops`` times; one call performs ``INNER_LOOPS`` operations and is
registered with ``inner_loops`` so pyperf reports the time of **one
operation**. Each benchmark carries the pyperf tags ``op:<op>``,
``impl:<impl>`` and ``loop:<loop>`` (``pyperf compare_to`` reports a
geometric mean per tag).

The semaphore is created once per event loop (outside the timed region of
all but the first call on that loop; its cost is spread over thousands of
operations). The ``for`` loop around the operations is timed too; it is the
same for every implementation.

Operations (``-`` = not measured for that implementation):

``acquire-release``
    Uncontended acquire of 1 permit and its release on a semaphore of 1.
    batchsem ``p = await sem.acquire(1); p.release()``; asyncio
    ``await s.acquire(); s.release()``; aiologic ``await s.async_acquire();
    s.release()``; condition ``h = await c.acquire(1); await c.release(1, h)``
    (``batchsem.bench.impls.ConditionSemaphore``, the hand-written
    ``asyncio.Condition`` semaphore; its release is a coroutine).
``async-with``
    ``async with sem: pass`` on a semaphore of 1 (batchsem, asyncio,
    aiologic; condition -).
``batch-8``
    Take 8 permits of a semaphore of 8, then give them back. batchsem: one
    ``acquire(8)`` and one ``release()``; the others: 8 single acquires,
    then 8 single releases, except condition, which is weighted natively
    (``native_batch``): one ``acquire(8)`` and one ``release(8, h)``.
``try-acquire``
    The closest non-blocking acquire of 1, then release, on a semaphore of 1.
    batchsem ``sem.try_acquire(1).release()``; asyncio has no try-acquire, so
    ``if not s.locked(): await s.acquire()`` (``locked()`` false guarantees
    ``acquire()`` returns without suspending) then ``s.release()``; aiologic
    ``s.green_acquire(blocking=False)`` (synchronous, never waits) then
    ``s.release()``; condition - (no non-blocking acquire).
``release-wake``
    The hand-off from a release to a task blocked in acquire. Two tasks
    ping-pong over two semaphores that start with 0 permits (each toggles
    between 0 and 1): the timed task releases ``ping`` and blocks in
    ``pong.acquire``; the partner, blocked in ``ping.acquire``, wakes up and
    releases ``pong``, which wakes the timed task. One round trip is two
    hand-offs, each = one release on a semaphore with a waiter + the event
    loop switching to the waiter + its acquire returning. The reported value
    is the time of one hand-off (a call does ``INNER_LOOPS // 2`` round trips
    and registers ``INNER_LOOPS`` inner loops). Unlike the other operations,
    each call creates its two semaphores and the partner task and awaits the
    partner at the end (no task may outlive the loop pyperf closes); that
    set-up is timed but is well under 1% of a call. batchsem gives permits
    back with ``add_permits(1)`` and ``forget()``s the Permit it receives;
    condition awaits its ``release``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.metadata
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pyperf

import batchsem
from batchsem import _semaphore as _py_core
from batchsem.bench import loops as loops_mod
from batchsem.bench.impls import ConditionSemaphore, installed

__all__ = [
    "BATCH",
    "DEFAULT_PROCESSES",
    "DEFAULT_VALUES",
    "IMPLS",
    "INNER_LOOPS",
    "OPS",
    "bench_func",
    "bench_name",
    "bench_names",
    "main",
]

#: Operations per benchmark-function call (pyperf's ``inner_loops``).
INNER_LOOPS = 1000
#: Permits taken by ``batch-8``.
BATCH = 8
#: Worker processes per benchmark by default. pyperf's own default is 20, which
#: made the default run (30 benchmarks: 3 impls x 2 loops x 5 ops) take over 10
#: minutes on a busy 2-CPU machine (6 processes: ~4 minutes); 4 processes x 3
#: values = 12 values per benchmark. ``--rigorous`` doubles the processes,
#: ``--fast`` uses 3 processes x 2 values, ``-p``/``-n`` set them.
DEFAULT_PROCESSES = 4
#: Values per worker process by default (pyperf's default).
DEFAULT_VALUES = 3

OPS = ("acquire-release", "async-with", "batch-8", "try-acquire", "release-wake")
IMPLS = ("batchsem", "batchsem-py", "asyncio", "condition", "aiologic")

#: ``batchsem`` is the active core (compiled when built); ``batchsem-py`` the Python reference.
_BATCHSEM_CORES: dict[str, type[_py_core.Semaphore]] = {
    "batchsem": batchsem.Semaphore,
    "batchsem-py": _py_core.Semaphore,
}

#: A benchmark function: one call performs ``INNER_LOOPS`` operations.
BenchFunc = Callable[[], Coroutine[Any, Any, None]]
#: Builds fresh primitive state and returns the function that runs on it.
Maker = Callable[[], BenchFunc]

_N = INNER_LOOPS
_ROUND_TRIPS = INNER_LOOPS // 2


# ------------------------------------------------------------------- batchsem


def _batchsem_acquire_release(core: type[_py_core.Semaphore]) -> BenchFunc:
    sem = core(1)

    async def run() -> None:
        for _ in range(_N):
            p = await sem.acquire(1)
            p.release()

    return run


def _batchsem_async_with(core: type[_py_core.Semaphore]) -> BenchFunc:
    sem = core(1)

    async def run() -> None:
        for _ in range(_N):
            async with sem:
                pass

    return run


def _batchsem_batch(core: type[_py_core.Semaphore]) -> BenchFunc:
    sem = core(BATCH)

    async def run() -> None:
        for _ in range(_N):
            p = await sem.acquire(BATCH)
            p.release()

    return run


def _batchsem_try_acquire(core: type[_py_core.Semaphore]) -> BenchFunc:
    sem = core(1)

    async def run() -> None:
        for _ in range(_N):
            p = sem.try_acquire(1)
            p.release()

    return run


async def _batchsem_release_wake(core: type[_py_core.Semaphore]) -> None:
    ping = core(0)
    pong = core(0)

    async def partner() -> None:
        for _ in range(_ROUND_TRIPS):
            (await ping.acquire(1)).forget()  # the permit goes back through add_permits
            pong.add_permits(1)

    task = asyncio.create_task(partner())
    await asyncio.sleep(0)  # the partner now waits in ping.acquire
    for _ in range(_ROUND_TRIPS):
        ping.add_permits(1)
        (await pong.acquire(1)).forget()
    await task


# -------------------------------------------------------------------- asyncio


def _asyncio_acquire_release() -> BenchFunc:
    sem = asyncio.Semaphore(1)

    async def run() -> None:
        for _ in range(_N):
            await sem.acquire()
            sem.release()

    return run


def _asyncio_async_with() -> BenchFunc:
    sem = asyncio.Semaphore(1)

    async def run() -> None:
        for _ in range(_N):
            async with sem:
                pass

    return run


def _asyncio_batch() -> BenchFunc:
    sem = asyncio.Semaphore(BATCH)

    async def run() -> None:
        for _ in range(_N):
            for _ in range(BATCH):
                await sem.acquire()
            for _ in range(BATCH):
                sem.release()

    return run


def _asyncio_try_acquire() -> BenchFunc:
    sem = asyncio.Semaphore(1)

    async def run() -> None:
        for _ in range(_N):
            # No try_acquire in asyncio: when locked() is false, acquire() takes
            # its fast path and returns without suspending.
            if not sem.locked():
                await sem.acquire()
                sem.release()

    return run


async def _asyncio_release_wake() -> None:
    ping = asyncio.Semaphore(0)
    pong = asyncio.Semaphore(0)

    async def partner() -> None:
        for _ in range(_ROUND_TRIPS):
            await ping.acquire()
            pong.release()

    task = asyncio.create_task(partner())
    await asyncio.sleep(0)
    for _ in range(_ROUND_TRIPS):
        ping.release()
        await pong.acquire()
    await task


# ------------------------------------------------------------------- aiologic


def _aiologic_acquire_release() -> BenchFunc:
    import aiologic

    sem = aiologic.Semaphore(1)

    async def run() -> None:
        for _ in range(_N):
            await sem.async_acquire()
            sem.release()

    return run


def _aiologic_async_with() -> BenchFunc:
    import aiologic

    sem = aiologic.Semaphore(1)

    async def run() -> None:
        for _ in range(_N):
            async with sem:
                pass

    return run


def _aiologic_batch() -> BenchFunc:
    import aiologic

    sem = aiologic.Semaphore(BATCH)

    async def run() -> None:
        for _ in range(_N):
            for _ in range(BATCH):
                await sem.async_acquire()
            for _ in range(BATCH):
                sem.release()

    return run


def _aiologic_try_acquire() -> BenchFunc:
    import aiologic

    sem = aiologic.Semaphore(1)

    async def run() -> None:
        for _ in range(_N):
            # The synchronous non-blocking acquire: returns False instead of waiting.
            if sem.green_acquire(blocking=False):
                sem.release()

    return run


async def _aiologic_release_wake() -> None:
    import aiologic

    ping = aiologic.Semaphore(0)
    pong = aiologic.Semaphore(0)

    async def partner() -> None:
        for _ in range(_ROUND_TRIPS):
            await ping.async_acquire()
            pong.release()

    task = asyncio.create_task(partner())
    await asyncio.sleep(0)
    for _ in range(_ROUND_TRIPS):
        ping.release()
        await pong.async_acquire()
    await task


# ------------------------------------------------------------------ condition


def _condition_acquire_release() -> BenchFunc:
    sem = ConditionSemaphore(1)

    async def run() -> None:
        for _ in range(_N):
            h = await sem.acquire(1)
            await sem.release(1, h)

    return run


def _condition_batch() -> BenchFunc:
    sem = ConditionSemaphore(BATCH)

    async def run() -> None:
        for _ in range(_N):
            # Weighted natively (BUILTIN["condition"].native_batch): one request.
            h = await sem.acquire(BATCH)
            await sem.release(BATCH, h)

    return run


async def _condition_release_wake() -> None:
    ping = ConditionSemaphore(0)
    pong = ConditionSemaphore(0)

    async def partner() -> None:
        for _ in range(_ROUND_TRIPS):
            h = await ping.acquire(1)
            await pong.release(1, h)

    task = asyncio.create_task(partner())
    await asyncio.sleep(0)
    for _ in range(_ROUND_TRIPS):
        await ping.release(1, None)
        await pong.acquire(1)
    await task


# ------------------------------------------------------------------- registry


def _per_loop(make: Maker) -> BenchFunc:
    """Run ``make()``'s function on state created once per event loop."""
    current: list[Any] = [None, None]  # [loop, function]

    async def run() -> None:
        loop = asyncio.get_running_loop()
        if current[0] is not loop:
            current[0], current[1] = loop, make()
        await current[1]()

    return run


_MAKERS: dict[tuple[str, str], Maker] = {
    **{
        (op, impl): functools.partial(make, core)
        for impl, core in _BATCHSEM_CORES.items()
        for op, make in (
            ("acquire-release", _batchsem_acquire_release),
            ("async-with", _batchsem_async_with),
            ("batch-8", _batchsem_batch),
            ("try-acquire", _batchsem_try_acquire),
        )
    },
    ("acquire-release", "asyncio"): _asyncio_acquire_release,
    ("async-with", "asyncio"): _asyncio_async_with,
    ("batch-8", "asyncio"): _asyncio_batch,
    ("try-acquire", "asyncio"): _asyncio_try_acquire,
    ("acquire-release", "aiologic"): _aiologic_acquire_release,
    ("async-with", "aiologic"): _aiologic_async_with,
    ("batch-8", "aiologic"): _aiologic_batch,
    ("try-acquire", "aiologic"): _aiologic_try_acquire,
    ("acquire-release", "condition"): _condition_acquire_release,
    ("batch-8", "condition"): _condition_batch,
}

_SELF_CONTAINED: dict[tuple[str, str], BenchFunc] = {
    **{("release-wake", impl): functools.partial(_batchsem_release_wake, core)
       for impl, core in _BATCHSEM_CORES.items()},
    ("release-wake", "asyncio"): _asyncio_release_wake,
    ("release-wake", "aiologic"): _aiologic_release_wake,
    ("release-wake", "condition"): _condition_release_wake,
}


def bench_func(op: str, impl: str) -> BenchFunc | None:
    """The benchmark function for ``op`` on ``impl``, or None if it is not measured."""
    make = _MAKERS.get((op, impl))
    if make is not None:
        return _per_loop(make)
    return _SELF_CONTAINED.get((op, impl))


def bench_name(op: str, impl: str, loop: str) -> str:
    return f"{op}[{impl},{loop}]"


def bench_names(impls: Sequence[str], loops: Sequence[str]) -> list[str]:
    """The benchmarks a run with these impls and loops produces, in run order."""
    return [
        bench_name(op, impl, loop)
        for op in OPS
        for loop in loops
        for impl in impls
        if bench_func(op, impl) is not None
    ]


# ------------------------------------------------------------ command line


def _default_impls() -> list[str]:
    return ["batchsem", "asyncio", *(["aiologic"] if installed("aiologic") else [])]


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return list(dict.fromkeys(names))


def _add_cmdline_args(cmd: list[str], args: argparse.Namespace) -> None:
    """Forward our own options to pyperf's worker processes."""
    cmd.extend(("--impl", ",".join(args.impl), "--loop", ",".join(args.loop)))


def _check_choices(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for impl in args.impl:
        if impl not in IMPLS:
            parser.error(f"unknown --impl {impl!r} (known: {', '.join(IMPLS)})")
        if not installed(impl):
            parser.error(f"--impl {impl}: not installed (pip install 'batchsem[peers]')")
    for loop in args.loop:
        reason = loops_mod.unavailable_reason(loop)
        if reason is not None:
            parser.error(f"--loop {loop}: {reason}")


def _versions() -> dict[str, str]:
    versions = {"batchsem_version": batchsem.__version__}
    uvloop = loops_mod.uvloop_version()
    if uvloop is not None:
        versions["uvloop_version"] = uvloop
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        versions["aiologic_version"] = importlib.metadata.version("aiologic")
    return versions


def main(argv: Sequence[str] | None = None) -> None:
    runner = pyperf.Runner(
        processes=DEFAULT_PROCESSES,
        values=DEFAULT_VALUES,
        metadata=_versions(),
        add_cmdline_args=_add_cmdline_args,
        program_args=("-m", "batchsem.micro"),
    )
    parser: argparse.ArgumentParser = runner.argparser
    parser.description = "pyperf micro-benchmarks of batchsem.Semaphore and its peers"
    parser.add_argument(
        "--impl",
        type=_names,
        default=_default_impls(),
        metavar="A,B",
        help=f"implementations to measure, of {', '.join(IMPLS)} "
        "(default: batchsem,asyncio and aiologic if installed)",
    )
    parser.add_argument(
        "--loop",
        type=_names,
        default=loops_mod.available(),
        metavar="A,B",
        help=f"event loops, of {', '.join(loops_mod.LOOPS)} (default: all available here)",
    )
    args = runner.parse_args(None if argv is None else list(argv))
    _check_choices(parser, args)

    for op in OPS:
        for loop in args.loop:
            loop_factory = loops_mod.factory(loop)
            for impl in args.impl:
                func = bench_func(op, impl)
                if func is None:
                    continue
                runner.bench_async_func(
                    bench_name(op, impl, loop),
                    func,
                    inner_loops=INNER_LOOPS,
                    loop_factory=loop_factory,
                    metadata={"tags": [f"op:{op}", f"impl:{impl}", f"loop:{loop}"]},
                )


if __name__ == "__main__":
    main()
