"""Compare saved runs: match cases, test each metric's change, give a verdict. No printing.

Cases are matched on workload, implementation, loop and parameter *values*
(:func:`batchsem.bench.schema.case_key`). The verdict rule is
:mod:`batchsem.bench.verdict`; this module only picks the samples and the
families of tests:

* the *primary* metrics, throughput and p99 wait, gate ``--fail-on-regression``.
  Their samples are the time windows of every repeat (:class:`Windows`, 10 per
  repeat), so a default run gives each case 30 samples instead of 3 repeats.
  Their p-values are Holm-adjusted together: the chance that any unchanged
  primary metric is flagged stays below ``ALPHA``.
* the other metrics (p50, p99.9, max, Jain, overtakes) are informational:
  tested on per-repeat values, Benjamini-Hochberg-adjusted (false discovery
  rate), shown with verdicts, never gating.

Files written before windows existed fall back to per-repeat samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from batchsem.bench.schema import Case, CaseKey, Repeat, Run, Summary, Windows
from batchsem.bench.verdict import ALPHA, VerdictName, adjust, decide, measure

__all__ = ["ALPHA", "METRICS", "Cell", "Comparison", "compare_runs", "compare_within"]


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
    Metric("p99", False, True, _lat("p99"), _lat("p99"), lambda w: w.p99_us),
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


def _cell(base: Case, new: Case, metric: Metric, threshold: float) -> Cell:
    """One metric of one case against the baseline (verdict before adjustment).

    The change judged is that of the values shown (the case summaries: merged
    latency distributions, mean throughput); the test runs on the samples.
    """
    assert base.summary is not None and new.summary is not None
    value = metric.summary(new.summary)
    base_value = metric.summary(base.summary)
    if value is None or base_value is None:
        return Cell(value, None, None, "n/a", False)
    windows = metric.primary and _has_windows(base) and _has_windows(new)
    a, b = _samples(base, metric, windows), _samples(new, metric, windows)
    n = min(len(a), len(b))
    if base_value == 0:
        if value == 0:
            return Cell(value, 0.0, None, "no change", False, samples=n)
        # From zero (e.g. overtakes 0 -> 12): any occurrence is a change of kind.
        worse = not metric.higher_is_better
        return Cell(value, None, None, "regressed" if worse else "improved", False, samples=n)
    change = value / base_value - 1.0
    try:
        m = measure(a, b, change)
    except ValueError:  # no usable samples (e.g. all zero): the threshold alone
        return Cell(value, change, None, decide(change, None, tested=False, threshold=threshold,
                    higher_is_better=metric.higher_is_better), False, samples=n)
    detectable = None if m.mde is None else max(threshold, m.mde)
    return Cell(value, change, m.p_value, "no change", m.tested, detectable=detectable,
                samples=n)


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
    metric = {m.name: m for m in METRICS}
    for i, r in enumerate(rows):
        for j, c in enumerate(cells[i]):
            if c.verdict == "no change" and c.change is not None:
                verdict = decide(c.change, c.p_adjusted, tested=c.tested, threshold=threshold,
                                 higher_is_better=metric[r.metric].higher_is_better)
                cells[i][j] = replace(c, verdict=verdict)
    return [replace(r, cells=c) for r, c in zip(rows, cells, strict=True)]


def _ran(cases: Sequence[Case]) -> dict[CaseKey, Case]:
    return {c.key: c for c in cases if c.ran}


def _rows(label: str, base: Case, others: list[Case | None], threshold: float) -> list[Row]:
    assert base.summary is not None
    rows = []
    for metric in METRICS:
        cells = [Cell(metric.summary(base.summary), None, None, "baseline", False)]
        for other in others:
            if other is None:
                cells.append(Cell(None, None, None, "n/a", False))
            else:
                cells.append(_cell(base, other, metric, threshold))
        rows.append(Row(label, metric.name, metric.primary, cells))
    return rows


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
        rows += _rows(base[key].label, base[key], [m.get(key) for m in maps[1:]], threshold)
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
