"""``batchsem starve-test``: a pass/fail diagnosis — does this semaphore starve large requests?"""

from __future__ import annotations

import dataclasses
import json
import math
import sys

import click
from rich.text import Text

from batchsem.bench import engine, loops, results
from batchsem.bench.impls import UnknownImpl
from batchsem.bench.loops import LoopUnavailable
from batchsem.bench.schema import Case, StarveVerdict
from batchsem.workloads import ParamError

from .bench_cmd import run_cases, save_or_explain
from .common import console, fail, output_path, split_list, stderr_console
from .render import starve_findings, starve_table

# A FIFO semaphore makes the large request wait for at most the requests queued
# ahead of it (< N + K of them), each held for about `hold` plus one scheduling
# round. The default deadline allows 50 such rounds per request ahead (20 µs
# each at least) and never less than 0.25 s, so scheduler noise on a busy
# 2-core machine does not fail a fair semaphore, while a starving one waits for
# the whole run (several times the deadline).
MIN_DEADLINE = 0.25
ROUND_S = 20e-6


def default_deadline(small_tasks: int, batch: int, hold: float) -> float:
    """The bound a fair semaphore's large request is held to (see the comment above)."""
    return max(MIN_DEADLINE, 50 * (small_tasks + batch) * (hold + ROUND_S))


def verdict(case: Case, deadline: float) -> StarveVerdict | None:
    """Starved = the large request was not served within ``deadline``, or made no progress.

    None when the case has nothing to judge (not run, or no ``large`` class).
    """
    if case.summary is None or not {"large", "small"} <= case.summary.classes.keys():
        return None
    large = case.summary.classes["large"]
    longest_s = large.longest_wait_in_window_us / 1e6
    reasons = []
    if large.completed_in_window == 0:
        reasons.append("no large request was served during the run")
    if longest_s > deadline:
        reasons.append(f"a large request waited {longest_s:.3f} s > deadline {deadline:.3f} s")
    lat = large.latency_us
    return StarveVerdict(
        starved=bool(reasons),
        reasons=reasons,
        deadline_s=deadline,
        large_completed=large.completed_in_window,
        small_completed=case.summary.classes["small"].completed_in_window,
        longest_wait_s=longest_s,
        wait_p50_us=None if lat is None else lat.p50,
        wait_p99_us=None if lat is None else lat.p99,
        wait_max_us=None if lat is None else lat.max,
        max_overtakes=large.fairness.max_overtakes,
        overtakes=large.fairness.overtakes,
    )


@click.command("starve-test")
@click.option("--impl", "impl_opt", multiple=True, help="implementations, comma-separated "
              "[batchsem]")
@click.option("--loop", "loop_opt", multiple=True, help="event loops [every available one]")
@click.option("--permits", type=int, default=8, show_default=True, help="semaphore size (P)")
@click.option("--batch", type=int, default=None, help="the large request's size K [P]")
@click.option("--small-tasks", type=int, default=32, show_default=True,
              help="one-permit tasks keeping the semaphore saturated (N)")
@click.option("--hold", type=float, default=0.0, show_default=True,
              help="seconds each request holds its permits (0 = one sleep(0))")
@click.option("--duration", type=float, default=None,
              help="seconds per implementation and loop [max(2, 4 x deadline)]")
@click.option("--deadline", type=float, default=None,
              help="longest acceptable wait for the large request [derived; printed]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the result document to stdout only")
@click.option("--output", "-o", default=None, help="result file or directory")
def starve_test(
    impl_opt: tuple[str, ...],
    loop_opt: tuple[str, ...],
    permits: int,
    batch: int | None,
    small_tasks: int,
    hold: float,
    duration: float | None,
    deadline: float | None,
    seed: int,
    as_json: bool,
    output: str | None,
) -> None:
    """Saturate P permits with N one-permit tasks while one task repeatedly asks for K.

    Exit 0 when no chosen implementation starves the large request, 1 when one
    does, 2 on usage errors.
    """
    impl_names = split_list(impl_opt) or ["batchsem"]
    loop_names = split_list(loop_opt) or loops.available()
    k = permits if batch is None else batch
    # Written so that nan (which float options accept, and JSON cannot store) fails too.
    if not 0 <= hold < math.inf:
        fail(f"--hold must be >= 0 and finite, got {hold}")
    if deadline is not None and not 0 < deadline < math.inf:
        fail(f"--deadline must be > 0 and finite, got {deadline}")
    if permits < 1:  # before --batch, which defaults to it
        fail(f"--permits must be >= 1, got {permits}")
    if k < 1:
        fail(f"--batch must be >= 1, got {k}")
    # Checked here so the messages name this command's options, not bench's
    # (--param batch, --tasks) that engine.plan would report.
    if k > permits:
        fail(f"--batch {k} exceeds --permits {permits}: the large request could never run")
    if small_tasks < 1:
        fail(f"--small-tasks must be >= 1, got {small_tasks}")
    bound = default_deadline(small_tasks, k, hold) if deadline is None else deadline
    run_for = max(2.0, 4 * bound) if duration is None else duration
    try:
        cases = engine.plan(
            ["starvation"],
            impl_names,
            loop_names,
            permits=permits,
            tasks=small_tasks,
            duration=run_for,
            repeats=1,
            seed=seed,
            rate=None,
            params={"batch": str(k), "hold": str(hold), "large_hold": str(hold)},
        )
    except (ParamError, UnknownImpl, LoopUnavailable) as exc:
        fail(str(exc))
    save_to = output_path(output, "starve-test")
    settings = {"impls": impl_names, "loops": loop_names, "permits": permits, "batch": k,
                "small_tasks": small_tasks, "hold": hold, "duration_s": run_for,
                "deadline_s": bound, "deadline_derived": deadline is None, "seed": seed}
    run = results.new_run("starve-test", ["batchsem", *sys.argv[1:]], settings)
    interrupted = run_cases(cases, run, quiet=as_json)
    run.cases = [dataclasses.replace(c, verdict=verdict(c, bound)) for c in run.cases]
    saved = save_or_explain(run, save_to, interrupted)

    err = stderr_console()
    if as_json:
        click.echo(json.dumps(run.to_json(), indent=1, allow_nan=False))
    else:
        out = console()
        how = "derived: max(0.25 s, 50 x (N + K) x (hold + 20 µs))" if deadline is None else "given"
        out.print(Text(
            f"starvation: N={small_tasks} one-permit tasks saturate P={permits} permits; "
            f"one task repeatedly asks for K={k}; hold={hold} s; {run_for:.2f} s per case\n"
            f"deadline for the large request: {bound:.3f} s ({how})"
        ))
        out.print(starve_table(run.cases, out.width))
        for line in starve_findings(run.cases):
            out.print(line)
    err.print(Text(f"saved {saved}", style="dim"))
    if interrupted:
        raise SystemExit(130)
    failed = [c for c in run.cases if c.status == "failed"]
    starved = [c for c in run.cases if c.verdict and c.verdict.starved]
    if failed and not as_json:
        err.print(Text("invariant violated (see the bench tables)", style="bold red"))
    raise SystemExit(1 if starved or failed else 0)
