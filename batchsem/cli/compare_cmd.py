"""``batchsem compare``: did a change make things faster or fairer, and is the difference real?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from batchsem.bench import results
from batchsem.bench.compare import Cell, Comparison, compare_runs, compare_within

from .common import console, fail, stderr_console
from .exports import Exports, export_options
from .render import fmt_rate, fmt_us

_STYLE = {"improved": "bold green", "regressed": "bold red", "no change": "dim"}
_RATE_METRICS = {"throughput"}
_TIME_METRICS = {"p50", "p99", "p99.9", "max"}


def _expand(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.json") if not p.name.startswith("."))
            if not found:
                fail(f"{path}: no result files (*.json) in this directory")
            files.extend(found)
        else:
            files.append(path)
    return files


def _fmt_value(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric in _RATE_METRICS:
        return fmt_rate(value)
    if metric in _TIME_METRICS:
        return fmt_us(value)
    if metric == "jain":
        return f"{value:.3f}"
    return f"{value:g}"


def _cell_text(metric: str, cell: Cell) -> tuple[str, str]:
    """(value and change, verdict) as plain text."""
    value = _fmt_value(metric, cell.value)
    if cell.verdict == "baseline":
        return value, ""
    change = "" if cell.change is None else f" ({cell.change:+.1%})"
    verdict = cell.verdict
    if verdict in ("improved", "regressed") and not cell.tested:
        verdict += "?"  # past the threshold, but too few repeats to test it
    p = cell.p_value if cell.p_adjusted is None else cell.p_adjusted
    if p is not None and verdict != "n/a":
        verdict += f" p={p:.2g}"
    return value + change, verdict


def _table(cmp: Comparison) -> Table:
    table = Table(header_style="bold")
    table.add_column("case")
    table.add_column("metric")
    for i, label in enumerate(cmp.labels):
        table.add_column(label + (" (baseline)" if i == 0 else ""), justify="right")
        if i:
            table.add_column("verdict")
    last = None
    for row in cmp.rows:
        cells: list[Any] = [row.case if row.case != last else "", row.metric]
        last = row.case
        for i, cell in enumerate(row.cells):
            value, verdict = _cell_text(row.metric, cell)
            cells.append(value)
            if i:
                cells.append(Text(verdict, style=_STYLE.get(cell.verdict, "")))
        table.add_row(*cells, end_section=row.metric == "overtakes")
    return table


def _markdown(cmp: Comparison) -> str:
    head = ["case", "metric"]
    for i, label in enumerate(cmp.labels):
        head.append(f"{label} (baseline)" if i == 0 else label)
        if i:
            head.append("verdict")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in cmp.rows:
        cells = [row.case, row.metric]
        for i, cell in enumerate(row.cells):
            value, verdict = _cell_text(row.metric, cell)
            cells.append(value)
            if i:
                cells.append(f"**{verdict}**" if cell.verdict in ("improved", "regressed")
                             else verdict)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pyperf(files: list[Path], threshold: float, fmt: str, fail_on_regression: bool) -> None:
    from batchsem.bench.pyperf_compare import compare_pyperf

    try:
        rows = compare_pyperf(files[0], files[1:], threshold)
    except ValueError as exc:
        fail(str(exc))
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
    else:
        table = Table(header_style="bold")
        for col in ("benchmark", "baseline", "new", "change", "verdict"):
            table.add_column(col)
        for r in rows:
            change = "" if r.get("change") is None else f"{r['change']:+.1%}"
            base = "-" if r.get("base_mean") is None else f"{r['base_mean'] * 1e9:.1f} ns"
            new = "-" if r.get("new_mean") is None else f"{r['new_mean'] * 1e9:.1f} ns"
            # Text(): names like "async-with[batchsem,uvloop]" are not rich markup.
            table.add_row(Text(r["name"]), base, new, change, r["verdict"])
        console().print(table)
    if fail_on_regression and any(r["verdict"] == "slower" for r in rows):
        raise SystemExit(1)


@click.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--threshold", type=float, default=0.05, show_default=True,
              help="smallest relative change that counts")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json"]),
              default="table", show_default=True)
@click.option("--by", type=click.Choice(["impl", "loop"]), default=None,
              help="compare the cases of ONE run against each other")
@click.option("--fail-on-regression", is_flag=True, help="exit 1 if any regression is found")
@export_options
def compare(
    runs: tuple[str, ...],
    threshold: float,
    fmt: str,
    by: str | None,
    fail_on_regression: bool,
    export_csv: str | None,
    export_markdown: str | None,
) -> None:
    """Compare RUNS (result files or directories; the first is the baseline).

    A change counts only if it is outside --threshold and statistically real
    given the repeats: Welch's t-test, p < 0.05 after Holm's adjustment over
    every test of the comparison (the p shown is the adjusted one). '?' marks
    a change that could not be tested (a single repeat).
    """
    if not threshold >= 0:  # also rejects nan, which would make every verdict meaningless
        fail(f"--threshold must be >= 0, got {threshold}")
    files = _expand(runs)
    exports = Exports(export_csv, export_markdown)
    from batchsem.bench.pyperf_compare import is_pyperf_file

    pyperf_files = [is_pyperf_file(f) for f in files]
    if any(pyperf_files):
        if not all(pyperf_files):
            fail("cannot compare pyperf files with batchsem result files")
        if len(files) < 2:
            fail("compare needs a baseline and at least one other pyperf file")
        if exports.csv or exports.markdown:
            fail("--export-csv/--export-markdown apply to batchsem result files, not pyperf's")
        _pyperf(files, threshold, fmt, fail_on_regression)
        return
    try:
        loaded = [results.load(f) for f in files]
    except results.ResultError as exc:
        fail(str(exc))
    labels = [f.stem for f in files]
    try:
        if by is not None:
            if len(loaded) != 1:
                fail("--by compares the cases of one run: give exactly one file")
            cmp = compare_within(loaded[0], by, threshold)
        else:
            if len(loaded) < 2:
                fail("compare needs a baseline and at least one other run (or --by impl|loop)")
            cmp = compare_runs(labels, loaded, threshold)
    except ValueError as exc:
        fail(str(exc))
    if fmt == "json":
        click.echo(json.dumps(cmp.as_json(), indent=1))
    elif fmt == "markdown":
        click.echo(_markdown(cmp))
        for run, case in cmp.unmatched:
            click.echo(f"\n- only in {run}: {case}")
    else:
        out = console()
        out.print(_table(cmp))
        for run, case in cmp.unmatched:
            out.print(f"[yellow]only in {run}:[/yellow] {case}")
        out.print(
            f"{cmp.regressions} regressed, {cmp.improvements} improved "
            f"(threshold {threshold:.0%}, Welch p < 0.05 Holm-adjusted over {cmp.tests} tests)"
        )
    from batchsem.report.tabular import comparison_table

    for path in exports.write(lambda: comparison_table(cmp)):
        stderr_console().print(Text(f"wrote {path}", style="dim"))
    if fail_on_regression and cmp.regressions:
        raise SystemExit(1)
