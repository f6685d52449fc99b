"""The Redis-backed implementations: ``--impl redis`` and ``--impl redis-naive``.

* ``redis``: :class:`batchsem.redis.RedisSemaphore` (FIFO, partial hand-off, leases).
* ``redis-naive``: what people write today: one Lua script ``if free >= n then
  free = free - n`` and a client that polls it (sleeping 1 ms, doubling up to
  16 ms, between tries). Nobody queues, so small requests keep overtaking a
  large one.

Both talk to the server given by :func:`configure` (``--redis-url``), or to a
private ``redis-server`` started on a free loopback port the first time a
limiter is built and stopped when the tool exits. Every limiter is a new
semaphore (a fresh name) on that server. A limiter is *shareable*: ``spec()``
returns what another process needs to join the same semaphore
(:func:`attach`), which the ``processes`` workload uses.
"""

from __future__ import annotations

import asyncio
import atexit
import uuid
from typing import Any

from .redis_server import RedisServer

__all__ = ["NaiveRedisLimiter", "RedisLimiter", "attach", "configure", "server_url"]

#: Lease used by the tool's limiters (seconds): short enough that a crashed run's
#: permits come back quickly, long enough for a loaded 2-core machine.
TOOL_LEASE = 2.0

_url: str | None = None
_server: RedisServer | None = None


def configure(url: str | None) -> None:
    """Use the Redis at ``url`` (None: a private server, started when first needed)."""
    global _url
    _url = url


def server_url() -> str:
    """The URL limiters use; starts the private server on first call if none was given.

    Raises :class:`batchsem.bench.redis_server.RedisServerError` (one line) if
    redis-server is missing or does not start.
    """
    global _server
    if _url is not None:
        return _url
    if _server is None:
        _server = RedisServer().start()
        atexit.register(_server.stop)
        # A semaphore created within one lease of the server's start withholds its
        # permits for the rest of that lease (it cannot tell a fresh server from a
        # restarted one): wait it out here rather than inside a measurement.
        _server.wait_uptime(TOOL_LEASE + 1.0)
    return _server.url


class RedisLimiter:
    """batchsem.redis.RedisSemaphore through the harness's Limiter protocol."""

    def __init__(self, permits: int, name: str | None = None, url: str | None = None) -> None:
        from batchsem.redis import RedisSemaphore

        self.url = url or server_url()
        self.name = name or f"bench-{uuid.uuid4().hex[:12]}"
        self.permits = permits
        self.sem = RedisSemaphore(self.url, self.name, permits, lease=TOOL_LEASE)
        #: The server's (request, grant) sequence numbers of the last grant.
        self.last_seqs = (0, 0)

    def spec(self) -> dict[str, Any]:
        return {"impl": "redis", "url": self.url, "name": self.name, "permits": self.permits}

    async def prepare(self) -> None:
        """Create the semaphore now (so other processes join it, not re-create it)."""
        await self.sem.open()

    async def acquire(self, n: int) -> object:
        permit = await self.sem.acquire(n)
        self.last_seqs = permit.seqs
        return permit

    async def release(self, n: int, handle: object) -> None:
        await handle.release()  # type: ignore[attr-defined]

    def available(self) -> int | None:
        return None

    def close(self) -> None:
        """The harness's close is synchronous: start the server-side close now."""
        self._closing = asyncio.ensure_future(self.sem.close())

    async def aclose(self) -> None:
        closing = getattr(self, "_closing", None)
        if closing is not None:
            await closing
        await self.sem.disconnect()


# The naive script: take n if n are free, else nothing. KEYS[1] free counter,
# KEYS[2] sequence; ARGV n, the request's first sequence number (0: new request).
_NAIVE_TAKE = """
local free = tonumber(redis.call('GET', KEYS[1]) or '0')
local rs = tonumber(ARGV[2])
if rs == 0 then rs = redis.call('INCR', KEYS[2]) end
local n = tonumber(ARGV[1])
if free >= n then
  redis.call('DECRBY', KEYS[1], n)
  return {1, rs, redis.call('INCR', KEYS[2])}
end
return {0, rs, 0}
"""


class NaiveRedisLimiter:
    """The common hand-written Redis weighted semaphore: check-and-take in Lua, client polls."""

    POLL_MIN = 0.001
    POLL_MAX = 0.016

    def __init__(
        self, permits: int, name: str | None = None, url: str | None = None, *, create: bool = True
    ) -> None:
        import redis.asyncio as aioredis

        self.url = url or server_url()
        self.name = name or f"naive-{uuid.uuid4().hex[:12]}"
        self.permits = permits
        self.keys = [f"naive:{{{self.name}}}:free", f"naive:{{{self.name}}}:seq"]
        self.redis = aioredis.Redis.from_url(self.url)
        self.take = self.redis.register_script(_NAIVE_TAKE)
        self._create = create
        self._ready = False
        self.last_seqs = (0, 0)

    def spec(self) -> dict[str, Any]:
        return {"impl": "redis-naive", "url": self.url, "name": self.name,
                "permits": self.permits}

    async def prepare(self) -> None:
        if self._create:
            await self.redis.set(self.keys[0], self.permits, nx=True)
        self._ready = True

    async def acquire(self, n: int) -> object:
        if not self._ready:
            await self.prepare()
        rs = 0
        delay = self.POLL_MIN
        while True:
            ok, rs, gs = await self.take(keys=self.keys, args=[n, rs])
            if ok:
                self.last_seqs = (int(rs), int(gs))
                return None
            await asyncio.sleep(delay)
            delay = min(self.POLL_MAX, delay * 2)

    async def release(self, n: int, handle: object) -> None:
        await self.redis.incrby(self.keys[0], n)

    def available(self) -> int | None:
        return None

    async def aclose(self) -> None:
        await self.redis.aclose()


def attach(spec: dict[str, Any]) -> RedisLimiter | NaiveRedisLimiter:
    """Join the semaphore another process's limiter described with ``spec()``."""
    if spec["impl"] == "redis":
        return RedisLimiter(spec["permits"], spec["name"], spec["url"])
    return NaiveRedisLimiter(spec["permits"], spec["name"], spec["url"], create=False)
