"""Turn what a :class:`~batchsem.workloads.Recorder` saw into metrics and invariant checks.

Per repeat: throughput, latency histograms (per class), order fairness
(overtakes from the harness's own sequence numbers), per-task work (Jain),
starved tasks, and the invariants. Per case: throughput summarised over the
repeats (mean, stdev, 95% CI), latency from the merged full distribution
(never an average of per-repeat percentiles), fairness aggregated.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from batchsem.bench.fairness import overtakes, starved
from batchsem.bench.impls import Impl
from batchsem.bench.latency import LatencyRecorder
from batchsem.bench.schema import (
    MAX_WORK_TASKS,
    ClassSummary,
    Fairness,
    Histogram,
    Latency,
    Repeat,
    Stat,
    Summary,
    Windows,
)
from batchsem.bench.stats import jain_index, summarize
from batchsem.workloads import Workload
from batchsem.workloads.base import Context

__all__ = ["WINDOWS", "RepeatMetrics", "latency", "measure_repeat", "stat", "summarize_repeats"]

#: Time windows per repeat: each gives one throughput and one p99 sample to the gate.
WINDOWS = 10


def stat(values: list[float]) -> Stat:
    """:func:`batchsem.bench.stats.summarize` as a record."""
    s = summarize(values)
    return Stat(mean=s["mean"], stdev=s["stdev"], ci95=s["ci95"], min=s["min"], max=s["max"],
                n=int(s["n"]))


def latency(rec: LatencyRecorder) -> Latency | None:
    """The recorder's percentiles as a record, None if it saw nothing."""
    if not rec.count:
        return None
    s = rec.summary_us()
    return Latency(p50=s["p50"], p90=s["p90"], p99=s["p99"], p99_9=s["p99_9"], max=s["max"],
                   mean=s["mean"], count=int(s["count"]))


@dataclass
class ClassMetrics:
    """One request class within one repeat."""

    completed: int = 0
    failed: int = 0
    latency: LatencyRecorder = field(default_factory=LatencyRecorder)
    work: dict[int, int] = field(default_factory=dict)  # task -> permits acquired
    overtakes: int = 0
    max_overtakes: int = 0
    tasks: set[int] = field(default_factory=set)  # tasks expected to progress
    # Grants before the run's deadline, and the longest wait seen within the run
    # window (a request still waiting at the deadline counts up to the deadline).
    completed_in_window: int = 0
    longest_wait_ns: int = 0


@dataclass
class RepeatMetrics:
    """Everything measured in one repeat."""

    elapsed_s: float
    ops: int
    permits: int
    latency: LatencyRecorder
    classes: dict[str, ClassMetrics]
    overtakes: int
    max_overtakes: int
    pending_at_end: int
    invariants: dict[str, bool]
    extra: dict[str, list[float]]
    error: str | None = None
    windows: Windows | None = None

    def as_record(self) -> Repeat:
        """The per-repeat record stored in the result file."""
        return Repeat(
            elapsed_s=self.elapsed_s,
            ops=self.ops,
            permits=self.permits,
            throughput_ops=self.ops / self.elapsed_s if self.elapsed_s else 0.0,
            throughput_permits=self.permits / self.elapsed_s if self.elapsed_s else 0.0,
            latency_us=latency(self.latency),
            overtakes=self.overtakes,
            max_overtakes=self.max_overtakes,
            pending_at_end=self.pending_at_end,
            jain={c: _jain(m) for c, m in self.classes.items()},
            jain_min=min(
                (j for j in (_jain(m) for m in self.classes.values()) if j is not None),
                default=None,
            ),
            starved_tasks={c: _starved(m) for c, m in self.classes.items()},
            extra={k: sum(v) / len(v) for k, v in self.extra.items() if v},
            invariants=dict(self.invariants),
            error=self.error,
            windows=self.windows,
        )


def _jain(m: ClassMetrics) -> float | None:
    if not m.tasks:
        return None
    return jain_index([float(m.work.get(t, 0)) for t in sorted(m.tasks)])


def _starved(m: ClassMetrics) -> int:
    return starved({t: m.work.get(t, 0) for t in m.tasks})


def measure_repeat(
    workload: Workload,
    impl: Impl,
    permits: int,
    ctx: Context,
    elapsed_s: float,
    error: str | None,
    samples: list[tuple[int, int, int, int]] | None = None,
) -> RepeatMetrics:
    """Measure one finished repeat; ``error`` is the body's exception text, if any.

    ``samples``: (time ns, run-queue delay ns, grants so far, speed probe ns or 0)
    at the window edges (see :func:`batchsem.bench.engine.sample_windows`).
    """
    rec = ctx.recorder
    reported = set(workload.classes)
    classes = {c: ClassMetrics() for c in workload.classes}
    deadline = ctx.deadline_ns
    # Fairness is over the tasks that were meant to keep making requests (the
    # workers a workload registers) and did make one in this class during the run.
    requested: dict[str, set[int]] = {}
    for task, cls, _n, t_req, *_ in (*rec.grants, *rec.failed):
        if t_req < deadline:
            requested.setdefault(cls, set()).add(task)
    for task, cls, _n, _t_req in rec.pending.values():
        requested.setdefault(cls, set()).add(task)
    for cls, ids in ctx.task_ids.items():
        if cls in classes:
            classes[cls].tasks |= ids & requested.get(cls, set())

    waits: dict[str, Counter[int]] = {c: Counter() for c in workload.classes}
    ops = 0
    permit_total = 0
    for task, cls, n, t_req, t_grant, _rs, _gs in rec.grants:
        m = classes.get(cls) if cls in reported else None
        if m is None and "all" in classes:
            m = classes["all"]
            cls = "all"
        if m is None:
            continue
        ops += 1
        permit_total += n
        m.completed += 1
        wait = t_grant - t_req
        waits[cls][wait] += 1
        if t_grant <= deadline:
            m.work[task] = m.work.get(task, 0) + n
            m.completed_in_window += 1
            if wait > m.longest_wait_ns:
                m.longest_wait_ns = wait
        elif t_req < deadline and deadline - t_req > m.longest_wait_ns:
            m.longest_wait_ns = deadline - t_req
    for _task, cls, _n, t_req in rec.pending.values():
        m = classes.get(cls)
        if m is not None and t_req < deadline and deadline - t_req > m.longest_wait_ns:
            m.longest_wait_ns = deadline - t_req
    for _task, cls, n, _t_req, _t_end, _rs, reason in rec.failed:
        if cls in classes:
            classes[cls].failed += 1
            if reason == "closed":
                ops += 1
                permit_total += n
    for cls, extra_waits in rec.latency_extra.items():
        if cls in waits:
            waits[cls].update(extra_waits)
    total = LatencyRecorder()
    for cls, counter in waits.items():
        classes[cls].latency.record_counts(counter)
        total.add(classes[cls].latency)

    # Order fairness over every request that was granted or still waiting at the end;
    # requests that failed (closed) or were abandoned on purpose (timeouts) are excluded.
    req = [g[5] for g in rec.grants]
    grant: list[int | None] = [g[6] for g in rec.grants]
    owners = [g[1] for g in rec.grants]
    for rs, (_task, cls, _n, _t) in rec.pending.items():
        req.append(rs)
        grant.append(None)
        owners.append(cls)
    stats = overtakes(req, grant)
    for cls, count in zip(owners, stats.per_request, strict=True):
        key = cls if cls in classes else ("all" if "all" in classes else None)
        if key is None:
            continue
        m = classes[key]
        m.overtakes += count
        if count > m.max_overtakes:
            m.max_overtakes = count

    if ctx.unfinished and error is None:
        error = (
            f"{ctx.unfinished} task(s) made no progress after the deadline and were cancelled "
            "(deadlock or lost wake-up)"
        )
    invariants = {
        "completed_without_error": error is None,
        "all_tasks_finished": ctx.unfinished == 0 and not rec.pending,
        "no_acquire_after_close": rec.granted_after_close == 0,
    }
    if impl.limits:
        invariants["capacity_respected"] = rec.max_in_use <= permits
        invariants["permits_conserved"] = rec.in_use == 0 and all(
            lim.available() in (None, _expected_free(ctx, lim)) for lim in ctx.limiters
        )
    return RepeatMetrics(
        elapsed_s=elapsed_s,
        ops=ops,
        permits=permit_total,
        latency=total,
        classes=classes,
        overtakes=stats.total,
        max_overtakes=stats.max_per_request,
        pending_at_end=len(rec.pending),
        invariants=invariants,
        extra=rec.extra,
        error=error,
        windows=windows(rec.grants, samples or []),
    )


def windows(
    grants: list[tuple[int, str, int, int, int, int, int]],
    samples: list[tuple[int, int, int, int]],
) -> Windows | None:
    """Throughput, p99 wait and probe speed per window between consecutive ``samples``.

    A window's throughput is its grants over its duration *less the time the
    thread waited for a CPU* (``run_delay``) and less the speed probe run at
    its start: another process taking the CPU slows the run without being part
    of what is measured, and on a shared machine that is the largest source of
    run-to-run drift. ``probe_us`` is the mean of the probes at the window's two
    edges (empty when no probe ran). The p99 is over the grants whose grant
    time falls in the window. None without two samples.
    """
    if len(samples) < 2:
        return None
    edges = [s[0] for s in samples]
    waits: list[list[int]] = [[] for _ in range(len(samples) - 1)]
    first, last = edges[0], edges[-1]
    k = 0
    for _task, _cls, _n, t_req, t_grant, _rs, _gs in sorted(grants, key=lambda g: g[4]):
        if not first <= t_grant < last:
            continue
        while t_grant >= edges[k + 1]:
            k += 1
        waits[k].append(t_grant - t_req)
    probed = all(s[3] > 0 for s in samples)
    rates: list[float] = []
    stolen: list[float] = []
    probes: list[float] = []
    p99: list[float | None] = []
    for i, w in enumerate(waits):
        span = edges[i + 1] - edges[i]
        delay = max(0, samples[i + 1][1] - samples[i][1])
        stolen.append(delay / 1e9)
        spent = samples[i][3] if probed else 0
        rates.append(len(w) / max(span - delay - spent, 1) * 1e9)
        if probed:
            probes.append((samples[i][3] + samples[i + 1][3]) / 2e3)
        if not w:
            p99.append(None)
            continue
        w.sort()
        p99.append(w[max(0, math.ceil(0.99 * len(w)) - 1)] / 1e3)
    return Windows(width_s=(last - first) / len(waits) / 1e9, throughput_ops=rates, p99_us=p99,
                   stolen_s=stolen, probe_us=probes)


def _expected_free(ctx: Context, lim: object) -> int:
    size = getattr(lim, "initial_permits", None)
    return ctx.permits if size is None else int(size)


def summarize_repeats(
    workload: Workload, repeats: list[RepeatMetrics], *, expect_fifo: bool
) -> tuple[Summary, Histogram, dict[str, bool]]:
    """(summary, histogram, invariants) of a case over its repeats (at least one).

    ``expect_fifo``: the implementation promises FIFO on one loop, so any
    overtake is reported as a violated invariant ("fifo_order").
    """
    ops = [r.ops / r.elapsed_s for r in repeats if r.elapsed_s > 0] or [0.0]
    permits = [r.permits / r.elapsed_s for r in repeats if r.elapsed_s > 0] or [0.0]
    merged_all = LatencyRecorder()
    for r in repeats:
        merged_all.add(r.latency)
    class_summary: dict[str, ClassSummary] = {}
    jains: list[float] = []
    starved = 0
    for cls in workload.classes:
        merged = LatencyRecorder()
        completed = failed = overt = max_overt = in_window = 0
        longest = 0
        cls_jain: list[float] = []
        cls_starved = 0
        work: dict[int, int] = {}
        for r in repeats:
            m = r.classes[cls]
            for task in m.tasks:
                work[task] = work.get(task, 0) + m.work.get(task, 0)
            merged.add(m.latency)
            completed += m.completed
            in_window += m.completed_in_window
            longest = max(longest, m.longest_wait_ns)
            failed += m.failed
            overt += m.overtakes
            max_overt = max(max_overt, m.max_overtakes)
            j = _jain(m)
            if j is not None:
                cls_jain.append(j)
            cls_starved = max(cls_starved, _starved(m))
        jain = sum(cls_jain) / len(cls_jain) if cls_jain else None
        if jain is not None:
            jains.append(jain)
        starved += cls_starved
        class_summary[cls] = ClassSummary(
            completed=completed,
            completed_in_window=in_window,
            longest_wait_in_window_us=longest / 1e3,
            failed=failed,
            latency_us=latency(merged),
            fairness=Fairness(
                jain=jain,
                overtakes=overt,
                max_overtakes=max_overt,
                starved_tasks=cls_starved,
                max_wait_ratio=_wait_ratio(merged),
            ),
            work_per_task=[work[t] for t in sorted(work)] if len(work) <= MAX_WORK_TASKS else [],
        )
    extra: dict[str, Stat] = {}
    for key in sorted({k for r in repeats for k in r.extra}):
        per_repeat = [sum(r.extra[key]) / len(r.extra[key]) for r in repeats if r.extra.get(key)]
        extra[key] = stat(per_repeat)
    summary = Summary(
        throughput_ops=stat(ops),
        throughput_permits=stat(permits),
        latency_us=latency(merged_all),
        fairness=Fairness(
            jain=min(jains) if jains else None,
            overtakes=sum(r.overtakes for r in repeats),
            max_overtakes=max((r.max_overtakes for r in repeats), default=0),
            starved_tasks=starved,
            max_wait_ratio=_wait_ratio(merged_all),
        ),
        classes=class_summary,
        extra=extra,
    )
    invariants: dict[str, bool] = {}
    for r in repeats:
        for name, ok in r.invariants.items():
            invariants[name] = invariants.get(name, True) and ok
    if expect_fifo:
        invariants["fifo_order"] = all(r.overtakes == 0 for r in repeats)
    classes: dict[str, str] = {}
    for cls in workload.classes:
        if any(r.classes[cls].latency.count for r in repeats):
            merged = LatencyRecorder.merged([r.classes[cls].latency for r in repeats])
            classes[cls] = merged.encode()
    histogram = Histogram(total=merged_all.encode() if merged_all.count else None, classes=classes)
    return summary, histogram, invariants


def _wait_ratio(latency: LatencyRecorder) -> float | None:
    if not latency.count:
        return None
    s = latency.summary_us()
    return s["max"] / s["p50"] if s["p50"] > 0 else None
