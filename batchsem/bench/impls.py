"""Implementations under test, all driven through one small adapter protocol.

The adapter protocol (document for users diagnosing their own semaphore):

* A **factory** is a callable ``factory(permits: int) -> Limiter``. It may carry
  the attributes ``thread_safe: bool`` (its limiters may be shared by tasks on
  several event loops in several threads; default False) and ``closes: bool``
  (``close()`` is native; default False, in which case the harness emulates
  close by cancelling the waiters).
* A **Limiter** has

  - ``async acquire(n: int) -> object``: wait for ``n`` permits and return a
    handle (anything; it is passed back to ``release``). Raising
    :class:`batchsem.AcquireError` means "closed". If cancelled it must give
    back whatever it had taken.
  - ``release(n: int, handle: object) -> None | Awaitable[None]``: give back
    the ``n`` permits of ``handle``. May return an awaitable (it is awaited).
  - ``close() -> None`` (optional): fail every waiter with ``AcquireError``.
  - ``available() -> int | None``: free permits now, or None if unknown.
  - ``waiting() -> int`` (optional): requests queued and not yet given all
    their permits. Lets the harness count a request as granted when the
    limiter served it rather than when its task resumed.

``batchsem bench --impl mymodule:make_limiter`` imports ``mymodule`` and uses
``make_limiter`` as the factory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import batchsem
from batchsem import AcquireError
from batchsem.workloads.base import Limiter

Factory = Callable[[int], Limiter]


@dataclass(frozen=True)
class Impl:
    """A named implementation: how to build limiters and what it supports."""

    name: str
    description: str
    factory: Factory
    thread_safe: bool = False
    closes: bool = False
    #: A batch of n is one request (True) or n single acquires in a row (False).
    native_batch: bool = True
    #: Not a real limiter (the ``null`` ceiling): capacity and conservation are not checked.
    limits: bool = True
    version: str | None = None
    #: A native reader-writer lock for ``rwlock`` workloads: factory(max_readers).
    rw_factory: Factory | None = None


class UnknownImpl(ValueError):
    """The ``--impl`` name is not known, not importable, or not a factory."""


# ------------------------------------------------------------------- batchsem


class BatchsemLimiter:
    """batchsem.Semaphore (the active core): one request per batch; the handle is the Permit."""

    __slots__ = ("sem",)
    semaphore_class: ClassVar[type[batchsem.Semaphore]] = batchsem.Semaphore

    def __init__(self, permits: int, tracer: batchsem._semaphore.TraceFn | None = None) -> None:
        self.sem = self.semaphore_class(permits, name="bench", tracer=tracer)

    async def acquire(self, n: int) -> object:
        return await self.sem.acquire(n)

    def release(self, n: int, handle: object) -> None:
        handle.release()  # type: ignore[attr-defined]

    def close(self) -> None:
        self.sem.close()

    def available(self) -> int | None:
        return self.sem.available_permits

    def waiting(self) -> int:
        return self.sem.waiting


class BatchsemPyLimiter(BatchsemLimiter):
    """The pure-Python reference core, whichever core ``import batchsem`` selected."""

    __slots__ = ()
    semaphore_class = batchsem._semaphore.Semaphore


class BatchsemRwLimiter:
    """batchsem.RwLock: a request for all its permits is a write, anything else a read."""

    __slots__ = ("rw",)

    def __init__(self, max_readers: int, tracer: batchsem._semaphore.TraceFn | None = None) -> None:
        self.rw = batchsem.RwLock(max_readers, name="bench", tracer=tracer)

    async def acquire(self, n: int) -> object:
        if n == self.rw.max_readers:
            return await self.rw.write()
        if n != 1:
            raise ValueError(f"an RwLock request is 1 (read) or {self.rw.max_readers} (write)")
        return await self.rw.read()

    def release(self, n: int, handle: object) -> None:
        handle.release()  # type: ignore[attr-defined]

    def close(self) -> None:
        self.rw.semaphore.close()

    def available(self) -> int | None:
        return self.rw.semaphore.available_permits

    def waiting(self) -> int:
        return self.rw.semaphore.waiting


# -------------------------------------------------------------------- asyncio


class _EmulatedClose:
    """Close for limiters without one: cancel the tasks waiting in ``acquire``.

    Tracking the waiting tasks costs time on every acquire, so it is off until
    :meth:`prepare_close` (the close-storm workload calls it on a fresh
    limiter). A task cancelled by :meth:`close` raises ``AcquireError`` from
    ``acquire`` (its own cancellation is withdrawn with ``Task.uncancel``);
    later acquires raise it at once.
    """

    batch_lock: Any

    def __init__(self) -> None:
        self._tracking = False
        self._closed = False
        self._waiting: set[asyncio.Task[Any]] = set()
        self._closing: set[asyncio.Task[Any]] = set()

    async def _one(self) -> None:
        """Acquire one permit of the wrapped semaphore."""
        raise NotImplementedError

    def _give(self, n: int) -> None:
        """Release ``n`` permits of the wrapped semaphore."""
        raise NotImplementedError

    async def _take(self, n: int) -> None:
        """n single acquires; batches hold ``batch_lock`` (see AsyncioLimiter); undone if cut."""
        if n == 1:
            await self._one()
            return
        taken = 0
        try:
            async with self.batch_lock:
                while taken < n:
                    await self._one()
                    taken += 1
        except BaseException:
            if taken:
                self._give(taken)
            raise

    def prepare_close(self) -> None:
        self._tracking = True

    def close(self) -> None:
        self._closed = True
        self._closing = set(self._waiting)
        for task in self._closing:
            task.cancel()

    async def acquire(self, n: int) -> object:
        if not self._tracking:
            await self._take(n)
            return None
        if self._closed:
            raise AcquireError()
        task = asyncio.current_task()
        assert task is not None
        self._waiting.add(task)
        try:
            await self._take(n)
        except asyncio.CancelledError:
            if task in self._closing:
                self._closing.discard(task)
                task.uncancel()
                raise AcquireError() from None
            raise
        finally:
            self._waiting.discard(task)
        return None


class AsyncioLimiter(_EmulatedClose):
    """asyncio.Semaphore; a batch of n is n single acquires in a row (partial ones undone).

    Batches (n > 1) take an ``asyncio.Lock`` first, so only one task at a time
    holds a partial batch: without it two tasks each holding part of what they
    need wait for each other forever (hold-and-wait deadlock), which is what
    the naive loop does under ``batch-mix``. Single acquires skip the lock.
    """

    def __init__(self, permits: int) -> None:
        super().__init__()
        self.sem = asyncio.Semaphore(permits)
        self.batch_lock = asyncio.Lock()

    async def _one(self) -> None:
        await self.sem.acquire()

    def _give(self, n: int) -> None:
        sem = self.sem
        for _ in range(n):
            sem.release()

    def release(self, n: int, handle: object) -> None:
        self._give(n)

    def available(self) -> int | None:
        return self.sem._value


# ------------------------------------------------------------------ condition


class ConditionSemaphore:
    """The common hand-written weighted semaphore on ``asyncio.Condition``.

    ``while value < n: await cond.wait()`` and ``notify_all()`` on release:
    every release wakes everyone, the first to run that fits takes permits, so
    small requests keep overtaking a large one (it starves). Close is native.
    """

    def __init__(self, permits: int) -> None:
        self.value = permits
        self.closed = False
        self.cond = asyncio.Condition()

    async def acquire(self, n: int) -> object:
        async with self.cond:
            while self.value < n:
                if self.closed:
                    raise AcquireError()
                await self.cond.wait()
            if self.closed:
                raise AcquireError()
            self.value -= n
        return None

    async def release(self, n: int, handle: object) -> None:
        async with self.cond:
            self.value += n
            self.cond.notify_all()

    def close(self) -> None:
        self.closed = True
        # notify_all needs the lock; wake the waiters from a task that takes it.
        self._notifier = asyncio.get_running_loop().create_task(self._notify_closed())

    async def _notify_closed(self) -> None:
        async with self.cond:
            self.cond.notify_all()

    def available(self) -> int | None:
        return self.value


# ------------------------------------------------------------------- aiologic


class AiologicLimiter(_EmulatedClose):
    """aiologic.Semaphore (thread-safe); a batch of n is n single acquires in a row.

    Batches are serialised by an ``aiologic.Lock`` (thread-safe too) for the
    reason given in :class:`AsyncioLimiter`.
    """

    def __init__(self, permits: int) -> None:
        super().__init__()
        import aiologic

        self.sem = aiologic.Semaphore(permits)
        self.batch_lock = aiologic.Lock()

    async def _one(self) -> None:
        await self.sem.async_acquire()

    def _give(self, n: int) -> None:
        self.sem.release(n)

    def release(self, n: int, handle: object) -> None:
        self.sem.release(n)

    def available(self) -> int | None:
        value = self.sem.value
        return int(value) if value is not None else None


# ----------------------------------------------------------------------- null


class NullLimiter:
    """Never waits, never limits: the ceiling the harness itself allows."""

    __slots__ = ()

    async def acquire(self, n: int) -> object:
        return None

    def release(self, n: int, handle: object) -> None:
        return None

    def close(self) -> None:
        return None

    def available(self) -> int | None:
        return None


# ---------------------------------------------------------------------- redis


def _redis_limiter(permits: int) -> Limiter:
    from batchsem.bench.redis_impls import RedisLimiter

    return RedisLimiter(permits)


def _naive_redis_limiter(permits: int) -> Limiter:
    from batchsem.bench.redis_impls import NaiveRedisLimiter

    return NaiveRedisLimiter(permits)


def _redis_version() -> str | None:
    if importlib.util.find_spec("redis") is None:
        return None
    import redis

    return str(getattr(redis, "__version__", "?"))


# ------------------------------------------------------------------- registry


def _aiologic_version() -> str | None:
    if importlib.util.find_spec("aiologic") is None:
        return None
    import aiologic

    return str(getattr(aiologic, "__version__", "?"))


BUILTIN: dict[str, Impl] = {
    "batchsem": Impl(
        "batchsem",
        f"batchsem.Semaphore (this project), the active core: {batchsem.IMPLEMENTATION}",
        BatchsemLimiter,
        thread_safe=True,
        closes=True,
        version=f"{batchsem.__version__} ({batchsem.IMPLEMENTATION})",
        rw_factory=BatchsemRwLimiter,
    ),
    "batchsem-py": Impl(
        "batchsem-py",
        "batchsem's pure-Python reference core (batchsem._semaphore), whatever is active",
        BatchsemPyLimiter,
        thread_safe=True,
        closes=True,
        version=f"{batchsem.__version__} (python)",
    ),
    "asyncio": Impl(
        "asyncio",
        "asyncio.Semaphore; batch = n single acquires; close emulated by cancelling waiters",
        AsyncioLimiter,
        native_batch=False,
    ),
    "condition": Impl(
        "condition",
        "hand-written weighted semaphore on asyncio.Condition (notify_all); starves large requests",
        ConditionSemaphore,
        closes=True,
    ),
    "aiologic": Impl(
        "aiologic",
        "aiologic.Semaphore (optional extra 'peers'); batch = n single acquires",
        AiologicLimiter,
        thread_safe=True,
        native_batch=False,
    ),
    "redis": Impl(
        "redis",
        "batchsem.redis.RedisSemaphore (extra 'redis'): FIFO across processes, leases",
        _redis_limiter,
        closes=True,
    ),
    "redis-naive": Impl(
        "redis-naive",
        "Lua 'if free >= n then take' on Redis + client polling (1-16 ms); starves large ones",
        _naive_redis_limiter,
    ),
    "null": Impl(
        "null",
        "never waits: the harness's own ceiling, not a limiter",
        lambda permits: NullLimiter(),
        thread_safe=True,
        closes=True,
        limits=False,
    ),
}


def installed(name: str) -> bool:
    """Whether a built-in implementation can run here (aiologic is optional)."""
    if name == "aiologic":
        return _aiologic_version() is not None
    if name in ("redis", "redis-naive"):
        return _redis_version() is not None
    return name in BUILTIN


def resolve(spec: str) -> Impl:
    """Look up a built-in name or import ``module:attr``. Raises :class:`UnknownImpl`."""
    if spec in BUILTIN:
        if not installed(spec):
            extra = "redis" if spec.startswith("redis") else "peers"
            raise UnknownImpl(
                f"implementation {spec!r} is not installed (pip install 'batchsem[{extra}]')"
            )
        impl = BUILTIN[spec]
        if spec == "aiologic":
            impl = dataclasses.replace(impl, version=_aiologic_version())
        elif spec.startswith("redis"):
            impl = dataclasses.replace(impl, version=_redis_version())
        return impl
    if ":" not in spec:
        known = ", ".join(BUILTIN)
        raise UnknownImpl(f"unknown implementation {spec!r} (known: {known}, or module:attr)")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code is a usage error
        raise UnknownImpl(f"cannot import {module_name!r}: {exc}") from None
    try:
        factory = getattr(module, attr)
    except AttributeError:
        raise UnknownImpl(f"module {module_name!r} has no attribute {attr!r}") from None
    if not callable(factory):
        raise UnknownImpl(f"{spec} is not callable (expected factory(permits) -> limiter)")
    doc = str(getattr(factory, "__doc__", None) or "user implementation").strip()
    return Impl(
        spec,
        doc.splitlines()[0] if doc else "user implementation",
        factory,
        thread_safe=bool(getattr(factory, "thread_safe", False)),
        closes=bool(getattr(factory, "closes", False)),
        native_batch=bool(getattr(factory, "native_batch", True)),
    )


def check_limiter(limiter: object, spec: str) -> Limiter:
    """Check a factory's product against the protocol. Raises :class:`UnknownImpl`."""
    for method in ("acquire", "release", "available"):
        if not callable(getattr(limiter, method, None)):
            raise UnknownImpl(f"{spec}: the limiter has no {method}() method")
    return limiter  # type: ignore[return-value]
