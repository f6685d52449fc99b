"""``batchsem bench``: run workloads x implementations x loops, print tables, save the run."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from batchsem.bench import engine, impls, loops, results
from batchsem.bench.impls import UnknownImpl
from batchsem.bench.loops import LoopUnavailable
from batchsem.bench.metrics import RepeatMetrics
from batchsem.bench.schema import Run
from batchsem.bench.sweep import parse_sweep, plan_sweep
from batchsem.tracing import JsonLinesTracer
from batchsem.workloads import REGISTRY, ParamError

from .common import (
    TERMINATED,
    SaveTo,
    console,
    fail,
    output_path,
    parse_params,
    save_run,
    sigterm_interrupts,
    split_list,
    stderr_console,
    use_redis,
)
from .completion import complete_impls, complete_loops, complete_workloads
from .exports import Exports, export_options
from .helptext import examples, listing
from .render import busy_warning, noise_warning, speed_warning, sweep_tables, workload_tables

DEFAULT_IMPLS = ("batchsem", "asyncio")
#: Default repeats of --duration seconds: many short interleaved repeats, so every case is
#: measured in several rounds close in time to its null ceiling (see docs/methodology.md).
SUITE_DURATION = 0.2
SUITE_REPEATS = 6
QUICK_DURATION = 0.1
#: Each case runs untimed for this share of --duration before its first repeat.
WARMUP_FRACTION = 0.25


def run_cases(cases: list[engine.CaseSpec], run: Run, *, quiet: bool) -> bool:
    """Run the cases (warm-up, then repeats interleaved) with a progress bar; True if
    interrupted (Ctrl-C or SIGTERM).

    Every case that finished at least one repeat is summarised into ``run``,
    also after an interruption; the caller saves it.
    """
    err = stderr_console()
    total = sum(c.repeats for c in cases if c.unsupported_reason() is None)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=quiet or not err.is_terminal,
        transient=True,
    )
    done: dict[int, list[RepeatMetrics]] = {}
    interrupted = False
    with progress, sigterm_interrupts():
        bar = progress.add_task("bench", total=total)

        def advance(spec: engine.CaseSpec, index: int) -> None:
            progress.update(
                bar,
                advance=1,
                description=f"repeat {index + 1} · {spec.workload.name} · {spec.impl.name} "
                f"· {spec.loop}",
            )

        try:
            engine.run_interleaved(cases, done, advance, stop=TERMINATED.is_set)
        except KeyboardInterrupt:
            interrupted = True
    for i, spec in enumerate(cases):
        if spec.unsupported_reason() is not None or done.get(i):
            run.cases.append(engine.summarize_case(spec, done.get(i, [])))
    run.interrupted = interrupted
    return interrupted


def save_or_explain(run: Run, save_to: SaveTo, interrupted: bool) -> Path | None:
    """Save the run unless an interruption left nothing measured (then say so, exit 130)."""
    if interrupted and not any(c.ran for c in run.cases):
        stderr_console().print(Text("interrupted before any repeat finished: nothing saved",
                                    style="yellow"))
        raise SystemExit(130)
    return save_run(run, save_to)


BENCH_EPILOG = "\n\n".join((
    examples(
        ("batchsem bench --quick", "every workload, batchsem vs asyncio, ~10 s"),
        ("batchsem bench contended starvation --impl batchsem,asyncio,condition", ""),
        ("batchsem bench contended --tasks 256 --param hold=0.001", "a workload's knob"),
        ("batchsem bench batch-mix --rate 20000 --loop uvloop", "open loop"),
        ("batchsem bench --micro --quick", "pyperf micro-benchmarks"),
    ),
    listing("Workloads", REGISTRY, " ('batchsem list' shows their --param keys)"),
    listing("Implementations (--impl)", [*impls.BUILTIN, "module:attr (your own factory)"]),
))


@click.command(
    short_help="Measure throughput, latency and fairness of limiters",
    epilog=BENCH_EPILOG,
)
@click.argument("workloads", nargs=-1, shell_complete=complete_workloads)
@click.option("--impl", "impl_opt", multiple=True, shell_complete=complete_impls,
              help="implementations, comma-separated (see below) [batchsem,asyncio]")
@click.option("--loop", "loop_opt", multiple=True, shell_complete=complete_loops,
              help=f"event loops: {', '.join(loops.LOOPS)} [every available one]")
@click.option("--duration", type=float, default=None,
              help=f"seconds per repeat [{SUITE_DURATION}; --quick {QUICK_DURATION}]")
@click.option("--repeat", "repeats", type=int, default=None,
              help=f"repeats per case [{SUITE_REPEATS}; --quick 2]")
@click.option("--tasks", type=int, default=32, show_default=True, help="concurrent tasks (T)")
@click.option("--permits", type=int, default=8, show_default=True, help="semaphore size (P)")
@click.option("--param", "param_opt", multiple=True, metavar="KEY=VALUE",
              help="workload parameter (see 'batchsem list'); may repeat")
@click.option("--sweep", "sweep_opt", default=None, metavar="NAME=V1,V2,...",
              help="one case per value of tasks, permits, rate or a --param (scalability)")
@click.option("--seed", type=int, default=0, show_default=True, help="random seed")
@click.option("--rate", type=float, default=None,
              help="open loop: Poisson arrivals per second (contended, batch-mix)")
@click.option("--output", "-o", default=None,
              help="result file or directory [./results/<UTC time>-<label>.json]")
@click.option("--json", "as_json", is_flag=True, help="print the result document to stdout only")
@click.option("--trace", "trace_file", type=click.Path(dir_okay=False), default=None,
              help="write batchsem's tracer events (JSON lines) to this file")
@click.option("--quick", is_flag=True, help="short run (~10 s for the default suite)")
@click.option("--micro", is_flag=True,
              help="pyperf micro-benchmarks of the primitive operations instead")
@click.option("--redis-url", default=None, help="Redis for --impl redis/redis-naive "
              "[a private redis-server on a free loopback port]")
@click.option("--no-ceiling", is_flag=True, help="do not add the null limiter's ceiling row")
@click.option("--fast", is_flag=True, help="with --micro: pyperf --fast")
@click.option("--rigorous", is_flag=True, help="with --micro: pyperf --rigorous")
@export_options
@click.pass_context
def bench(
    ctx: click.Context,
    workloads: tuple[str, ...],
    impl_opt: tuple[str, ...],
    loop_opt: tuple[str, ...],
    duration: float | None,
    repeats: int | None,
    tasks: int,
    permits: int,
    param_opt: tuple[str, ...],
    sweep_opt: str | None,
    seed: int,
    rate: float | None,
    output: str | None,
    as_json: bool,
    trace_file: str | None,
    quick: bool,
    micro: bool,
    no_ceiling: bool,
    fast: bool,
    rigorous: bool,
    redis_url: str | None,
    export_csv: str | None,
    export_markdown: str | None,
) -> None:
    """Run WORKLOADS (default: all) for each implementation on each loop and report
    throughput, latency percentiles and fairness. Exit 1 if an invariant is violated.
    """
    impl_names = split_list(impl_opt) or list(DEFAULT_IMPLS)
    loop_names = split_list(loop_opt) or loops.available()
    if micro:
        ignored = [name for name, given in (
            ("WORKLOADS", bool(workloads)), ("--duration", duration is not None),
            ("--repeat", repeats is not None), ("--tasks", tasks != 32),
            ("--permits", permits != 8), ("--param", bool(param_opt)), ("--seed", seed != 0),
            ("--rate", rate is not None), ("--json", as_json), ("--trace", trace_file is not None),
            ("--no-ceiling", no_ceiling), ("--sweep", sweep_opt is not None),
            ("--export-csv", export_csv is not None),
            ("--export-markdown", export_markdown is not None)) if given]
        if ignored:
            fail(f"--micro runs pyperf's fixed micro-benchmarks: it does not take "
                 f"{', '.join(ignored)} (it takes --impl, --loop, --output, --quick/--fast, "
                 "--rigorous)")
        _micro(impl_opt, loop_names, output, "--fast" if quick or fast else
               "--rigorous" if rigorous else None)
        return
    if fast or rigorous:
        fail("--fast and --rigorous are pyperf options: use them with --micro")
    names = list(workloads) or list(REGISTRY)
    if duration is None:
        duration = QUICK_DURATION if quick else SUITE_DURATION
    if repeats is None:
        repeats = 2 if quick else SUITE_REPEATS
    params = parse_params(param_opt)
    try:
        sweep = None if sweep_opt is None else parse_sweep(sweep_opt)
        if sweep is not None and sweep.name in ("tasks", "permits", "rate"):
            source = ctx.get_parameter_source(sweep.name)
            if source is not None and source != click.core.ParameterSource.DEFAULT:
                fail(f"--sweep {sweep.name} and --{sweep.name}: give one of them")
        planner = engine.plan if sweep is None else functools.partial(plan_sweep, sweep)
        cases = planner(
            names,
            impl_names,
            loop_names,
            permits=permits,
            tasks=tasks,
            duration=duration,
            repeats=repeats,
            seed=seed,
            rate=rate,
            params=params,
            ceiling=not no_ceiling,
            warmup=duration * WARMUP_FRACTION,
        )
    except (ParamError, UnknownImpl, LoopUnavailable) as exc:
        fail(str(exc))
    use_redis(redis_url, impl_names)
    label = "bench" if not workloads else "bench-" + "-".join(workloads)[:60]
    if sweep is not None:
        label += f"-sweep-{sweep.name}"
    save_to = output_path(output, label)
    exports = Exports(export_csv, export_markdown)
    settings = {
        "workloads": names,
        "impls": impl_names,
        "loops": loop_names,
        "duration_s": duration,
        "repeats": repeats,
        "tasks": tasks,
        "permits": permits,
        "seed": seed,
        "rate": rate,
        "params": params,
    }
    if sweep is not None:
        settings["sweep"] = sweep.as_json()
    run = results.new_run("bench", ["batchsem", *sys.argv[1:]], settings)
    with contextlib.ExitStack() as stack:
        if trace_file is not None:
            try:
                fh = stack.enter_context(open(trace_file, "w", encoding="utf-8"))
            except OSError as exc:
                fail(f"cannot write trace file {trace_file}: {exc.strerror or exc}")
            tracer = JsonLinesTracer(fh)
            cases = [
                dataclasses.replace(c, trace=tracer) if c.impl.name == "batchsem"
                else c
                for c in cases
            ]
        interrupted = run_cases(cases, run, quiet=as_json)
    saved = save_or_explain(run, save_to, interrupted)
    _report(run, saved, exports, as_json=as_json, interrupted=interrupted)


def _report(
    run: Run, saved: Path | None, exports: Exports, *, as_json: bool, interrupted: bool
) -> None:
    from batchsem.report.tabular import case_table, sweep_name

    err = stderr_console()
    if as_json:
        click.echo(json.dumps(run.to_json(), indent=1, allow_nan=False))
    else:
        out = console()
        out.print(workload_tables(run.cases, out.width))
        swept = sweep_name(run)
        if swept is not None:
            out.print(sweep_tables(run.cases, swept, out.width))
        _warn_fifo(run, out)
    for warning in (noise_warning(run.cases), speed_warning(run.cases),
                    busy_warning(run.cases)):
        if warning is not None:
            err.print(warning)
    err.print(Text(f"saved {saved}", style="dim"))
    label = saved.stem if saved is not None else "run"
    for path in exports.write(lambda: case_table([(label, run)])):
        err.print(Text(f"wrote {path}", style="dim"))
    if interrupted:
        err.print(Text("interrupted: saved the cases that finished", style="yellow"))
        raise SystemExit(130)
    if any(c.status == "failed" for c in run.cases):
        err.print(Text("invariant violated in at least one case (see FAILED)", style="bold red"))
        raise SystemExit(1)


def _warn_fifo(run: Run, out: Any) -> None:
    fifo = [c for c in run.cases if c.impl == "batchsem" and "fifo_order" in c.invariants]
    broken = [c for c in fifo if not c.invariants["fifo_order"]]
    if broken:
        for c in broken:
            overtakes = c.summary.fairness.overtakes if c.summary else "some"
            out.print(Text(f"batchsem showed {overtakes} overtakes on {c.workload}/{c.loop}: "
                           "FIFO order was violated", style="bold red"))
    elif fifo:
        out.print(Text(f"batchsem: 0 overtakes in all {len(fifo)} single-loop cases "
                       "(strict FIFO held)", style="green"))


def _micro(
    impl_opt: tuple[str, ...], loop_names: list[str], output: str | None, mode: str | None
) -> None:
    """Run the pyperf worker module in a subprocess (pyperf owns argv and spawns workers)."""
    for name in loop_names:
        try:
            loops.factory(name)
        except LoopUnavailable as exc:
            fail(str(exc))
    from batchsem import micro as micro_mod

    for impl in split_list(impl_opt):
        if impl not in micro_mod.IMPLS:
            fail(f"--micro: unknown --impl {impl!r} (known: {', '.join(micro_mod.IMPLS)})")
        if not impls.installed(impl):
            fail(f"--micro: --impl {impl} is not installed (pip install 'batchsem[peers]')")
    save_to = output_path(output, "micro").path
    cmd = [sys.executable, "-m", "batchsem.micro", "-o", str(save_to), "--loop",
           ",".join(loop_names)]
    if impl_opt:
        cmd += ["--impl", ",".join(split_list(impl_opt))]
    if mode is not None:
        cmd.append(mode)
    code = subprocess.call(cmd)
    if code != 0:
        raise SystemExit(code)
    stderr_console().print(
        Text(f"saved {save_to} (pyperf format: python -m pyperf show)", style="dim")
    )
