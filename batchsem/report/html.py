"""``batchsem report``: one self-contained HTML page for one or more saved runs.

Everything is inline: figures are SVG elements, styles one ``<style>`` block,
and there is no script and no external reference, so the file opens offline
and from any directory. Hover text comes from SVG ``<title>`` elements.

Per run: the environment, and per workload the table, throughput per impl ×
loop (95% CI whiskers), the latency percentile plot, per-class percentiles
for workloads with request classes (starvation, rw-mix), fairness (Jain's
index of work per task, overtakes), the scalability curve of a sweep, and
starve-test verdicts. With several runs, also the ``compare`` table with its
verdicts and baseline-against-run overlays of the percentile plots.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from batchsem.bench.compare import Comparison
from batchsem.bench.schema import Case, Run
from batchsem.cli.render import fmt_us

from . import figures
from .export_markdown import format_value
from .svg import to_svg
from .tabular import Tabular, case_table, comparison_table, sweep_name, sweep_points

__all__ = ["Report", "build_report"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1100px;
padding:0 16px 48px;color:#222}
h1{font-size:24px;margin:20px 0 4px}h2{font-size:20px;border-bottom:1px solid #ddd;
padding-bottom:4px;margin-top:36px}h3{font-size:16px;margin:28px 0 8px}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
td,th{border:1px solid #ddd;padding:2px 6px;white-space:nowrap}th{background:#f4f4f4}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto}.env td:first-child{font-weight:600}
.improved{color:#137333;font-weight:600}.regressed{color:#b3261e;font-weight:600}
.starved,.failed{color:#b3261e;font-weight:600}.ok{color:#137333}
figure.plot{margin:10px 0}figure.plot svg{max-width:100%;height:auto}
figcaption{font-size:12px;color:#555}code{font-size:12px}nav li{margin:2px 0}
"""


@dataclass
class Report:
    """The page and the figures on it (for ``--png``)."""

    html: str
    plots: list[figures.Plot] = field(default_factory=list)

    def key_plots(self) -> list[figures.Plot]:
        """The figures worth a PNG: percentile plots and scalability curves."""
        return [p for p in self.plots if p.key]


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _table_html(table: Tabular, classes: dict[str, str] | None = None) -> str:
    """The table without its all-empty columns; ``classes`` maps a cell text to a CSS class."""
    keep = [i for i, _ in enumerate(table.columns)
            if any(row[i] not in (None, "") for row in table.rows)]
    head = "".join(f"<th>{_esc(table.columns[i].heading)}</th>" for i in keep)
    body = []
    for row in table.rows:
        cells = []
        for i in keep:
            column = table.columns[i]
            text = format_value(column, row[i])
            word = text.split(" ")[0].rstrip("?")  # "regressed?": past the threshold, untested
            css = "n" if column.kind != "text" else (classes or {}).get(word, "")
            attr = f' class="{css}"' if css else ""
            cells.append(f"<td{attr}>{_esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


class _Page:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.plots: list[figures.Plot] = []
        self.toc: list[tuple[int, str, str]] = []

    def heading(self, level: int, text: str) -> None:
        anchor = f"s{len(self.toc)}"
        self.toc.append((level, anchor, text))
        self.parts.append(f'<h{level} id="{anchor}">{_esc(text)}</h{level}>')

    def figure(self, plot: figures.Plot | None, caption: str = "") -> None:
        if plot is None:
            return
        index = len(self.plots)
        taken = {p.name for p in self.plots}
        stem, n = plot.name, 1
        while plot.name in taken:  # the same workload in several runs
            n += 1
            plot.name = f"{stem}-{n}"
        self.plots.append(plot)
        svg = to_svg(plot, f"f{index}")
        cap = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
        self.parts.append(f'<figure class="plot" data-plot="{_esc(plot.name)}">{svg}{cap}</figure>')


def _environment(page: _Page, run: Run) -> None:
    rows: list[tuple[str, Any]] = [("created", run.created), ("kind", run.kind),
                                   ("command", " ".join(run.command))]
    for f in dataclasses.fields(run.environment):
        value = getattr(run.environment, f.name)
        if value is not None and value != "":
            rows.append((f.name, " ".join(map(str, value)) if isinstance(value, list) else value))
    if run.interrupted:
        rows.append(("note", "interrupted: only the cases that finished"))
    cells = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in rows)
    page.parts.append(f'<table class="env">{cells}</table>')


def _verdicts(page: _Page, run: Run) -> None:
    judged = [(c, c.verdict) for c in run.cases if c.verdict is not None]
    if not judged:
        return
    page.heading(3, "starve-test verdicts")
    rows = []
    for c, v in judged:
        word = "STARVES" if v.starved else "ok"
        reasons = "; ".join(v.reasons) or "served within the deadline"
        rows.append(
            f"<tr><td>{_esc(c.impl)}</td><td>{_esc(c.loop)}</td>"
            f'<td class="{"starved" if v.starved else "ok"}">{word}</td>'
            f"<td>{_esc(reasons)}</td><td class='n'>{v.large_completed}</td>"
            f"<td class='n'>{_esc(fmt_us(1e6 * v.longest_wait_s))}</td>"
            f"<td class='n'>{v.max_overtakes}</td></tr>"
        )
    deadline = judged[0][1].deadline_s
    page.parts.append(
        f"<p>A large request must be served within {_esc(deadline)} s.</p>"
        "<table><thead><tr><th>impl</th><th>loop</th><th>verdict</th><th>why</th>"
        "<th>large served</th><th>longest wait</th><th>max overtakes</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _run_section(page: _Page, label: str, run: Run) -> None:
    page.heading(2, f"{label}: {run.kind} of {run.created}")
    _environment(page, run)
    _verdicts(page, run)
    by_workload: dict[str, list[Case]] = {}
    for case in run.cases:
        by_workload.setdefault(case.workload, []).append(case)
    sweep = sweep_name(run)
    for workload, cases in by_workload.items():
        page.heading(3, workload)
        page.parts.append(_table_html(case_table([(label, dataclasses.replace(run, cases=cases))]),
                                      {"ok": "ok", "failed": "failed"}))
        if sweep:
            unit = cases[0].unit
            for name, curves in sweep_points(cases, sweep).items():
                page.figure(figures.sweep_plot(name, sweep, curves, unit),
                            f"Each point is one case; lines join the values of "
                            f"--sweep {sweep} per implementation and loop.")
        else:
            page.figure(figures.throughput_plot(workload, cases),
                        "Mean over the repeats; whiskers: 95% confidence interval.")
        nines = ("x: percentile on a 'nines' axis (90%, 99%, 99.9%, ...); y: latency, log "
                 "scale; the last point of a line is the maximum. Hover a dot for its value.")
        if sweep:
            for plot in figures.sweep_percentile_plots(workload, cases, sweep):
                page.figure(plot, nines)
        else:
            page.figure(figures.workload_percentile_plot(workload, cases), nines)
        multi_class = any(c.histogram is not None and len(c.histogram.classes) > 1
                          for c in cases)
        if multi_class:
            for plot in figures.class_percentile_plots(workload, cases):
                page.figure(plot, "Line style: request class; colour: implementation.")
        page.figure(figures.fairness_plot(workload, cases),
                    "Jain's index of the work each task got (1 = all equal) and how often a "
                    "later request was served before an earlier one.")


def _comparison_section(
    page: _Page, runs: Sequence[tuple[str, Run]], cmp: Comparison
) -> None:
    page.heading(2, f"Comparison against the baseline {runs[0][0]}")
    page.parts.append(
        f"<p>{cmp.regressions} regressed, {cmp.improvements} improved in the rows that gate "
        f"(gates = yes; Welch p &lt; 0.05, Holm-adjusted over {cmp.tests} tests; threshold "
        f"{cmp.threshold:.0%}). The other rows are informational (Benjamini-Hochberg); MDE is "
        "the smallest change the data could have detected.</p>"
    )
    page.parts.append(_table_html(comparison_table(cmp),
                                  {"improved": "improved", "regressed": "regressed"}))
    for run, case in cmp.unmatched:
        page.parts.append(f"<p>only in {_esc(run)}: {_esc(case)}</p>")
    workloads = list(dict.fromkeys(c.workload for _, run in runs for c in run.cases))
    for workload in workloads:
        page.heading(3, f"{workload}: percentiles, baseline against the other runs")
        per_run = [(label, [c for c in run.cases if c.workload == workload])
                   for label, run in runs]
        for plot in figures.overlay_plots(workload, per_run):
            page.figure(plot, "Colour: implementation; line style: run (solid = baseline).")


def build_report(
    runs: Sequence[tuple[str, Run]],
    comparison: Comparison | None = None,
    not_compared: str | None = None,
) -> Report:
    """The HTML page for ``runs`` (``(label, run)``; the first is the baseline).

    ``comparison``: the runs compared (shown with overlays); ``not_compared``: why
    several runs could not be compared (shown instead).
    """
    page = _Page()
    with figures.text_as_text():
        for label, run in runs:
            _run_section(page, label, run)
        if comparison is not None and len(runs) > 1:
            _comparison_section(page, runs, comparison)
        elif not_compared is not None:
            page.heading(2, "Comparison")
            page.parts.append(f"<p>Not compared: {_esc(not_compared)}</p>")
    toc = "".join(
        f'<li style="margin-left:{(level - 2) * 16}px"><a href="#{anchor}">{_esc(text)}</a></li>'
        for level, anchor, text in page.toc
    )
    names = ", ".join(label for label, _ in runs)
    document = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>batchsem report: {_esc(names)}</title><style>{_CSS}</style></head><body>"
        f"<h1>batchsem report</h1><p>{len(runs)} run(s): {_esc(names)}. Hover a bar or dot "
        "for its value.</p>"
        f"<nav><ul>{toc}</ul></nav>" + "".join(page.parts) + "</body></html>\n"
    )
    return Report(document, page.plots)
