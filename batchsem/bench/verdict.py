"""The one verdict rule: when is a change "improved", "regressed" or "no change"?

Used by ``compare`` for batchsem runs (:mod:`batchsem.bench.compare`) and for
pyperf files (:mod:`batchsem.bench.pyperf_compare`); nothing else decides.

For one metric of one case, given the baseline's samples and the new samples:

1. ``change``: the relative change of the values shown, ``new / base - 1``.
2. :func:`measure` runs Welch's t-test on the samples (p-value) and gives the
   *minimum detectable effect* (MDE): the relative change this comparison
   would find with 80% power at ``p < 0.05``,
   ``(t_0.975(df) + z_0.8) * se / mean(base)``. Fewer than 2 samples on a
   side: nothing can be tested (``p_value`` and ``mde`` None).
3. :func:`adjust` corrects the p-values of a family of tests: Holm
   (family-wise error) for the metrics that gate, Benjamini-Hochberg (false
   discovery rate) for the informational ones.
4. :func:`decide`: "no change" if ``|change| <= threshold``, or if the change
   was tested and its adjusted ``p >= ALPHA``; otherwise "improved" or
   "regressed" by the direction of the change. An untested change beyond the
   threshold gets a verdict too; callers mark it (``tested`` False).

What the threshold is for: two runs of the same code on one machine differ by
a few percent from run to run (other load, frequency, memory layout), a
difference no within-run test can see. The threshold is the size below which a
change is not worth reporting; the test says whether a larger one is real.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from batchsem.bench.stats import bh_adjust, holm_adjust, t_ppf_975, welch_test

__all__ = ["ALPHA", "DEFAULT_THRESHOLD", "Measured", "VerdictName", "adjust", "decide", "measure",
           "parse_threshold"]

#: Significance level after adjustment.
ALPHA = 0.05
#: The smallest relative change reported by default.
DEFAULT_THRESHOLD = 0.05
# The one-sided 80% quantile of the standard normal: the power the MDE is stated at.
_Z_POWER = 0.8416212335729143

VerdictName = Literal["improved", "regressed", "no change", "n/a"]


@dataclass(frozen=True)
class Measured:
    """A change and what the samples say about it (before adjustment)."""

    change: float
    p_value: float | None
    mde: float | None

    @property
    def tested(self) -> bool:
        return self.p_value is not None


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def measure(base: Sequence[float], new: Sequence[float], change: float | None = None) -> Measured:
    """Welch's test of ``new`` against ``base`` and the MDE (see the module docstring).

    ``change`` defaults to ``mean(new) / mean(base) - 1``. Raises ``ValueError``
    for an empty sample, a non-finite value or a non-positive baseline mean.
    """
    if not base or not new:
        raise ValueError("a verdict needs samples on both sides")
    base_mean = _mean(base)
    if not base_mean > 0.0:
        raise ValueError(f"a relative change needs a positive baseline, got {base_mean!r}")
    if change is None:
        change = _mean(new) / base_mean - 1.0
    if len(base) < 2 or len(new) < 2:
        if not all(math.isfinite(v) for v in (*base, *new)):
            raise ValueError("samples must be finite")
        return Measured(change, None, None)
    w = welch_test(new, base)
    na, nb = len(base), len(new)
    ma, mb = base_mean, _mean(new)
    va = math.fsum((v - ma) ** 2 for v in base) / (na - 1)
    vb = math.fsum((v - mb) ** 2 for v in new) / (nb - 1)
    se = math.sqrt(va / na + vb / nb)
    df = max(1, math.floor(w.df))
    mde = (t_ppf_975(df) + _Z_POWER) * se / base_mean
    return Measured(change, w.p_value, mde)


def adjust(p_values: Sequence[float], method: Literal["holm", "bh"]) -> list[float]:
    """Adjusted p-values, in order: Holm's step-down or Benjamini-Hochberg's step-up."""
    return holm_adjust(p_values) if method == "holm" else bh_adjust(p_values)


def decide(
    change: float | None,
    p_adjusted: float | None,
    *,
    tested: bool,
    threshold: float,
    higher_is_better: bool,
) -> VerdictName:
    """The verdict (rule 4 of the module docstring)."""
    if change is None:
        return "n/a"
    if abs(change) <= threshold:
        return "no change"
    if tested and (p_adjusted is None or p_adjusted >= ALPHA):
        return "no change"
    return "improved" if (change > 0.0) == higher_is_better else "regressed"


def parse_threshold(text: str) -> float:
    """``"5%"`` or ``"0.05"`` -> 0.05. ``ValueError`` (one line) for anything ambiguous.

    A bare number of 1 or more (``5``) could mean 5% or 500%: refused. Negative,
    NaN and infinite values are refused too.
    """
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = float(raw[:-1] if percent else raw)
    except ValueError:
        raise ValueError(f"--threshold {text!r}: expected a fraction (0.05) or a percentage "
                         "(5%)") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"--threshold {text!r}: must be a finite value >= 0")
    if percent:
        return value / 100.0
    if value >= 1:
        raise ValueError(f"--threshold {text!r} is ambiguous: write {value:g}% or "
                         f"{value / 100:g} for {value:g} percent")
    return value
