"""``batchsem show``: render a saved run, with a latency histogram per case."""

from __future__ import annotations

from pathlib import Path

import click

from batchsem.bench import results
from batchsem.bench.latency import LatencyRecorder

from .common import console, fail
from .helptext import examples
from .render import environment_table, histogram_panel, workload_tables


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
    try:
        data = results.load(run)
    except results.ResultError as exc:
        fail(str(exc))
    out = console()
    out.print(environment_table(data))
    out.print(workload_tables(data["cases"]))
    if no_histograms:
        return
    for case in data["cases"]:
        hist = case.get("histogram") or {}
        encoded = hist.get("total")
        if not encoded:
            continue
        try:
            latency = LatencyRecorder.decode(encoded)
        except Exception:
            fail(f"{run}: case {case['workload']}/{case['impl']}/{case['loop']}: "
                 "corrupt histogram")
        title = f"{case['workload']} · {case['impl']} · {case['loop']}: wait latency"
        out.print(histogram_panel(title, latency.buckets_log(buckets)))
