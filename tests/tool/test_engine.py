"""batchsem.bench.engine (plan validation), results (files) and metrics (one repeat -> a case)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from batchsem.bench import engine, impls, loops, results
from batchsem.bench.impls import BatchsemLimiter, UnknownImpl
from batchsem.bench.loops import LoopUnavailable
from batchsem.bench.metrics import measure_repeat, summarize_repeats
from batchsem.bench.schema import Run, case_key
from batchsem.workloads import REGISTRY, ParamError
from batchsem.workloads.base import Context, Param, Recorder, parse_sizes


def plan(
    workloads: list[str] | None = None,
    impl_specs: list[str] | None = None,
    loop_names: list[str] | None = None,
    **kw: Any,
) -> list[engine.CaseSpec]:
    args: dict[str, Any] = {
        "permits": 8, "tasks": 4, "duration": 0.05, "repeats": 1, "seed": 0, "rate": None,
        "params": {},
    }
    args.update(kw)
    return engine.plan(
        workloads or ["contended"], impl_specs or ["batchsem"], loop_names or ["asyncio"], **args
    )


# ----------------------------------------------------------------- plan: errors


def test_error_classes_are_value_errors() -> None:
    for cls in (ParamError, UnknownImpl, LoopUnavailable, results.ResultError):
        assert issubclass(cls, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"workloads": ["nope"]}, ParamError, "unknown workload 'nope'"),
        ({"impl_specs": ["nope"]}, UnknownImpl, "unknown implementation 'nope'"),
        ({"impl_specs": ["no_such_module_xyz:f"]}, UnknownImpl, "cannot import"),
        ({"impl_specs": ["json:no_such_attr"]}, UnknownImpl, "no attribute"),
        ({"impl_specs": ["json:__doc__"]}, UnknownImpl, "not callable"),
        ({"loop_names": ["nope"]}, LoopUnavailable, "unknown loop 'nope'"),
        ({"params": {"nokey": "1"}}, ParamError, "--param nokey"),
        ({"params": {"hold": "abc"}}, ParamError, "expected float"),
        ({"params": {"hold": "-1"}}, ParamError, "must be >= 0"),
        ({"params": {"hold": "nan"}}, ParamError, "finite"),
        ({"params": {"hold": "inf"}}, ParamError, "finite"),
        ({"workloads": ["cancel-storm"], "params": {"waiters": "1.5"}}, ParamError,
         "expected int"),
        ({"workloads": ["cancel-storm"], "params": {"fraction": "1.5"}}, ParamError,
         "must be <= 1.0"),
        ({"workloads": ["cancel-storm"], "params": {"waiters": "0"}}, ParamError,
         "must be >= 1"),
        ({"permits": 0}, ParamError, "--permits must be >= 1"),
        ({"tasks": 0}, ParamError, "--tasks must be >= 1"),
        ({"duration": 0}, ParamError, "--duration"),
        ({"duration": float("nan")}, ParamError, "--duration"),
        ({"duration": float("inf")}, ParamError, "--duration"),
        ({"repeats": 0}, ParamError, "--repeat must be >= 1"),
        ({"rate": 0.0}, ParamError, "--rate"),
        ({"rate": float("nan")}, ParamError, "--rate"),
        ({"workloads": ["starvation"], "params": {"batch": "9"}}, ParamError,
         "batch=9 exceeds --permits 8"),
        ({"workloads": ["batch-mix"], "params": {"sizes": "9:1"}}, ParamError,
         "outside 1..8"),
        ({"workloads": ["batch-mix"], "params": {"sizes": "1:x"}}, ParamError,
         "bad size distribution"),
        ({"workloads": ["uncontended"], "params": {"batch": "9"}}, ParamError, "exceeds"),
        ({"workloads": ["close-storm"], "params": {"max_batch": "9"}}, ParamError, "exceeds"),
        ({"workloads": ["cancel-storm"], "params": {"max_batch": "9"}}, ParamError, "exceeds"),
        ({"workloads": ["threads"], "params": {"max_batch": "9"}}, ParamError, "exceeds"),
        ({"workloads": ["starvation"], "rate": 100.0}, ParamError, "open-loop"),
        ({"workloads": ["uncontended", "rw-mix"], "rate": 100.0}, ParamError, "open-loop"),
    ],
)
def test_plan_rejects(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        plan(**kwargs)
    text = str(info.value)
    assert message in text
    assert "\n" not in text  # one line for the user


def test_unknown_workload_message_lists_the_known_ones() -> None:
    with pytest.raises(ParamError) as info:
        plan(["nope"])
    for name in REGISTRY:
        assert name in str(info.value)


def test_param_applies_to_every_chosen_workload_that_has_it() -> None:
    specs = plan(["contended", "batch-mix", "starvation"], params={"hold": "0.001"})
    held = {s.workload.name: s.params["hold"] for s in specs}
    assert held == {"contended": 0.001, "batch-mix": 0.001, "starvation": 0.001}
    # a key only one workload has is fine when that workload is chosen
    specs = plan(["contended", "batch-mix"], params={"sizes": "1:1,P:1"})
    assert specs[1].params["sizes"] == "1:1,P:1"
    assert "sizes" not in specs[0].params


def test_plan_defaults_and_case_order() -> None:
    specs = plan(["starvation"], ["batchsem", "asyncio"], ["asyncio", "uvloop"]
                 if loops.unavailable_reason("uvloop") is None else ["asyncio"])
    keys = [s.key for s in specs]
    assert keys[0] == ("starvation", "batchsem", "asyncio")
    assert {k[1] for k in keys} == {"batchsem", "asyncio"}
    assert specs[0].params == {p.name: p.default for p in REGISTRY["starvation"].params}


@pytest.mark.parametrize("workload", list(REGISTRY))
def test_null_ceiling_only_when_asked_and_meaningful(workload: str) -> None:
    asked = [s.impl.name for s in plan([workload], ceiling=True)]
    not_asked = [s.impl.name for s in plan([workload], ceiling=False)]
    assert not_asked == ["batchsem"]
    if REGISTRY[workload].ceiling:
        assert asked == ["batchsem", "null"]
    else:
        assert asked == ["batchsem"]


def test_null_ceiling_not_added_twice() -> None:
    specs = plan(["contended"], ["null", "batchsem"], ceiling=True)
    assert [s.impl.name for s in specs] == ["null", "batchsem"]


def test_unsupported_reasons() -> None:
    [threads_asyncio] = plan(["threads"], ["asyncio"])
    assert "thread-safe" in (threads_asyncio.unsupported_reason() or "")
    [threads_batchsem] = plan(["threads"], ["batchsem"])
    assert threads_batchsem.unsupported_reason() is None
    [close_null] = plan(["close-storm"], ["null"])
    assert close_null.unsupported_reason() is not None
    case = engine.run_case(close_null)
    assert case.status == "unsupported"
    assert case.summary is None and case.invariants == {}


def test_case_params_identify_the_case() -> None:
    [spec] = plan(["contended"], rate=300.0, permits=3, tasks=5)
    assert engine.case_params(spec) == {"hold": 0.0, "permits": 3, "tasks": 5, "rate": 300.0}
    [spec] = plan(["contended"])
    assert "rate" not in engine.case_params(spec)


def test_resolve_builtins_and_user_factory_attributes() -> None:
    assert impls.resolve("batchsem").thread_safe
    assert not impls.resolve("asyncio").native_batch
    assert impls.resolve("null").limits is False
    user = impls.resolve("batchsem.bench.impls:BatchsemLimiter")
    assert user.name == "batchsem.bench.impls:BatchsemLimiter"
    assert user.thread_safe is False  # not declared on the factory
    assert "batchsem.Semaphore" in user.description


def test_check_limiter_rejects_objects_without_the_protocol() -> None:
    with pytest.raises(UnknownImpl, match="release"):
        impls.check_limiter(type("L", (), {"acquire": lambda s, n: None})(), "x")


# ------------------------------------------------------------ params and sizes


def test_param_parse() -> None:
    p = Param("k", int, 1, "help", minimum=1, maximum=10)
    assert p.parse("7") == 7
    for bad in ("0", "11", "x", "2.5"):
        with pytest.raises(ParamError):
            p.parse(bad)


def test_parse_sizes() -> None:
    assert parse_sizes("1:60,2:20,P/2:6,P:4", 8) == ([1, 2, 4, 8], [60.0, 20.0, 6.0, 4.0])
    assert parse_sizes("P-1, 3", 4) == ([3, 3], [1.0, 1.0])
    assert parse_sizes("P/16", 4) == ([1], [1.0])  # never rounds down to 0
    for bad in ("0:1", "9:1", "P/0:1", "a:1", "1:0", "1:-2", "P-8:1"):
        with pytest.raises(ParamError):
            parse_sizes(bad, 8)


# --------------------------------------------------------------- result files


def make_run() -> Run:
    run = results.new_run("bench", ["batchsem", "bench", "contended"], {"permits": 4})
    [spec] = plan(["contended"], permits=4)
    run.cases.append(engine.run_case(spec))
    return run


def test_save_load_round_trip(tmp_path: Path) -> None:
    run = make_run()
    path = tmp_path / "deep" / "dir" / "run.json"
    assert results.save(run, path) == path
    assert results.load(path) == run
    assert results.load(path).to_json() == json.loads(json.dumps(run.to_json()))
    assert not list(path.parent.glob(".*.tmp"))  # the temp file was linked, then removed
    loaded = results.load(path).to_json()
    assert loaded["schema"] == results.SCHEMA == "batchsem.run/1"
    assert loaded["kind"] == "bench"
    assert loaded["interrupted"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", loaded["created"])
    env = loaded["environment"]
    for key in ("python", "platform", "cpu_count", "batchsem", "uvloop"):
        assert key in env


def test_save_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    run = results.new_run("bench", [], {})
    assert results.save(run, path) == path
    run.interrupted = True
    # a generated name moves aside; an explicit one is refused
    assert results.save(run, path) == tmp_path / "run-2.json"
    with pytest.raises(results.ResultError, match="never overwritten"):
        results.save(run, path, unique=False)
    assert results.load(path).interrupted is False
    assert results.load(tmp_path / "run-2.json").interrupted is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-2.json", "run.json"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "top level is not an object"),
        ('"text"', "top level is not an object"),
        ('{"schema": "batchsem.run/2", "cases": []}', "schema batchsem.run/2 is not supported"),
        ('{"schema": "other", "cases": []}', "not a batchsem result file"),
        ('{"cases": []}', "not a batchsem result file"),
        ('{"schema": "batchsem.run/1", "cases": {}}', "malformed: run: missing 'created'"),
        ('{"benchmarks": [], "metadata": {}}', "python -m pyperf show"),
    ],
)
def test_load_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "run.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(results.ResultError) as info:
        results.load(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_load_directory_and_binary(tmp_path: Path) -> None:
    with pytest.raises(results.ResultError, match="is a directory"):
        results.load(tmp_path)
    path = tmp_path / "bin.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(results.ResultError):
        results.load(path)


def test_default_path_format() -> None:
    path = results.default_path("bench")
    assert path.parent == Path("results")
    assert re.fullmatch(r"\d{8}T\d{6}Z-bench\.json", path.name)
    odd = results.default_path("bench a/b:c", Path("/tmp/x"))
    assert odd.parent == Path("/tmp/x")
    assert re.fullmatch(r"\d{8}T\d{6}Z-bench-a-b-c\.json", odd.name)
    assert results.default_path("///").name.endswith("-run.json")


def test_check_writable(tmp_path: Path) -> None:
    results.check_writable(tmp_path / "new" / "run.json")
    assert (tmp_path / "new").is_dir()
    with pytest.raises(results.ResultError, match="is a directory"):
        results.check_writable(tmp_path / "new")
    (tmp_path / "file").write_text("x")
    with pytest.raises(results.ResultError, match="cannot create"):
        results.check_writable(tmp_path / "file" / "run.json")


def test_case_key_matches_on_param_values() -> None:
    a = case_key("w", "i", "l", {"b": 1, "a": 2})
    assert a == case_key("w", "i", "l", {"a": 2, "b": 1})
    assert a != case_key("w", "i", "l", {"a": 3, "b": 1})
    # 0 and 0.0 are one value (a file written by another version or by hand)
    assert case_key("w", "i", "l", {"hold": 0}) == case_key("w", "i", "l", {"hold": 0.0})
    assert case_key("w", "i", "l", {"x": True}) != case_key("w", "i", "l", {"x": 1})


# ------------------------------------------------------------------- metrics


def make_ctx(workload: str = "contended", permits: int = 4, tasks: int = 3) -> Context:
    ctx = Context(
        impl_name="batchsem",
        factory=BatchsemLimiter,
        permits=permits,
        tasks=tasks,
        params={},
        rng=random.Random(0),
        duration=1.0,
        recorder=Recorder(),
    )
    ctx.deadline_ns = 10_000
    return ctx


def grant(
    rec: Recorder, task: int, cls: str, n: int, t_req: int, t_grant: int, rs: int, gs: int
) -> None:
    rec.grants.append((task, cls, n, t_req, t_grant, rs, gs))


def measure(ctx: Context, workload: str = "contended", impl: str = "batchsem") -> Any:
    return measure_repeat(
        REGISTRY[workload], impls.BUILTIN[impl], ctx.permits, ctx, 0.5, None
    )


def test_measure_counts_work_fairness_and_starvation() -> None:
    ctx = make_ctx()
    rec = ctx.recorder
    for t in range(3):
        ctx.register("all", t)
    # task 0: two grants, task 1: one grant of 2 permits, task 2 asked but was never served
    grant(rec, 0, "all", 1, 100, 1_100, 0, 1)
    grant(rec, 1, "all", 2, 200, 2_200, 2, 3)
    grant(rec, 0, "all", 1, 300, 3_300, 4, 5)
    rec.pending[6] = (2, "all", 1, 400)
    m = measure(ctx)
    assert m.ops == 3
    assert m.permits == 4
    cls = m.classes["all"]
    assert cls.completed == 3
    assert cls.work == {0: 2, 1: 2}
    assert cls.tasks == {0, 1, 2}
    assert m.pending_at_end == 1
    assert m.invariants["all_tasks_finished"] is False  # one request still waiting
    out = m.as_record()
    assert out.starved_tasks == {"all": 1}
    assert out.jain["all"] == pytest.approx((2 + 2 + 0) ** 2 / (3 * (4 + 4 + 0)))
    assert out.throughput_ops == pytest.approx(3 / 0.5)
    assert out.throughput_permits == pytest.approx(4 / 0.5)
    # the request still waiting is overtaken by nobody (nothing granted after it asked)
    assert m.overtakes == 0
    # waits: 1000, 2000, 3000 ns; the longest within the run window
    assert cls.longest_wait_ns == 9_600  # the pending request, counted up to the deadline


def test_measure_overtakes_from_sequence_numbers() -> None:
    ctx = make_ctx()
    rec = ctx.recorder
    # task 0 asks first (seq 0) but is granted last (seq 5); 1 and 2 overtake it
    grant(rec, 0, "all", 1, 0, 50, 0, 5)
    grant(rec, 1, "all", 1, 0, 10, 1, 3)
    grant(rec, 2, "all", 1, 0, 20, 2, 4)
    m = measure(ctx)
    assert m.overtakes == 2
    assert m.max_overtakes == 2
    assert m.classes["all"].overtakes == 2
    summary, _, invariants = summarize_repeats(REGISTRY["contended"], [m], expect_fifo=True)
    assert invariants["fifo_order"] is False
    assert summary.fairness.overtakes == 2
    _, _, invariants = summarize_repeats(REGISTRY["contended"], [m], expect_fifo=False)
    assert "fifo_order" not in invariants


def test_measure_invariants() -> None:
    ctx = make_ctx()
    rec = ctx.recorder
    grant(rec, 0, "all", 1, 0, 10, 0, 1)
    rec.max_in_use = 5  # more than the 4 permits
    rec.granted_after_close = 1
    ctx.unfinished = 2
    m = measure(ctx)
    assert m.invariants["capacity_respected"] is False
    assert m.invariants["no_acquire_after_close"] is False
    assert m.invariants["all_tasks_finished"] is False
    assert m.invariants["completed_without_error"] is False
    assert m.error is not None and "2 task(s) made no progress" in m.error
    # the null ceiling is not a limiter: capacity and conservation are not judged
    m = measure(ctx, impl="null")
    assert "capacity_respected" not in m.invariants
    assert "permits_conserved" not in m.invariants


def test_measure_permits_conserved_reads_the_limiters() -> None:
    ctx = make_ctx()
    lim = ctx.new_limiter()
    assert measure(ctx).invariants["permits_conserved"] is True
    lim.sem.forget_permits(1)  # type: ignore[attr-defined]
    assert measure(ctx).invariants["permits_conserved"] is False
    ctx = make_ctx()
    ctx.recorder.in_use = 1  # the harness's own count says a permit is still out
    assert measure(ctx).invariants["permits_conserved"] is False


def test_measure_classes_and_failures() -> None:
    ctx = make_ctx()
    rec = ctx.recorder
    ctx.register("small", 0)
    ctx.register("large", 1)
    grant(rec, 0, "small", 1, 0, 1_000, 0, 1)
    grant(rec, 1, "large", 4, 0, 5_000, 2, 3)
    m = measure(ctx, workload="starvation")
    assert set(m.classes) == {"small", "large"}
    assert m.classes["large"].completed == 1
    assert m.classes["large"].work == {1: 4}
    # close-storm: requests failed by close() count as operations; latency_extra adds samples
    ctx = make_ctx()
    rec = ctx.recorder
    grant(rec, 0, "holder", 4, 0, 10, 0, 1)  # not a reported class
    rec.failed.append((1, "waiter", 2, 0, 100, 2, "closed"))
    rec.failed.append((2, "waiter", 1, 0, 100, 3, "cancelled"))
    rec.note_latency("waiter", 700)
    m = measure(ctx, workload="close-storm")
    assert m.ops == 1 and m.permits == 2  # only the closed failure counts
    assert m.classes["waiter"].failed == 2
    assert m.classes["waiter"].latency.count == 1


def test_summarize_repeats_over_several_repeats() -> None:
    reps = []
    for k in range(3):
        ctx = make_ctx()
        ctx.register("all", 0)
        for i in range(10 * (k + 1)):
            grant(ctx.recorder, 0, "all", 1, 0, 1_000 * (i + 1), 2 * i, 2 * i + 1)
        ctx.recorder.note("dropped", float(k))
        reps.append(measure(ctx))
    summary, histogram, invariants = summarize_repeats(
        REGISTRY["contended"], reps, expect_fifo=True
    )
    tput = summary.throughput_ops
    assert tput.mean == pytest.approx((20 + 40 + 60) / 3)
    assert tput.n == 3 and tput.stdev > 0 and tput.ci95 > 0
    assert summary.latency_us is not None
    assert summary.latency_us.count == 60
    assert summary.latency_us.max == pytest.approx(30.0, rel=1e-3)
    assert summary.classes["all"].completed == 60
    assert summary.extra["dropped"].mean == pytest.approx(1.0)
    assert summary.fairness.jain == 1.0
    assert invariants["fifo_order"] is True
    assert all(invariants.values())
    assert histogram.unit == "ns"
    assert histogram.total and set(histogram.classes) == {"all"}
    json.dumps(dataclasses.asdict(summary), allow_nan=False)  # storable


def test_invariants_are_anded_over_repeats() -> None:
    good, bad = make_ctx(), make_ctx()
    bad.recorder.max_in_use = 99
    reps = [measure(good), measure(bad)]
    _, _, invariants = summarize_repeats(REGISTRY["contended"], reps, expect_fifo=False)
    assert invariants["capacity_respected"] is False
    assert invariants["permits_conserved"] is True


# ----------------------------------------------- recorder: grant vs. resume order


async def _leftover_scenario(limiter: Any) -> Recorder:
    """A holder of 2 permits releases them while one request for 1 waits, then at once
    asks again: the limiter serves the waiter first, but the holder's new request is
    granted (from the left-over permit) before the waiter's task gets to run."""
    rec = Recorder()
    handle = await rec.acquire(limiter, 2, 0, "all")
    waiter = asyncio.ensure_future(rec.acquire(limiter, 1, 1, "all"))
    await asyncio.sleep(0)
    assert len(rec.pending) == 1
    await rec.release(limiter, 2, handle)
    again = await rec.acquire(limiter, 1, 0, "all")
    await waiter
    await rec.release(limiter, 1, again)
    await rec.release(limiter, 1, waiter.result())
    return rec


class _NoWaiting:
    """The batchsem adapter without its optional ``waiting()``."""

    def __init__(self, permits: int) -> None:
        self.inner = BatchsemLimiter(permits)

    async def acquire(self, n: int) -> object:
        return await self.inner.acquire(n)

    def release(self, n: int, handle: object) -> None:
        self.inner.release(n, handle)

    def available(self) -> int | None:
        return self.inner.available()


def _overtakes(rec: Recorder) -> int:
    ctx = make_ctx(permits=2)
    ctx.recorder = rec
    ctx.deadline_ns = 2**62
    return int(measure(ctx).overtakes)


def test_recorder_counts_a_grant_when_the_limiter_served_it() -> None:
    rec = asyncio.run(_leftover_scenario(BatchsemLimiter(2)))
    assert len(rec.grants) == 3 and not rec.pending and not rec.settled
    assert _overtakes(rec) == 0
    # Without waiting() the recorder only sees the order tasks resumed in.
    rec = asyncio.run(_leftover_scenario(_NoWaiting(2)))
    assert _overtakes(rec) == 1


def test_recorder_settled_entry_dropped_when_the_request_fails() -> None:
    async def main() -> Recorder:
        lim = BatchsemLimiter(1)
        rec = Recorder()
        holder = await rec.acquire(lim, 1, 0, "all")
        waiter = asyncio.ensure_future(rec.acquire(lim, 1, 1, "all"))
        await asyncio.sleep(0)
        await rec.release(lim, 1, holder)  # the waiter is served,
        waiter.cancel()  # but is cancelled before it resumes: it will give the permit back
        # This request settles the waiter (nobody is queued), then waits for that permit.
        other = await rec.acquire(lim, 1, 2, "all")
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await rec.release(lim, 1, other)
        assert lim.available() == 1
        return rec

    rec = asyncio.run(main())
    assert not rec.settled
    assert [f[6] for f in rec.failed] == ["cancelled"]
    assert len(rec.grants) == 2


def test_every_case_warms_up_before_its_timed_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    specs = plan(["contended", "uncontended"], repeats=2)
    specs = [dataclasses.replace(s, warmup=0.01) for s in specs]
    calls: list[tuple[str, int, float]] = []

    def fake(spec: engine.CaseSpec, index: int) -> Any:
        calls.append((spec.workload.name, index, spec.duration))
        return object()

    monkeypatch.setattr(engine, "run_repeat", fake)
    done: dict[int, list[Any]] = {}
    engine.run_interleaved(specs, done)
    warm = [(w, d) for w, i, d in calls if i == -1]
    assert warm == [("contended", 0.01), ("uncontended", 0.01)]
    assert [i for _, i, _ in calls] == [-1, -1, 0, 0, 1, 1]  # warm-ups first, untimed
    assert all(len(v) == 2 for v in done.values())  # warm-ups are not kept
    stop = iter([False, True])
    with pytest.raises(KeyboardInterrupt):
        engine.run_interleaved(specs, {}, stop=lambda: next(stop, True))


# ----------------------------------------------------------------- windows: the speed probe


def test_windows_take_the_probe_time_out_and_record_the_speed() -> None:
    """A window's rate leaves out the run-queue delay and the probe run at its start;
    probe_us is the mean of its two edges' probes, in µs."""
    from batchsem.bench.metrics import windows

    ms = 1_000_000
    # edges at 0, 20 and 40 ms; 5 ms of run-queue delay in window 0; probes of 1 ms,
    # 3 ms and 5 ms at the edges; 9 grants in window 0 and 19 in window 1
    samples = [(0, 0, 0, 1 * ms), (20 * ms, 5 * ms, 9, 3 * ms), (40 * ms, 5 * ms, 28, 5 * ms)]
    grants = [(0, "all", 1, t - 100, t, 0, 0)
              for t in [k * ms + 1 for k in range(9)] + [20 * ms + k * ms + 1 for k in range(19)]]
    w = windows(grants, samples)
    assert w is not None
    assert w.throughput_ops == pytest.approx([9 / 0.014, 19 / 0.017])
    assert w.probe_us == pytest.approx([2000.0, 4000.0])
    assert w.stolen_s == pytest.approx([0.005, 0.0])
    # without the probe (0 at the edges) nothing is taken out for it and nothing recorded
    bare = windows(grants, [(t, d, g, 0) for t, d, g, _ in samples])
    assert bare is not None
    assert bare.throughput_ops == pytest.approx([9 / 0.015, 19 / 0.020])
    assert bare.probe_us == []


def test_single_loop_repeats_carry_the_probe_and_threaded_ones_do_not() -> None:
    (single,) = plan(["contended"], duration=0.1)
    rep = engine.run_repeat(single, 0).as_record()
    assert rep.windows is not None
    assert len(rep.windows.probe_us) == len(rep.windows.throughput_ops) == 10
    assert all(p > 0 for p in rep.windows.probe_us)
    (threaded,) = plan(["threads"], duration=0.1)
    rep = engine.run_repeat(threaded, 0).as_record()
    assert rep.windows is not None and rep.windows.probe_us == []


def test_no_repeat_loses_its_last_window() -> None:
    """uvloop's timers fire up to a millisecond late, so the sampler's last timer often
    fired after the body had ended and been cancelled: about 15% of uvloop repeats had
    9 windows. The end of the run is now the last edge."""
    pytest.importorskip("uvloop")
    (spec,) = plan(["contended"], loop_names=["uvloop"], tasks=32, duration=0.05)
    counts = [len(w.throughput_ops) for i in range(30)
              if (w := engine.run_repeat(spec, i).as_record().windows) is not None]
    assert counts == [10] * 30


def test_the_watchdog_follows_a_deadline_the_body_moves() -> None:
    """The processes workload moves the deadline once its worker processes are ready;
    start-up on a loaded machine outlasted the first deadline plus the stall time, and
    the watchdog cancelled a healthy run as hung (seen as a flaky Redis test)."""
    import time

    ctx = make_ctx()
    ctx.duration = 0.1

    async def body() -> None:
        ctx.deadline_ns = time.perf_counter_ns() + int(1.6e9)  # e.g. processes starting
        await asyncio.sleep(1.3)  # no request makes progress meanwhile

    async def main() -> None:
        ctx.start_clock()
        assert 2 * ctx.stall_s < 1.3  # the old watchdog gave up before the body was done
        await engine.watch(ctx, body())

    asyncio.run(main())


def test_the_processes_workload_takes_no_windows() -> None:
    """Its grants arrive from the worker processes after the run; windows sampled in the
    parent would hold nothing, so there are none and compare tests per-repeat values."""
    assert REGISTRY["processes"].windowed is False
    (spec,) = plan(["processes"], impl_specs=["batchsem"], tasks=2, duration=0.1,
                   params={"processes": 2})
    rep = engine.run_repeat(spec, 0).as_record()
    assert rep.error is None and rep.ops > 0
    assert rep.windows is None
