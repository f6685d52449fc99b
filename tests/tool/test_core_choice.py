"""The tool names and measures both cores: ``--impl batchsem`` (active) and ``batchsem-py``."""

from __future__ import annotations

import asyncio

from _cli import invoke

import batchsem
from batchsem import _semaphore
from batchsem.bench import impls, results


def test_batchsem_is_the_active_core_and_batchsem_py_the_reference() -> None:
    active = impls.resolve("batchsem")
    reference = impls.resolve("batchsem-py")
    assert batchsem.IMPLEMENTATION in active.description
    assert type(active.factory(2).sem) is batchsem.Semaphore  # type: ignore[attr-defined]
    assert type(reference.factory(2).sem) is _semaphore.Semaphore  # type: ignore[attr-defined]
    assert reference.thread_safe and reference.closes


def test_batchsem_py_limiter_works() -> None:
    limiter = impls.resolve("batchsem-py").factory(2)

    async def main() -> None:
        handle = await limiter.acquire(2)
        assert limiter.available() == 0
        limiter.release(2, handle)
        assert limiter.available() == 2

    asyncio.run(main())


def test_list_and_result_environment_name_the_active_core() -> None:
    result = invoke("list")
    assert result.exit_code == 0
    assert f"active batchsem core: {batchsem.IMPLEMENTATION}" in result.output
    assert "batchsem-py" in result.output
    assert results.environment().batchsem_implementation == batchsem.IMPLEMENTATION
