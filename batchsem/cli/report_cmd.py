"""``batchsem report``: saved runs as one self-contained HTML page, PNG figures, exports."""

from __future__ import annotations

import os
from pathlib import Path

import click
from rich.text import Text

from batchsem.bench import results
from batchsem.bench.latency import LatencyRecorder
from batchsem.bench.schema import Run

from .common import fail, stderr_console
from .compare_cmd import _expand
from .exports import Exports, export_options
from .helptext import examples

HINT = "batchsem report needs matplotlib: pip install 'batchsem[report]'"


@click.command(
    short_help="Write an HTML report with plots of saved runs",
    epilog=examples(
        ("batchsem report run.json -o report.html", "one self-contained page"),
        ("batchsem report before.json after.json", "with the compare view"),
        ("batchsem report run.json --png docs/img", "the key figures as PNG"),
    ),
)
@click.argument("runs", nargs=-1, required=True)
@click.option("--output", "-o", default="report.html", show_default=True,
              help="the HTML file to write")
@click.option("--png", "png_dir", default=None, metavar="DIR",
              help="also write the key figures (percentiles, sweeps) as PNG files into DIR")
@click.option("--threshold", "threshold_text", default="5%", show_default=True,
              help="several runs: smallest relative change that counts (as in compare)")
@export_options
def report(
    runs: tuple[str, ...],
    output: str,
    png_dir: str | None,
    threshold_text: str,
    export_csv: str | None,
    export_markdown: str | None,
) -> None:
    """Write RUNS (result files or directories; the first is the baseline) as one HTML
    page with plots: no network needed to view it. Needs the batchsem[report] extra.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        fail(HINT)
    from batchsem.bench.compare import compare_runs
    from batchsem.bench.verdict import parse_threshold
    from batchsem.report.figures import write_pngs
    from batchsem.report.html import build_report
    from batchsem.report.tabular import case_table

    try:
        threshold = parse_threshold(threshold_text)
    except ValueError as exc:
        fail(str(exc))
    files = _expand(runs)
    try:
        loaded = [(f.stem, results.load(f)) for f in files]
        target = Path(output)
        results.check_writable(target)
    except results.ResultError as exc:
        fail(str(exc))
    for path, (_, run) in zip(files, loaded, strict=True):
        _check_histograms(path, run)
    exports = Exports(export_csv, export_markdown)
    if target.resolve() in {p.resolve() for p in (exports.csv, exports.markdown) if p}:
        fail(f"--output and an --export option both write {target}")
    png = None if png_dir is None else Path(png_dir)
    if png is not None:  # before the slow part: a typo costs no figures
        try:
            png.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"cannot write PNG files to {png}: {exc.strerror or exc}")
        if not os.access(png, os.W_OK):
            fail(f"cannot write PNG files to {png}: permission denied")
    comparison = None
    not_compared = None
    if len(loaded) > 1:
        try:
            comparison = compare_runs([lbl for lbl, _ in loaded], [r for _, r in loaded],
                                      threshold)
        except ValueError as exc:  # e.g. no case in common: the runs are still shown
            not_compared = str(exc)
    page = build_report(loaded, comparison, not_compared)
    err = stderr_console()
    if not_compared is not None:
        err.print(Text(f"not compared: {not_compared}", style="yellow"))
    try:
        target.write_text(page.html, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or exc}")
    err.print(Text(f"wrote {target} ({len(page.html.encode()) / 1e6:.2f} MB, "
                   f"{len(page.plots)} figures)", style="dim"))
    if png is not None:
        try:
            paths = write_pngs(page.key_plots(), png)
        except OSError as exc:
            fail(f"cannot write PNG files to {png_dir}: {exc.strerror or exc}")
        err.print(Text(f"wrote {len(paths)} PNG files to {png_dir}", style="dim"))
    for path in exports.write(lambda: case_table(loaded)):
        err.print(Text(f"wrote {path}", style="dim"))


def _check_histograms(path: Path, run: Run) -> None:
    """Decode every histogram up front: a corrupt one is one line and exit 2, not a traceback."""
    for case in run.cases:
        if case.histogram is None:
            continue
        blobs = [case.histogram.total, *case.histogram.classes.values()]
        for blob in blobs:
            if not blob:
                continue
            try:
                LatencyRecorder.decode(blob)
            except Exception:
                fail(f"{path}: case {case.workload}/{case.impl}/{case.loop}: corrupt histogram")
