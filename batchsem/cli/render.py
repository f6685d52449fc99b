"""Rich renderables for runs: values built here, printed by the commands.

Nothing here measures; everything reads the typed result records
(:mod:`batchsem.bench.schema`). Strings from files go into ``Text`` values,
never into markup.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from batchsem.bench.schema import Case, Latency, Run, Stat, Summary
from batchsem.report.tabular import sweep_points, varying_params

__all__ = [
    "Column",
    "busy_warning",
    "environment_table",
    "fitted_table",
    "fmt_rate",
    "fmt_us",
    "histogram_panel",
    "noise_warning",
    "speed_warning",
    "starve_findings",
    "starve_table",
    "sweep_tables",
    "workload_tables",
]


def fmt_rate(value: float | None) -> str:
    """1234567 -> '1.23M'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def fmt_us(value: float | None) -> str:
    """Microseconds with a unit that keeps 3 significant digits."""
    if value is None:
        return "-"
    if value >= 1e6:
        return f"{value / 1e6:.3g} s"
    if value >= 1e3:
        return f"{value / 1e3:.3g} ms"
    return f"{value:.3g} µs"


def _latency_cells(lat: Latency | None) -> list[str]:
    """The p50, p99, p99.9 and max columns of a latency summary (``-`` where missing)."""
    if lat is None:
        return ["-"] * 4
    return [fmt_us(v) for v in (lat.p50, lat.p99, lat.p99_9, lat.max)]


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _status(case: Case) -> Text:
    if case.status == "ok":
        return Text("ok", style="green")
    if case.status == "unsupported":
        return Text("unsupported", style="dim")
    broken = [k for k, ok in case.invariants.items() if not ok]
    if not broken:  # failed before any repeat finished, or the limiter raised
        broken = ["no repeat finished"] if not case.repeats else ["errors"]
    return Text("FAILED: " + ", ".join(broken), style="bold red")


def _extra_text(summary: Summary) -> str:
    parts = []
    for key, stats in summary.extra.items():
        if key in ("arrivals",):
            continue
        mean = stats.mean
        if key.endswith("_us"):
            parts.append(f"{key[:-3]} {fmt_us(mean)}")
        elif key.endswith("_ns_per_waiter") or key.endswith("_per_waiter_ns"):
            parts.append(f"{key.replace('_ns', '')} {fmt_us(mean / 1e3)}")
        else:
            parts.append(f"{key} {_num(mean, 1)}")
    return "; ".join(parts)


# ---------------------------------------------------------------------------
# tables that stay whole at any width


@dataclass(frozen=True)
class Column:
    """A column of a :func:`fitted_table`.

    ``keep``: lower is dropped first when the table does not fit (0 = never);
    ``wrap``: text that may fold over lines (numbers and verdicts never do).
    """

    header: str
    justify: str = "left"
    keep: int = 0
    wrap: bool = False


_WRAP_MIN = 16


def fitted_table(
    columns: list[Column], rows: list[list[Any]], width: int, *, title: str | None = None,
    caption: str | None = None, sections: set[int] | None = None,
) -> Table:
    """A table that fits ``width`` cells: droppable columns go first (lowest ``keep``),
    wrapping columns fold, and no number or verdict is ever cut.

    The caption names the dropped columns. ``sections``: row indexes that end a section.
    """

    def need(i: int) -> int:
        cells = [columns[i].header] + [r[i] for r in rows]
        widest = max(max(Text(line).cell_len for line in c.split("\n")) if isinstance(c, str)
                     else c.cell_len for c in cells)
        return min(widest, _WRAP_MIN) if columns[i].wrap else widest

    shown = list(range(len(columns)))
    # edges and padding: "│ " + " │ " between + " │"
    while sum(need(i) for i in shown) + 3 * len(shown) + 1 > width:
        droppable = [i for i in shown if columns[i].keep > 0]
        if not droppable:
            break
        shown.remove(min(droppable, key=lambda i: (columns[i].keep, -i)))
    dropped = [columns[i].header for i in range(len(columns)) if i not in shown]
    table = Table(title=None if title is None else Text(title, style="bold"),
                  title_justify="left", header_style="bold")
    for i in shown:
        col = columns[i]
        table.add_column(Text(col.header), justify=col.justify,  # type: ignore[arg-type]
                         no_wrap=not col.wrap, overflow="fold",
                         min_width=None if col.wrap else need(i))
    for k, r in enumerate(rows):
        table.add_row(*[r[i] for i in shown], end_section=bool(sections and k in sections))
    notes = [caption] if caption else []
    if dropped:
        notes.append(f"(narrow terminal: not shown: {', '.join(dropped)}; widen it or set "
                     "COLUMNS)")
    if notes:
        table.caption = Text("\n".join(notes), style="dim")
        table.caption_justify = "left"
    return table


# ---------------------------------------------------------------------------
# bench tables


def workload_tables(cases: Iterable[Case], width: int = 150) -> Group:
    """One table per workload: rows impl x loop (+ per-class rows), as ``bench`` prints them."""
    by_workload: dict[str, list[Case]] = {}
    for case in cases:
        by_workload.setdefault(case.workload, []).append(case)
    tables = [_table(name, group, width) for name, group in by_workload.items()]
    return Group(*tables)


def rate_cell(stat: Stat, *, winner: bool = False) -> Text:
    """``1.23M ±4%``; single or partial measurements say so instead of a made-up ``±0%``."""
    rate = Text(fmt_rate(stat.mean), style="bold green" if winner else "")
    rel = stat.relative_ci
    if rel is None:
        rate.append(" (1 repeat)" if stat.n < 2 else "", style="yellow")
    else:
        rate.append(f" ±{rel:.0%}", style="yellow" if rel > NOISY else "dim")
    return rate


#: A case whose 95% interval is wider than this (relative) gets a warning.
NOISY = 0.10


def noisy_cases(cases: Iterable[Case]) -> list[Case]:
    """Cases whose throughput interval is wider than :data:`NOISY`, or unknown (1 repeat)."""
    out = []
    for c in cases:
        if c.summary is None or c.impl == "null":
            continue
        rel = c.summary.throughput_ops.relative_ci
        if rel is None or rel > NOISY:
            out.append(c)
    return out


def _winners(ran: list[Case]) -> set[int]:
    """Per loop, the fastest non-null case, only if its interval clears every other's."""
    out: set[int] = set()
    loops_seen = {c.loop for c in ran}
    for loop in loops_seen:
        group = [c for c in ran if c.loop == loop and c.impl != "null" and c.summary]
        if len(group) < 2:
            continue
        stats = [c.summary.throughput_ops for c in group if c.summary]
        best = max(range(len(group)), key=lambda i: stats[i].mean)
        b = stats[best]
        if b.n < 2:
            continue
        if all(b.mean - b.ci95 > s.mean + s.ci95 for i, s in enumerate(stats) if i != best):
            out.add(id(group[best]))
    return out


def _table(workload: str, cases: list[Case], width: int) -> Table:
    ran = [c for c in cases if c.summary is not None]
    has_extra = any(c.summary.extra for c in ran if c.summary)
    unit = next((c.unit for c in cases if c.unit), "acq/s")
    varying = varying_params(cases)
    columns = [
        Column("impl", wrap=True), Column("loop"),
        *(Column(key, "right") for key in varying), Column(f"{unit} ±95%", "right", wrap=True),
        Column("permits/s", "right", keep=1), Column("p50", "right", keep=4),
        Column("p99", "right", keep=5), Column("p99.9", "right", keep=2),
        Column("max", "right", keep=3), Column("Jain", "right", keep=3),
        Column("overtakes", "right", keep=4),
    ]
    if has_extra:
        columns.append(Column("workload metrics", keep=1, wrap=True))
    columns.append(Column("invariants", wrap=True))
    winners = _winners(ran)
    ceiling: dict[str, float] = {}
    for c in ran:
        if c.impl == "null" and c.summary:
            ceiling[c.loop] = c.summary.throughput_ops.mean
    rows: list[list[Any]] = []
    for c in cases:
        s = c.summary
        impl = Text(c.impl)
        if c.partial:
            impl.append(" (partial)", style="yellow")
        shown = [Text(str(c.params.get(key, "-"))) for key in varying]
        if s is None:
            rows.append([impl, Text(c.loop), *shown,
                         *["-"] * (len(columns) - 3 - len(varying)), _status(c)])
            continue
        tput = s.throughput_ops
        rate = rate_cell(tput, winner=id(c) in winners)
        if c.impl != "null" and ceiling.get(c.loop, 0) > 0:
            rate.append(f" ({tput.mean / ceiling[c.loop]:.0%} of null)", style="dim")
        fair = s.fairness
        overt = Text(str(fair.overtakes))
        if fair.overtakes:
            overt.stylize("bold red" if "fifo_order" in c.invariants else "yellow")
        row: list[Any] = [impl, Text(c.loop), *shown, rate, fmt_rate(s.throughput_permits.mean),
                          *_latency_cells(s.latency_us), _num(fair.jain), overt]
        if has_extra:
            row.append(Text(_extra_text(s)))
        row.append(_status(c))
        rows.append(row)
        if len(s.classes) > 1:
            for name, cs in s.classes.items():
                cf = cs.fairness
                sub_overt = Text(f"{cf.overtakes} (max {cf.max_overtakes})")
                if cf.max_overtakes:
                    sub_overt.stylize("yellow")
                starved = cf.starved_tasks
                sub: list[Any] = [
                    Text(f"└ {name}", style="dim"), "", *[""] * len(varying),
                    Text(f"{cs.completed} done", style="dim"),
                    "", *_latency_cells(cs.latency_us), _num(cf.jain), sub_overt,
                ]
                if has_extra:
                    sub.append("")
                sub.append(Text(f"{starved} starved", style="red") if starved else "")
                rows.append(sub)
    notes = sorted({n for c in cases for n in c.notes})
    return fitted_table(columns, rows, width, title=workload,
                        caption="\n".join(notes) if notes else None)


def sweep_tables(cases: Iterable[Case], name: str, width: int = 150) -> Group:
    """Per workload, the scalability curve of a sweep over ``name``: one row per value,
    a column per implementation and loop with its throughput and p99.
    """
    cases = list(cases)
    tables = []
    for workload, curves in sweep_points(cases, name).items():
        unit = next((c.unit for c in cases if c.workload == workload), "acq/s")
        columns = [Column(name, "right")]
        columns += [Column(f"{series}\n{unit} · p99", "right", wrap=True) for series in curves]
        values = sorted({p.value for points in curves.values() for p in points})
        by_value = {series: {p.value: p for p in points} for series, points in curves.items()}
        rows: list[list[Any]] = []
        for value in values:
            row: list[Any] = [f"{value:g}"]
            for series in curves:
                point = by_value[series].get(value)
                row.append("-" if point is None
                           else f"{fmt_rate(point.throughput)} · {fmt_us(point.p99_us)}")
            rows.append(row)
        title = f"{workload}: throughput and p99 against {name}"
        table = fitted_table(columns, rows, width, title=title)
        table.min_width = min(width, len(title))  # a narrow table would fold its title
        tables.append(table)
    return Group(*tables)


def stolen_share(case: Case) -> float | None:
    """The share of a case's timed windows in which other processes had its CPU."""
    width = stolen = 0.0
    for r in case.repeats:
        if r.windows is not None and r.windows.stolen_s:
            width += r.windows.width_s * len(r.windows.stolen_s)
            stolen += sum(r.windows.stolen_s)
    return stolen / width if width > 0 else None


#: Above this share of stolen CPU time a run is flagged as measured on a busy machine.
BUSY = 0.10


def busy_warning(cases: Iterable[Case]) -> Text | None:
    """A warning when other processes took a noticeable share of the CPU during the run."""
    shares = [s for s in (stolen_share(c) for c in cases) if s is not None]
    if not shares or max(shares) <= BUSY:
        return None
    return Text(
        f"busy machine: other processes took up to {max(shares):.0%} of the CPU during the "
        "timed windows; throughput leaves that time out, latency cannot (waits include it)",
        style="yellow",
    )


#: Above this ratio between the slowest and fastest repeats' probe times, a run is
#: flagged as measured on a machine whose speed changed.
UNSTEADY = 1.2


def speed_range(cases: Iterable[Case]) -> tuple[float, float] | None:
    """The fastest and slowest repeat's speed probe time (µs; each repeat's median over
    its windows), or None if no repeat carries the probe."""
    medians: list[float] = []
    for case in cases:
        for r in case.repeats:
            if r.windows is not None and r.windows.probe_us:
                probes = sorted(r.windows.probe_us)
                medians.append(probes[len(probes) // 2])
    if not medians:
        return None
    return min(medians), max(medians)


def speed_warning(cases: Iterable[Case]) -> Text | None:
    """A warning when the machine's speed changed during the run (the speed probe)."""
    found = speed_range(cases)
    if found is None or not found[0] > 0 or found[1] / found[0] <= UNSTEADY:
        return None
    fast, slow = found
    return Text(
        f"unsteady machine: its speed changed by up to {slow / fast:.1f}x during the run (the "
        f"speed probe took {fast:.3g}-{slow:.3g} µs); throughput intervals include that, and "
        "compare's gate (tput/probe) takes it out",
        style="yellow",
    )


def noise_warning(cases: Iterable[Case]) -> Text | None:
    """The warning (with the fix) for cases whose interval is too wide to trust."""
    noisy = noisy_cases(cases)
    if not noisy:
        return None
    names = ", ".join(sorted({f"{c.workload}/{c.impl}/{c.loop}" for c in noisy})[:4])
    more = "" if len(noisy) <= 4 else f" and {len(noisy) - 4} more"
    return Text(
        f"noisy: {len(noisy)} case(s) have a 95% interval wider than ±{NOISY:.0%} or only "
        f"one repeat ({names}{more}); rerun with more --repeat or a longer --duration, "
        "on a quieter machine",
        style="yellow",
    )


def starve_table(cases: Iterable[Case], width: int = 150) -> Table:
    """``starve-test``'s verdict per implementation and loop."""
    columns = [
        Column("impl", wrap=True), Column("loop"), Column("verdict"),
        Column("large done", "right", keep=2), Column("small done", "right", keep=1),
        Column("wait p50", "right", keep=2), Column("p99", "right", keep=3),
        Column("longest", "right"), Column("max overtaken", "right", keep=4),
    ]
    rows: list[list[Any]] = []
    for case in cases:
        v = case.verdict
        if v is None:
            rows.append([Text(case.impl), Text(case.loop), _status(case),
                         *["-"] * (len(columns) - 3)])
            continue
        word = Text("STARVES", style="bold red") if v.starved else Text("ok", style="green")
        rows.append([
            Text(case.impl), Text(case.loop), word, str(v.large_completed),
            str(v.small_completed), fmt_us(v.wait_p50_us), fmt_us(v.wait_p99_us),
            fmt_us(v.longest_wait_s * 1e6), str(v.max_overtakes),
        ])
    return fitted_table(columns, rows, width)


def starve_findings(cases: Iterable[Case]) -> list[Text]:
    """One line per case that starves its large requests, with the reasons."""
    out = []
    for case in cases:
        v = case.verdict
        if v is not None and v.starved:
            line = Text(f"{case.impl} on {case.loop} STARVES large requests:", style="bold red")
            line.append(" " + "; ".join(v.reasons))
            out.append(line)
    return out


def environment_table(run: Run) -> Table:
    """Key facts of a run: when, what command, where."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("created", Text(run.created))
    table.add_row("command", Text(" ".join(run.command)))
    env = run.environment
    for key in ("python", "implementation", "python_build", "platform", "cpu_model",
                "cpu_count", "governor", "loadavg", "batchsem", "git_commit", "uvloop",
                "aiologic"):
        value = getattr(env, key)
        if value is not None and value != "":
            text = " ".join(map(str, value)) if isinstance(value, list) else str(value)
            table.add_row(key, Text(text))
    if run.interrupted:
        table.add_row("note", Text("interrupted: only the cases that finished", style="yellow"))
    return table


def histogram_panel(
    title: str, buckets: list[tuple[float, float, int]], width: int = 40
) -> Table:
    """A latency histogram as horizontal bars on log-spaced buckets."""
    table = Table(title=Text(title), title_justify="left", box=None, show_header=True,
                  header_style="dim")
    table.add_column("latency", justify="right")
    table.add_column("count", justify="right")
    table.add_column("")
    peak = max((c for _, _, c in buckets), default=0)
    for lo, hi, count in buckets:
        if peak == 0:
            bar = ""
        else:
            cells = count / peak * width
            bar = "█" * int(cells) + ("▌" if cells - int(cells) >= 0.5 else "")
            if count and not bar:
                bar = "▏"
        table.add_row(f"{fmt_us(lo)} – {fmt_us(hi)}", str(count), Text(bar, style="cyan"))
    return table
