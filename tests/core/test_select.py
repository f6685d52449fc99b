"""Which implementation ``import batchsem`` picks (``batchsem.IMPLEMENTATION``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from _impls import compiled_module

PROBE = (
    "import batchsem, batchsem._semaphore as py; "
    "print(batchsem.IMPLEMENTATION, batchsem.Semaphore is py.Semaphore, "
    "batchsem.Mutex._semaphore_class is batchsem.BoundedSemaphore)"
)


def _probe(value: str | None) -> str:
    env = dict(os.environ)
    env.pop("BATCHSEM_PURE_PYTHON", None)
    if value is not None:
        env["BATCHSEM_PURE_PYTHON"] = value
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.parametrize("value", ["1", "yes"])
def test_pure_python_forced(value: str) -> None:
    assert _probe(value) == "python True True"


@pytest.mark.parametrize("value", [None, "", "0"])
def test_default_is_the_compiled_core_when_it_imports(value: str | None) -> None:
    expected = "c False True" if compiled_module() is not None else "python True True"
    assert _probe(value) == expected
