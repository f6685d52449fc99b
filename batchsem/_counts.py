"""Counts and timeouts: the limit and the argument checks shared by every implementation."""

from __future__ import annotations

import math
import operator
from typing import Final

__all__ = ["MAX_PERMITS", "check_count", "check_timeout"]

#: The largest number of permits a semaphore can hold. Tokio reserves three flag
#: bits of a ``usize`` for its state, so on 64-bit targets its limit is
#: ``usize::MAX >> 3``. Python ints do not overflow; the limit is kept so the
#: two agree and so that a runaway ``release`` loop fails loudly.
MAX_PERMITS: Final = 2**61 - 1


def check_count(n: object, what: str = "permits") -> int:
    """Return ``n`` as an int in ``0..MAX_PERMITS``; ``TypeError``/``ValueError`` otherwise.

    Any integer type with ``__index__`` is accepted (as ``range()`` does);
    ``bool``, ``float``, ``Decimal`` and ``Fraction`` are refused.
    """
    if type(n) is not int:
        if isinstance(n, bool):
            raise TypeError(f"{what} must be an integer, not bool")
        try:
            n = operator.index(n)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(f"{what} must be an integer, not {type(n).__name__}") from None
    assert isinstance(n, int)
    if n < 0:
        raise ValueError(f"{what} must be >= 0, got {n}")
    if n > MAX_PERMITS:
        raise ValueError(f"{what} must be <= MAX_PERMITS ({MAX_PERMITS}), got {n}")
    return n


def check_timeout(timeout: float | None) -> float | None:
    """``acquire_blocking``'s timeout: None or ``inf`` = no limit; ``ValueError`` for nan or < 0."""
    if timeout is None:
        return None
    if math.isnan(timeout):
        raise ValueError("timeout must be a number, got nan")
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0, got {timeout}")
    if math.isinf(timeout):
        return None
    return timeout
