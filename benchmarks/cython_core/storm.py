#!/usr/bin/env python
"""The SIGINT storm of tests/core/test_sigint_storm.py against every core, Cython builds included.

Each (core, run) is a process of its own (a wedged semaphore leaves a thread spinning
on it). A run is ``test_sigint_storm.storm()`` itself: SIGINT about every 100 µs for
``--seconds`` against a Semaphore(16) while the main thread loops on ``try_acquire`` /
``Permit.release`` / ``add_permits`` / ``release`` / ``forget_permits`` (all called from C
through ``map``). It reports the interrupts that landed, whether another thread could
still use the semaphore afterwards (``wedged``), and the permits missing from the books
(``lost``). Usage::

    .venv/bin/python benchmarks/cython_core/storm.py --runs 5 --seconds 3 \\
        --json benchmarks/results/cython_vs_c-storm-2core.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORES = ("python", "cython-pure", "cython-typed", "cython-cdef", "c")


def semaphore_class(core: str) -> Any:
    sys.path.insert(0, str(HERE))
    import build

    if core == "python":
        from batchsem import _semaphore

        return _semaphore.Semaphore
    if core == "c":
        from batchsem import _cbatchsem

        return _cbatchsem.Semaphore
    return build.load(core.removeprefix("cython-")).Semaphore


def one(core: str, seconds: float) -> dict[str, Any]:
    """One storm in this process; the result as a dict."""
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "core")]
    import test_sigint_storm as t

    cls = semaphore_class(core)
    result = t.storm(cls(t.INITIAL), seconds)
    return dataclasses.asdict(result) | {"lost": result.lost, "module": cls.__module__}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--core", action="append", choices=CORES)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--one", choices=CORES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.seconds)))
        return 0
    cores = args.core or list(CORES)
    runs: dict[str, list[dict[str, Any]]] = {core: [] for core in cores}
    for i in range(args.runs):
        for core in cores:
            proc = subprocess.run(
                [sys.executable, __file__, "--one", core, "--seconds", str(args.seconds)],
                capture_output=True,
                text=True,
                timeout=args.seconds + 120,
            )
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            runs[core].append(r)
            print(
                f"run {i + 1} {core:13} {r['interrupts']:6} interrupts  "
                f"wedged={r['wedged']!s:5}  lost={r['lost']}",
                flush=True,
            )
    print()
    for core, rs in runs.items():
        print(
            f"{core:13} {sum(r['interrupts'] for r in rs):7,} interrupts in {len(rs)} runs: "
            f"{sum(r['wedged'] for r in rs)} wedged, "
            f"{sum(1 for r in rs if r['lost'])} with permits lost or gained "
            f"(total {sum(r['lost'] for r in rs)})"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "python": sys.version.split()[0],
            "seconds": args.seconds,
            "runs": args.runs,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join([Path(sys.executable).name, *(argv or sys.argv)]),
        }
        args.json.write_text(json.dumps({"meta": meta, "runs": runs}, indent=2) + "\n")
        print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
