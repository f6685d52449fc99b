#!/usr/bin/env python
"""Hand-written C against Cython: the cores side by side, on the rows of bench_library.py.

Measures, in one process, interleaved, best of N rounds, on the asyncio loop and uvloop:

``asyncio``       ``asyncio.Semaphore`` (the baseline of every ratio)
``python``        batchsem's pure-Python core (``batchsem._semaphore``)
``cython-pure``   the same modules compiled by Cython unchanged (``build.py``)
``cython-typed``  the same plus the ``.pxd`` declarations of ``typed/`` (``build.py``)
``cython-cdef``   ``cython-typed`` with Permit and Acquire as cdef classes (``build.py``)
``c``             the hand-written C core (``batchsem._cbatchsem``)

The scenarios are ``benchmarks/bench_library.py``'s own functions (imported, with
:func:`bench_library.use_semaphore` pointing them at each core in turn). In each round
every (loop, scenario) cell runs every side once; the order rotates from round to round
and from cell to cell, and each side keeps its best run. Usage, from the repository
root, with Cython installed in the venv (``.venv/bin/pip install cython``)::

    .venv/bin/python benchmarks/cython_core/compare.py --rounds 9 \\
        --json benchmarks/results/cython_vs_c-2core.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_library as bl  # noqa: E402
import build  # noqa: E402

from batchsem import _cbatchsem, _semaphore  # noqa: E402

#: The rows of issue 9's table that measure the core (not the threads row).
SCENARIOS = ("uncontended", "idiom", "batch", "contended", "handoff", "cancel_random")
#: Also available with --scenario: row 1b, where the "asyncio" side is a no-op async CM.
EXTRA_SCENARIOS = ("noop_cm",)
SIDES = ("asyncio", "python", "cython-pure", "cython-typed", "cython-cdef", "c")


def semaphore_classes() -> dict[str, Any]:
    """The Semaphore class of every batchsem side (the Cython builds are built if needed)."""
    return {
        "python": _semaphore.Semaphore,
        "cython-pure": build.load("pure").Semaphore,
        "cython-typed": build.load("typed").Semaphore,
        "cython-cdef": build.load("cdef").Semaphore,
        "c": _cbatchsem.Semaphore,
    }


def side_runs(scenario: bl.Scenario, classes: dict[str, Any]) -> dict[str, bl.RunFn]:
    """The timed run of every side for one scenario."""
    runs: dict[str, bl.RunFn] = {"asyncio": scenario.runs["asyncio"]}
    batchsem_run = scenario.runs["batchsem"]
    for side, cls in classes.items():

        async def run(seed: int, cls: Any = cls) -> bl.Timing:
            bl.use_semaphore(cls)
            return await batchsem_run(seed)

        runs[side] = run
    return runs


def measure(
    loops: dict[str, bl.LoopFactory],
    scenarios: list[bl.Scenario],
    classes: dict[str, Any],
    rounds: int,
) -> dict[tuple[str, str], dict[str, list[bl.Timing]]]:
    """(loop, scenario) -> side -> one (wall, cpu) Timing per round."""
    cells: dict[tuple[str, str], dict[str, list[bl.Timing]]] = {}
    runs = {sc.key: side_runs(sc, classes) for sc in scenarios}
    started = time.perf_counter()
    for rnd in range(rounds):
        for loop_name, factory in loops.items():
            for i, sc in enumerate(scenarios):
                cell = cells.setdefault((loop_name, sc.key), {side: [] for side in SIDES})
                shift = (rnd + i) % len(SIDES)
                for side in SIDES[shift:] + SIDES[:shift]:
                    cell[side].append(bl.run_once(factory, runs[sc.key][side], rnd, keep_gc=False))
        print(
            f"  round {rnd + 1}/{rounds} done ({time.perf_counter() - started:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    return cells


def summarize(times: dict[str, list[bl.Timing]], ops: int) -> dict[str, Any]:
    best_wall = {side: min(w for w, _ in t) for side, t in times.items()}
    best_cpu = {side: min(c for _, c in t) for side, t in times.items()}
    return {
        "ops": ops,
        "wall_seconds": {side: [w for w, _ in t] for side, t in times.items()},
        "cpu_seconds": {side: [c for _, c in t] for side, t in times.items()},
        "best_wall_seconds": best_wall,
        "best_cpu_seconds": best_cpu,
        "ns_per_op": {side: 1e9 * best_wall[side] / ops for side in times},
        # asyncio time / side time: > 1 means faster than asyncio.Semaphore
        "ratio_vs_asyncio": {side: best_wall["asyncio"] / best_wall[side] for side in times},
        "cpu_ratio_vs_asyncio": {side: best_cpu["asyncio"] / best_cpu[side] for side in times},
        # side time / C time: 1.00 = as fast as the hand-written C core
        "time_vs_c": {side: best_wall[side] / best_wall["c"] for side in times},
        "preempted": {
            side: (lambda w, c: w > bl.PREEMPTED * c)(*min(t)) for side, t in times.items()
        },
    }


def render(results: list[dict[str, Any]]) -> str:
    head = ["loop", "scenario", *(f"{s}" for s in SIDES)]
    rows = [head]
    for r in results:
        s = r["summary"]
        cells = []
        for side in SIDES:
            mark = "*" if s["preempted"][side] else ""
            if side == "asyncio":
                cells.append(f"{s['ns_per_op'][side]:.0f} ns{mark}")
            else:
                cells.append(
                    f"{s['ratio_vs_asyncio'][side]:.2f}x ({s['cpu_ratio_vs_asyncio'][side]:.2f}x)"
                    f"{mark}"
                )
        rows.append([r["loop"], r["scenario"], *cells])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--loop", choices=("all", "asyncio", "uvloop"), default="all")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS + EXTRA_SCENARIOS)
    parser.add_argument("--scale", type=float, default=1.0, help="work per run (1 = bench_library)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if build.cython_version() is None:
        print("error: Cython is not installed (.venv/bin/pip install cython)", file=sys.stderr)
        return 2
    classes = semaphore_classes()
    sizes = bl.Sizes()
    if args.scale != 1.0:
        sizes = sizes.scaled(args.scale, keep_cancel=True)
    wanted = ["asyncio", "uvloop"] if args.loop == "all" else [args.loop]
    loops, notes = bl.available_loops(wanted)
    keys = args.scenario or list(SCENARIOS)
    scenarios = [sc for sc in bl.build_scenarios(sizes, core="c") if sc.key in keys]
    meta = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": bl.os.cpu_count(),
        "cython": build.cython_version(),
        "cython_directives": build.DIRECTIVES,
        "cython_modules": {side: cls.__module__ for side, cls in classes.items()},
        "uvloop": bl.uvloop_version(),
        "rounds": args.rounds,
        "sizes": sizes.__dict__.copy(),
        "git_revision": git_revision(),
        "loadavg": bl._loadavg(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "notes": notes,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    print(
        f"Cython {meta['cython']}, Python {meta['python']}, uvloop {meta['uvloop']}",
        file=sys.stderr,
    )
    small = [
        sc
        for sc in bl.build_scenarios(sizes.scaled(0.1, keep_cancel=False), core="c")
        if sc.key in keys
    ]
    measure(loops, small, classes, 1)  # warm-up, discarded
    cells = measure(loops, scenarios, classes, args.rounds)
    ops = {sc.key: sc.ops for sc in scenarios}
    titles = {sc.key: sc.title for sc in scenarios}
    results = [
        {"loop": loop, "scenario": key, "title": titles[key], "summary": summarize(times, ops[key])}
        for (loop, key), times in cells.items()
    ]
    meta["loadavg_end"] = bl._loadavg()
    print(render(results))
    print(
        "asyncio column: ns per op (best wall). Other columns: asyncio time / that core's time,"
        "\nbest wall (best CPU); > 1 = faster than asyncio.Semaphore. * = a best run preempted."
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
        print(f"raw timings written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
