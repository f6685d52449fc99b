"""Paired ratios of bench_library's contended rows, robust to a machine that changes speed.

bench_library.py interleaves whole rounds (about a second each) and keeps the best of
each side. On a machine whose speed moves by 5-15% from one 100 ms to the next, that can
still give one side a faster stretch. Here both sides run back to back in short slices
(about 10 ms each, the order alternating), on one event loop that lives for the whole
run, and every pair gives one ratio; the median and quartiles of those ratios are
reported. A slice is too short for the machine to change speed within it, and a pair
sees the same speed on both sides.

Rows: ``contended`` (64 tasks / 8 permits, `async with: sleep(0)`), ``handoff`` (2 tasks /
1 permit) against ``asyncio.Semaphore``, and ``handoff_floor``: batchsem's hand-off
against bench_library's bare-futures floor (the least any asyncio primitive does per
hand-off). handoff / handoff_floor is the ratio a semaphore costing nothing would reach.

    .venv/bin/python benchmarks/paired.py --impl c --pairs 300 --json results/paired-c-2core.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import bench_library as bl

Run = Callable[[], Coroutine[Any, Any, Any]]

#: Operations per slice: about 10 ms of work per side on the 2-core test machine.
ROWS: dict[str, tuple[Run, Run, str]] = {
    "contended": (
        lambda: bl.contended_batchsem(64, 8, 20),
        lambda: bl.contended_asyncio(64, 8, 20),
        "asyncio.Semaphore",
    ),
    "handoff": (
        lambda: bl.handoff_batchsem(600),
        lambda: bl.handoff_asyncio(600),
        "asyncio.Semaphore",
    ),
    "handoff_floor": (
        lambda: bl.handoff_batchsem(600),
        lambda: bl.handoff_floor(600),
        "bare futures",
    ),
}


def pair_ratios(loop: asyncio.AbstractEventLoop, mine: Run, base: Run, pairs: int) -> list[float]:
    """``pairs`` ratios base time / batchsem time, each from two adjacent slices."""
    ratios: list[float] = []
    gc.collect()
    gc.disable()
    try:
        for i in range(pairs):
            times: dict[int, float] = {}
            for side in ((0, 1) if i % 2 else (1, 0)):
                fn = mine if side == 0 else base
                t0 = time.perf_counter()
                loop.run_until_complete(fn())
                times[side] = time.perf_counter() - t0
            ratios.append(times[1] / times[0])
    finally:
        gc.enable()
    return ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", choices=("active", "c", "python"), default="active")
    parser.add_argument("--pairs", type=int, default=300, help="pairs per row and loop")
    parser.add_argument("--loop", choices=("all", "asyncio", "uvloop"), default="all")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args()
    if args.pairs < 4:
        parser.error("--pairs must be >= 4")
    bl.select_core(args.impl)
    wanted = ["asyncio", "uvloop"] if args.loop == "all" else [args.loop]
    loops, notes = bl.available_loops(wanted)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"batchsem {bl.CORE} core, {args.pairs} pairs of ~10 ms slices per row and loop")
    results: list[dict[str, Any]] = []
    for loop_name, factory in loops.items():
        loop = factory()
        try:
            for row, (mine, base, base_name) in ROWS.items():
                loop.run_until_complete(mine())  # warm-up
                loop.run_until_complete(base())
                ratios = pair_ratios(loop, mine, base, args.pairs)
                q1, median, q3 = statistics.quantiles(ratios, n=4)
                print(
                    f"{loop_name:8} {row:14} vs {base_name:18} median {median:.3f}  "
                    f"quartiles {q1:.3f}-{q3:.3f}"
                )
                results.append(
                    {"loop": loop_name, "row": row, "baseline": base_name, "median": median,
                     "q1": q1, "q3": q3, "ratios": ratios}
                )
        finally:
            loop.close()
    if args.json is not None:
        env = {"core": bl.CORE, "python": sys.version.split()[0], "pairs": args.pairs,
               "uvloop": bl.uvloop_version(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                       time.gmtime())}
        args.json.write_text(json.dumps({"environment": env, "rows": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
