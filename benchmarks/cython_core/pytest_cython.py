"""A pytest plugin: run the library tests' ``c`` parameter against a Cython build instead.

``tests/_impls.py`` loads the compiled core through ``compiled_module()``; this plugin
replaces that function, before the test modules are collected, with one returning the
Cython variant named by ``BATCHSEM_CYTHON_VARIANT`` (``pure`` or ``typed``, built by
``build.py``). Every test parametrized ``[c]`` then runs against it, including the SIGINT
storm of ``tests/core/test_sigint_storm.py``. Run with the Python core active, so that
``Mutex``/``RwLock`` are bound to the Cython ``BoundedSemaphore``::

    BATCHSEM_PURE_PYTHON=1 BATCHSEM_CYTHON_VARIANT=typed \\
        PYTHONPATH=tests:benchmarks/cython_core \\
        .venv/bin/pytest -p pytest_cython tests/core -k 'c]'
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import _impls
import build

VARIANT = os.environ.get("BATCHSEM_CYTHON_VARIANT", "typed")
_module: ModuleType = build.load(VARIANT)
if not hasattr(_module, "Permit"):  # the cdef variant cimports it: no module global
    _module.Permit = importlib.import_module(f"{build.VARIANTS[VARIANT]}._permit").Permit


def _compiled_module() -> ModuleType | None:
    return _module


def pytest_configure() -> None:
    if _impls.batchsem.IMPLEMENTATION == "c":
        raise RuntimeError("set BATCHSEM_PURE_PYTHON=1: the [c] tests must not see the C core")
    _impls.compiled_module = _compiled_module


def pytest_report_header() -> str:
    return f"[c] parameter = Cython build {_module.__name__} ({_module.__file__})"
