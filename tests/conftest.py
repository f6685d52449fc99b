"""Fixtures for the batchsem core tests: run every async test on asyncio and on uvloop.

Usage::

    def test_something(run):
        async def main():
            ...
        run(main)

``run`` runs the coroutine function on a fresh loop (``asyncio.Runner(loop_factory=...)``)
of the parametrised kind and fails the test if the loop reported an unhandled error.
No pytest-asyncio needed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from _support import HAVE_UVLOOP, new_loop, run_async

LOOP_PARAMS = [
    pytest.param("asyncio", id="asyncio"),
    pytest.param(
        "uvloop",
        id="uvloop",
        marks=pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed"),
    ),
]


@pytest.fixture(params=LOOP_PARAMS)
def loop_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def loop_factory(loop_name: str) -> Callable[[], Any]:
    """A zero-argument factory for a new loop of the parametrised kind."""
    return lambda: new_loop(loop_name)


@pytest.fixture
def run(loop_name: str) -> Callable[[Callable[[], Any]], Any]:
    """``run(coro_fn)``: run ``coro_fn()`` on a fresh loop of the parametrised kind."""
    return lambda coro_fn: run_async(coro_fn, loop_name)


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads far more often than the default 5 ms, to interleave more finely."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(old)
