#!/usr/bin/env python
"""Compile batchsem's pure-Python core with Cython, outside the package, for measurement.

Three variants, each an importable package of its own, so that none replaces the
package's core (``batchsem._semaphore`` and ``batchsem._cbatchsem`` stay untouched):

``batchsem_cy_pure``
    ``_semaphore.py``, ``_waitlist.py``, ``_lock.py``, ``_permit.py`` and ``_counts.py``
    copied unchanged and compiled by Cython ("pure Python mode"; see
    :data:`DIRECTIVES` for why annotations are not used as types).
``batchsem_cy_typed``
    The same copies plus the ``.pxd`` files of ``typed/`` beside them (Cython's
    augmenting declarations: the queue node, the queue and the semaphore become
    ``cdef`` classes with C-typed counters; the ``.py`` files are still unchanged).
``batchsem_cy_cdef``
    ``typed`` plus ``cdef/``: ``Permit`` and ``Acquire`` become ``cdef`` classes too.
    That needs the one source edit of :data:`EDITS`: the hot paths build them with
    ``object.__new__``, which refuses a ``cdef`` class.

Apart from :data:`EDITS`, the only edit to the copies is in their import lines: the
modules that are not compiled (``_debug``, ``_errors``, ``_trace``) are imported from
``batchsem`` instead of relatively, so every variant raises batchsem's own exceptions and
emits its trace events.

Cython is a development tool here, never a dependency of batchsem: install it by hand
(``.venv/bin/pip install cython``). Usage::

    .venv/bin/python benchmarks/cython_core/build.py            # every variant
    .venv/bin/python benchmarks/cython_core/build.py --variant typed --out /tmp/x

Each variant is compiled in a temporary directory (``/tmp/batchsem-cython-<digest>``
by default, the digest covering the sources, the ``.pxd`` files, the Cython version and
the interpreter), reused while nothing changed. :func:`load` builds if needed and
imports the variant's ``_semaphore`` module.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import re
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent.parent / "batchsem"
#: The modules compiled: the core and the small modules it imports.
MODULES = ("_counts", "_lock", "_permit", "_waitlist", "_semaphore")
#: Imported from the installed batchsem, not compiled.
SHARED = ("_debug", "_errors", "_trace")
VARIANTS = {"pure": "batchsem_cy_pure", "typed": "batchsem_cy_typed", "cdef": "batchsem_cy_cdef"}
#: Source edits of the ``cdef`` variant: (module, old, new, how many times).
EDITS = {
    "cdef": [
        ("_semaphore", "_new(Permit)", "Permit.__new__(Permit)", 2),
        ("_semaphore", "_new(Acquire)", "Acquire.__new__(Acquire)", 1),
    ]
}
#: Compiler directives for both variants: the language level, and annotations ignored.
#: With Cython's default ``annotation_typing=True``, Cython 3.3 turns ``n: int`` into a
#: coercion at the call (``int(n)``): ``try_acquire(1.5)`` and ``try_acquire(True)`` then
#: take 1 permit instead of raising ``TypeError``, and the test suite fails. Without
#: annotation typing the compiled modules keep the reference's semantics, and the typed
#: variant takes its types from the ``.pxd`` files alone.
DIRECTIVES: dict[str, object] = {"language_level": 3, "annotation_typing": False}


def cython_version() -> str | None:
    try:
        import Cython
    except ImportError:
        return None
    return str(Cython.__version__)


def _sources(variant: str) -> dict[str, bytes]:
    """File name -> contents of the package directory to compile."""
    shared = "|".join(SHARED)
    texts: dict[str, str] = {"__init__.py": ""}
    for mod in MODULES:
        text = (PACKAGE / f"{mod}.py").read_text()
        text = re.sub(
            rf"^(\s*)from \.({shared}) import", r"\1from batchsem.\2 import", text, flags=re.M
        )
        texts[f"{mod}.py"] = text
    for mod, old, new, count in EDITS.get(variant, []):
        found = texts[f"{mod}.py"].count(old)
        if found != count:
            raise RuntimeError(f"{mod}.py: expected {count} x {old!r}, found {found}")
        texts[f"{mod}.py"] = texts[f"{mod}.py"].replace(old, new)
    layers = {"pure": [], "typed": ["typed"], "cdef": ["typed", "cdef"]}[variant]
    for layer in layers:  # a later layer's .pxd is appended to an earlier one's
        for pxd in sorted((HERE / layer).glob("*.pxd")):
            texts[pxd.name] = texts.get(pxd.name, "") + "\n" + pxd.read_text()
    return {name: text.encode() for name, text in texts.items()}


def default_dir(variant: str) -> Path:
    digest = hashlib.sha256()
    for name, data in sorted(_sources(variant).items()):
        digest.update(name.encode() + b"\0" + data + b"\0")
    digest.update(f"{cython_version()} {sys.version} {sysconfig.get_platform()}".encode())
    digest.update(repr(sorted(DIRECTIVES.items())).encode())
    return Path(tempfile.gettempdir()) / f"batchsem-cython-{variant}-{digest.hexdigest()[:12]}"


def build(variant: str, out: Path | None = None, *, force: bool = False) -> Path:
    """Compile ``variant`` into ``out`` (default :func:`default_dir`); return the directory.

    The directory holds the package (``VARIANTS[variant]``) with one extension module
    per compiled module. ``ImportError`` if Cython is not installed; a compiler error
    propagates (``SystemExit``/``CompileError`` from setuptools).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {sorted(VARIANTS)}")
    from Cython.Build import cythonize
    from setuptools import Distribution, Extension

    out = out or default_dir(variant)
    pkg = VARIANTS[variant]
    stamp = out / ".built"
    if stamp.exists() and not force:
        return out
    if out.exists():
        shutil.rmtree(out)
    (out / pkg).mkdir(parents=True)
    for name, data in _sources(variant).items():
        (out / pkg / name).write_bytes(data)
    extensions = [Extension(f"{pkg}.{mod}", [f"{pkg}/{mod}.py"]) for mod in MODULES]
    cwd = os.getcwd()
    os.chdir(out)
    try:
        modules = cythonize(extensions, compiler_directives=DIRECTIVES, quiet=True)
        dist = Distribution({"name": pkg, "ext_modules": modules})
        dist.script_args = ["build_ext", "--inplace", "--build-temp", "build"]
        dist.parse_command_line()
        dist.run_commands()
    finally:
        os.chdir(cwd)
    for mod in MODULES:  # only the compiled modules may be imported
        (out / pkg / f"{mod}.py").rename(out / pkg / f"{mod}.py.src")
    stamp.write_text(f"Cython {cython_version()}\n")
    return out


def load(variant: str, out: Path | None = None) -> ModuleType:
    """The variant's compiled ``_semaphore`` module (building it first if needed)."""
    directory = build(variant, out)
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    module = importlib.import_module(f"{VARIANTS[variant]}._semaphore")
    if not str(getattr(module, "__file__", "")).endswith(sysconfig.get_config_var("EXT_SUFFIX")):
        raise ImportError(f"{module.__name__} was not imported from the compiled extension")
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=(*VARIANTS, "all"), default="all")
    parser.add_argument("--out", type=Path, default=None, help="build directory (one variant)")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    if cython_version() is None:
        print("error: Cython is not installed (.venv/bin/pip install cython)", file=sys.stderr)
        return 2
    variants = list(VARIANTS) if args.variant == "all" else [args.variant]
    if args.out is not None and len(variants) > 1:
        parser.error("--out needs one --variant")
    for variant in variants:
        directory = build(variant, args.out, force=args.force)
        module = load(variant, directory)
        print(f"{variant}: {module.__name__} from {module.__file__} (Cython {cython_version()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
