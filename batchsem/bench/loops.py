"""Event loops the benchmarks run on: the stdlib's and uvloop (where it can be installed)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Callable

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

LOOPS = ("asyncio", "uvloop")


class LoopUnavailable(ValueError):
    """The requested loop cannot run here (one line for the user)."""


def uvloop_version() -> str | None:
    """uvloop's version, or None if it cannot be imported here."""
    if importlib.util.find_spec("uvloop") is None:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return str(getattr(uvloop, "__version__", "?"))


def available() -> list[str]:
    """The loops that can run on this machine, in suite order."""
    return [name for name in LOOPS if unavailable_reason(name) is None]


def unavailable_reason(name: str) -> str | None:
    """Why ``name`` cannot run here, or None if it can."""
    if name == "asyncio":
        return None
    if name == "uvloop":
        if sys.platform == "win32":
            return "uvloop does not support Windows"
        if uvloop_version() is None:
            return "uvloop is not installed (pip install uvloop)"
        return None
    return f"unknown loop {name!r} (known: {', '.join(LOOPS)})"


def factory(name: str) -> LoopFactory:
    """A new-loop factory for ``name``; :class:`LoopUnavailable` if it cannot run here."""
    reason = unavailable_reason(name)
    if reason is not None:
        raise LoopUnavailable(reason)
    if name == "uvloop":
        import uvloop

        new_loop: LoopFactory = uvloop.new_event_loop
        return new_loop
    return asyncio.new_event_loop
