"""Compare saved runs: match cases, test each metric's change, give a verdict. No printing.

Cases are matched on workload, implementation, loop and parameter *values*
(:func:`batchsem.bench.schema.case_key`). The verdict rule is
:mod:`batchsem.bench.verdict`; this module picks the samples and the
families of tests.

What gates ``--fail-on-regression`` is throughput, and only throughput:

* Samples are time windows (10 per repeat, :class:`Windows`), so a default
  run gives a case 60 samples instead of 6 repeat means. A window's rate
  leaves out time the process sat waiting for a CPU (Linux schedstat). The
  change is that of the window medians and the test is Mann-Whitney's, so a
  few windows in which the machine stalled do not decide the verdict; and
  the change must show in nearly every round of repeats
  (:func:`batchsem.bench.verdict.rounds_agree`), so a burst of load that
  slowed one or two rounds does not either.
* When both sides probed the machine's speed at every window edge
  (:mod:`batchsem.bench.probe`; every single-loop workload does), the gating
  row is ``tput/probe``: each window's rate times the probe's time at that
  moment, i.e. throughput in units of the machine's speed then. A machine that
  got slower between the runs, or during one, slows the probe too and cancels
  out; raw throughput is then shown as information.
* Otherwise, when both runs measured the ``null`` ceiling on the same
  workload, loop and parameters (``bench`` adds it by default), the gating row
  is ``tput/null``: each window's rate divided by the ceiling's rate in the
  same round of repeats. It cancels slower drift only: the ceiling runs in
  another slot of the round, not at the same moment.
* The gating tests of a comparison are Holm-adjusted together.

Everything else (p50, p99, p99.9, max, Jain, overtakes, and every row of the
null ceiling itself) is informational: tested, Benjamini-Hochberg-adjusted,
shown with a verdict, never gating. Latency percentiles move with every
preemption on a shared machine (see docs/methodology.md for the measured
false-alarm rates). Files written before windows existed fall back to
per-repeat samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from batchsem.bench.schema import Case, CaseKey, Repeat, Run, Summary, Windows
from batchsem.bench.verdict import (
    ALPHA,
    VerdictName,
    adjust,
    decide,
    measure,
    measure_robust,
    rounds_agree,
)

__all__ = ["ADJUSTED", "ALPHA", "METRICS", "RELATIVE", "Cell", "Comparison", "compare_runs",
           "compare_within"]


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    primary: bool
    per_repeat: Callable[[Repeat], float | None]
    summary: Callable[[Summary], float | None]
    window: Callable[[Windows], Sequence[float | None]] | None = None


def _lat(key: str) -> Callable[[Any], float | None]:
    def get(d: Any) -> float | None:
        lat = d.latency_us
        return None if lat is None else float(getattr(lat, key))

    return get


METRICS: tuple[Metric, ...] = (
    Metric("throughput", True, True, lambda r: r.throughput_ops,
           lambda s: s.throughput_ops.mean, lambda w: w.throughput_ops),
    Metric("p99", False, False, _lat("p99"), _lat("p99"), lambda w: w.p99_us),
    Metric("p50", False, False, _lat("p50"), _lat("p50")),
    Metric("p99.9", False, False, _lat("p99_9"), _lat("p99_9")),
    Metric("max", False, False, _lat("max"), _lat("max")),
    Metric("jain", True, False, lambda r: r.jain_min, lambda s: s.fairness.jain),
    Metric("overtakes", False, False, lambda r: float(r.overtakes),
           lambda s: float(s.fairness.overtakes)),
)

Verdict = VerdictName | Literal["baseline"]


@dataclass(frozen=True)
class Cell:
    """One metric of one case in one run, against the baseline."""

    value: float | None
    change: float | None  # new / base - 1
    p_value: float | None  # Welch's, for this metric alone
    verdict: Verdict
    tested: bool  # a significance test could be made (>= 2 samples on both sides)
    p_adjusted: float | None = None  # over the comparison's family; decides the verdict
    #: window samples: the change showed in nearly every round of repeats (None otherwise)
    agree: bool | None = None
    #: the smallest change this comparison could have flagged (max of threshold and MDE)
    detectable: float | None = None
    samples: int = 0  # per side, the smaller


@dataclass(frozen=True)
class Row:
    case: str  # "workload impl loop"
    metric: str
    primary: bool
    cells: list[Cell]


@dataclass(frozen=True)
class Comparison:
    """Rows (case x metric) with one cell per run; cases found in only some runs."""

    labels: list[str]
    rows: list[Row]
    unmatched: list[tuple[str, str]]  # (label of the run it is in, case)
    threshold: float

    @property
    def tests(self) -> int:
        """How many tests of primary metrics were made (the size of Holm's family)."""
        return sum(1 for r in self.rows if r.primary for c in r.cells if c.p_value is not None)

    @property
    def regressions(self) -> int:
        """Regressed primary metrics: what ``--fail-on-regression`` fails on."""
        return sum(1 for r in self.rows if r.primary for c in r.cells if c.verdict == "regressed")

    @property
    def improvements(self) -> int:
        return sum(1 for r in self.rows if r.primary for c in r.cells if c.verdict == "improved")

    def as_json(self) -> dict[str, Any]:
        return {
            "runs": self.labels,
            "rows": [
                {
                    "case": r.case,
                    "metric": r.metric,
                    "primary": r.primary,
                    "cells": [c.__dict__ for c in r.cells],
                }
                for r in self.rows
            ],
            "unmatched": [{"run": run, "case": case} for run, case in self.unmatched],
            "regressions": self.regressions,
            "improvements": self.improvements,
            "tests": self.tests,
            "alpha": ALPHA,
            "threshold": self.threshold,
        }


def _samples(case: Case, metric: Metric, windows: bool) -> list[float]:
    out: list[float] = []
    for rep in case.repeats:
        if windows and metric.window is not None and rep.windows is not None:
            out.extend(v for v in metric.window(rep.windows) if v is not None)
        else:
            v = metric.per_repeat(rep)
            if v is not None:
                out.append(float(v))
    return out


def _has_windows(case: Case) -> bool:
    return bool(case.repeats) and all(r.windows is not None for r in case.repeats)


def _window_rate(rep: Repeat) -> float:
    """A repeat's throughput with stolen CPU time removed (its windows' mean), if known."""
    if rep.windows is not None and rep.windows.throughput_ops:
        rates = rep.windows.throughput_ops
        return sum(rates) / len(rates)
    return rep.throughput_ops


def relative_rounds(case: Case, reference: Case) -> list[list[float]]:
    """``case``'s window throughputs per repeat, each divided by the reference's
    throughput in the same round of repeats (the null ceiling, run next to it on the
    same loop).

    Whatever slowed the machine for both (other processes, frequency, a noisy
    neighbour) cancels; what is left is the limiter's own cost. Empty when a
    side has no windows or the reference measured nothing.
    """
    out: list[list[float]] = []
    for rep, ref in zip(case.repeats, reference.repeats, strict=False):
        base = _window_rate(ref)
        if rep.windows is None or not base > 0:
            return []
        out.append([w / base for w in rep.windows.throughput_ops])
    return out


def probe_rounds(case: Case) -> list[list[float]]:
    """``case``'s window throughputs per repeat, each times the speed probe's time at that
    window (:attr:`Windows.probe_us`, so in operations per probe duration).

    The machine's changes of speed, which the probe measured at the same
    moment, cancel. Empty unless every repeat has a positive probe time for
    every window.
    """
    out: list[list[float]] = []
    for rep in case.repeats:
        w = rep.windows
        if (w is None or not w.throughput_ops or len(w.probe_us) != len(w.throughput_ops)
                or not all(p > 0 for p in w.probe_us)):
            return []
        out.append([r * p / 1e6 for r, p in zip(w.throughput_ops, w.probe_us, strict=True)])
    return out


def relative_samples(case: Case, reference: Case) -> list[float]:
    """:func:`relative_rounds`, flattened."""
    return [v for r in relative_rounds(case, reference) for v in r]


def window_rounds(case: Case) -> list[list[float]]:
    """Window throughputs per repeat (empty if a repeat has no windows)."""
    if not _has_windows(case):
        return []
    return [list(r.windows.throughput_ops) for r in case.repeats if r.windows is not None]


def _median(values: Sequence[float]) -> float:
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def _judge(
    value: float | None, base_value: float | None, a: list[float], b: list[float],
    higher_is_better: bool, threshold: float, robust: bool = False,
    rounds: tuple[list[list[float]], list[list[float]]] | None = None,
) -> Cell:
    """A cell from the shown values and the samples (verdict decided later, in _settle).

    ``robust``: window samples, judged on their medians with Mann-Whitney
    (:func:`batchsem.bench.verdict.measure_robust`); the values shown must be
    those medians.
    """
    if value is None or base_value is None:
        return Cell(value, None, None, "n/a", False)
    n = min(len(a), len(b))
    if base_value == 0:
        if value == 0:
            return Cell(value, 0.0, None, "no change", False, samples=n)
        # From zero (e.g. overtakes 0 -> 12): any occurrence is a change of kind.
        return Cell(value, None, None, "improved" if higher_is_better else "regressed", False,
                    samples=n)
    change = value / base_value - 1.0
    try:
        m = measure_robust(a, b) if robust else measure(a, b, change)
    except ValueError:  # no usable samples (e.g. all zero): the threshold alone
        return Cell(value, change, None, decide(change, None, tested=False, threshold=threshold,
                    higher_is_better=higher_is_better), False, samples=n)
    detectable = None if m.mde is None else max(threshold, m.mde)
    agree = None if rounds is None else rounds_agree(rounds[0], rounds[1], change, threshold)
    return Cell(value, change, m.p_value, "no change", m.tested, detectable=detectable,
                samples=n, agree=agree)


def _cell(base: Case, new: Case, metric: Metric, threshold: float) -> Cell:
    """One metric of one case against the baseline (verdict before adjustment).

    The change judged is that of the values shown (the case summaries: merged
    latency distributions, mean throughput); the test runs on the samples:
    windows for the metrics that have them, per-repeat values otherwise.
    """
    assert base.summary is not None and new.summary is not None
    windows = metric.window is not None and _has_windows(base) and _has_windows(new)
    a, b = _samples(base, metric, windows), _samples(new, metric, windows)
    value, base_value = metric.summary(new.summary), metric.summary(base.summary)
    robust = windows and metric.name == "throughput" and bool(a) and bool(b)
    if robust:  # judge what the windows measured: medians, stolen CPU time taken out
        value, base_value = _median(b), _median(a)
        rounds = (window_rounds(base), window_rounds(new))
        return _judge(value, base_value, a, b, True, threshold, True, rounds)
    return _judge(value, base_value, a, b, metric.higher_is_better, threshold)


def _rounds_cell(ra: list[list[float]], rb: list[list[float]], threshold: float) -> Cell:
    """A gating cell from window samples per round (probe- or ceiling-adjusted)."""
    a, b = [v for r in ra for v in r], [v for r in rb for v in r]
    if not a or not b:
        return Cell(None, None, None, "n/a", False)
    return _judge(_median(b), _median(a), a, b, True, threshold, True, (ra, rb))


def _settle(rows: list[Row], threshold: float) -> list[Row]:
    """Adjust p-values per family (Holm for primary rows, BH for the rest); decide verdicts."""
    cells = [list(r.cells) for r in rows]
    for primary, method in ((True, "holm"), (False, "bh")):
        tested = [(i, j) for i, r in enumerate(rows) if r.primary == primary
                  for j, c in enumerate(r.cells) if c.p_value is not None]
        adjusted = adjust([cells[i][j].p_value or 0.0 for i, j in tested],
                          method)  # type: ignore[arg-type]
        for (i, j), p in zip(tested, adjusted, strict=True):
            cells[i][j] = replace(cells[i][j], p_adjusted=p)
    better = {m.name: m.higher_is_better for m in METRICS} | {RELATIVE: True, ADJUSTED: True}
    for i, r in enumerate(rows):
        for j, c in enumerate(cells[i]):
            if c.verdict == "no change" and c.change is not None:
                verdict = decide(c.change, c.p_adjusted, tested=c.tested, threshold=threshold,
                                 higher_is_better=better[r.metric], agree=c.agree)
                cells[i][j] = replace(c, verdict=verdict)
    return [replace(r, cells=c) for r, c in zip(rows, cells, strict=True)]


def _ran(cases: Sequence[Case]) -> dict[CaseKey, Case]:
    return {c.key: c for c in cases if c.ran}


def _reference(cases: dict[CaseKey, Case], case: Case) -> Case | None:
    """The null ceiling of ``case``'s workload, loop and parameters in the same run."""
    if case.impl == "null":
        return None
    workload, _impl, loop, params = case.key
    return cases.get((workload, "null", loop, params))


#: The name of the gating row for cases measured next to the null ceiling.
RELATIVE = "tput/null"
#: The name of the gating row for cases whose windows carry the speed probe.
ADJUSTED = "tput/probe"


def _rows(
    label: str, base: Case, others: list[Case | None], threshold: float,
    refs: list[tuple[Case | None, Case | None]] | None = None,
) -> list[Row]:
    """The rows of one case: the gating row first.

    What gates, by preference: ``tput/probe`` when the baseline and every other
    case probed the machine's speed; else ``tput/null`` when the baseline and
    every other run have a null ceiling (``refs``, per other run: (baseline's
    null, that run's null)); else raw throughput. Raw throughput is
    informational when one of the others gates. The null ceiling's own rows
    never gate.
    """
    assert base.summary is not None
    gates = base.impl != "null"
    gating: list[Row] = []
    base_rounds = probe_rounds(base)
    other_rounds = [None if o is None else probe_rounds(o) for o in others]
    if gates and base_rounds and all(r != [] for r in other_rounds):
        cells = [Cell(_median([v for r in base_rounds for v in r]), None, None, "baseline",
                      False)]
        for rounds in other_rounds:
            cells.append(Cell(None, None, None, "n/a", False) if rounds is None
                         else _rounds_cell(base_rounds, rounds, threshold))
        gating.append(Row(label, ADJUSTED, True, cells))
    elif gates and refs is not None and all(
        ra is not None and rb is not None
        and bool(relative_samples(base, ra)) and bool(relative_samples(other, rb))
        for other, (ra, rb) in zip(others, refs, strict=True) if other is not None
    ):
        base_ref = next((ra for ra, _ in refs if ra is not None), None)
        shown = relative_samples(base, base_ref) if base_ref is not None else []
        cells = [Cell(_median(shown) if shown else None, None, None, "baseline", False)]
        for other, (ra, rb) in zip(others, refs, strict=True):
            if other is None or ra is None or rb is None:
                cells.append(Cell(None, None, None, "n/a", False))
            else:
                cells.append(_rounds_cell(relative_rounds(base, ra), relative_rounds(other, rb),
                                          threshold))
        gating.append(Row(label, RELATIVE, True, cells))
    rows = gating
    for metric in METRICS:
        primary = metric.primary and gates and not gating
        cells = [Cell(_shown(base, metric), None, None, "baseline", False)]
        for other in others:
            if other is None:
                cells.append(Cell(None, None, None, "n/a", False))
            else:
                cells.append(_cell(base, other, metric, threshold))
        rows.append(Row(label, metric.name, primary, cells))
    return rows


def _shown(case: Case, metric: Metric) -> float | None:
    assert case.summary is not None
    if metric.name == "throughput" and _has_windows(case):
        rates = _samples(case, metric, True)
        if rates:
            return _median(rates)
    return metric.summary(case.summary)


def compare_runs(labels: list[str], runs: list[Run], threshold: float = 0.05) -> Comparison:
    """Compare runs[1:] against runs[0], case by case (matched on workload, impl, loop, params).

    Raises ``ValueError`` if no case is present in the baseline and any other run.
    """
    maps = [_ran(run.cases) for run in runs]
    base = maps[0]
    common = [k for k in base if any(k in m for m in maps[1:])]
    if not common:
        raise ValueError("the runs have no case in common (workload, impl, loop and params)")
    rows: list[Row] = []
    for key in common:
        case = base[key]
        refs = [(_reference(base, case), _reference(m, case)) for m in maps[1:]]
        rows += _rows(case.label, case, [m.get(key) for m in maps[1:]], threshold, refs)
    unmatched: list[tuple[str, str]] = []
    for label, m in zip(labels, maps, strict=True):
        for key, case in m.items():
            if sum(1 for other in maps if key in other) < len(maps):
                unmatched.append((label, case.label))
    return Comparison(labels, _settle(rows, threshold), unmatched, threshold)


def compare_within(run: Run, by: str, threshold: float = 0.05) -> Comparison:
    """Compare the cases of one run against each other: ``by`` is "impl" or "loop".

    Cases are grouped on everything else; the first value of ``by`` seen in the
    file is the baseline. Raises ``ValueError`` if there is nothing to compare.
    """
    if by not in ("impl", "loop"):
        raise ValueError(f"--by must be impl or loop, not {by!r}")
    ran = list(_ran(run.cases).values())
    values: list[str] = []
    for c in ran:
        if getattr(c, by) not in values:
            values.append(getattr(c, by))
    if len(values) < 2:
        found = ", ".join(values) or "none"
        raise ValueError(f"the run has only one {by} ({found}): nothing to compare")
    groups: dict[tuple[Any, ...], dict[str, Case]] = {}
    for c in ran:
        workload, impl, loop, params = c.key
        rest = (workload, loop if by == "impl" else impl, params)
        groups.setdefault(rest, {})[getattr(c, by)] = c
    rows: list[Row] = []
    unmatched: list[tuple[str, str]] = []
    for members in groups.values():
        if values[0] not in members:
            for v, c in members.items():
                unmatched.append((v, c.label))
            continue
        base = members[values[0]]
        label = " ".join(
            str(getattr(base, k)) if k != by else "*" for k in ("workload", "impl", "loop")
        )
        rows += _rows(label, base, [members.get(v) for v in values[1:]], threshold)
    return Comparison(values, _settle(rows, threshold), unmatched, threshold)
