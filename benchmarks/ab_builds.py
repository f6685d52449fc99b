"""Two builds of the compiled core side by side: a git revision's against the working tree's.

Compiles ``batchsem/_cbatchsem.c`` as it is at ``--base`` (default HEAD) and as it is in
the working tree, with the same compiler and flags (this interpreter's, plus setup.py's
``-O2 -std=c99``), into a temporary directory under two module names, and loads both into
one process. Then, as ``paired.py`` does against ``asyncio.Semaphore``, it runs the two
builds back to back in short slices (about 10 ms each, the order alternating) on one
event loop per loop kind, and reports the median and quartiles of the ratios
base time / working-tree time: above 1, the working tree is faster.

Rows: ``handoff`` (2 tasks / 1 permit) and ``contended`` (64 tasks / 8 permits,
``async with: sleep(0)``). Both builds run the same Python code around them, so a
difference is the C file's. Build the same source twice (``--base`` naming a revision
whose C file is unchanged) to see the noise floor: within 1% on the 2-core machine.

    .venv/bin/python benchmarks/ab_builds.py --base 4391189 --pairs 150
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

import bench_library as bl
from paired import Run, pair_ratios

ROOT = Path(__file__).resolve().parent.parent
SOURCE = "batchsem/_cbatchsem.c"
ROWS: dict[str, Any] = {
    "handoff": lambda: bl.handoff_batchsem(600),
    "contended": lambda: bl.contended_batchsem(64, 8, 20),
}


def compile_core(source: Path, name: str, out_dir: Path) -> Path:
    """Build ``source`` as the extension module ``batchsem.<name>``; its path."""
    cfg = sysconfig.get_config_vars()
    suffix = cfg["EXT_SUFFIX"]
    obj = out_dir / f"{name}.o"
    lib = out_dir / f"{name}{suffix}"
    flags = [
        *shlex.split(cfg.get("CFLAGS") or ""),
        *shlex.split(cfg.get("CCSHARED") or ""),
        "-O2",
        "-std=c99",
        f"-I{sysconfig.get_paths()['include']}",
        f"-DPyInit__cbatchsem=PyInit_{name}",  # the init function the module name needs
    ]
    subprocess.run([*shlex.split(cfg["CC"]), *flags, "-c", str(source), "-o", str(obj)],
                   check=True)
    subprocess.run([*shlex.split(cfg["LDSHARED"]), str(obj), "-o", str(lib)], check=True)
    return lib


def load_core(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"batchsem.{name}", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_with(cls: Any, row: Any) -> Run:
    def run() -> Any:
        bl.use_semaphore(cls)  # read by the scenario when its coroutine starts
        return row()

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="git revision of the base build")
    parser.add_argument("--pairs", type=int, default=150, help="pairs per row and loop")
    parser.add_argument("--loop", choices=("all", "asyncio", "uvloop"), default="all")
    args = parser.parse_args()
    if args.pairs < 4:
        parser.error("--pairs must be >= 4")
    show = subprocess.run(["git", "-C", str(ROOT), "show", f"{args.base}:{SOURCE}"],
                          capture_output=True, text=True)
    if show.returncode != 0:
        parser.error(f"--base {args.base}: {show.stderr.strip() or 'not found'}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        base_c = out / "base.c"
        base_c.write_text(show.stdout)
        base = load_core("_cbatchsem_base", compile_core(base_c, "_cbatchsem_base", out))
        new = load_core("_cbatchsem_new", compile_core(ROOT / SOURCE, "_cbatchsem_new", out))
    wanted = ["asyncio", "uvloop"] if args.loop == "all" else [args.loop]
    loops, notes = bl.available_loops(wanted)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{SOURCE} at {args.base} against the working tree, {args.pairs} pairs of ~10 ms "
          "slices per row and loop; base time / working-tree time")
    for loop_name, factory in loops.items():
        loop = factory()
        try:
            for row_name, row in ROWS.items():
                mine, theirs = run_with(new.Semaphore, row), run_with(base.Semaphore, row)
                for _ in range(5):  # warm-up
                    loop.run_until_complete(mine())
                    loop.run_until_complete(theirs())
                ratios = pair_ratios(loop, mine, theirs, args.pairs)
                q1, median, q3 = statistics.quantiles(ratios, n=4)
                print(f"{loop_name:8} {row_name:10} median {median:.3f}  "
                      f"quartiles {q1:.3f}-{q3:.3f}")
        finally:
            loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
