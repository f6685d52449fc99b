"""The tables of runs and comparisons as plain data, for the exporters and the HTML report.

A :class:`Tabular` is columns plus rows of plain values (``str``, ``int``,
``float`` or ``None`` for "not measured"). Numbers are stored in the unit its
column names (``p99_us`` is microseconds), never pre-formatted, so a CSV
reader gets machine-readable values and every writer formats them its own way.
Nothing here measures or prints.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from batchsem.bench.compare import Comparison
from batchsem.bench.schema import Case, Latency, Run

__all__ = [
    "Column",
    "SweepPoint",
    "Tabular",
    "case_label",
    "case_table",
    "comparison_table",
    "sweep_name",
    "sweep_points",
    "varying_params",
]

Value = str | int | float | None


@dataclass(frozen=True)
class Column:
    """``key`` is the machine-readable header (unit as suffix: ``p99_us``); ``title`` and
    ``unit`` the human one (``p99 [µs]``); ``kind`` how a human table formats its values:
    ``text``, ``int``, ``number`` (3-4 significant digits), ``ratio`` (3 decimals) or
    ``percent`` (a signed percentage of a ratio).
    """

    key: str
    title: str
    unit: str = ""
    kind: str = "text"

    @property
    def heading(self) -> str:
        return f"{self.title} [{self.unit}]" if self.unit else self.title


@dataclass
class Tabular:
    """Columns and rows (each row has one value per column)."""

    columns: list[Column]
    rows: list[list[Value]] = field(default_factory=list)

    def column(self, key: str) -> list[Value]:
        """The values of the column ``key`` (``KeyError`` if there is none)."""
        if key not in self.keys():
            raise KeyError(key)
        index = self.keys().index(key)
        return [row[index] for row in self.rows]

    def keys(self) -> list[str]:
        return [c.key for c in self.columns]


def varying_params(cases: Iterable[Case]) -> list[str]:
    """The parameters whose value differs between the cases (a sweep's, for one)."""
    keys: dict[str, set[str]] = {}
    for c in cases:
        for key, value in c.params.items():
            keys.setdefault(key, set()).add(repr(value))
    return [key for key, values in keys.items() if len(values) > 1]


def case_label(case: Case, varying: Sequence[str] = ()) -> str:
    """``impl · loop``, plus ``key=value`` for each parameter in ``varying``."""
    return " · ".join([case.impl, case.loop, *(f"{k}={case.params.get(k)}" for k in varying)])


_LATENCY = (("p50", "p50"), ("p99", "p99"), ("p99_9", "p99.9"), ("max", "max"))


def _param_keys(cases: Iterable[Case]) -> list[str]:
    keys: dict[str, None] = {}
    for case in cases:
        for key in case.params:
            keys.setdefault(key, None)
    return list(keys)


def _extra_keys(cases: Iterable[Case]) -> list[str]:
    return sorted({key for c in cases if c.summary is not None for key in c.summary.extra})


def _latency(lat: Latency | None) -> list[Value]:
    if lat is None:
        return [None] * len(_LATENCY)
    return [getattr(lat, key) for key, _ in _LATENCY]


def case_table(runs: Sequence[tuple[str, Run]]) -> Tabular:
    """One row per case and one per request class of a case with several classes.

    ``runs`` are ``(label, run)``; a ``run`` column is added when there are
    several. Columns: the case's identity (workload, impl, loop, class, each
    parameter), status, throughput with its 95% CI, permits/s, latency
    percentiles in µs, Jain's index, overtakes, starved tasks, completed
    requests (class rows), each workload metric, the violated invariants and
    the notes. A class row leaves the throughput columns empty (throughput is
    measured per case).
    """
    cases = [c for _, run in runs for c in run.cases]
    params = _param_keys(cases)
    extras = _extra_keys(cases)
    columns: list[Column] = []
    if len(runs) > 1:
        columns.append(Column("run", "run"))
    columns += [Column("workload", "workload"), Column("impl", "impl"), Column("loop", "loop"),
                Column("class", "class")]
    columns += [Column(key, key, kind="number") for key in params]
    columns += [
        Column("status", "status"),
        Column("unit", "unit"),
        Column("throughput_per_s", "throughput", "/s", "number"),
        Column("throughput_ci95_per_s", "±95%", "/s", "number"),
        Column("permits_per_s", "permits", "/s", "number"),
        *(Column(f"{key}_us", title, "µs", "number") for key, title in _LATENCY),
        Column("jain", "Jain", kind="ratio"),
        Column("overtakes", "overtakes", kind="int"),
        Column("max_overtakes", "max overtakes", kind="int"),
        Column("starved_tasks", "starved tasks", kind="int"),
        Column("completed", "completed", kind="int"),
        *(Column(key, key, kind="number") for key in extras),
        Column("failed_invariants", "failed invariants"),
        Column("notes", "notes"),
    ]
    table = Tabular(columns)
    for label, run in runs:
        for case in run.cases:
            ident: list[Value] = [label] if len(runs) > 1 else []
            ident += [case.workload, case.impl, case.loop]
            values: list[Value] = [case.params.get(key) for key in params]
            failed = ",".join(k for k, ok in case.invariants.items() if not ok)
            notes = "; ".join([*case.notes, *([case.reason] if case.reason else [])])
            s = case.summary
            if s is None:
                table.rows.append([*ident, "", *values, case.status, case.unit,
                                   *[None] * (12 + len(extras)), failed, notes])
                continue
            fair = s.fairness
            table.rows.append([
                *ident, "", *values, case.status, case.unit,
                s.throughput_ops.mean, s.throughput_ops.ci95, s.throughput_permits.mean,
                *_latency(s.latency_us),
                fair.jain, fair.overtakes, fair.max_overtakes, fair.starved_tasks, None,
                *[s.extra[key].mean if key in s.extra else None for key in extras],
                failed, notes,
            ])
            if len(s.classes) < 2:
                continue
            for name, cs in s.classes.items():
                cf = cs.fairness
                table.rows.append([
                    *ident, name, *values, case.status, case.unit, None, None, None,
                    *_latency(cs.latency_us),
                    cf.jain, cf.overtakes, cf.max_overtakes, cf.starved_tasks, cs.completed,
                    *[None] * len(extras), "", "",
                ])
    return table


def comparison_table(cmp: Comparison) -> Tabular:
    """One row per case and metric, as ``compare`` prints it: the baseline's value, then
    for every other run its value, relative change, adjusted p-value, verdict and the
    smallest change the data could have detected (``mde_ratio``).

    Values are in the metric's unit (``unit`` column: ``/s``, ``µs`` or empty);
    ``gates`` says whether the row is one ``--fail-on-regression`` acts on
    (Holm-adjusted) or informational (Benjamini-Hochberg).
    """
    units = {"throughput": "/s", "p50": "µs", "p99": "µs", "p99.9": "µs", "max": "µs"}
    columns = [Column("case", "case"), Column("metric", "metric"), Column("gates", "gates"),
               Column("unit", "unit"),
               Column(f"{_slug(cmp.labels[0])}_value", f"{cmp.labels[0]} (baseline)",
                      kind="number")]
    for label in cmp.labels[1:]:
        slug = _slug(label)
        columns += [Column(f"{slug}_value", label, kind="number"),
                    Column(f"{slug}_change_ratio", "change", kind="percent"),
                    Column(f"{slug}_p_adjusted", "p (adjusted)", kind="ratio"),
                    Column(f"{slug}_verdict", "verdict"),
                    Column(f"{slug}_mde_ratio", "MDE", kind="percent")]
    table = Tabular(columns)
    for row in cmp.rows:
        values: list[Value] = [row.case, row.metric, "yes" if row.primary else "no",
                               units.get(row.metric, "")]
        for i, cell in enumerate(row.cells):
            values.append(cell.value)
            if i:
                p = cell.p_value if cell.p_adjusted is None else cell.p_adjusted
                verdict: str = cell.verdict
                if verdict in ("improved", "regressed") and not cell.tested:
                    verdict += "?"
                values += [cell.change, p, verdict, cell.detectable]
        table.rows.append(values)
    return table


def _slug(label: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in label).strip("_") or "run"


class SweepPoint(NamedTuple):
    """One case of a sweep: the swept value, throughput (mean, 95% CI) and p99 (µs)."""

    value: float
    throughput: float
    ci95: float
    p99_us: float | None


def sweep_name(run: Run) -> str | None:
    """The parameter a run swept (``settings.sweep.name``), or None; a malformed
    entry (settings are free-form JSON from a file) counts as no sweep.
    """
    sweep = run.settings.get("sweep")
    name = sweep.get("name") if isinstance(sweep, dict) else None
    return name if isinstance(name, str) and name else None


def sweep_points(cases: Iterable[Case], name: str) -> dict[str, dict[str, list[SweepPoint]]]:
    """The scalability curves of a sweep over ``name``.

    ``{workload: {"impl · loop": [SweepPoint, ...]}}``, each curve sorted by
    the swept value; cases that did not run, or whose value is not a number,
    are left out.
    """
    out: dict[str, dict[str, list[SweepPoint]]] = {}
    for case in cases:
        s = case.summary
        value = case.params.get(name)
        if s is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        curve = out.setdefault(case.workload, {}).setdefault(f"{case.impl} · {case.loop}", [])
        p99 = None if s.latency_us is None else s.latency_us.p99
        curve.append(SweepPoint(float(value), s.throughput_ops.mean, s.throughput_ops.ci95, p99))
    for curves in out.values():
        for points in curves.values():
            points.sort()
    return out
