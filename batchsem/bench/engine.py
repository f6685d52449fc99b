"""Run a workload against an implementation on a loop, repeat it, and measure.

Nothing here prints. :func:`run_case` returns the case record the result
file stores (:class:`batchsem.bench.schema.Case`); callers get progress
through a callback.
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import random
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from batchsem.bench import impls as impls_mod
from batchsem.bench import loops
from batchsem.bench.metrics import WINDOWS, RepeatMetrics, measure_repeat, summarize_repeats
from batchsem.bench.probe import probe_ns
from batchsem.bench.schema import Case, ParamValue
from batchsem.workloads import REGISTRY, ParamError, Workload
from batchsem.workloads.base import Context, Limiter, Recorder

__all__ = ["CaseSpec", "plan", "run_case"]

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class CaseSpec:
    """One case: workload x impl x loop, with everything needed to run it."""

    workload: Workload
    impl: impls_mod.Impl
    loop: str
    params: dict[str, Any]
    permits: int
    tasks: int
    duration: float
    repeats: int
    seed: int
    rate: float | None = None
    warmup: float = 0.0
    trace: Any = None  # a tracer for batchsem cases, or None
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.workload.name, self.impl.name, self.loop)

    def unsupported_reason(self) -> str | None:
        """Why this implementation cannot run this workload, or None."""
        if self.workload.threaded and not self.impl.thread_safe:
            return f"{self.impl.name} is not thread-safe"
        if self.workload.closes and not self.impl.limits:
            return "the null limiter never queues anyone to close"
        return None


def plan(
    workloads: list[str],
    impl_specs: list[str],
    loop_names: list[str],
    *,
    permits: int,
    tasks: int,
    duration: float,
    repeats: int,
    seed: int,
    rate: float | None,
    params: Mapping[str, str],
    ceiling: bool = False,
    warmup: float = 0.0,
) -> list[CaseSpec]:
    """Validate everything the user asked for and list the cases, before running any.

    Raises ``ValueError`` subclasses with one-line messages: unknown workload,
    implementation or loop, bad parameters, impossible batch sizes.
    """
    if permits < 1:
        raise ParamError(f"--permits must be >= 1, got {permits}")
    if tasks < 1:
        raise ParamError(f"--tasks must be >= 1, got {tasks}")
    # Written so that nan fails too; inf would never end (and neither can be saved as JSON).
    if not 0 < duration < math.inf:
        raise ParamError(f"--duration must be > 0 and finite, got {duration}")
    if repeats < 1:
        raise ParamError(f"--repeat must be >= 1, got {repeats}")
    if rate is not None and not 0 < rate < math.inf:
        raise ParamError(f"--rate must be > 0 and finite, got {rate}")
    chosen: list[Workload] = []
    for name in workloads:
        if name not in REGISTRY:
            raise ParamError(f"unknown workload {name!r} (known: {', '.join(REGISTRY)})")
        chosen.append(REGISTRY[name])
    if rate is not None and not any(w.open_loop for w in chosen):
        open_names = ", ".join(w.name for w in REGISTRY.values() if w.open_loop)
        raise ParamError(f"--rate applies to the open-loop workloads only ({open_names})")
    resolved = [impls_mod.resolve(spec) for spec in impl_specs]
    for impl in resolved:
        if impl.name not in impls_mod.BUILTIN:
            probe(impl, permits)
    for name in loop_names:
        loops.factory(name)  # raises LoopUnavailable with the reason
    # --param applies to every chosen workload that has the key; unknown everywhere is an error
    for key in params:
        if not any(key in {p.name for p in w.params} for w in chosen):
            names = ", ".join(w.name for w in chosen)
            raise ParamError(f"--param {key}: no chosen workload ({names}) has that parameter")
    cases: list[CaseSpec] = []
    available = available_memory()
    for w in chosen:
        own = {k: v for k, v in params.items() if k in {p.name for p in w.params}}
        values = w.resolve_params(own)
        if w.check is not None:
            w.check(values, permits, tasks)
        need, what = memory_estimate(w, values, tasks, duration, rate)
        if available is not None and need > MEMORY_SHARE * available:
            raise ParamError(
                f"{w.name} would hold about {need / 2**30:.1f} GiB per repeat ({what}); "
                f"{available / 2**30:.1f} GiB is available: lower --tasks, --param waiters "
                "or --duration"
            )
        case_impls = list(resolved)
        if ceiling and w.ceiling and all(i.name != "null" for i in case_impls):
            case_impls.append(impls_mod.BUILTIN["null"])
        for impl in case_impls:
            for loop_name in loop_names:
                cases.append(
                    CaseSpec(
                        workload=w,
                        impl=impl,
                        loop=loop_name,
                        params=values,
                        permits=permits,
                        tasks=tasks,
                        duration=duration,
                        repeats=repeats,
                        seed=seed,
                        rate=rate if w.open_loop else None,
                        warmup=warmup,
                    )
                )
    return cases


#: Bytes one waiting task costs (Task, coroutine frame, recorder entry, a limiter's
#: queue node); a generous round figure over what CPython 3.11-3.13 allocate.
TASK_BYTES = 4096
#: Bytes the recorder keeps per grant (a 7-tuple of ints and its list slot).
GRANT_BYTES = 250
#: More grants per second than any limiter here reaches on one core.
MAX_GRANT_RATE = 500_000
#: A run may plan to use at most this share of the memory available when it starts.
MEMORY_SHARE = 0.8


def memory_estimate(
    workload: Workload, params: Mapping[str, Any], tasks: int, duration: float,
    rate: float | None,
) -> tuple[float, str]:
    """(bytes, explanation): an upper estimate of what one repeat holds at once.

    Concurrent tasks (``--tasks``, plus ``waiters`` queued per cycle for the
    storm workloads, plus in-flight open-loop arrivals) at :data:`TASK_BYTES`
    each, and the recorder's grants over ``duration`` at
    :data:`MAX_GRANT_RATE` (or ``--rate`` if higher).
    """
    concurrent = tasks + int(params.get("waiters", 0)) + 1
    if workload.open_loop and rate is not None:
        concurrent += min(100_000, int(rate * duration) + 1)
    grants = max(MAX_GRANT_RATE, rate or 0.0) * duration
    need = concurrent * TASK_BYTES + grants * GRANT_BYTES
    return need, f"{concurrent:,} concurrent tasks, up to {int(grants):,} grants recorded"


def available_memory() -> int | None:
    """Bytes of memory available now (Linux MemAvailable, else free pages), None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def probe(impl: impls_mod.Impl, permits: int) -> None:
    """Build one limiter from a user factory, in an event loop, and check its methods.

    Raises :class:`~batchsem.bench.impls.UnknownImpl` (one line) if the factory
    raises or returns something that is not a limiter, so ``--impl os:getcwd``
    is a usage error, not a failed measurement.
    """

    async def build() -> object:
        return impl.factory(permits)

    try:
        made = asyncio.run(build())
    except Exception as exc:
        reason = " ".join("".join(traceback.format_exception_only(exc)).split())[:200]
        raise impls_mod.UnknownImpl(f"{impl.name}({permits}) raised {reason}: expected "
                                    "factory(permits) -> limiter") from None
    impls_mod.check_limiter(made, impl.name)


def _factory(spec: CaseSpec, tracer: Any) -> Callable[[int], Limiter]:
    impl = spec.impl
    base: Callable[[int], Any] = impl.factory
    if spec.workload.rwlock and impl.rw_factory is not None:
        base = impl.rw_factory
    if tracer is not None and impl.name == "batchsem":
        traced = base

        def base(permits: int) -> Any:
            return traced(permits, tracer)  # type: ignore[call-arg]

    def make(permits: int) -> Limiter:
        return impls_mod.check_limiter(base(permits), impl.name)

    return make


def run_repeat(spec: CaseSpec, index: int) -> RepeatMetrics:
    """Run one repeat in a fresh event loop and measure it. Lets ``KeyboardInterrupt`` through."""
    loop_factory = loops.factory(spec.loop)
    tracer = spec.trace
    if tracer is not None and spec.impl.name == "batchsem":
        tracer = tracer.bind(workload=spec.workload.name, loop=spec.loop, repeat=index)
    recorder = Recorder(threaded=spec.workload.threaded)
    ctx = Context(
        impl_name=spec.impl.name,
        factory=_factory(spec, tracer if spec.impl.name == "batchsem" else None),
        permits=spec.permits,
        tasks=spec.tasks,
        params=dict(spec.params),
        rng=random.Random(f"{spec.seed}:{spec.workload.name}:{index}"),
        duration=spec.duration,
        recorder=recorder,
        rate=spec.rate,
        loop_factory=loop_factory,
        thread_safe=spec.impl.thread_safe,
    )
    error: str | None = None
    loop_errors: list[str] = []
    samples: list[tuple[int, int, int, int]] = []

    def make_loop() -> asyncio.AbstractEventLoop:
        loop = loop_factory()
        loop.set_exception_handler(lambda _loop, context: loop_errors.append(_describe(context)))
        return loop

    async def main() -> None:
        ctx.start_clock()
        body = asyncio.ensure_future(spec.workload.body(ctx))  # first to run: the clock is on
        sampling = None
        if spec.workload.windowed:
            # Threads of a threaded workload contend for the GIL with the probe, so
            # its time there would measure the GIL, not the machine's speed.
            sampling = asyncio.ensure_future(
                sample_windows(ctx, samples, speed=not spec.workload.threaded))
        try:
            await watch(ctx, body)
        finally:
            if sampling is not None:
                sampling.cancel()
            # Limiters holding connections (the Redis ones) leave on the loop they used.
            for lim in ctx.limiters:
                aclose = getattr(lim, "aclose", None)
                if aclose is not None:
                    await aclose()

    # The cyclic garbage collector is paused while a repeat runs, as timeit
    # does: the recorder's own growing lists would otherwise make every
    # collection slower, billed to whichever implementation allocates more.
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    t0 = time.perf_counter_ns()
    try:
        with asyncio.Runner(loop_factory=make_loop) as runner:
            runner.run(main())
    except (KeyboardInterrupt, SystemExit):
        raise
    except ParamError as exc:
        error = str(exc)
    except BaseException as exc:
        error = "".join(traceback.format_exception_only(exc)).strip()
    finally:
        if gc_was_enabled:
            gc.enable()
    elapsed = (time.perf_counter_ns() - t0) / 1e9
    gc.collect()  # tasks dropped with an exception report it now, to make_loop's handler
    if loop_errors and error is None:
        error = (f"{len(loop_errors)} exception(s) in tasks nobody waited for; first: "
                 f"{loop_errors[0]}")
    return measure_repeat(spec.workload, spec.impl, spec.permits, ctx, elapsed, error, samples)


def _describe(context: dict[str, Any]) -> str:
    exc = context.get("exception")
    if isinstance(exc, BaseException):
        return "".join(traceback.format_exception_only(exc)).strip().splitlines()[-1]
    return str(context.get("message", "unknown error"))


class Hung(Exception):
    """The workload did not finish: nothing made progress for too long after the deadline."""


async def watch(ctx: Context, body: Awaitable[None]) -> None:
    """Run a workload body; cancel it if it hangs. Raises :class:`Hung` in that case.

    Until the deadline (``ctx.deadline_ns``, which the body may move) the body
    runs undisturbed. After it, the body is cancelled once no request has made
    progress for twice ``ctx.stall_s``, or ``ctx.grace_s`` plus that much has
    passed (looser than ``Context.gather``, whose per-worker diagnosis comes
    first when it applies). A limiter whose
    acquire never returns, or which lost permits so later requests wait
    forever, thus ends the repeat within about ``duration + grace``.
    """
    task = asyncio.ensure_future(body)
    # The deadline is read again after each wait: a workload may move it (the
    # processes workload sets it once its worker processes are ready).
    while not task.done():
        until_deadline = (ctx.deadline_ns - time.perf_counter_ns()) / 1e9
        if until_deadline <= 0:
            break
        await asyncio.wait({task}, timeout=until_deadline)
    stall = 2 * ctx.stall_s
    give_up = time.monotonic() + ctx.grace_s + stall
    while not task.done():
        before = ctx.recorder.progress()
        await asyncio.wait({task}, timeout=stall)
        if not task.done() and (ctx.recorder.progress() == before or time.monotonic() > give_up):
            task.cancel()
            await asyncio.wait({task}, timeout=stall)
            raise Hung(f"the run did not finish: no request made progress for {stall:.1f} s "
                       "after the deadline (the limiter hangs, or lost permits)")
    task.result()


def run_delay_ns() -> int:
    """Nanoseconds this thread has spent runnable but waiting for a CPU (Linux schedstat).

    That is time other processes took from the run; 0 where it is not reported.
    """
    try:
        with open("/proc/thread-self/schedstat", "rb") as fh:
            return int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0


async def sample_windows(
    ctx: Context, samples: list[tuple[int, int, int, int]], speed: bool = True
) -> None:
    """Append (time ns, run-queue delay ns, grants so far, probe ns) at the timed period's
    start and at :data:`WINDOWS` equal steps to its deadline (the edges of the gate's
    windows).

    With ``speed``, :func:`batchsem.bench.probe.probe_ns` runs right after each
    edge is taken (so its time falls in the window that starts there) and its
    result is the last field; without, that field is 0.
    """
    start = ctx.deadline_ns - int(ctx.duration * 1e9)
    grants = ctx.recorder.grants

    def sample() -> None:
        edge = (time.perf_counter_ns(), run_delay_ns(), len(grants))
        samples.append((*edge, probe_ns() if speed else 0))

    for k in range(WINDOWS + 1):
        target = start + (ctx.deadline_ns - start) * k // WINDOWS
        wait = (target - time.perf_counter_ns()) / 1e9
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:
                # The body can finish (its workers stop at the deadline) before this
                # timer fires: then the end of the run is the last edge, not lost.
                if k == WINDOWS and time.perf_counter_ns() >= ctx.deadline_ns:
                    sample()
                raise
        sample()


def run_case(spec: CaseSpec, progress: Progress | None = None) -> Case:
    """Run every repeat of a case and summarise it (the result file's case dict)."""
    reason = spec.unsupported_reason()
    if reason is not None:
        return unsupported_case(spec, reason)
    repeats: list[RepeatMetrics] = []
    for index in range(spec.repeats):
        repeats.append(run_repeat(spec, index))
        if progress is not None:
            progress("repeat", index)
    return summarize_case(spec, repeats)


def run_interleaved(
    specs: list[CaseSpec],
    done: dict[int, list[RepeatMetrics]],
    progress: Callable[[CaseSpec, int], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> None:
    """Run repeat 1 of every case, then repeat 2 of every case, and so on.

    Each case first runs one untimed warm-up of ``spec.warmup`` seconds.
    Cases compared with each other (impls, loops) then share the machine's
    drift (other load, thermal state) instead of one getting a quiet minute
    and another a busy one. Repeats are stored in ``done`` (by index into
    ``specs``) as they finish, so a ``KeyboardInterrupt`` loses none of them.
    ``stop()`` is asked before every repeat; if it is true, ``KeyboardInterrupt`` is
    raised (an interruption that a finalizer swallowed still ends the run).
    """

    def check() -> None:
        if stop is not None and stop():
            raise KeyboardInterrupt

    for spec in specs:
        if spec.warmup > 0 and spec.unsupported_reason() is None:
            check()
            # Untimed: first-call costs (imports, allocator growth, caches, the
            # CPU leaving its idle frequency) are paid here, not by repeat 1.
            run_repeat(replace(spec, duration=spec.warmup, trace=None), -1)
    rounds = max((s.repeats for s in specs), default=0)
    for index in range(rounds):
        for i, spec in enumerate(specs):
            if index >= spec.repeats or spec.unsupported_reason() is not None:
                continue
            check()
            result = run_repeat(spec, index)
            done.setdefault(i, []).append(result)
            if progress is not None:
                progress(spec, index)


def summarize_case(spec: CaseSpec, repeats: list[RepeatMetrics]) -> Case:
    """The case record from the repeats that ran (unsupported if none could).

    With no repeat at all (interrupted before the first finished) the case
    has ``summary`` None and ``partial`` says so.
    """
    reason = spec.unsupported_reason()
    if reason is not None:
        return unsupported_case(spec, reason)
    notes = list(spec.notes)
    if spec.workload.closes and not spec.impl.closes:
        notes.append(f"{spec.impl.name} has no close(): emulated by cancelling its waiters")
    batched = spec.workload.batches and all(
        spec.params.get(k, 2) != 1 for k in ("batch", "max_batch")
    )
    if not spec.impl.native_batch and batched:
        notes.append(f"{spec.impl.name}: a batch of n is n single acquires")
    partial = None
    if len(repeats) < spec.repeats:
        partial = f"{len(repeats)} of {spec.repeats} repeats (interrupted)"
    common: dict[str, Any] = {
        "workload": spec.workload.name,
        "impl": spec.impl.name,
        "loop": spec.loop,
        "params": case_params(spec),
        "unit": spec.workload.unit,
        "duration_s": spec.duration,
        "planned_repeats": spec.repeats,
        "warmup_s": spec.warmup,
        "partial": partial,
        "notes": notes,
    }
    if not repeats:
        return Case(status="failed", **common)
    expect_fifo = spec.impl.name == "batchsem" and not spec.workload.threaded
    summary, histogram, invariants = summarize_repeats(
        spec.workload, repeats, expect_fifo=expect_fifo
    )
    return Case(
        status="ok" if all(invariants.values()) else "failed",
        repeats=[r.as_record() for r in repeats],
        summary=summary,
        histogram=histogram,
        invariants=invariants,
        errors=sorted({r.error for r in repeats if r.error}),
        **common,
    )


def unsupported_case(spec: CaseSpec, reason: str) -> Case:
    """The case record for a case that was not run."""
    return Case(
        workload=spec.workload.name,
        impl=spec.impl.name,
        loop=spec.loop,
        params=case_params(spec),
        status="unsupported",
        reason=reason,
    )


def case_params(spec: CaseSpec) -> dict[str, ParamValue]:
    """The parameters that identify a case (used to match cases across runs)."""
    out: dict[str, ParamValue] = dict(spec.params)
    out["permits"] = spec.permits
    out["tasks"] = spec.tasks
    if spec.rate is not None:
        out["rate"] = spec.rate
    return out
