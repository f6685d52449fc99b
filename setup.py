"""Build the optional C accelerator ``batchsem._cbatchsem``; fall back to pure Python.

This is the aio-libs pattern (multidict, frozenlist, yarl): the extension is
built when a C compiler and the CPython headers are there, and if building it
fails for any reason the package installs anyway, without it, after printing
a visible warning. ``BATCHSEM_NO_EXTENSIONS=1`` at build time skips the
extension on purpose. At run time ``batchsem.IMPLEMENTATION`` says which core
is in use, and ``BATCHSEM_PURE_PYTHON=1`` forces the Python one.
All metadata lives in pyproject.toml.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NO_EXTENSIONS = os.environ.get("BATCHSEM_NO_EXTENSIONS", "") not in ("", "0")
if platform.python_implementation() != "CPython":
    NO_EXTENSIONS = True

BANNER = "*" * 78


def warn(message: str) -> None:
    print(f"\n{BANNER}\nWARNING: {message}\n{BANNER}\n", file=sys.stderr, flush=True)


class OptionalBuildExt(build_ext):
    """``build_ext`` that turns any failure into a warning: the package stays pure Python."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, no headers, a platform we cannot build for
            self._failed(exc)

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # the compiler ran and failed
            self._failed(exc)

    _warned = False

    def _failed(self, exc: Exception) -> None:
        if OptionalBuildExt._warned:
            return
        OptionalBuildExt._warned = True
        warn(
            "the C accelerator batchsem._cbatchsem could not be built "
            f"({type(exc).__name__}: {exc}).\n"
            "batchsem is installed as pure Python: same API and semantics, slower, and "
            "not atomic against KeyboardInterrupt (see docs/development.md)."
        )


ext_modules = []
if NO_EXTENSIONS:
    print(
        "batchsem: BATCHSEM_NO_EXTENSIONS is set or not CPython; pure Python only.", file=sys.stderr
    )
else:
    ext_modules.append(
        Extension(
            "batchsem._cbatchsem",
            ["batchsem/_cbatchsem.c"],
            extra_compile_args=[] if sys.platform == "win32" else ["-O2", "-std=c99"],
        )
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
