"""Run every library test once per implementation (see ``tests/_impls.py``).

The ``impl`` fixture is parametrized over ``python`` and ``c``. An autouse fixture
rebinds, for the duration of each test, every global of the test module that is one of
the pure-Python implementation's objects (``Semaphore``, ``Permit``, ``Mutex``, an alias
such as ``BMutex``...) to the same object of the implementation under test, so test
bodies are written once against the public names. Tests may also take ``impl`` directly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from _impls import IMPL_NAMES, PYTHON, Impl, in_ci, load

import batchsem

_FIELDS = ("Semaphore", "BoundedSemaphore", "Permit", "Acquire", "Mutex", "RwLock")
# Test modules import the public names from ``batchsem``, which are the compiled
# core's when it is active: both implementations' objects are rebound.
_IMPL_OBJECTS = [PYTHON]
with contextlib.suppress(LookupError):  # the compiled core is not built
    _IMPL_OBJECTS.append(load("c"))
_IMPL_OBJECTS.append(batchsem)  # type: ignore[arg-type]  # Mutex/RwLock bound to the active core
_PY_OBJECTS = {
    id(getattr(source, field)): field for source in _IMPL_OBJECTS for field in _FIELDS
}


@pytest.fixture(params=IMPL_NAMES)
def impl(request: pytest.FixtureRequest) -> Impl:
    """The implementation under test; the compiled one fails (CI) or skips when not built."""
    try:
        return load(request.param)
    except LookupError as exc:
        if in_ci():
            pytest.fail(f"{exc} (CI is set: the compiled core must be built)")
        pytest.skip(str(exc))


@pytest.fixture(autouse=True)
def _bind_impl(request: pytest.FixtureRequest, impl: Impl) -> Iterator[None]:
    module: Any = request.module
    saved: dict[str, Any] = {}
    for name, value in list(vars(module).items()):
        field = _PY_OBJECTS.get(id(value))
        if field is not None:
            saved[name] = value
            setattr(module, name, getattr(impl, field))
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)
