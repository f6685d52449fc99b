"""Compare saved runs: match cases, test each metric's change, give a verdict. No printing.

A change counts (improved / regressed) only if it is outside the threshold
*and* statistically real given the repeats (Welch's t-test on the per-repeat
values, see :func:`batchsem.bench.stats.compare_samples`). A comparison runs
one test per case, metric and run, so the p-values are adjusted with Holm's
procedure over all of them (:func:`batchsem.bench.stats.holm_adjust`): the
chance that *any* unchanged metric is flagged stays below ``ALPHA``. With a
single repeat on either side nothing can be tested; the verdict then rests on
the threshold alone and is marked untested.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from batchsem.bench.results import case_key
from batchsem.bench.stats import compare_samples, holm_adjust

__all__ = ["ALPHA", "METRICS", "Cell", "Comparison", "compare_runs", "compare_within"]

#: Family-wise significance level of a comparison (Holm-adjusted Welch p-values).
ALPHA = 0.05


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    per_repeat: Callable[[dict[str, Any]], float | None]
    summary: Callable[[dict[str, Any]], float | None]


def _lat(key: str) -> Callable[[dict[str, Any]], float | None]:
    def get(d: dict[str, Any]) -> float | None:
        lat = d.get("latency_us")
        return None if not lat else float(lat[key])

    return get


METRICS: tuple[Metric, ...] = (
    Metric("throughput", True, lambda r: r.get("throughput_ops"),
           lambda s: s["throughput_ops"]["mean"]),
    Metric("p50", False, _lat("p50"), _lat("p50")),
    Metric("p99", False, _lat("p99"), _lat("p99")),
    Metric("p99.9", False, _lat("p99_9"), _lat("p99_9")),
    Metric("max", False, _lat("max"), _lat("max")),
    Metric("jain", True, lambda r: r.get("jain_min"), lambda s: s["fairness"]["jain"]),
    Metric("overtakes", False, lambda r: r.get("overtakes"),
           lambda s: s["fairness"]["overtakes"]),
)


@dataclass(frozen=True)
class Cell:
    """One metric of one case in one run, against the baseline."""

    value: float | None
    change: float | None  # new / base - 1
    p_value: float | None  # Welch's, for this metric alone
    verdict: str  # "improved" | "regressed" | "no change" | "baseline" | "n/a"
    tested: bool  # a significance test could be made (>= 2 repeats on both sides)
    p_adjusted: float | None = None  # Holm-adjusted over the comparison; decides the verdict


@dataclass(frozen=True)
class Row:
    case: str  # "workload impl loop"
    metric: str
    cells: list[Cell]


@dataclass(frozen=True)
class Comparison:
    """Rows (case x metric) with one cell per run; cases found in only some runs."""

    labels: list[str]
    rows: list[Row]
    unmatched: list[tuple[str, str]]  # (label of the run it is in, case)

    @property
    def tests(self) -> int:
        """How many significance tests the comparison made (the size of Holm's family)."""
        return sum(1 for r in self.rows for c in r.cells if c.p_value is not None)

    @property
    def regressions(self) -> int:
        return sum(1 for r in self.rows for c in r.cells if c.verdict == "regressed")

    @property
    def improvements(self) -> int:
        return sum(1 for r in self.rows for c in r.cells if c.verdict == "improved")

    def as_json(self) -> dict[str, Any]:
        return {
            "runs": self.labels,
            "rows": [
                {
                    "case": r.case,
                    "metric": r.metric,
                    "cells": [c.__dict__ for c in r.cells],
                }
                for r in self.rows
            ],
            "unmatched": [{"run": run, "case": case} for run, case in self.unmatched],
            "regressions": self.regressions,
            "improvements": self.improvements,
            "tests": self.tests,
            "alpha": ALPHA,
        }


def _samples(case: dict[str, Any], metric: Metric) -> list[float]:
    out = []
    for rep in case.get("repeats", []):
        v = metric.per_repeat(rep)
        if v is not None:
            out.append(float(v))
    return out


def _cell(base: dict[str, Any], new: dict[str, Any], metric: Metric, threshold: float) -> Cell:
    """One metric of one case against the baseline.

    The change judged is that of the values shown (the case summaries: merged
    latency distributions, mean throughput); the significance test runs on
    the per-repeat values (:func:`batchsem.bench.stats.compare_samples`).
    """
    value = metric.summary(new["summary"])
    base_value = metric.summary(base["summary"])
    if value is None or base_value is None:
        return Cell(value, None, None, "n/a", False)
    a, b = _samples(base, metric), _samples(new, metric)
    if base_value == 0:
        if value == 0:
            return Cell(value, 0.0, None, "no change", False)
        # From zero (e.g. overtakes 0 -> 12): any occurrence is a change of kind.
        worse = not metric.higher_is_better
        tested = len(a) >= 2 and len(b) >= 2
        return Cell(value, None, None, "regressed" if worse else "improved", tested)
    change = value / base_value - 1.0
    kwargs: dict[str, Any] = {
        "threshold": threshold, "higher_is_better": metric.higher_is_better, "change": change
    }
    try:
        v = compare_samples(a, b, **kwargs)
    except ValueError:  # no usable per-repeat values (e.g. all zero): the threshold alone
        v = compare_samples([float(base_value)], [float(value)], **kwargs)
    return Cell(value, change, v.p_value, v.verdict, v.p_value is not None)


def _adjust(rows: list[Row]) -> list[Row]:
    """Holm-adjust every tested cell's p-value over all of ``rows``; re-decide the verdicts.

    Adjusting only raises p-values, so a verdict can only go from improved or
    regressed to "no change" (a change within the noise of this many tests).
    """
    tested = [(i, j) for i, r in enumerate(rows) for j, c in enumerate(r.cells)
              if c.p_value is not None]
    adjusted = holm_adjust([rows[i].cells[j].p_value or 0.0 for i, j in tested])
    cells = [list(r.cells) for r in rows]
    for (i, j), p in zip(tested, adjusted, strict=True):
        cell = cells[i][j]
        verdict = cell.verdict
        if verdict in ("improved", "regressed") and p >= ALPHA:
            verdict = "no change"
        cells[i][j] = replace(cell, p_adjusted=p, verdict=verdict)
    return [Row(r.case, r.metric, c) for r, c in zip(rows, cells, strict=True)]


def _describe(case: dict[str, Any]) -> str:
    return f"{case['workload']} {case['impl']} {case['loop']}"


def _ran(cases: Sequence[dict[str, Any]]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    return {case_key(c): c for c in cases if c.get("status") != "unsupported" and c.get("summary")}


def compare_runs(
    labels: list[str], runs: list[dict[str, Any]], threshold: float = 0.05
) -> Comparison:
    """Compare runs[1:] against runs[0], case by case (matched on workload, impl, loop, params).

    Raises ``ValueError`` if no case is present in the baseline and any other run.
    """
    maps = [_ran(run["cases"]) for run in runs]
    base = maps[0]
    common = [k for k in base if any(k in m for m in maps[1:])]
    if not common:
        raise ValueError("the runs have no case in common (workload, impl, loop and params)")
    rows: list[Row] = []
    for key in common:
        for metric in METRICS:
            cells = [Cell(metric.summary(base[key]["summary"]), None, None, "baseline", False)]
            for m in maps[1:]:
                if key in m:
                    cells.append(_cell(base[key], m[key], metric, threshold))
                else:
                    cells.append(Cell(None, None, None, "n/a", False))
            rows.append(Row(_describe(base[key]), metric.name, cells))
    unmatched: list[tuple[str, str]] = []
    for label, m in zip(labels, maps, strict=True):
        for key, case in m.items():
            if sum(1 for other in maps if key in other) < len(maps):
                unmatched.append((label, _describe(case)))
    return Comparison(labels, _adjust(rows), unmatched)


def compare_within(run: dict[str, Any], by: str, threshold: float = 0.05) -> Comparison:
    """Compare the cases of one run against each other: ``by`` is "impl" or "loop".

    Cases are grouped on everything else; the first value of ``by`` seen in the
    file is the baseline. Raises ``ValueError`` if there is nothing to compare.
    """
    if by not in ("impl", "loop"):
        raise ValueError(f"--by must be impl or loop, not {by!r}")
    ran = list(_ran(run["cases"]).values())
    values: list[str] = []
    for c in ran:
        if c[by] not in values:
            values.append(c[by])
    if len(values) < 2:
        found = ", ".join(values) or "none"
        raise ValueError(f"the run has only one {by} ({found}): nothing to compare")
    groups: dict[tuple[str, ...], dict[str, dict[str, Any]]] = {}
    for c in ran:
        rest = tuple(str(c[k]) for k in ("workload", "impl", "loop") if k != by)
        rest += (case_key(c)[3],)
        groups.setdefault(rest, {})[c[by]] = c
    rows: list[Row] = []
    unmatched: list[tuple[str, str]] = []
    for members in groups.values():
        if values[0] not in members:
            for v, c in members.items():
                unmatched.append((v, _describe(c)))
            continue
        base = members[values[0]]
        label = " ".join(
            str(base[k]) if k != by else "*" for k in ("workload", "impl", "loop")
        )
        for metric in METRICS:
            cells = [Cell(metric.summary(base["summary"]), None, None, "baseline", False)]
            for v in values[1:]:
                if v in members:
                    cells.append(_cell(base, members[v], metric, threshold))
                else:
                    cells.append(Cell(None, None, None, "n/a", False))
            rows.append(Row(label, metric.name, cells))
    return Comparison(values, _adjust(rows), unmatched)
