"""``batchsem compare``: did a change make things faster or fairer, and is the difference real?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from batchsem.bench import results
from batchsem.bench.compare import (
    ADJUSTED,
    RELATIVE,
    Cell,
    Comparison,
    Row,
    compare_runs,
    compare_within,
)
from batchsem.bench.schema import Run, clean_text
from batchsem.bench.verdict import parse_threshold

from .common import console, fail, stderr_console
from .exports import Exports, export_options
from .helptext import examples
from .render import Column, fitted_table, fmt_rate, fmt_us

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
    if metric == RELATIVE:
        return f"{value:.1%}"
    if metric == ADJUSTED:
        return f"{value:.3g}"
    if metric in _RATE_METRICS:
        return fmt_rate(value)
    if metric in _TIME_METRICS:
        return fmt_us(value)
    if metric == "jain":
        return f"{value:.3f}"
    return f"{value:g}"


def _cell_text(metric: str, cell: Cell, threshold: float) -> tuple[str, str]:
    """(value and change, verdict) as plain text."""
    value = _fmt_value(metric, cell.value)
    if cell.verdict == "baseline":
        return value, ""
    change = "" if cell.change is None else f" ({cell.change:+.1%})"
    verdict: str = cell.verdict
    if verdict in ("improved", "regressed") and not cell.tested:
        verdict += "?"  # past the threshold, but too few samples to test it
    p = cell.p_value if cell.p_adjusted is None else cell.p_adjusted
    if p is not None and verdict != "n/a":
        verdict += f" p={p:.2g}"
    if cell.verdict == "no change" and cell.agree is False and p is not None and p < 0.05 \
            and cell.change is not None and abs(cell.change) > threshold:
        verdict += " (not in most rounds)"
    elif cell.verdict == "no change" and cell.detectable is not None:
        verdict += f" (MDE {cell.detectable:.0%})"
    return value + change, verdict


def _visible(cmp: Comparison, changed: bool) -> list[Row]:
    if not changed:
        return cmp.rows
    return [r for r in cmp.rows if any(c.verdict in ("improved", "regressed") for c in r.cells)]


def _table(cmp: Comparison, rows: list[Row], width: int) -> Table:
    columns = [Column("case", wrap=True), Column("metric")]
    for i, label in enumerate(cmp.labels):
        columns.append(Column(label + (" (baseline)" if i == 0 else ""), "right",
                              keep=1 if i == 0 and len(cmp.labels) > 2 else 0, wrap=True))
        if i:
            columns.append(Column("verdict", wrap=True))
    out: list[list[Any]] = []
    sections: set[int] = set()
    last = None
    for k, row in enumerate(rows):
        name = row.metric + ("" if row.primary else " ·")
        cells: list[Any] = [Text(row.case if row.case != last else ""), name]
        last = row.case
        for i, cell in enumerate(row.cells):
            value, verdict = _cell_text(row.metric, cell, cmp.threshold)
            cells.append(value)
            if i:
                cells.append(Text(verdict, style=_STYLE.get(cell.verdict, "")))
        out.append(cells)
        if k + 1 < len(rows) and rows[k + 1].case != row.case:
            sections.add(k)
    return fitted_table(columns, out, width, sections=sections,
                        caption="· informational (does not gate; Benjamini-Hochberg)")


def _markdown(cmp: Comparison, rows: list[Row]) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    head = ["case", "metric"]
    for i, label in enumerate(cmp.labels):
        head.append(f"{label} (baseline)" if i == 0 else label)
        if i:
            head.append("verdict")
    lines = ["| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.case, row.metric]
        for i, cell in enumerate(row.cells):
            value, verdict = _cell_text(row.metric, cell, cmp.threshold)
            cells.append(value)
            if i:
                cells.append(f"**{verdict}**" if cell.verdict in ("improved", "regressed")
                             else verdict)
        lines.append("| " + " | ".join(map(esc, cells)) + " |")
    return "\n".join(lines)


def _pyperf(files: list[Path], threshold: float, fmt: str, fail_on_regression: bool,
            changed: bool) -> None:
    from batchsem.bench.pyperf_compare import compare_pyperf

    try:
        rows = compare_pyperf(files[0], files[1:], threshold)
    except ValueError as exc:
        fail(str(exc))
    if changed:
        rows = [r for r in rows if r["verdict"] != "no change"]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1, allow_nan=False))
    else:
        out = console()
        table_rows: list[list[Any]] = []
        for r in rows:
            change = "" if r.get("change") is None else f"{r['change']:+.1%}"
            base = "-" if r.get("base_mean") is None else f"{r['base_mean'] * 1e9:.1f} ns"
            new = "-" if r.get("new_mean") is None else f"{r['new_mean'] * 1e9:.1f} ns"
            verdict = r["verdict"]
            if verdict in ("faster", "slower") and r["p_value"] is None:
                verdict += "?"
            if verdict == "no change" and r.get("detectable") is not None:
                verdict += f" (MDE {r['detectable']:.0%})"
            table_rows.append([Text(r["name"]), base, new, change, Text(verdict)])
        columns = [Column("benchmark", wrap=True), Column("baseline", "right", keep=1),
                   Column("new", "right", keep=2), Column("change", "right"),
                   Column("verdict", wrap=True)]
        out.print(fitted_table(columns, table_rows, out.width))
    if fail_on_regression and any(r["verdict"] == "slower" for r in rows):
        raise SystemExit(1)


_ENV_KEYS = ("python", "implementation", "python_build", "platform", "cpu_model", "cpu_count",
             "governor", "batchsem", "batchsem_implementation", "uvloop", "gil_enabled")


def environment_differences(labels: list[str], runs: list[Run]) -> list[str]:
    """One line per environment fact that differs between the baseline and another run."""
    out = []
    base = runs[0].environment
    for label, run in zip(labels[1:], runs[1:], strict=True):
        for key in _ENV_KEYS:
            a, b = getattr(base, key), getattr(run.environment, key)
            if a is not None and b is not None and a != b:
                out.append(f"{key} differs: {a} ({labels[0]}) vs {b} ({label})")
    return out


@click.command(
    short_help="Compare saved runs: what changed, and is it real?",
    epilog=examples(
        ("batchsem compare results/before.json results/after.json", "after vs before"),
        ("batchsem compare before.json after.json --fail-on-regression", "a CI gate"),
        ("batchsem compare results/run.json --by impl", "impls of one run"),
        ("batchsem compare a.json b.json --format markdown", "for a pull request"),
    ),
)
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--threshold", "threshold_text", default="5%", show_default=True,
              help="smallest relative change that counts: 5% or 0.05")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json"]),
              default="table", show_default=True)
@click.option("--by", type=click.Choice(["impl", "loop"]), default=None,
              help="compare the cases of ONE run against each other")
@click.option("--changed", is_flag=True, help="only the rows with a verdict (improved/regressed)")
@click.option("--fail-on-regression", is_flag=True,
              help="exit 1 if throughput regressed (the gating rows)")
@export_options
def compare(
    runs: tuple[str, ...], threshold_text: str, fmt: str, by: str | None, changed: bool,
    fail_on_regression: bool, export_csv: str | None, export_markdown: str | None,
) -> None:
    """Compare RUNS (result files or directories; the first is the baseline).

    A change counts only if it is beyond --threshold and statistically real.
    Throughput gates (--fail-on-regression): Mann-Whitney on 10 time windows
    per repeat (Welch's t-test on repeats for files without windows), adjusted
    for the machine's speed at that moment (tput/probe) or, in files without
    the probe, relative to the null ceiling of the same run (tput/null),
    Holm-adjusted, and the change must show in nearly every round of repeats.
    The other metrics are informational (marked ·; Benjamini-Hochberg). The p
    shown is the adjusted one; "MDE" is the smallest change the data could have
    detected; '?' marks a change that could not be tested. See docs/methodology.md.
    """
    try:
        threshold = parse_threshold(threshold_text)
    except ValueError as exc:
        fail(str(exc))
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
        _pyperf(files, threshold, fmt, fail_on_regression, changed)
        return
    try:
        loaded = [results.load(f) for f in files]
    except results.ResultError as exc:
        fail(str(exc))
    labels = [clean_text(f.stem) for f in files]
    try:
        if by is not None:
            if len(loaded) != 1:
                fail("--by compares the cases of one run: give exactly one file")
            cmp = compare_within(loaded[0], by, threshold)
            differences: list[str] = []
        else:
            if len(loaded) < 2:
                fail("compare needs a baseline and at least one other run (or --by impl|loop)")
            cmp = compare_runs(labels, loaded, threshold)
            differences = environment_differences(labels, loaded)
    except ValueError as exc:
        fail(str(exc))
    rows = _visible(cmp, changed)
    err = stderr_console()
    for line in differences:
        err.print(Text(f"warning: {line}: the runs come from different environments",
                       style="yellow"))
    if fmt == "json":
        doc = cmp.as_json()
        if changed:
            doc["rows"] = [r for r in doc["rows"]
                           if any(c["verdict"] in ("improved", "regressed") for c in r["cells"])]
        doc["environment_differences"] = differences
        click.echo(json.dumps(doc, indent=1, allow_nan=False))
    elif fmt == "markdown":
        click.echo(_markdown(cmp, rows))
        for run, case in cmp.unmatched:
            click.echo(f"\n- only in {run}: {case}")
    else:
        out = console()
        out.print(_table(cmp, rows, out.width))
        for run, case in cmp.unmatched:
            only = Text("only in ", style="yellow")
            only.append(f"{run}: {case}")
            out.print(only)
        if any(r.metric == ADJUSTED for r in rows):
            out.print(Text(f"{ADJUSTED}: operations per run of the speed probe timed at the same "
                           "moment (the machine's changes of speed cancel); this is what gates",
                           style="dim"))
        if any(r.metric == RELATIVE for r in rows):
            out.print(Text(f"{RELATIVE}: throughput as a share of the null ceiling measured in "
                           "the same run (machine drift cancels); this is what gates",
                           style="dim"))
        out.print(Text(
            f"{cmp.regressions} regressed, {cmp.improvements} improved "
            f"(threshold {threshold:.0%}, p < 0.05 Holm-adjusted over {cmp.tests} "
            "throughput tests)"
        ))
    from batchsem.report.tabular import comparison_table

    for path in exports.write(lambda: comparison_table(cmp)):
        stderr_console().print(Text(f"wrote {path}", style="dim"))
    if fail_on_regression and cmp.regressions:
        raise SystemExit(1)
