"""Rich renderables for runs: values built here, printed by the commands.

Nothing here measures; everything reads the result-file dicts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from batchsem.report.tabular import varying_params

__all__ = [
    "environment_table",
    "fmt_rate",
    "fmt_us",
    "histogram_panel",
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


def _latency_cells(lat: dict[str, Any]) -> list[str]:
    """The p50, p99, p99.9 and max columns of a latency summary (``-`` where missing)."""
    return [fmt_us(lat.get(key)) for key in ("p50", "p99", "p99_9", "max")]


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _status(case: dict[str, Any]) -> Text:
    status = case["status"]
    if status == "ok":
        return Text("ok", style="green")
    if status == "unsupported":
        return Text("unsupported", style="dim")
    broken = [k for k, ok in case.get("invariants", {}).items() if not ok]
    return Text("FAILED: " + ", ".join(broken), style="bold red")


def _extra_text(summary: dict[str, Any]) -> str:
    parts = []
    for key, stats in summary.get("extra", {}).items():
        if key in ("arrivals",):
            continue
        mean = stats.get("mean")
        if key.endswith("_us"):
            parts.append(f"{key[:-3]} {fmt_us(mean)}")
        elif key.endswith("_ns_per_waiter") or key.endswith("_per_waiter_ns"):
            parts.append(f"{key.replace('_ns', '')} {fmt_us(mean / 1e3)}")
        else:
            parts.append(f"{key} {_num(mean, 1)}")
    return "; ".join(parts)


def workload_tables(cases: Iterable[dict[str, Any]]) -> Group:
    """One table per workload: rows impl x loop (+ per-class rows), as ``bench`` prints them."""
    by_workload: dict[str, list[dict[str, Any]]] = {}
    for case in cases:
        by_workload.setdefault(case["workload"], []).append(case)
    tables = [_table(name, group) for name, group in by_workload.items()]
    return Group(*tables)


def _table(workload: str, cases: list[dict[str, Any]]) -> Table:
    ran = [c for c in cases if c.get("summary")]
    has_extra = any(c["summary"].get("extra") for c in ran)
    varying = varying_params(cases)
    table = Table(title=f"[bold]{workload}[/bold]", title_justify="left", header_style="bold")
    table.add_column("impl")
    table.add_column("loop")
    for key in varying:
        table.add_column(key, justify="right")
    unit = next((c["unit"] for c in cases if c.get("unit")), "acq/s")
    table.add_column(f"{unit} ±95%", justify="right")
    table.add_column("permits/s", justify="right")
    for col in ("p50", "p99", "p99.9", "max"):
        table.add_column(col, justify="right")
    table.add_column("Jain", justify="right")
    table.add_column("overtakes", justify="right")
    if has_extra:
        table.add_column("workload metrics")
    table.add_column("invariants")

    best: dict[str, float] = {}
    ceiling: dict[str, float] = {}
    for c in ran:
        mean = c["summary"]["throughput_ops"]["mean"]
        if c["impl"] == "null":
            ceiling[c["loop"]] = mean
        else:
            best[c["loop"]] = max(best.get(c["loop"], 0.0), mean)

    for c in cases:
        s = c.get("summary")
        shown = [Text(str(c.get("params", {}).get(key, "-"))) for key in varying]
        if not s:
            table.add_row(c["impl"], c["loop"], *shown, *["-"] * (8 + int(has_extra)),
                          _status(c))
            continue
        tput = s["throughput_ops"]
        lat = s["latency_us"] or {}
        fair = s["fairness"]
        rate = Text(fmt_rate(tput["mean"]))
        is_best = tput["mean"] == best.get(c["loop"]) and len(ran) > 1
        if c["impl"] != "null" and is_best:
            rate.stylize("bold green")
        if tput["mean"]:
            rate.append(f" ±{tput['ci95'] / tput['mean']:.0%}", style="dim")
        if c["impl"] != "null" and c["loop"] in ceiling and ceiling[c["loop"]] > 0:
            rate.append(f" ({tput['mean'] / ceiling[c['loop']]:.0%} of null)", style="dim")
        overt = Text(str(fair["overtakes"]))
        if fair["overtakes"]:
            fifo_promised = "fifo_order" in c.get("invariants", {})
            overt.stylize("bold red" if fifo_promised else "yellow")
        row: list[Any] = [
            c["impl"],
            c["loop"],
            *shown,
            rate,
            fmt_rate(s["throughput_permits"]["mean"]),
            *_latency_cells(lat),
            _num(fair["jain"]),
            overt,
        ]
        if has_extra:
            row.append(_extra_text(s))
        row.append(_status(c))
        table.add_row(*row)
        classes = s.get("classes", {})
        if len(classes) > 1:
            for name, cs in classes.items():
                clat = cs.get("latency_us") or {}
                cf = cs["fairness"]
                sub_overt = Text(f"{cf['overtakes']} (max {cf['max_overtakes']})")
                if cf["max_overtakes"]:
                    sub_overt.stylize("yellow")
                sub: list[Any] = [
                    Text(f"  └ {name}", style="dim"),
                    "",
                    *[""] * len(varying),
                    Text(f"{cs['completed']} done", style="dim"),
                    "",
                    *_latency_cells(clat),
                    _num(cf["jain"]),
                    sub_overt,
                ]
                if has_extra:
                    sub.append("")
                starved = cf.get("starved_tasks") or 0
                sub.append(Text(f"{starved} starved", style="red") if starved else "")
                table.add_row(*sub, style="dim")
    notes = sorted({n for c in cases for n in c.get("notes", [])})
    if notes:
        table.caption = "\n".join(notes)
        table.caption_justify = "left"
    return table


def sweep_tables(cases: Iterable[dict[str, Any]], name: str) -> Group:
    """Per workload, the scalability curve of a sweep over ``name``: one row per value,
    throughput and p99 for each implementation and loop side by side.
    """
    from batchsem.report.tabular import sweep_points

    tables = []
    for workload, curves in sweep_points(cases, name).items():
        title = f"{workload}: throughput and p99 against {name}"
        table = Table(title=Text(title, style="bold"), title_justify="left",
                      header_style="bold", min_width=len(title))
        table.add_column(name, justify="right")
        values = sorted({v for points in curves.values() for v, *_ in points})
        by_value: dict[str, dict[float, tuple[float, float, float, float | None]]] = {
            series: {p[0]: p for p in points} for series, points in curves.items()
        }
        for series in curves:
            table.add_column(Text(f"{series}\nthroughput"), justify="right")
            table.add_column(Text("p99"), justify="right")
        for value in values:
            row: list[Any] = [f"{value:g}"]
            for series in curves:
                point = by_value[series].get(value)
                if point is None:
                    row += ["-", "-"]
                else:
                    row += [fmt_rate(point[1]), fmt_us(point[3])]
            table.add_row(*row)
        tables.append(table)
    return Group(*tables)


def environment_table(run: dict[str, Any]) -> Table:
    """Key facts of a run: when, what command, where."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("created", Text(str(run.get("created"))))
    table.add_row("command", Text(" ".join(run.get("command", []))))
    env = run.get("environment", {})
    for key in ("python", "implementation", "platform", "cpu_count", "batchsem", "uvloop",
                "aiologic"):
        if key in env:
            table.add_row(key, Text(str(env[key])))
    if run.get("interrupted"):
        table.add_row("note", Text("interrupted: only the cases that finished", style="yellow"))
    return table


def histogram_panel(
    title: str, buckets: list[tuple[float, float, int]], width: int = 40
) -> Table:
    """A latency histogram as horizontal bars on log-spaced buckets."""
    table = Table(title=title, title_justify="left", box=None, show_header=True,
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
