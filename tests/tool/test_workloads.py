"""Every workload end to end through ``engine.plan`` + ``engine.run_case`` at tiny sizes.

Checks behaviour, never timings: statuses, invariants, overtakes, the result-file
shape, and that broken limiters are caught by the invariant they break.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from batchsem.bench import engine, loops
from batchsem.bench.impls import UnknownImpl
from batchsem.workloads import REGISTRY

LOOP_PARAMS = [
    pytest.param("asyncio", id="asyncio"),
    pytest.param(
        "uvloop",
        id="uvloop",
        marks=pytest.mark.skipif(
            loops.unavailable_reason("uvloop") is not None, reason="uvloop is not available"
        ),
    ),
]

# Keep the storms small: the defaults queue thousands of waiters per cycle.
SMALL_PARAMS: dict[str, dict[str, str]] = {
    "close-storm": {"waiters": "50"},
    "cancel-storm": {"waiters": "50"},
}

#: Repeat length for cases whose checks need grants in the timed period (a throughput,
#: a histogram, an invariant only a grant can break): on a loaded machine a preemption
#: can outlast a 0.05 s repeat and leave it with none. Cases that only need to start or
#: fail keep the short default.
GRANTED_S = 0.25

LATENCY_KEYS = {"p50", "p90", "p99", "p99_9", "max", "mean"}
FAIRNESS_KEYS = {"jain", "overtakes", "max_overtakes", "starved_tasks", "max_wait_ratio"}

_module_ids = itertools.count()


def run(
    workload: str,
    impl: str = "batchsem",
    loop: str = "asyncio",
    *,
    permits: int = 4,
    tasks: int = 4,
    duration: float = 0.05,
    repeats: int = 1,
    rate: float | None = None,
    params: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Plan exactly one case and run it."""
    specs = engine.plan(
        [workload],
        [impl],
        [loop],
        permits=permits,
        tasks=tasks,
        duration=duration,
        repeats=repeats,
        seed=0,
        rate=rate,
        params=SMALL_PARAMS.get(workload, {}) if params is None else params,
    )
    assert len(specs) == 1
    return dataclasses.asdict(engine.run_case(specs[0]))


def check_shape(case: dict[str, Any], workload: str) -> None:
    """The case dict has what the result file documents (schema batchsem.run/1)."""
    for key in ("workload", "impl", "loop", "params", "repeats", "summary", "histogram",
                "invariants", "status", "unit"):
        assert key in case, key
    summary = case["summary"]
    for key in ("throughput_ops", "throughput_permits"):
        assert {"mean", "stdev", "ci95"} <= summary[key].keys()
    assert summary["throughput_ops"]["mean"] > 0
    assert summary["latency_us"].keys() >= LATENCY_KEYS
    assert summary["fairness"].keys() >= FAIRNESS_KEYS
    classes = summary["classes"]
    assert set(classes) == set(REGISTRY[workload].classes)
    for cls in classes.values():
        assert {"latency_us", "fairness", "completed"} <= cls.keys()
        assert cls["fairness"].keys() >= FAIRNESS_KEYS
    assert len(case["repeats"]) == 1
    rep = case["repeats"][0]
    assert rep["ops"] > 0
    assert rep["error"] is None
    assert case["histogram"]["total"]
    assert case["params"]["permits"] == 4
    assert case["params"]["tasks"] == 4


@pytest.mark.parametrize("loop", LOOP_PARAMS)
@pytest.mark.parametrize("workload", list(REGISTRY))
def test_batchsem_runs_every_workload(workload: str, loop: str) -> None:
    # tasks == permits: releases often leave permits over while the tasks they
    # served have not resumed yet; that must not count as batchsem overtaking.
    case = run(workload, "batchsem", loop, duration=GRANTED_S)
    assert case["status"] == "ok", (case["invariants"], case.get("errors"))
    assert case["invariants"]
    assert all(case["invariants"].values()), case["invariants"]
    assert case["errors"] == []
    check_shape(case, workload)
    fair = case["summary"]["fairness"]
    if workload == "threads":
        # several loops in several threads: FIFO is per loop, not promised across them
        assert "fifo_order" not in case["invariants"]
    else:
        assert case["invariants"]["fifo_order"] is True
        assert fair["overtakes"] == 0
        assert fair["max_overtakes"] == 0
        for cls in case["summary"]["classes"].values():
            assert cls["fairness"]["overtakes"] == 0


@pytest.mark.parametrize("loop", LOOP_PARAMS)
@pytest.mark.parametrize("workload", list(REGISTRY))
def test_asyncio_impl_on_every_workload(workload: str, loop: str) -> None:
    case = run(workload, "asyncio", loop, duration=GRANTED_S)
    if workload == "threads":
        assert case["status"] == "unsupported"
        assert "thread-safe" in case["reason"]
        assert case["summary"] is None
        assert case["repeats"] == []
        return
    assert case["status"] == "ok", (case["invariants"], case.get("errors"))
    assert all(case["invariants"].values())
    assert "fifo_order" not in case["invariants"]  # only batchsem promises FIFO
    check_shape(case, workload)
    notes = case.get("notes", [])
    if workload == "close-storm":
        assert any("emulated" in n for n in notes)
    if workload in ("batch-mix", "rw-mix", "starvation"):
        assert any("n single acquires" in n for n in notes)
    if workload == "contended":
        assert not any("n single acquires" in n for n in notes)


@pytest.mark.parametrize("loop", LOOP_PARAMS)
def test_condition_semaphore_is_overtaken_batchsem_is_not(loop: str) -> None:
    sizes = {"permits": 4, "tasks": 16, "duration": 0.3}
    cond = run("starvation", "condition", loop, **sizes)
    fifo = run("starvation", "batchsem", loop, **sizes)
    assert cond["status"] == "ok" and fifo["status"] == "ok"
    assert cond["summary"]["fairness"]["overtakes"] > 0
    assert cond["summary"]["classes"]["large"]["fairness"]["max_overtakes"] > 0
    assert fifo["summary"]["fairness"]["overtakes"] == 0
    assert fifo["summary"]["classes"]["large"]["completed"] > 0


@pytest.mark.parametrize("workload", ["contended", "batch-mix"])
def test_open_loop_mode(workload: str) -> None:
    case = run(workload, "batchsem", rate=2000.0, duration=GRANTED_S)
    assert case["status"] == "ok", (case["invariants"], case.get("errors"))
    assert case["params"]["rate"] == 2000.0
    extra = case["summary"]["extra"]
    assert extra["arrivals"]["mean"] > 0
    assert extra["dropped"]["mean"] == 0
    assert case["repeats"][0]["ops"] > 0
    assert case["summary"]["fairness"]["overtakes"] == 0


def test_rate_is_ignored_by_closed_loop_workloads_in_the_same_plan() -> None:
    specs = engine.plan(
        ["contended", "starvation"], ["batchsem"], ["asyncio"], permits=4, tasks=4,
        duration=0.05, repeats=1, seed=0, rate=500.0, params={},
    )
    rates = {s.workload.name: s.rate for s in specs}
    assert rates == {"contended": 500.0, "starvation": None}


def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> str:
    """Write ``source`` as a fresh importable module; return its name."""
    name = f"user_limiter_{next(_module_ids)}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


GOOD_LIMITER = """
    import asyncio

    class Limiter:
        def __init__(self, permits):
            self.permits = permits
            self.sem = asyncio.Semaphore(permits)

        async def acquire(self, n):
            for _ in range(n):
                await self.sem.acquire()

        def release(self, n, handle):
            for _ in range(n):
                self.sem.release()

        def available(self):
            return self.sem._value

    def make(permits):
        '''A plain asyncio.Semaphore wrapper.'''
        return Limiter(permits)
"""


def test_user_impl_module_attr_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = write_module(tmp_path, monkeypatch, GOOD_LIMITER)
    case = run("contended", f"{name}:make", tasks=8, duration=GRANTED_S)
    assert case["impl"] == f"{name}:make"
    assert case["status"] == "ok", (case["invariants"], case.get("errors"))
    assert case["invariants"]["capacity_respected"]
    assert case["invariants"]["permits_conserved"]
    assert case["summary"]["throughput_ops"]["mean"] > 0


def test_user_impl_not_thread_safe_is_unsupported_on_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write_module(tmp_path, monkeypatch, GOOD_LIMITER)
    case = run("threads", f"{name}:make")
    assert case["status"] == "unsupported"


def test_leaking_limiter_breaks_permits_conserved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write_module(
        tmp_path,
        monkeypatch,
        """
        class Leaky:
            '''Takes permits but never gives them back.'''

            def __init__(self, permits):
                self.free = permits

            async def acquire(self, n):
                self.free -= n

            def release(self, n, handle):
                pass  # the bug: the permits are never returned

            def available(self):
                return self.free
        """,
    )
    case = run("uncontended", f"{name}:Leaky", tasks=1, duration=GRANTED_S)
    assert case["status"] == "failed"
    inv = case["invariants"]
    assert inv["permits_conserved"] is False
    assert inv["capacity_respected"] is True
    assert inv["completed_without_error"] is True


def test_limiter_letting_too_many_in_breaks_capacity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write_module(
        tmp_path,
        monkeypatch,
        """
        class Unlimited:
            '''Admits everyone at once.'''

            def __init__(self, permits):
                pass

            async def acquire(self, n):
                return None

            def release(self, n, handle):
                return None

            def available(self):
                return None
        """,
    )
    case = run("contended", f"{name}:Unlimited", tasks=8, duration=GRANTED_S)
    assert case["status"] == "failed"
    assert case["invariants"]["capacity_respected"] is False
    assert case["invariants"]["permits_conserved"] is True  # unknown counts are not judged


def test_deadlocking_limiter_is_cancelled_by_the_stall_detector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write_module(
        tmp_path,
        monkeypatch,
        """
        import asyncio

        class Stuck:
            '''Single permits work; a batch waits forever.'''

            def __init__(self, permits):
                self.free = permits

            async def acquire(self, n):
                if n > 1:
                    await asyncio.get_running_loop().create_future()
                self.free -= n

            def release(self, n, handle):
                self.free += n

            def available(self):
                return self.free
        """,
    )
    # every request is a batch of 2: all workers block at once
    case = run("batch-mix", f"{name}:Stuck", params={"sizes": "2:1"})
    assert case["status"] == "failed"
    inv = case["invariants"]
    assert inv["all_tasks_finished"] is False
    assert inv["completed_without_error"] is False
    assert any("no progress" in e for e in case["errors"])
    assert case["repeats"][0]["pending_at_end"] == 0  # cancelled, not left waiting


def test_factory_that_is_not_a_limiter_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write_module(
        tmp_path,
        monkeypatch,
        """
        def make(permits):
            return object()

        def boom(permits):
            raise RuntimeError("no")
        """,
    )
    with pytest.raises(UnknownImpl, match="has no acquire"):
        run("contended", f"{name}:make")
    with pytest.raises(UnknownImpl, match="raised RuntimeError: no"):
        run("contended", f"{name}:boom")
    with pytest.raises(UnknownImpl, match=r"os:getcwd\(4\) raised TypeError"):
        run("contended", "os:getcwd")


def test_rw_mix_batchsem_uses_its_rwlock() -> None:
    case = run("rw-mix", "batchsem", params={"read_ratio": "0.5"}, duration=GRANTED_S)
    assert case["status"] == "ok"
    classes = case["summary"]["classes"]
    assert classes["reader"]["completed"] > 0
    assert classes["writer"]["completed"] > 0


def test_close_storm_fails_every_waiter() -> None:
    case = run("close-storm", "condition", duration=GRANTED_S)
    assert case["status"] == "ok", case["invariants"]
    waiter = case["summary"]["classes"]["waiter"]
    assert waiter["failed"] > 0
    assert waiter["failed"] % 50 == 0  # whole cycles of 50 waiters, each failed once
    assert case["unit"] == "failed/s"
    assert case["invariants"]["no_acquire_after_close"] is True


def test_null_limiter_cannot_run_close_storm() -> None:
    case = run("close-storm", "null")
    assert case["status"] == "unsupported"
