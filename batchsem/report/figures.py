"""The report's figures, drawn with matplotlib from result documents.

Each function returns :class:`Plot` values: a matplotlib ``Figure`` plus the
hover text of its marks (``tips``), which :mod:`batchsem.report.svg` turns into
SVG ``<title>`` elements (the browser shows them on hover; no JavaScript).
Figures are built with ``matplotlib.figure.Figure`` directly, never pyplot, so
no GUI backend or global state is involved. Nothing here measures.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

from batchsem.bench.latency import LatencyRecorder
from batchsem.bench.schema import Case, Fairness
from batchsem.cli.render import fmt_rate, fmt_us
from batchsem.report.tabular import SweepPoint, case_label, varying_params

__all__ = [
    "Plot",
    "class_percentile_plots",
    "fairness_plot",
    "overlay_plots",
    "percentile_plot",
    "sweep_percentile_plots",
    "sweep_plot",
    "throughput_plot",
    "write_pngs",
]

_COLOURS = {"batchsem": "#1f77b4", "asyncio": "#ff7f0e", "condition": "#2ca02c",
            "aiologic": "#d62728", "null": "#7f7f7f"}
_SPARE = ("#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
_DASHES = ("-", "--", ":", "-.")
_WIDTH = 7.5  # inches; at the PNG's 100 dpi, 750 px


@dataclass
class Plot:
    """A figure, its hover texts, and a file-name stem (``contended-latency``).

    ``key``: one of the figures ``--png`` writes (percentile plots, sweeps).
    """

    name: str
    title: str
    figure: Figure
    tips: list[tuple[Artist, str]] = field(default_factory=list)
    key: bool = False


@contextlib.contextmanager
def text_as_text() -> Iterator[None]:
    """Build and draw figures with ``$`` taken literally: names and parameters come from
    result files, and matplotlib would otherwise parse ``$...$`` in them as TeX math (a
    malformed one raises when drawn).
    """
    with matplotlib.rc_context({"text.parse_math": False}):
        yield


def colour(impl: str) -> str:
    """A fixed colour per implementation, so every figure agrees."""
    if impl in _COLOURS:
        return _COLOURS[impl]
    return _SPARE[sum(map(ord, impl)) % len(_SPARE)]


def _dash(index: int) -> str:
    return _DASHES[index % len(_DASHES)]


def _figure(height: float) -> Figure:
    fig = Figure(figsize=(_WIDTH, height), layout="constrained")
    return fig


# -- percentile spectra -----------------------------------------------------

_MARKED = (50.0, 90.0, 99.0, 99.9, 99.99, 99.999)


def _nines(percentile: float, cap: float) -> float:
    if percentile >= 100.0:
        return cap
    return min(cap, -math.log10(1.0 - percentile / 100.0))


def _nines_axis(ax: Axes, top: float) -> None:
    ticks = list(range(0, math.ceil(top) + 1))
    labels = {0: "0%", 1: "90%", 2: "99%", 3: "99.9%", 4: "99.99%", 5: "99.999%",
              6: "99.9999%", 7: "99.99999%"}
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: labels.get(round(x), "")))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(0, max(top, 1.0))
    ax.set_xlabel("percentile")


def curve_of(histogram: str | None) -> list[tuple[float, float]]:
    """The percentile curve of a saved histogram (``[]`` if none was saved)."""
    if not histogram:
        return []
    return LatencyRecorder.decode(histogram).percentile_curve()


@dataclass(frozen=True)
class Series:
    """One line of a percentile plot."""

    label: str
    impl: str
    style: str
    curve: list[tuple[float, float]]
    count: int
    colour: str | None = None  # default: the implementation's


def series_of(
    label: str, impl: str, style: str, histogram: str | None, colour: str | None = None
) -> Series | None:
    """A plot line from a saved histogram (None if the case recorded no latency)."""
    if not histogram:
        return None
    rec = LatencyRecorder.decode(histogram)
    curve = rec.percentile_curve()
    return Series(label, impl, style, curve, rec.count, colour) if curve else None


def percentile_plot(name: str, title: str, series: Sequence[Series]) -> Plot:
    """HdrHistogram's percentile plot: x = percentile on a "nines" axis, y = latency, log scale.

    One line per series, overlaid; markers at p50, p90, p99, ... and the max carry
    the value as hover text.
    """
    fig = _figure(3.6)
    ax = fig.add_subplot()
    plot = Plot(name, title, fig, key=True)
    top = max((math.log10(s.count) for s in series if s.count > 1), default=1.0)
    for s in series:
        cap = math.log10(s.count) if s.count > 1 else 1.0
        xs = [_nines(p, cap) for p, _ in s.curve]
        ys = [max(v, 1e-3) for _, v in s.curve]
        tint = s.colour or colour(s.impl)
        (line,) = ax.plot(xs, ys, s.style, color=tint, label=s.label, linewidth=1.6)
        plot.tips.append((line, s.label))
        for p, v in s.curve:
            if p in _MARKED or p >= 100.0:
                (dot,) = ax.plot([_nines(p, cap)], [max(v, 1e-3)], "o", color=tint,
                                 markersize=3.5)
                what = "max" if p >= 100.0 else f"p{p:g}"
                plot.tips.append((dot, f"{s.label}: {what} = {fmt_us(v)}"))
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: fmt_us(y)))
    ax.yaxis.set_minor_formatter(NullFormatter())
    _nines_axis(ax, top)
    ax.set_ylabel("latency")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(title, fontsize=10, loc="left")
    if series:
        # outside the axes: short lines (a class with 3 requests) sit in the top left corner
        fig.legend(fontsize=8, loc="outside right upper")
    return plot


def _series_style(cases: Sequence[Case]) -> dict[str, str]:
    loops = list(dict.fromkeys(c.loop for c in cases))
    return {loop: _dash(i) for i, loop in enumerate(loops)}


def _total(case: Case) -> str | None:
    return None if case.histogram is None else case.histogram.total


def _classes(case: Case) -> dict[str, str]:
    return {} if case.histogram is None else case.histogram.classes


def workload_percentile_plot(workload: str, cases: Sequence[Case]) -> Plot | None:
    """The latency percentile plot of one workload: a line per impl × loop."""
    styles = _series_style(cases)
    series = [
        s for c in cases
        if (s := series_of(f"{c.impl} · {c.loop}", c.impl, styles[c.loop], _total(c)))
        is not None
    ]
    if not series:
        return None
    return percentile_plot(f"{workload}-latency", f"{workload}: latency percentiles", series)


def sweep_percentile_plots(
    workload: str, cases: Sequence[Case], name: str
) -> list[Plot]:
    """A sweep's latency percentiles: a plot per impl × loop, a line per swept value
    (colour from dark = smallest to light = largest).
    """
    from matplotlib import colormaps

    values = sorted({repr(c.params.get(name)) for c in cases},
                    key=lambda v: (not _is_number(v), float(v) if _is_number(v) else 0.0, v))
    ramp = colormaps["viridis"]
    plots = []
    for impl, loop in dict.fromkeys((c.impl, c.loop) for c in cases):
        series = []
        for c in cases:
            if (c.impl, c.loop) != (impl, loop):
                continue
            value = c.params.get(name)
            shade = ramp(0.9 * values.index(repr(value)) / max(1, len(values) - 1))
            hexed = "#{:02x}{:02x}{:02x}".format(*(round(255 * x) for x in shade[:3]))
            s = series_of(f"{name}={value}", impl, "-", _total(c), hexed)
            if s is not None:
                series.append(s)
        if series:
            plots.append(percentile_plot(f"{workload}-{impl}-{loop}-sweep-{name}-latency",
                                         f"{workload}, {impl} on {loop}: latency percentiles "
                                         f"per {name}", series))
    return plots


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def class_percentile_plots(workload: str, cases: Sequence[Case]) -> list[Plot]:
    """Per loop, the latency percentiles of every request class (line style) per impl."""
    plots = []
    for loop in dict.fromkeys(c.loop for c in cases):
        series: list[Series] = []
        for c in cases:
            if c.loop != loop:
                continue
            for i, (name, blob) in enumerate(_classes(c).items()):
                s = series_of(f"{c.impl} · {name}", c.impl, _dash(i), blob)
                if s is not None:
                    series.append(s)
        if series:
            plots.append(percentile_plot(f"{workload}-classes-{loop}",
                                         f"{workload} on {loop}: latency per request class",
                                         series))
    return plots


def overlay_plots(
    workload: str, runs: Sequence[tuple[str, Sequence[Case]]]
) -> list[Plot]:
    """Baseline against the other runs, per loop: a line per impl (colour) × run (style)."""
    loops = list(dict.fromkeys(c.loop for _, cases in runs for c in cases))
    plots = []
    for loop in loops:
        series = [
            s
            for i, (label, cases) in enumerate(runs)
            for c in cases
            if c.loop == loop
            and (s := series_of(f"{c.impl} · {label}", c.impl, _dash(i), _total(c))) is not None
        ]
        if series:
            plots.append(percentile_plot(
                f"{workload}-{loop}-runs", f"{workload} on {loop}: baseline ({runs[0][0]}, "
                "solid) against the other runs", series))
    return plots


# -- throughput, fairness, sweeps -------------------------------------------

def throughput_plot(workload: str, cases: Sequence[Case]) -> Plot | None:
    """Mean throughput per impl × loop as bars, whiskers = 95% confidence interval."""
    ran = [c for c in cases if c.summary is not None]
    if not ran:
        return None
    fig = _figure(0.45 + 0.32 * len(ran))
    ax = fig.add_subplot()
    plot = Plot(f"{workload}-throughput", f"{workload}: throughput", fig)
    unit = ran[0].unit
    varying = varying_params(ran)
    labels = [case_label(c, varying) for c in ran]
    for y, (label, c) in enumerate(zip(labels, ran, strict=True)):
        assert c.summary is not None
        t = c.summary.throughput_ops
        whisker = max(0.0, t.ci95)  # a file may hold anything; matplotlib refuses < 0
        bars = ax.barh([y], [t.mean], xerr=[[whisker], [whisker]],
                       color=colour(c.impl), alpha=0.85, capsize=3, height=0.7,
                       hatch="//" if c.loop != ran[0].loop else None,
                       error_kw={"elinewidth": 1.2})
        interval = f"± {fmt_rate(t.ci95)} (95% CI, {t.n} repeats)" if t.n > 1 else "(1 repeat)"
        plot.tips.append((bars.patches[0], f"{label}: {fmt_rate(t.mean)} {unit} {interval}"))
    ax.set_yticks(range(len(ran)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(left=0)  # a whisker may reach below zero with few, noisy repeats
    ax.set_xlabel(f"{unit} (whiskers: 95% CI)")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: fmt_rate(x)))
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(f"{workload}: throughput", fontsize=10, loc="left")
    return plot


def fairness_plot(workload: str, cases: Sequence[Case]) -> Plot | None:
    """Per impl × loop (and class): the work each task got, and overtakes.

    Left: every task's permits as a share of the mean task's (one dot per task;
    all dots at 1 = perfectly equal), with Jain's index in the label. Rows
    without per-task data (open-loop arrivals, older files) show Jain's index
    alone; a row whose tasks got nothing sits at 0. Right: overtakes (a later
    request served before an earlier one).
    """
    rows: list[tuple[str, str, Fairness, list[int]]] = []
    varying = varying_params(cases)
    for c in cases:
        s = c.summary
        if s is None:
            continue
        label = case_label(c, varying)
        if len(s.classes) > 1:
            rows += [(f"{label} · {n}", c.impl, cs.fairness, cs.work_per_task)
                     for n, cs in s.classes.items()]
        else:
            only = next(iter(s.classes.values()), None)
            rows.append((label, c.impl, s.fairness, [] if only is None else only.work_per_task))
    if not any(work or fair.jain is not None or fair.overtakes for _, _, fair, work in rows):
        return None  # nothing to show (close-storm: no long-lived tasks, no queue order)
    fig = _figure(0.7 + 0.3 * len(rows))
    work_ax, over_ax = fig.subplots(1, 2, sharey=True, width_ratios=(3, 2))
    plot = Plot(f"{workload}-fairness", f"{workload}: fairness", fig)
    widest = 1.0
    for y, (label, impl, fair, work) in enumerate(rows):
        jain = "-" if fair.jain is None else f"{fair.jain:.4f}"
        mean = sum(work) / len(work) if work else 0.0
        if work:
            shares = [w / mean if mean > 0 else 0.0 for w in work]
            widest = max(widest, max(abs(x - 1.0) for x in shares))
            # spread the dots of one row vertically by task id, so equal shares stay visible
            rows_of_dots = min(len(shares), 7)
            offsets = [y + (0.6 * ((i % rows_of_dots) / (rows_of_dots - 1) - 0.5)
                            if rows_of_dots > 1 else 0.0) for i in range(len(shares))]
            dots = work_ax.scatter(shares, offsets, s=9, color=colour(impl), alpha=0.7,
                                   linewidths=0)
            ranked = sorted(work)
            plot.tips.append((dots, f"{label}: {len(work)} tasks, permits per task min "
                              f"{ranked[0]}, median {ranked[len(ranked) // 2]}, max "
                              f"{ranked[-1]}; Jain's index {jain}"))
        else:
            work_ax.text(1.0, y, f"Jain {jain} (no per-task data)", ha="center", va="center",
                         fontsize=7, color="#555")
        over = fair.overtakes
        bars = over_ax.barh([y], [over], color=colour(impl), alpha=0.85, height=0.7)
        plot.tips.append((bars.patches[0], f"{label}: {over} overtakes "
                          f"(max {fair.max_overtakes} past one request), "
                          f"{fair.starved_tasks} starved tasks"))
    work_ax.set_yticks(range(len(rows)),
                       [f"{r[0]} (J={'-' if r[2].jain is None else f'{r[2].jain:.3f}'})"
                        for r in rows], fontsize=8)
    work_ax.set_ylim(len(rows) - 0.5, -0.5)
    span = max(0.05, widest * 1.1)
    work_ax.set_xlim(max(-0.05, 1.0 - span), 1.0 + span)
    work_ax.axvline(1.0, color="#999", linewidth=0.8)
    work_ax.set_xlabel("work per task / mean (dots: tasks; 1 = equal share)")
    if any(r[2].overtakes for r in rows):
        over_ax.set_xscale("symlog", linthresh=1)
        over_ax.set_xlim(left=0)
        # our own labels: the default ones are TeX, which text_as_text() would print raw
        over_ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: fmt_rate(x)))
        over_ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        over_ax.set_xlim(0, 1)
        over_ax.set_xticks([0, 1])
    over_ax.set_xlabel("overtakes")
    for ax in (work_ax, over_ax):
        ax.grid(True, axis="x", alpha=0.3)
    work_ax.set_title(f"{workload}: fairness", fontsize=10, loc="left")
    return plot


def _geometric(values: Iterable[float]) -> bool:
    vs = sorted(set(values))
    return len(vs) > 2 and vs[0] > 0 and vs[-1] / vs[0] >= 8


def sweep_plot(
    workload: str,
    name: str,
    curves: dict[str, list[SweepPoint]],
    unit: str,
) -> Plot:
    """The scalability curve: throughput (whiskers: 95% CI) and p99 against the swept value."""
    fig = _figure(3.9)
    tput_ax, p99_ax = fig.subplots(1, 2)
    plot = Plot(f"{workload}-sweep-{name}", f"{workload}: throughput and p99 against {name}",
                fig, key=True)
    loops = list(dict.fromkeys(series.split(" · ")[-1] for series in curves))
    for series, points in curves.items():
        impl, _, loop = series.partition(" · ")
        style = _dash(loops.index(loop))
        xs = [p.value for p in points]
        tput_ax.errorbar(xs, [p.throughput for p in points],
                         yerr=[max(0.0, p.ci95) for p in points],
                         fmt=style, color=colour(impl), label=series, capsize=2, linewidth=1.5)
        lat = [(p.value, p.p99_us) for p in points if p.p99_us is not None]
        p99_ax.plot([x for x, _ in lat], [v for _, v in lat], style, color=colour(impl),
                    linewidth=1.5)
        for x, t, ci, p99 in points:
            (dot,) = tput_ax.plot([x], [t], "o", color=colour(impl), markersize=3.5)
            plot.tips.append((dot, f"{series}, {name}={x:g}: {fmt_rate(t)} {unit} "
                              f"± {fmt_rate(ci)}"))
            if p99 is not None:
                (dot,) = p99_ax.plot([x], [p99], "o", color=colour(impl), markersize=3.5)
                plot.tips.append((dot, f"{series}, {name}={x:g}: p99 = {fmt_us(p99)}"))
    xs_all = [p.value for points in curves.values() for p in points]
    for ax in (tput_ax, p99_ax):
        if _geometric(xs_all):
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(name)
        ax.grid(True, alpha=0.3)
    tput_ax.set_ylim(bottom=0)
    tput_ax.set_ylabel(f"{unit} (whiskers: 95% CI)")
    tput_ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: fmt_rate(y)))
    p99_ax.set_yscale("log")
    p99_ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: fmt_us(y)))
    p99_ax.yaxis.set_minor_formatter(NullFormatter())
    p99_ax.set_ylabel("p99 latency")
    fig.legend(fontsize=8, loc="outside lower center", ncols=min(3, len(curves)))
    tput_ax.set_title(f"{workload}: throughput and p99 against {name}", fontsize=10, loc="left")
    return plot


def write_pngs(plots: Iterable[Plot], directory: Path, dpi: int = 100) -> list[Path]:
    """Save each plot as ``DIRECTORY/<name>.png``; the paths written. ``OSError`` passes."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    with text_as_text():
        for plot in plots:
            path = directory / f"{_file_safe(plot.name)}.png"
            plot.figure.savefig(path, format="png", dpi=dpi, metadata={"Software": None})
            paths.append(path)
    return paths


def _file_safe(name: str) -> str:
    """A plot name (workload and impl names come from files) as a plain file name."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip(".") or "plot"
