"""The workload description and the context a workload body runs in.

A workload is declarative: a name, a one-line description, typed parameters
with defaults and validation, the request classes it reports separately, and
an async ``body(ctx)``. The engine (``batchsem.bench``) builds the context,
runs the body on the chosen event loop, and turns what the :class:`Recorder`
saw into metrics. Workloads never print and never compute metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Context",
    "Limiter",
    "Param",
    "ParamError",
    "Recorder",
    "Workload",
    "hold",
    "parse_sizes",
]


@runtime_checkable
class Limiter(Protocol):
    """What a workload drives; ``batchsem.bench.impls`` adapts each implementation to it.

    * ``async acquire(n) -> handle``: wait for ``n`` permits; raise
      ``batchsem.AcquireError`` if closed; give back what was taken if cancelled.
    * ``release(n, handle) -> None | Awaitable[None]``: give the permits back.
    * ``available() -> int | None``: free permits now, None if unknown.
    * optional ``close()`` and ``prepare_close()`` (see ``batchsem.bench.impls``).
    * optional ``waiting() -> int``: requests queued that have not been given all
      their permits yet (lets the recorder tell "granted" from "resumed").
    """

    async def acquire(self, n: int) -> object: ...

    def release(self, n: int, handle: object) -> Awaitable[None] | None: ...

    def available(self) -> int | None: ...


def prepare_close(limiter: Limiter) -> bool:
    """Get a fresh limiter ready to be closed; False if it cannot be closed at all."""
    prepare = getattr(limiter, "prepare_close", None)
    if prepare is not None:
        prepare()
    return callable(getattr(limiter, "close", None))


def close_limiter(limiter: Limiter) -> None:
    """Close natively or by the emulation (checked by :func:`prepare_close`)."""
    limiter.close()  # type: ignore[attr-defined]


class ParamError(ValueError):
    """A workload parameter is unknown or has a bad value (one line, for the user)."""


@dataclass(frozen=True)
class Param:
    """One ``--param key=value`` of a workload."""

    name: str
    kind: type  # int, float, str
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None

    def parse(self, text: str) -> Any:
        """Convert and validate a command-line value; :class:`ParamError` if bad."""
        try:
            value = self.kind(text)
        except ValueError:
            raise ParamError(
                f"--param {self.name}={text}: expected {self.kind.__name__}"
            ) from None
        # float() accepts "nan" and "inf"; neither is a usable hold time or ratio.
        if isinstance(value, float) and not math.isfinite(value):
            raise ParamError(f"--param {self.name}={text}: expected a finite number")
        self.check(value)
        return value

    def check(self, value: Any) -> None:
        """Validate a value of the right type; :class:`ParamError` if out of range."""
        if self.minimum is not None and value < self.minimum:
            raise ParamError(f"--param {self.name}={value}: must be >= {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise ParamError(f"--param {self.name}={value}: must be <= {self.maximum}")


@dataclass(frozen=True)
class Workload:
    """A named, parameterised scenario that drives one implementation."""

    name: str
    description: str
    params: tuple[Param, ...]
    body: Callable[[Context], Awaitable[None]]
    #: Request classes reported separately (e.g. reader/writer, small/large).
    classes: tuple[str, ...] = ("all",)
    #: Supports ``--rate`` (open loop, Poisson arrivals).
    open_loop: bool = False
    #: Runs tasks on several threads' event loops: needs a thread-safe impl.
    threaded: bool = False
    #: Closes the limiter: needs a native or emulated close.
    closes: bool = False
    #: Requests of all P permits are writes and of 1 are reads: an impl with a native
    #: reader-writer lock (batchsem.RwLock) is driven through it.
    rwlock: bool = False
    #: Requests may be for more than one permit (so how an impl does batches matters).
    batches: bool = True
    #: What one unit of throughput is, for tables ("acq/s" unless the workload says).
    unit: str = "acq/s"
    #: The ``null`` ceiling is meaningful here (the workload measures raw throughput).
    ceiling: bool = False
    #: Its grants are recorded as they happen, so the gate's time windows can be
    #: sampled. False for a workload whose grants are reported after the fact (from
    #: other processes): its windows would hold nothing, and ``compare`` tests its
    #: per-repeat throughput instead.
    windowed: bool = True
    #: Cross-parameter validation: ``check(params, permits, tasks)`` raises ParamError.
    check: Callable[[Mapping[str, Any], int, int], None] | None = None

    def resolve_params(self, given: Mapping[str, str]) -> dict[str, Any]:
        """Defaults overlaid with ``given`` (strings from the command line), validated."""
        known = {p.name: p for p in self.params}
        values = {p.name: p.default for p in self.params}
        for key, text in given.items():
            if key not in known:
                names = ", ".join(known) or "none"
                raise ParamError(f"workload {self.name!r} has no parameter {key!r} (has: {names})")
            values[key] = known[key].parse(text)
        return values


class Recorder:
    """What the harness records about every request, the same way for every implementation.

    For each request: task id, class, size, the time the request was issued
    (or, in open-loop mode, was *meant* to be issued), the time it was granted,
    and two numbers from one shared sequence counter: one taken just before
    ``acquire`` is called and one just after it returns. Overtakes are counted
    from those. It also keeps the permits in use (to check capacity and
    conservation) and every failed or abandoned request.

    Thread-safe when ``threaded=True`` (one lock around the bookkeeping).
    """

    def __init__(self, *, threaded: bool = False) -> None:
        self.seq = itertools.count()
        # (task, cls, n, t_req_ns, t_grant_ns, req_seq, grant_seq)
        self.grants: list[tuple[int, str, int, int, int, int, int]] = []
        # req_seq -> (task, cls, n, t_req_ns) while waiting
        self.pending: dict[int, tuple[int, str, int, int]] = {}
        # req_seq -> the seq at which a pending request was known to hold its permits
        # (before its task resumed); used as its grant_seq. See :meth:`_settle`.
        self.settled: dict[int, int] = {}
        # (task, cls, n, t_req_ns, t_end_ns, req_seq, reason) reason: "closed" | "cancelled"
        self.failed: list[tuple[int, str, int, int, int, int, str]] = []
        self.in_use = 0
        self.max_in_use = 0
        self.released = 0
        self.close_ns: int | None = None
        self.granted_after_close = 0
        self.extra: dict[str, list[float]] = {}
        # Latency samples (ns) that are not grant waits, by class (e.g. close -> AcquireError).
        self.latency_extra: dict[str, list[int]] = {}
        self._lock = threading.Lock() if threaded else None

    def progress(self) -> int:
        """A number that grows whenever any request is granted, released or fails."""
        return len(self.grants) + self.released + len(self.failed)

    def note(self, metric: str, value: float) -> None:
        """Record one sample of a workload-specific metric (summarised like throughput)."""
        self.extra.setdefault(metric, []).append(value)

    def note_latency(self, cls: str, ns: int) -> None:
        """Record a latency sample for ``cls`` that is not a grant wait."""
        self.latency_extra.setdefault(cls, []).append(ns)

    def mark_close(self) -> None:
        """The limiter is being closed now; any later grant violates an invariant."""
        self.close_ns = time.perf_counter_ns()

    async def acquire(
        self, lim: Limiter, n: int, task: int, cls: str, t_req: int | None = None
    ) -> object:
        """``lim.acquire(n)`` with its request and grant recorded; re-raises failures."""
        if t_req is None:
            t_req = time.perf_counter_ns()
        if self.pending and self._lock is None:
            self._settle(lim)
        rs = next(self.seq)
        self.pending[rs] = (task, cls, n, t_req)
        try:
            handle = await lim.acquire(n)
        except BaseException as exc:
            del self.pending[rs]
            self.settled.pop(rs, None)
            reason = "cancelled" if isinstance(exc, asyncio.CancelledError | TimeoutError) else (
                "closed"
            )
            self.failed.append((task, cls, n, t_req, time.perf_counter_ns(), rs, reason))
            raise
        t_grant = time.perf_counter_ns()
        gs = self.settled.pop(rs, None)
        if gs is None:
            gs = next(self.seq)
        del self.pending[rs]
        self.grants.append((task, cls, n, t_req, t_grant, rs, gs))
        lock = self._lock
        if lock is None:
            self._granted(n)
        else:
            with lock:
                self._granted(n)
        return handle

    def _settle(self, lim: Limiter) -> None:
        """Before a new request: if ``lim`` says nobody is queued, every pending request
        already holds its permits and only its task has not resumed yet.

        Their grant is then taken as now. Otherwise a task that takes permits left
        over by a release before the tasks that release served get to run would be
        counted as overtaking them, although the limiter served them first (a
        false FIFO violation for batches). Single-loop only: on several threads a
        pending request may not have reached the limiter yet.
        """
        waiting = getattr(lim, "waiting", None)
        if waiting is None or waiting() != 0:
            return
        settled = self.settled
        for rs in self.pending:
            if rs not in settled:
                settled[rs] = next(self.seq)

    def acquire_sync(self, acquire: Callable[[int], Any], n: int, task: int, cls: str) -> Any:
        """Like :meth:`acquire` for a blocking call ``acquire(n)`` made from a plain thread."""
        t_req = time.perf_counter_ns()
        rs = next(self.seq)
        self.pending[rs] = (task, cls, n, t_req)
        try:
            handle = acquire(n)
        except BaseException:
            del self.pending[rs]
            self.failed.append((task, cls, n, t_req, time.perf_counter_ns(), rs, "closed"))
            raise
        t_grant = time.perf_counter_ns()
        gs = next(self.seq)
        del self.pending[rs]
        self.grants.append((task, cls, n, t_req, t_grant, rs, gs))
        with self._lock or contextlib.nullcontext():
            self._granted(n)
        return handle

    def release_sync(self, n: int) -> None:
        """Book ``n`` permits as released (the caller releases them itself)."""
        with self._lock or contextlib.nullcontext():
            self.in_use -= n
            self.released += n

    def _granted(self, n: int) -> None:
        self.in_use = in_use = self.in_use + n
        if in_use > self.max_in_use:
            self.max_in_use = in_use
        if self.close_ns is not None:
            self.granted_after_close += 1

    async def release(self, lim: Limiter, n: int, handle: object) -> None:
        """Give ``n`` permits back through ``lim.release`` (awaited if it returns an awaitable)."""
        lock = self._lock
        if lock is None:
            self.in_use -= n
            self.released += n
        else:
            with lock:
                self.in_use -= n
                self.released += n
        pending = lim.release(n, handle)
        if pending is not None:
            await pending


@dataclass
class Context:
    """Everything a workload body may use. Built by the engine for one repeat."""

    impl_name: str
    #: Builds a fresh limiter with the given number of permits.
    factory: Callable[[int], Limiter]
    permits: int
    tasks: int
    params: dict[str, Any]
    rng: random.Random
    duration: float
    recorder: Recorder
    rate: float | None = None
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    #: The implementation can serve tasks of several loops/threads at once.
    thread_safe: bool = False
    limiters: list[Limiter] = field(default_factory=list)
    #: Task ids that were expected to make progress (for "starved tasks").
    task_ids: dict[str, set[int]] = field(default_factory=dict)
    #: Tasks that did not finish within the grace period after the deadline.
    unfinished: int = 0
    deadline_ns: int = 0

    def start_clock(self) -> None:
        """Start the run: ``running()`` is true for ``duration`` seconds from now."""
        self.deadline_ns = time.perf_counter_ns() + int(self.duration * 1e9)

    def running(self) -> bool:
        """True until the run's deadline."""
        return time.perf_counter_ns() < self.deadline_ns

    def new_limiter(self, permits: int | None = None) -> Limiter:
        """A fresh limiter of the implementation under test (kept for the conservation check)."""
        lim = self.factory(self.permits if permits is None else permits)
        self.limiters.append(lim)
        return lim

    def register(self, cls: str, task: int) -> None:
        """Declare a task that should complete requests of ``cls`` (for starvation counts)."""
        self.task_ids.setdefault(cls, set()).add(task)

    @property
    def longest_hold(self) -> float:
        """The longest hold time any parameter asks for (seconds; 0 if none)."""
        return max((float(v) for k, v in self.params.items()
                    if "hold" in k and isinstance(v, int | float)), default=0.0)

    @property
    def stall_s(self) -> float:
        """How long no request may make progress after the deadline before the run counts
        as stuck: 0.5 s plus four of the longest holds (a holder must be able to finish)."""
        return STALL_S + 4 * self.longest_hold

    @property
    def grace_s(self) -> float:
        """How long after the deadline unfinished workers are waited for at most."""
        return GRACE_S + 10 * self.longest_hold

    async def gather(self, coros: list[Awaitable[None]]) -> None:
        """Run the workers to completion, then cancel any that are stuck.

        After the deadline, workers that make no progress (no grant, release
        or failure anywhere) for :attr:`stall_s`, or are still running
        :attr:`grace_s` after it, are cancelled and counted in ``unfinished``
        (a deadlock or a lost wake-up in the implementation). Every worker's
        exception is retrieved; the first is raised once all have finished.
        """
        tasks = [asyncio.ensure_future(c) for c in coros]
        pending: set[asyncio.Future[None]] = set(tasks)
        until_deadline = max(0.0, (self.deadline_ns - time.perf_counter_ns()) / 1e9)
        _, pending = await asyncio.wait(pending, timeout=until_deadline)
        rec = self.recorder
        give_up = time.monotonic() + self.grace_s
        while pending:
            before = rec.progress()
            _, pending = await asyncio.wait(pending, timeout=self.stall_s)
            if pending and (rec.progress() == before or time.monotonic() > give_up):
                self.unfinished += len(pending)
                for t in pending:
                    t.cancel()
                await asyncio.wait(pending, timeout=self.stall_s)
                break
        errors = [t.exception() for t in tasks if t.done() and not t.cancelled()]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first


#: Seconds without progress after the deadline before a run counts as stuck (plus holds).
STALL_S = 0.5
#: Seconds after the deadline that stuck workers are waited for at most (plus holds).
GRACE_S = 10.0


def at_most_permits(name: str) -> Callable[[Mapping[str, Any], int, int], None]:
    """A :attr:`Workload.check`: parameter ``name`` (0 meaning P) may not exceed the permits.

    A request for more permits than the semaphore holds would wait forever.
    """

    def check(params: Mapping[str, Any], permits: int, tasks: int) -> None:
        value = params[name] or permits
        if value > permits:
            raise ParamError(
                f"--param {name}={value} exceeds --permits {permits}: "
                "a request that large could never be served"
            )

    return check


async def run_cycles(ctx: Context, cycle: Callable[[Context, int], Awaitable[int]]) -> None:
    """Run ``cycle(ctx, first_task_id)`` until the deadline (for cycle-based workloads)."""
    ident = 0
    while ctx.running():
        ident = await cycle(ctx, ident)


async def hold(seconds: float) -> None:
    """Hold a permit: one ``sleep(0)`` for 0, else sleep that long."""
    await asyncio.sleep(seconds)


def parse_sizes(text: str, permits: int) -> tuple[list[int], list[float]]:
    """Parse a batch-size distribution like ``"1:60,2:20,4:10,P/2:6,P:4"``.

    Each item is ``size:weight``; a size is an int, ``P`` (the permits), ``P/k``
    or ``P-k``. Raises :class:`ParamError` for bad syntax or a size outside
    ``1..permits`` (a batch larger than the semaphore can ever hold would wait
    forever).
    """
    sizes: list[int] = []
    weights: list[float] = []
    for item in text.split(","):
        size_text, sep, weight_text = item.strip().partition(":")
        try:
            weight = float(weight_text) if sep else 1.0
            expr = size_text.strip().upper()
            if expr == "P":
                size = permits
            elif expr.startswith("P/"):
                size = max(1, permits // int(expr[2:]))
            elif expr.startswith("P-"):
                size = permits - int(expr[2:])
            else:
                size = int(expr)
        except (ValueError, ZeroDivisionError):
            raise ParamError(
                f"bad size distribution item {item.strip()!r} (want size:weight)"
            ) from None
        if not 1 <= size <= permits:
            raise ParamError(
                f"batch size {size} (from {size_text.strip()!r}) is outside 1..{permits}: "
                "a batch larger than the semaphore can hold would wait forever"
            )
        if weight <= 0:
            raise ParamError(f"weight of {size_text.strip()!r} must be > 0")
        sizes.append(size)
        weights.append(weight)
    return sizes, weights
