"""A fair batch semaphore shared by processes and hosts through one Redis server.

``RedisSemaphore`` keeps :class:`batchsem.Semaphore`'s contract across
processes: requests for many permits are served strictly FIFO (by a
server-side request sequence), the head of the queue is handed permits as
they are released (partial hand-off, Tokio's algorithm) so a large request is
never starved, cancellation gives back everything a request had been handed,
and ``close()`` fails every waiter in every process. Needs the ``redis``
extra (``pip install 'batchsem[redis]'``, redis-py's asyncio client).

Implementation details
----------------------
All state lives in Redis and every change is one Lua script
(:mod:`batchsem._redis_lua`, run with EVALSHA), so the server serialises
them; the client never reads, computes and writes back. The scripts read the
server's clock, so leases do not depend on client clocks.

Each ``RedisSemaphore`` object is one *owner*: it holds a lease that a
background task renews every ``lease / 3`` seconds. Its held permits and its
queued requests hang off that lease. Every script first reaps leases whose
deadline has passed: their held permits and partial grants go to the head of
the queue, their queued requests vanish. A process that is killed therefore
gives back everything within one lease period (as soon as any process touches
the semaphore, and every live process renews at least every ``lease / 3``).

Waiting is not polling: a queued request is woken by the server. The script
that serves it pushes a message onto its owner's inbox list, which one
connection per owner waits on with BLPOP; the renewal also reports the status
of every pending request, which recovers a wake-up whose connection broke.

Failure rules, chosen so that the semaphore never over-admits:

* an owner whose lease the server expired is told at its next renewal or
  release (:class:`LeaseLost`), and every one of its waiters fails with it;
* an owner that cannot reach Redis for a whole lease period gives up the
  same way (its lease has expired on the server by then);
* a script call whose outcome is unknown (the connection broke after the
  call was sent) breaks the owner: it cannot know whether it holds the
  permits, so it stops renewing and the server reclaims everything at the
  lease deadline. A new ``RedisSemaphore`` must be created.
* a semaphore created less than one lease after the Redis server started
  (for example, re-created after a restart that lost the state) withholds its
  permits until a lease has passed since the start: holders of the lost state
  may still be running until their leases run out.

What holds with one Redis server and what does not with replication or
failover is in ``docs/redis.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
import uuid
from collections.abc import Awaitable, Coroutine, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ._errors import AcquireError, Closed, NoPermits
from ._redis_lua import SCRIPTS
from ._semaphore import check_count

__all__ = [
    "LeaseLost",
    "PermitsMismatch",
    "RedisPermit",
    "RedisSemaphore",
    "RedisStatistics",
]

#: Confirmed grants are forgotten on the server with the next renewal, or sooner
#: once this many are waiting (bounds the renewal's size).
_CONFIRM_BATCH: Final = 256
#: Connections per RedisSemaphore object for script calls (the BLPOP reader has its own).
_MAX_CONNECTIONS: Final = 32


class LeaseLost(AcquireError):
    """This process's lease is gone: the server may have given its permits to others.

    Raised by every pending and later ``acquire`` of the :class:`RedisSemaphore`
    object, and by ``release``: the lease expired on the server (the process
    was paused or cut off for longer than the lease), Redis lost the state (a
    restart without persistence), Redis was unreachable for a whole lease, or
    a call's outcome became unknown. The object cannot be used again; create a
    new one. A subclass of :class:`batchsem.AcquireError`.
    """


class PermitsMismatch(ValueError):
    """The semaphore exists in Redis with a different number of permits.

    Pass ``resize=True`` to change the capacity on purpose.
    """


@dataclass(frozen=True)
class RedisStatistics:
    """A snapshot of a :class:`RedisSemaphore`, read atomically by one script.

    The first five fields have the meaning and names of
    ``batchsem.Semaphore.statistics()``: ``available_permits`` (the free
    counter), ``tasks_waiting`` (queued requests, in all processes),
    ``permits_wanted`` (what they still need), ``closed``, ``capacity`` (the
    configured total). Then: ``held`` (permits held by all processes),
    ``holders`` (owners holding any), ``held_here`` (held by this object),
    ``assigned`` (the head's partial grant), ``debt`` (permits a shrinking
    resize still has to take from releases), ``withheld`` (held back after a
    (re)creation, see :class:`RedisSemaphore`). Always ``capacity + debt ==
    available_permits + withheld + assigned + held``.
    """

    available_permits: int
    tasks_waiting: int
    permits_wanted: int
    closed: bool
    capacity: int
    held: int
    holders: int
    held_here: int
    assigned: int
    debt: int
    withheld: int


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _Call(Coroutine[Any, Any, "RedisPermit"]):
    """What ``acquire(n)`` returns: a real coroutine (``create_task``/``wait_for`` take it)
    that is also an async context manager releasing the permits at exit."""

    __slots__ = ("_coro", "_permit")

    def __init__(self, coro: Coroutine[Any, Any, RedisPermit]) -> None:
        self._coro = coro
        self._permit: RedisPermit | None = None

    def send(self, value: Any) -> Any:
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        # Passed on in the form it came in: a Task cancelling the request calls
        # throw(exc), and the 3-argument form warns from CPython 3.12 on.
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, RedisPermit]:
        return self._coro.__await__()

    async def __aenter__(self) -> RedisPermit:
        self._permit = await self._coro
        return self._permit

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._permit is not None:
            await self._permit.release()


class RedisSemaphore:
    """A counting semaphore in Redis: FIFO across processes, batch requests, leases.

    ``RedisSemaphore(client_or_url, name, permits, *, lease=30.0)`` names the
    semaphore ``name`` on the Redis server of ``client_or_url`` (a
    ``redis.asyncio.Redis`` or a ``redis://`` URL). The first operation
    creates it with ``permits`` permits, or joins the existing one; joining
    with a different ``permits`` raises :class:`PermitsMismatch` unless
    ``resize=True`` (then the capacity becomes ``permits``: added permits go
    to the queue, removed ones come from the free counter and then from
    releases). All processes sharing a semaphore should use the same
    ``lease``.

    Guarantees (with one Redis server; see ``docs/redis.md``):

    * **FIFO, no barging**, across every process: requests are served in the
      order the server received them; while anyone is queued nothing is free.
    * **Nothing is lost.** A cancelled, timed-out or failed request gives back
      what it had been handed; a dead process's permits and queue entries are
      reclaimed within one lease.
    * **Never over-admits**: at most ``permits`` are held at once by live
      leases; a process whose lease is gone is told (:class:`LeaseLost`).

    Differences from :class:`batchsem.Semaphore`: every operation is a
    coroutine (it talks to the server); ``release(n)`` gives back permits this
    object holds (``ValueError`` if it holds fewer) and ``add_permits`` grows
    the semaphore; ``disconnect()`` ends this object's participation.
    """

    def __init__(
        self,
        client_or_url: aioredis.Redis | str,
        name: str,
        permits: int,
        *,
        lease: float = 30.0,
        resize: bool = False,
        prefix: str = "batchsem",
    ) -> None:
        self._permits = check_count(permits)
        if not (isinstance(lease, int | float) and 0 < lease < math.inf):
            raise ValueError(f"lease must be a positive finite number of seconds, got {lease!r}")
        if not name:
            raise ValueError("name must be a non-empty string")
        self._name = name
        self._lease = float(lease)
        self._resize = resize
        self._key = f"{prefix}:{{{name}}}"
        # Our own pool to the same server: decoded replies, and no automatic retry
        # (a script retried after an unknown outcome could run twice).
        # A blocking pool: a burst of calls waits for one of _MAX_CONNECTIONS instead
        # of failing (a failed call would break the object).
        if isinstance(client_or_url, str):
            pool = aioredis.BlockingConnectionPool.from_url(
                client_or_url, decode_responses=True, retry=Retry(NoBackoff(), 0),
                max_connections=_MAX_CONNECTIONS, timeout=None,
            )
        else:
            base = client_or_url.connection_pool
            kwargs = dict(base.connection_kwargs)
            kwargs.update(decode_responses=True, retry=Retry(NoBackoff(), 0))
            pool = aioredis.BlockingConnectionPool(
                connection_class=base.connection_class, max_connections=_MAX_CONNECTIONS,
                timeout=None, **kwargs,
            )
        self._redis = aioredis.Redis(connection_pool=pool)
        self._scripts = {k: self._redis.register_script(v) for k, v in SCRIPTS.items()}
        self._owner = uuid.uuid4().hex
        self._wids = itertools.count()
        self._open_task: asyncio.Task[None] | None = None
        # wid -> the future its acquire awaits; resolved with "g <gseq>" or "c"
        # by the inbox reader or the renewal, or failed with LeaseLost.
        self._waiters: dict[str, asyncio.Future[str]] = {}
        # The wids whose acquire the server queued (the renewal checks on those only:
        # a wid whose acquire script is still in flight is in neither place yet).
        self._queued: set[str] = set()
        self._confirm: list[str] = []
        self._broken: LeaseLost | None = None
        self._renewer: asyncio.Future[None] | None = None
        self._reader: asyncio.Future[None] | None = None
        self._pool: aioredis.ConnectionPool | None = None
        #: BLPOP's timeout: how long the inbox reader may take to notice a break.
        self._inbox_wait = max(0.05, min(1.0, self._lease / 3))
        self._flush: asyncio.Future[None] | None = None
        #: time.monotonic() until which the lease is known to be valid on the server.
        self._valid_until = 0.0
        self._held = 0

    # ------------------------------------------------------------------ state

    @property
    def name(self) -> str:
        return self._name

    @property
    def lease(self) -> float:
        return self._lease

    @property
    def held(self) -> int:
        """Permits this object holds (acquired and not released), as it counts them."""
        return self._held

    @property
    def lease_valid_until(self) -> float:
        """``time.monotonic()`` until which this object's lease is known valid on the server.

        A holder that must not outlive its permits checks this before each
        step of long work: past it, the server may have given them to others.
        """
        return self._valid_until

    def __repr__(self) -> str:
        state = "broken" if self._broken else "open" if self._open_task else "new"
        return f"<batchsem.redis.RedisSemaphore {self._name!r} [{state}, held:{self._held}]>"

    # -------------------------------------------------------------- plumbing

    async def _call(self, script: str, *args: str | int) -> tuple[list[str], bool]:
        """Run one script: (reply, whether the caller was cancelled meanwhile).

        The call is shielded: cancelling the caller does not cut it in half
        (which would leave its outcome unknown). The caller does its
        bookkeeping with the reply and then re-raises the cancellation. Error
        replies become :class:`LeaseLost`; so does a call whose outcome is
        unknown (the connection broke), which also breaks this object.
        """
        self._check_broken()
        task = asyncio.ensure_future(self._scripts[script](keys=[self._key], args=list(args)))
        reply, cancelled = await _uncancellable(task)
        if isinstance(reply, RedisError):
            self._break(f"Redis call failed, outcome unknown ({type(reply).__name__}: {reply})")
            raise self._lost() from reply
        out = [_text(v) for v in reply]
        if out[0] == "LOST":
            self._break("the server expired this process's lease")
            raise self._lost()
        if out[0] == "NOSEM":
            self._break(
                f"semaphore {self._name!r} vanished from Redis (restart without persistence, "
                "FLUSHALL or eviction)"
            )
            raise self._lost()
        return out, cancelled

    async def _run(self, script: str, *args: str | int) -> list[str]:
        """:meth:`_call` for calls with no bookkeeping: a cancellation is re-raised at once."""
        out, cancelled = await self._call(script, *args)
        if cancelled:
            raise asyncio.CancelledError()
        return out

    def _lost(self) -> LeaseLost:
        return LeaseLost(str(self._broken))

    def _check_broken(self) -> None:
        if self._broken is not None:
            raise self._lost()

    def _break(self, why: str) -> None:
        """Give up the lease: every waiter fails; the server reclaims at the lease deadline."""
        if self._broken is not None:
            return
        # _valid_until keeps its last value: until then the permits were ours.
        self._broken = LeaseLost(f"semaphore {self._name!r}: {why}")
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(LeaseLost(str(self._broken)))
                fut.exception()  # its acquire may not be awaiting it yet: no warning
        current = asyncio.current_task()
        for t in (self._renewer, self._flush):
            if t is not None and t is not current:
                t.cancel()

    async def open(self) -> None:
        """Create or join the semaphore and start renewing the lease. Idempotent.

        Called by the first operation; call it yourself to see errors early.
        Raises :class:`PermitsMismatch` if the semaphore exists with other
        permits (and ``resize`` is false), ``redis.exceptions.RedisError`` if
        the server cannot be reached.
        """
        task = self._open_task
        if task is None:
            task = self._open_task = asyncio.ensure_future(self._open())
        try:
            await asyncio.shield(task)
        except BaseException:
            # A failed opening may be retried (the server was unreachable, say).
            if self._open_task is task and task.done() and (
                task.cancelled() or task.exception() is not None
            ):
                self._open_task = None
            raise

    async def _open(self) -> None:
        info = await self._redis.info("server")
        uptime = int(info.get("uptime_in_seconds", 0))
        sent = time.monotonic()
        reply = await self._scripts["open"](
            keys=[self._key],
            args=[self._owner, self._permits, int(self._lease * 1000), uptime,
                  1 if self._resize else 0],
        )
        out = [_text(v) for v in reply]
        if out[0] == "MISMATCH":
            raise PermitsMismatch(
                f"semaphore {self._name!r} exists with {out[1]} permits, not {self._permits} "
                "(pass resize=True to change it)"
            )
        self._valid_until = sent + self._lease
        self._pool = self._blocking_pool()
        self._renewer = asyncio.ensure_future(self._renew_loop(float(out[2]) / 1000))
        self._reader = asyncio.ensure_future(self._inbox_loop(self._pool))

    async def _ensure_open(self) -> None:
        if self._open_task is None or not self._open_task.done():
            await self.open()
        self._check_broken()

    def _blocking_pool(self) -> aioredis.ConnectionPool:
        """A pool for BLPOP whose socket timeout leaves room for BLPOP's own."""
        kwargs = dict(self._redis.connection_pool.connection_kwargs)
        kwargs["socket_timeout"] = self._inbox_wait + 5.0
        return aioredis.ConnectionPool(
            connection_class=self._redis.connection_pool.connection_class, **kwargs
        )

    async def _inbox_loop(self, pool: aioredis.ConnectionPool) -> None:
        """Wake waiters from the server's messages (BLPOP on this owner's inbox).

        Never cancelled (redis-py can swallow a cancellation inside a blocking
        read): it ends within one BLPOP timeout of the object breaking, or at
        once when :meth:`disconnect` closes its connection.
        """
        inbox = f"{self._key}:i:{self._owner}"
        blocking = aioredis.Redis(connection_pool=pool)
        try:
            while self._broken is None:
                try:
                    item = await blocking.blpop([inbox], timeout=self._inbox_wait)
                except RedisError:
                    _reraise_cancel()
                    # A popped message may be lost with the connection: the
                    # renewal reports every pending request's status.
                    await asyncio.sleep(min(0.1, self._inbox_wait))
                    continue
                if item is None:
                    continue
                msg = _text(item[1])
                kind, _, rest = msg.partition(" ")
                wid, _, gseq = rest.partition(" ")
                fut = self._waiters.get(wid)
                if fut is not None and not fut.done():
                    fut.set_result("g " + gseq if kind == "g" else "c")
        finally:
            with contextlib.suppress(Exception):
                await pool.aclose()

    async def _renew_loop(self, admit_in: float) -> None:
        every = self._lease / 3
        if 0 < admit_in < every:
            # Withheld permits are released by the first script after the
            # quarantine: make sure one runs then.
            await asyncio.sleep(admit_in + 0.005)
            await self._renew()
        while self._broken is None:
            await asyncio.sleep(every)
            await self._renew()

    async def _renew(self) -> None:
        """Extend the lease; on failure retry until the lease would have run out."""
        while True:
            confirm, self._confirm = self._confirm, []
            pending = [w for w in self._queued if not self._waiters[w].done()]
            sent = time.monotonic()
            try:
                reply = await self._scripts["renew"](
                    keys=[self._key],
                    args=[self._owner, int(self._lease * 1000), len(confirm), *confirm, *pending],
                )
            except RedisError as exc:
                _reraise_cancel()
                # The confirmations are harmless to resend.
                self._confirm[:0] = confirm
                if time.monotonic() >= self._valid_until:
                    self._break(f"Redis unreachable for a whole lease ({type(exc).__name__})")
                    return
                await asyncio.sleep(min(0.1, self._lease / 10))
                continue
            out = [_text(v) for v in reply]
            if out[0] == "LOST":
                self._break("the server expired this process's lease")
                return
            if out[0] == "NOSEM":
                self._break(f"semaphore {self._name!r} vanished from Redis (restart or flush)")
                return
            self._valid_until = sent + self._lease
            for wid, status in zip(pending, out[1:], strict=True):
                fut = self._waiters.get(wid)
                if fut is None or fut.done():
                    continue
                if status.startswith("g"):
                    fut.set_result(status)
                elif status == "x":
                    fut.set_result("c")
            return

    # ------------------------------------------------------------ acquiring

    def acquire(self, n: int = 1) -> _Call:
        """Wait for ``n`` permits, FIFO across all processes; ``await`` it or ``async with``.

        ``permit = await sem.acquire(3)`` or ``async with sem.acquire(3) as permit:``
        (released at exit). Free permits are taken at once and the request
        queues for the rest; the head of the queue is handed permits as they
        come back. A request larger than the capacity waits at the head (and
        everyone behind it waits) until permits are added, it is cancelled, or
        the semaphore is closed. Raises :class:`batchsem.AcquireError` if the
        semaphore is or becomes closed, :class:`LeaseLost` if this object's
        lease is lost. Cancellation (``wait_for``, ``asyncio.timeout``) at any
        point gives back everything the request had been handed.
        """
        n = check_count(n)
        return _Call(self._acquire(n))

    async def _acquire(self, n: int) -> RedisPermit:
        await self._ensure_open()
        wid = f"{self._owner}/{next(self._wids)}"
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters[wid] = fut
        queued = False
        try:
            out, cancelled = await self._call("acquire", self._owner, wid, n)
            if out[0] == "CLOSED":
                raise AcquireError()
            if out[0] == "OK":
                self._held += n
                if cancelled:  # granted as the caller was cancelled: give it back
                    await self._give(n, forget=False)
                    raise asyncio.CancelledError()
                return RedisPermit(self, n, (int(out[1]), int(out[2])))
            queued = True
            self._queued.add(wid)
            if cancelled:
                raise asyncio.CancelledError()
            result = await fut
            queued = False
            if result == "c":
                raise AcquireError()
            self._held += n
            self._confirm.append(wid)
            if len(self._confirm) >= _CONFIRM_BATCH and (
                self._flush is None or self._flush.done()
            ):
                self._flush = asyncio.ensure_future(self._renew())
            return RedisPermit(self, n, (int(out[1]), int(result.split()[1])))
        except BaseException:
            if queued and self._broken is None:
                # Withdraw; a grant that raced the cancellation is given back.
                with contextlib.suppress(LeaseLost):
                    await self._call("cancel", self._owner, wid)
            raise
        finally:
            del self._waiters[wid]
            self._queued.discard(wid)

    def try_acquire(self, n: int = 1) -> Awaitable[RedisPermit]:
        """Take ``n`` permits now or raise :class:`batchsem.Closed` (checked first) or
        :class:`batchsem.NoPermits`; never ahead of a queued request."""
        n = check_count(n)
        return self._try_acquire(n)

    async def _try_acquire(self, n: int) -> RedisPermit:
        await self._ensure_open()
        out, cancelled = await self._call("try_acquire", self._owner, n)
        if out[0] == "CLOSED":
            raise Closed()
        if out[0] == "NOPERMITS":
            raise NoPermits()
        self._held += n
        if cancelled:
            await self._give(n, forget=False)
            raise asyncio.CancelledError()
        return RedisPermit(self, n)

    async def __aenter__(self) -> None:
        """``async with sem:`` holds one permit for the block."""
        await self.acquire(1)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release(1)

    # ------------------------------------------------------------ releasing

    async def release(self, n: int = 1) -> None:
        """Give back ``n`` of the permits this object holds, to the head of the queue first.

        Raises ``ValueError`` (nothing changes) if this object holds fewer
        than ``n``, and :class:`LeaseLost` if its lease is gone (the permits
        were reclaimed by the server; they are not yours any more).
        """
        await self._give(check_count(n), forget=False)

    async def _give(self, n: int, *, forget: bool) -> None:
        if n > self._held:
            self._check_broken()
            raise ValueError(f"release({n}): this object holds only {self._held} permit(s)")
        await self._ensure_open()
        out, cancelled = await self._call("release", self._owner, n, 1 if forget else 0)
        if out[0] == "OVER":  # the server counts fewer than we do: a bug, never guess
            self._break(f"server holds {out[1]} permits for us, we counted {self._held}")
            raise self._lost()
        self._held -= n
        if cancelled:
            raise asyncio.CancelledError()

    async def add_permits(self, n: int) -> None:
        """Add ``n`` permits: to the queue oldest first (partially to the head), then free.

        The capacity grows by ``n``. Works after :meth:`close`.
        """
        n = check_count(n)
        await self._ensure_open()
        await self._run("add", self._owner, n)

    async def forget_permits(self, n: int) -> int:
        """Remove up to ``n`` free permits (never from waiters); return how many.

        The capacity shrinks by that many.
        """
        n = check_count(n)
        await self._ensure_open()
        out = await self._run("forget", self._owner, n)
        return int(out[1])

    async def close(self) -> None:
        """Close the semaphore for every process. Idempotent.

        Every queued request, in every process, fails with
        :class:`batchsem.AcquireError`, and what it had been handed goes back
        to the free counter. Later ``acquire`` calls raise ``AcquireError``,
        ``try_acquire`` raises :class:`batchsem.Closed`. Held permits stay
        valid and may be released.
        """
        await self._ensure_open()
        await self._run("close", self._owner)

    async def locked(self) -> bool:
        """True when ``acquire(1)`` would wait right now (nothing free, or a queue)."""
        s = await self.statistics()
        return s.closed is False and (s.available_permits == 0 or s.tasks_waiting > 0)

    async def statistics(self) -> RedisStatistics:
        """A consistent snapshot of the whole semaphore (one script)."""
        await self._ensure_open()
        out = await self._run("stats", self._owner)
        v = [int(x) for x in out[1:]]
        return RedisStatistics(
            capacity=v[0], available_permits=v[1], tasks_waiting=v[2], permits_wanted=v[3],
            closed=v[4] == 1,
            held=v[5], holders=v[6], debt=v[7], withheld=v[8], held_here=v[9], assigned=v[10],
        )

    async def disconnect(self) -> None:
        """Leave: withdraw this object's requests, give back what it holds, stop renewing,
        and close this object's connections to the server.

        Pending ``acquire`` calls fail with :class:`LeaseLost`. The semaphore
        itself stays (use :meth:`close` to fail everyone). Idempotent.
        """
        if self._open_task is not None and self._broken is None:
            with contextlib.suppress(RedisError, LeaseLost, asyncio.CancelledError):
                await self._open_task
            if self._open_task.done() and not self._open_task.cancelled() and (
                self._open_task.exception() is None
            ):
                with contextlib.suppress(RedisError):
                    await _uncancellable(
                        asyncio.ensure_future(
                            self._scripts["leave"](keys=[self._key], args=[self._owner])
                        )
                    )
            self._held = 0
        self._break("disconnected")
        for t in (self._renewer, self._flush):
            if t is not None:
                with contextlib.suppress(BaseException):
                    await t
        if self._reader is not None:
            if self._pool is not None:
                with contextlib.suppress(Exception):
                    await self._pool.disconnect(inuse_connections=True)
            await asyncio.wait([self._reader], timeout=self._inbox_wait + 1.0)
            if not self._reader.done():
                self._reader.cancel()
        # The pool is this object's own (made in __init__), and a client given a pool
        # does not close it by itself.
        await self._redis.aclose(close_connection_pool=True)


class RedisPermit:
    """Some permits held by one :class:`RedisSemaphore` object (a handle, never GC-released).

    ``await permit.release()`` gives them back (idempotent); ``await
    permit.forget()`` drops them for good (the capacity shrinks);
    ``async with permit:`` releases at exit. ``split``/``merge`` move
    permits between handles of the same semaphore object.
    """

    __slots__ = ("_n", "_sem", "seqs")

    def __init__(self, sem: RedisSemaphore, n: int, seqs: tuple[int, int] = (0, 0)) -> None:
        self._sem = sem
        self._n = n
        #: The server's (request, grant) sequence numbers of the acquire that made this
        #: handle: one counter per semaphore, shared by every process, so comparing
        #: them across processes shows overtaking. (0, 0) for try_acquire and split.
        self.seqs = seqs

    @property
    def num_permits(self) -> int:
        return self._n

    @property
    def semaphore(self) -> RedisSemaphore:
        return self._sem

    async def release(self) -> None:
        """Give the permits back; a second call does nothing. :class:`LeaseLost` if lost."""
        n = self._n
        if n:
            self._n = 0
            try:
                await self._sem.release(n)
            except ValueError:
                self._n = n
                raise

    async def forget(self) -> None:
        """Drop the permits without giving them back: the capacity shrinks by them."""
        n = self._n
        if n:
            self._n = 0
            await self._sem._give(n, forget=True)

    def split(self, n: int) -> RedisPermit | None:
        """Move ``n`` permits into a new handle; None (nothing moved) if fewer are held."""
        n = check_count(n)
        if n > self._n:
            return None
        self._n -= n
        return RedisPermit(self._sem, n)

    def merge(self, other: RedisPermit) -> None:
        """Move ``other``'s permits into this handle; ``ValueError`` for another object's."""
        if other is self:
            return
        if other._sem is not self._sem:
            raise ValueError("cannot merge permits of different semaphore objects")
        self._n += other._n
        other._n = 0

    async def __aenter__(self) -> RedisPermit:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()

    def __repr__(self) -> str:
        return f"<batchsem.redis.RedisPermit permits:{self._n} of {self._sem!r}>"


def _reraise_cancel() -> None:
    """redis-py may turn a cancellation into a connection error: undo that."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()


async def _uncancellable(task: asyncio.Future[Any]) -> tuple[Any, bool]:
    """Await ``task`` to its end even if the caller is cancelled meanwhile.

    Returns (its result, or the ``RedisError`` it raised; whether the caller
    was cancelled). Other exceptions propagate.
    """
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():  # else the call itself was cancelled: re-raised below
                cancelled = True
        except RedisError:
            pass
    if task.cancelled():
        raise asyncio.CancelledError()
    exc = task.exception()
    if isinstance(exc, RedisError):
        return exc, cancelled
    if exc is not None:
        raise exc
    return task.result(), cancelled
