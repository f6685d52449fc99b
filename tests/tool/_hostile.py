"""Limiters that misbehave, for ``--impl _hostile:NAME`` (the tests directory is on sys.path)."""

from __future__ import annotations

import asyncio
import os


class _Base:
    def __init__(self, permits: int) -> None:
        self.sem = asyncio.Semaphore(permits)

    def release(self, n: int, handle: object) -> None:
        for _ in range(n):
            self.sem.release()

    def available(self) -> int:
        return self.sem._value


class Never(_Base):
    """acquire never returns."""

    async def acquire(self, n: int) -> None:
        await asyncio.get_running_loop().create_future()


class Lossy(_Base):
    """A cancelled acquire leaks a permit (taken later, never given back)."""

    def __init__(self, permits: int) -> None:
        super().__init__(permits)
        self.leaks: list[asyncio.Future[bool]] = []

    async def acquire(self, n: int) -> None:
        try:
            for _ in range(n):
                await self.sem.acquire()
        except asyncio.CancelledError:
            self.leaks.append(asyncio.ensure_future(self.sem.acquire()))
            raise


class Raising(_Base):
    """acquire raises."""

    async def acquire(self, n: int) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("hostile limiter refuses")


class Plain(_Base):
    """A well-behaved limiter."""

    async def acquire(self, n: int) -> None:
        for _ in range(n):
            await self.sem.acquire()


def _count_build() -> None:
    """Append a line to $HOSTILE_COUNT, if set: a test sees how far the run has come."""
    if "HOSTILE_COUNT" in os.environ:
        with open(os.environ["HOSTILE_COUNT"], "a", encoding="utf-8") as fh:
            fh.write("built\n")


def counted(permits: int) -> Plain:
    """a plain limiter that appends a line to $HOSTILE_COUNT per limiter built"""
    _count_build()
    return Plain(permits)


def never(permits: int) -> Never:
    """acquire never returns"""
    _count_build()
    return Never(permits)


def lossy(permits: int) -> Lossy:
    """loses a permit per cancelled acquire"""
    return Lossy(permits)


def raising(permits: int) -> Raising:
    """acquire raises"""
    return Raising(permits)


for _f in (never, lossy, raising, counted):
    _f.native_batch = False  # type: ignore[attr-defined]
