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
   was tested and its adjusted ``p >= ALPHA``, or (window samples) if it did
   not show in nearly every round of repeats (:func:`rounds_agree`);
   otherwise "improved" or "regressed" by the direction of the change. An
   untested change beyond the threshold gets a verdict too; callers mark it
   (``tested`` False).

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

__all__ = ["ALPHA", "DEFAULT_THRESHOLD", "Measured", "VerdictName", "adjust", "decide",
           "mann_whitney_p", "measure", "measure_robust", "parse_threshold", "rounds_agree"]

#: Significance level after adjustment.
ALPHA = 0.05
#: The smallest relative change reported by default.
DEFAULT_THRESHOLD = 0.05
# The two-sided 95% quantile of the standard normal.
_Z975 = 1.959963984540054
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


def _median(values: Sequence[float]) -> float:
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation with the tie
    correction and a continuity correction; fine from about 8 values a side)."""
    na, nb = len(a), len(b)
    pooled = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks = [0.0] * len(pooled)
    ties = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    rank_a = math.fsum(r for r, (_, side) in zip(ranks, pooled, strict=True) if side == 0)
    u = rank_a - na * (na + 1) / 2
    mu = na * nb / 2
    n = na + nb
    var = na * nb / 12 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return 1.0
    z = (abs(u - mu) - 0.5) / math.sqrt(var)
    return min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))


def measure_robust(base: Sequence[float], new: Sequence[float]) -> Measured:
    """Like :func:`measure` for window samples: the change of the *medians*, the
    Mann-Whitney test, and an MDE from the median absolute deviation.

    A window in which the machine stalled, or a limiter's brief slow phase,
    moves a mean but hardly a median. The MDE is that of the Mann-Whitney
    test for a shift: the t-test's with the variance scaled by ``pi/3`` (the
    test's asymptotic relative efficiency under normal noise is ``3/pi``) and
    the spread taken from the MAD, which one stalled window cannot inflate.
    Raises ``ValueError`` as :func:`measure` does.
    """
    if len(base) < 2 or len(new) < 2:
        return measure(base, new)
    if not all(math.isfinite(v) for v in (*base, *new)):
        raise ValueError("samples must be finite")
    mb = _median(base)
    if not mb > 0.0:
        raise ValueError(f"a relative change needs a positive baseline, got {mb!r}")
    change = _median(new) / mb - 1.0
    spread = [1.4826 * _median([abs(v - _median(s)) for v in s]) for s in (base, new)]
    se = math.sqrt(math.pi / 3 * (spread[0] ** 2 / len(base) + spread[1] ** 2 / len(new)))
    mde = (_Z975 + _Z_POWER) * se / mb
    return Measured(change, mann_whitney_p(base, new), mde)


#: A window-sampled change must show in at least this share of the rounds of repeats.
ROUNDS_AGREE = 0.8


def rounds_agree(
    base_rounds: Sequence[Sequence[float]], new_rounds: Sequence[Sequence[float]],
    change: float, threshold: float,
) -> bool:
    """Did the change show in (nearly) every round of repeats, on both sides?

    Windows of one repeat are not independent: a burst of load from another
    process slows a round or two, and 60 windows then make even that
    significant. A slower limiter is slower in every round. So a change
    counts only if at least :data:`ROUNDS_AGREE` of the new run's rounds
    (per-repeat medians) lie beyond half the threshold from the baseline's
    median in the direction of the change, and as many of the baseline's
    rounds lie beyond it from the new median the other way.
    """
    base_meds = [_median(r) for r in base_rounds if r]
    new_meds = [_median(r) for r in new_rounds if r]
    if not base_meds or not new_meds:
        return False
    mb, mn = _median(base_meds), _median(new_meds)
    margin = threshold / 2
    sign = 1.0 if change > 0 else -1.0
    new_side = sum(1 for m in new_meds if sign * (m / mb - 1) > margin)
    base_side = sum(1 for m in base_meds if sign * (1 - m / mn) > margin)
    return (new_side >= ROUNDS_AGREE * len(new_meds)
            and base_side >= ROUNDS_AGREE * len(base_meds))


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
    agree: bool | None = None,
) -> VerdictName:
    """The verdict (rule 4 of the module docstring). ``agree``: for window samples, what
    :func:`rounds_agree` says (None for other samples)."""
    if change is None:
        return "n/a"
    if abs(change) <= threshold:
        return "no change"
    if tested and (p_adjusted is None or p_adjusted >= ALPHA):
        return "no change"
    if agree is False:
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
