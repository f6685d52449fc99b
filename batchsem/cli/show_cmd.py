"""``batchsem show``: render a saved run, with a latency histogram per case."""

from __future__ import annotations

from pathlib import Path

import click

from batchsem.bench import results
from batchsem.bench.latency import LatencyRecorder
from batchsem.report.tabular import sweep_name

from .common import console, fail
from .helptext import examples
from .render import (
    busy_warning,
    environment_table,
    histogram_panel,
    noise_warning,
    speed_warning,
    starve_findings,
    starve_table,
    sweep_tables,
    workload_tables,
)


@click.command(
    short_help="Render a saved run, with latency histograms",
    epilog=examples(
        ("batchsem show results/run.json", ""),
        ("batchsem show results/run.json --no-histograms", "only the tables"),
    ),
)
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--no-histograms", is_flag=True, help="only the tables")
@click.option("--buckets", type=click.IntRange(4, 60), default=16, show_default=True,
              help="log-spaced buckets per histogram")
def show(run: Path, no_histograms: bool, buckets: int) -> None:
    """Show a saved RUN: environment, the tables bench printed, latency histograms."""
    from batchsem.bench.pyperf_compare import is_pyperf_file

    if is_pyperf_file(run):
        fail(f"{run} is a pyperf file (bench --micro): show it with 'python -m pyperf show "
             f"{run}'")
    try:
        data = results.load(run)
    except results.ResultError as exc:
        fail(str(exc))
    out = console()
    # Decode every histogram before printing anything: a corrupt one is one line, exit 2.
    panels = []
    for case in data.cases if not no_histograms else []:
        encoded = case.histogram.total if case.histogram else None
        if not encoded:
            continue
        try:
            latency = LatencyRecorder.decode(encoded)
            buckets_ = latency.buckets_log(buckets)
        except Exception:
            fail(f"{run}: case {case.workload}/{case.impl}/{case.loop}: corrupt histogram")
        title = f"{case.workload} · {case.impl} · {case.loop}: wait latency"
        panels.append(histogram_panel(title, buckets_))
    out.print(environment_table(data))
    if data.kind == "starve-test":
        out.print(starve_table(data.cases, out.width))
        for line in starve_findings(data.cases):
            out.print(line)
    out.print(workload_tables(data.cases, out.width))
    swept = sweep_name(data)
    if swept is not None:
        out.print(sweep_tables(data.cases, swept, out.width))
    for warning in (noise_warning(data.cases) if data.kind == "bench" else None,
                    speed_warning(data.cases), busy_warning(data.cases)):
        if warning is not None:
            out.print(warning)
    for panel in panels:
        out.print(panel)
