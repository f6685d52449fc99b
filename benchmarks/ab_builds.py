"""Two builds of the compiled core side by side: a git revision's against the working tree's.

Compiles ``batchsem/_cbatchsem.c`` as it is at ``--base`` (default HEAD) and as it is in
the working tree, with setuptools' build_ext and setup.py's flags, as ``pip install``
compiles it, into a temporary directory under two module names, and loads both into
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
import os
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
#: setup.py's extra_compile_args for the extension (not on Windows).
SETUP_FLAGS = ["-O2", "-std=c99"]
ROWS: dict[str, Any] = {
    "handoff": lambda: bl.handoff_batchsem(600),
    "contended": lambda: bl.contended_batchsem(64, 8, 20),
}


def compile_core(source: Path, name: str, out_dir: Path) -> Path:
    """Build ``source`` as the extension module ``<name>`` in ``out_dir``; its path.

    setuptools' build_ext, as ``pip install`` runs it, with setup.py's compile flags.
    """
    from setuptools import Distribution, Extension

    src = out_dir / f"{name}.c"
    src.write_bytes(source.read_bytes())
    ext = Extension(
        name, [src.name], extra_compile_args=SETUP_FLAGS,
        define_macros=[("PyInit__cbatchsem", f"PyInit_{name}")],  # what the name needs
    )
    cwd = os.getcwd()
    os.chdir(out_dir)
    try:
        dist = Distribution({"name": name, "ext_modules": [ext]})
        dist.script_args = ["build_ext", "--inplace", "--build-temp", "build", "--quiet"]
        dist.parse_command_line()
        dist.run_commands()
    finally:
        os.chdir(cwd)
    return out_dir / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"


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
        base_c = out / "base_source.c"
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
