"""Statistics for benchmark repeats (pure standard library, no numpy/scipy).

Everything here is a pure function of its arguments, so results are reproducible.

Conventions used throughout:

* "sample" standard deviation / variance use the ``n - 1`` (Bessel) divisor;
* input values must be finite floats (``ValueError`` otherwise) so a stray NaN
  from a failed run cannot silently turn every verdict into "no change";
* Student's t quantities use the exact distribution via the regularized
  incomplete beta function, evaluated with the Numerical Recipes continued
  fraction (absolute error well below 1e-10 for the arguments used here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Verdict",
    "VerdictName",
    "WelchResult",
    "bh_adjust",
    "compare_samples",
    "holm_adjust",
    "jain_index",
    "student_t_sf",
    "summarize",
    "t_ppf_975",
    "welch_test",
]

# Two-sided 95% critical values of Student's t (the 0.975 quantile) for
# df = 1..30. Each entry satisfies ``student_t_sf(value, df) == 0.025`` to
# better than 1e-12 (checked in tests/test_stats.py against the closed forms of
# Abramowitz & Stegun 26.7.3/26.7.4) and agrees with printed tables (12.706,
# 4.303, 3.182, 2.776, 2.571, ..., 2.042).
_T975: tuple[float, ...] = (
    12.706204736174698,
    4.302652729749464,
    3.182446305284263,
    2.7764451051977934,
    2.5705818356363146,
    2.4469118511449692,
    2.3646242515927844,
    2.3060041352041662,
    2.2621571627982053,
    2.2281388519862744,
    2.2009851600916384,
    2.1788128296672284,
    2.1603686564627926,
    2.1447866879178035,
    2.131449545559774,
    2.1199052992212533,
    2.1098155778333156,
    2.100922040241036,
    2.093024054408307,
    2.0859634472658626,
    2.0796138447276835,
    2.0738730679040147,
    2.0686576104190406,
    2.0638985616280205,
    2.059538552753294,
    2.055529438642871,
    2.0518305164802833,
    2.048407141795244,
    2.045229642132703,
    2.0422724563012373,
)

# The 0.975 quantile of the standard normal distribution.
_Z975 = 1.959963984540054

_CF_EPS = 1e-15
_CF_MAXIT = 20_000
_FPMIN = 1e-300
# Above this many degrees of freedom student_t_sf uses the normal distribution
# plus its first-order 1/df correction instead of the continued fraction.
_DF_ASYMPTOTIC = 1e6


# ---------------------------------------------------------------------------
# helpers


def _check_finite(values: Sequence[float], name: str) -> None:
    for v in values:
        if not math.isfinite(v):
            raise ValueError(f"{name} contains a non-finite value: {v!r}")


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _var(values: Sequence[float], mean: float) -> float:
    """Sample variance (n - 1 divisor); exactly 0.0 when all values are equal."""
    n = len(values)
    if n < 2 or min(values) == max(values):
        return 0.0
    return math.fsum((v - mean) ** 2 for v in values) / (n - 1)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz).

    Numerical Recipes (3rd ed.) section 6.4, ``betacf``; converges quickly for
    ``x < (a + 1) / (a + b + 2)``, in O(sqrt(max(a, b))) iterations.
    """
    qab = a + b
    qap = a + 1.0
    qam = a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < _FPMIN:
        d = _FPMIN
    d = 1.0 / d
    h = d
    for m in range(1, _CF_MAXIT + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < _FPMIN:
            d = _FPMIN
        c = 1.0 + aa / c
        if abs(c) < _FPMIN:
            c = _FPMIN
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        if abs(d) < _FPMIN:
            d = _FPMIN
        c = 1.0 + aa / c
        if abs(c) < _FPMIN:
            c = _FPMIN
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _CF_EPS:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b})")


def _lbeta_half(a: float) -> float:
    """``ln B(a, 1/2)``, the log of the complete beta function, computed stably.

    ``ln B(a, 1/2) = lgamma(a) + lgamma(1/2) - lgamma(a + 1/2)``. For large ``a`` the
    two lgamma values are huge and nearly equal, so their difference is taken
    from the Stirling series instead (truncation error < 1e-16 for a >= 100).
    """
    if a < 100.0:
        return math.lgamma(a) + math.lgamma(0.5) - math.lgamma(a + 0.5)
    z = a + 0.5
    # lgamma(z) - lgamma(a), z = a + 1/2, from ln G(x) ~ (x - 1/2) ln x - x + ln(2 pi)/2
    # + 1/(12 x) - 1/(360 x^3) + 1/(1260 x^5).
    diff = (
        0.5 * math.log(a)
        + a * math.log1p(0.5 / a)
        - 0.5
        + (1.0 / (12.0 * z) - 1.0 / (12.0 * a))
        - (1.0 / (360.0 * z**3) - 1.0 / (360.0 * a**3))
        + (1.0 / (1260.0 * z**5) - 1.0 / (1260.0 * a**5))
    )
    return 0.5 * math.log(math.pi) - diff


def _betai_half(a: float, x: float, y: float, log_x: float, log_y: float) -> float:
    """Regularized incomplete beta ``I_x(a, 1/2)``.

    ``y = 1 - x``, ``log_x = ln x`` and ``log_y = ln y`` are passed in so the
    caller can compute them without cancellation (x is often within 1e-9 of 1).
    Numerical Recipes ``betai``: the continued fraction is used directly when
    ``x < (a + 1) / (a + b + 2)`` and through the symmetry
    ``I_x(a, b) = 1 - I_y(b, a)`` otherwise.
    """
    b = 0.5
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    bt = math.exp(a * log_x + b * log_y - _lbeta_half(a))
    if x < (a + 1.0) / (a + b + 2.0):
        return bt * _betacf(a, b, x) / a
    return 1.0 - bt * _betacf(b, a, y) / b


def _t_pdf(t: float, df: float) -> float:
    log_c = math.lgamma((df + 1.0) / 2.0) - math.lgamma(df / 2.0) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1.0) / 2.0 * math.log1p(t * t / df))


# ---------------------------------------------------------------------------
# Student's t


def student_t_sf(t: float, df: float) -> float:
    """Survival function ``P(T > t)`` of Student's t distribution with ``df`` degrees of freedom.

    ``df`` may be any positive real (Welch's test produces fractional df) or
    ``math.inf`` (standard normal). Computed as ``0.5 * I_x(df/2, 1/2)`` with
    ``x = df / (df + t**2)`` for ``t >= 0`` and by symmetry for ``t < 0``;
    ``I`` is the regularized incomplete beta function evaluated with the
    Numerical Recipes continued fraction. For ``df > 1e6`` the normal survival
    function plus its first-order correction ``phi(t) (t**3 + t) / (4 df)`` is
    used instead (the neglected O(1/df**2) term is below 1e-12 there). Absolute
    accuracy is ~1e-12 in practice (tested to 1e-10); for ``df <= 1e6`` the
    upper tail also keeps its relative accuracy (no ``1 - small``
    cancellation). ``t = +inf``
    gives 0.0, ``t = -inf`` gives 1.0, NaN gives NaN.

    Raises ``ValueError`` if ``df`` is not > 0 (or is NaN).
    """
    if not df > 0.0:
        raise ValueError(f"df must be > 0, got {df!r}")
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    if math.isinf(df):
        return 0.5 * math.erfc(t / math.sqrt(2.0))
    if df > _DF_ASYMPTOTIC:
        # The continued fraction slowly loses accuracy for huge df near its
        # switch-over point; the first-order expansion in 1/df is exact to ~1e-13 here.
        phi = math.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)
        return 0.5 * math.erfc(t / math.sqrt(2.0)) + phi * (t**3 + t) / (4.0 * df)
    t2 = t * t
    if t2 == 0.0:
        return 0.5
    if math.isinf(t2):  # |t| > 1e154: the tail is far below double precision
        return 0.0 if t > 0 else 1.0
    x = df / (df + t2)
    y = t2 / (df + t2)
    log_x = -math.log1p(t2 / df)
    log_y = math.log(t2) - math.log(df + t2)
    tail = 0.5 * _betai_half(df / 2.0, x, y, log_x, log_y)  # P(T > |t|)
    return tail if t >= 0.0 else 1.0 - tail


def t_ppf_975(df: int) -> float:
    """The two-sided 95% critical value of Student's t: ``q`` with ``P(T > q) = 0.025``.

    For ``df <= 30`` the value comes from an exact table. For larger ``df``
    the Cornish–Fisher expansion of Abramowitz & Stegun 26.7.5 (error < 1e-6
    at df = 31, shrinking like 1/df**5) is refined by two Newton steps on
    :func:`student_t_sf`, which makes it accurate to ~1e-12. Tends to
    1.959963984540054 (the normal quantile) as ``df`` grows.

    Raises ``ValueError`` if ``df < 1``.
    """
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df!r}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    n = float(df)
    q = (
        z
        + (z**3 + z) / (4 * n)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * n**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * n**3)
        + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * n**4)
    )
    for _ in range(2):
        q += (student_t_sf(q, n) - 0.025) / _t_pdf(q, n)
    return q


# ---------------------------------------------------------------------------
# summaries


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Summary of benchmark repeats.

    Returns a dict with keys

    * ``mean``: arithmetic mean;
    * ``stdev``: sample standard deviation (n - 1 divisor), 0.0 when n < 2;
    * ``ci95``: half-width of the two-sided 95% confidence interval of the mean,
      ``t_ppf_975(n - 1) * stdev / sqrt(n)`` (Student's t with n - 1 degrees
      of freedom), 0.0 when n < 2 — the interval is ``mean ± ci95``;
    * ``min``, ``max``;
    * ``n``: the number of values (as a float so the dict is homogeneous).

    Raises ``ValueError`` for an empty sequence or non-finite values.
    """
    n = len(values)
    if n == 0:
        raise ValueError("summarize() needs at least one value")
    _check_finite(values, "values")
    mean = _mean(values)
    stdev = math.sqrt(_var(values, mean))
    ci95 = t_ppf_975(n - 1) * stdev / math.sqrt(n) if n >= 2 else 0.0
    return {
        "mean": mean,
        "stdev": stdev,
        "ci95": ci95,
        "min": float(min(values)),
        "max": float(max(values)),
        "n": float(n),
    }


# ---------------------------------------------------------------------------
# Welch's t-test


@dataclass(frozen=True)
class WelchResult:
    """Result of :func:`welch_test`.

    ``t`` is ``(mean(a) - mean(b)) / sqrt(var(a)/len(a) + var(b)/len(b))``,
    ``df`` the Welch–Satterthwaite degrees of freedom and ``p_value`` the
    two-sided p-value ``P(|T_df| >= |t|)``.
    """

    t: float
    df: float
    p_value: float


def welch_test(a: Sequence[float], b: Sequence[float]) -> WelchResult:
    """Welch's unequal-variances two-sample t-test (two-sided).

    ``t = (mean(a) - mean(b)) / se`` with ``se**2 = var(a)/na + var(b)/nb``
    (sample variances) and Welch–Satterthwaite degrees of freedom
    ``df = se**4 / ((var(a)/na)**2/(na-1) + (var(b)/nb)**2/(nb-1))``.
    This is what R's ``t.test(a, b)`` computes by default.

    Degenerate case — both samples have zero variance (every value in ``a``
    equal, and every value in ``b`` equal): the test statistic is 0/0 or x/0.
    Then ``p_value`` is 0.0 if the means differ (``t = ±inf``) and 1.0 if
    they are equal (``t = 0.0``), and ``df`` is reported as ``na + nb - 2``.
    If only one sample has zero variance the ordinary formulas apply (``df``
    becomes ``n - 1`` of the other sample).

    Raises ``ValueError`` if either sample has fewer than 2 values or contains
    a non-finite value.
    """
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        raise ValueError(f"welch_test needs at least 2 values per sample (got {na} and {nb})")
    _check_finite(a, "a")
    _check_finite(b, "b")
    ma, mb = _mean(a), _mean(b)
    va, vb = _var(a, ma) / na, _var(b, mb) / nb
    se2 = va + vb
    if se2 == 0.0:
        if ma == mb:
            return WelchResult(t=0.0, df=float(na + nb - 2), p_value=1.0)
        return WelchResult(t=math.copysign(math.inf, ma - mb), df=float(na + nb - 2), p_value=0.0)
    t = (ma - mb) / math.sqrt(se2)
    df = se2 * se2 / (va * va / (na - 1) + vb * vb / (nb - 1))
    p = min(1.0, 2.0 * student_t_sf(abs(t), df))
    return WelchResult(t=t, df=df, p_value=p)


# ---------------------------------------------------------------------------
# verdicts

VerdictName = Literal["improved", "regressed", "no change"]


@dataclass(frozen=True)
class Verdict:
    """Result of :func:`compare_samples`.

    * ``change``: relative change of the means, ``mean(new) / mean(base) - 1``
      (+0.10 means new is 10% larger);
    * ``p_value``: two-sided Welch p-value, or None when not testable (fewer
      than 2 samples on a side);
    * ``significant``: ``p_value < alpha``, or None when not testable;
    * ``verdict``: "improved", "regressed" or "no change" (see
      :func:`compare_samples` for the rule).
    """

    change: float
    p_value: float | None
    significant: bool | None
    verdict: VerdictName


def compare_samples(
    base: Sequence[float],
    new: Sequence[float],
    *,
    threshold: float = 0.05,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    change: float | None = None,
) -> Verdict:
    """Decide whether ``new`` is better, worse or the same as ``base``.

    Rule, applied in order:

    1. ``change = mean(new) / mean(base) - 1``, unless the caller gives the
       change to judge (e.g. of merged distributions, whose per-repeat values
       are the samples).
    2. Significance: if both samples have at least 2 values, run
       :func:`welch_test` and set ``significant = p_value < alpha``. Otherwise
       (a single value on at least one side) there is no variance estimate:
       ``p_value = None`` and ``significant = None`` ("not testable").
    3. If ``abs(change) <= threshold`` the verdict is "no change" — however
       significant, a difference this small is not reported.
    4. Else if ``significant is False`` the verdict is "no change" — the
       difference is within the noise.
    5. Else (``significant`` is True, or None because it cannot be tested) the
       verdict follows the sign of ``change``: "improved" if the change goes in
       the good direction (up when ``higher_is_better``, down otherwise),
       "regressed" if not. With one value per side the verdict therefore rests
       on the threshold alone; callers can tell by ``significant is None``.

    Raises ``ValueError`` if a sample is empty, contains a non-finite value,
    ``mean(base) <= 0`` (a relative change needs a positive baseline, as for
    times and throughputs), ``threshold < 0`` or ``alpha`` not in (0, 1).
    """
    if not base or not new:
        raise ValueError("compare_samples needs non-empty samples")
    _check_finite(base, "base")
    _check_finite(new, "new")
    if threshold < 0.0:
        raise ValueError(f"threshold must be >= 0, got {threshold!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    mean_base = _mean(base)
    if mean_base <= 0.0:
        raise ValueError(f"compare_samples needs a positive base mean, got {mean_base!r}")
    if change is None:
        change = _mean(new) / mean_base - 1.0

    p_value: float | None = None
    significant: bool | None = None
    if len(base) >= 2 and len(new) >= 2:
        p_value = welch_test(new, base).p_value
        significant = p_value < alpha

    verdict: VerdictName
    if abs(change) <= threshold or significant is False:
        verdict = "no change"
    elif (change > 0.0) == higher_is_better:
        verdict = "improved"
    else:
        verdict = "regressed"
    return Verdict(change=change, p_value=p_value, significant=significant, verdict=verdict)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given.

    A comparison tests many metrics at once; at ``p < 0.05`` each, about one
    in twenty unchanged metrics would still be flagged. Holm's step-down
    procedure controls the chance of *any* false flag (the family-wise error
    rate) at the same level: sorted ascending, the i-th smallest p-value (from
    0) of m is multiplied by ``m - i``, made non-decreasing, and capped at 1.
    Then ``adjusted < alpha`` rejects exactly the hypotheses Holm's procedure
    rejects at ``alpha``. Raises ``ValueError`` for a value outside [0, 1].
    """
    m = len(p_values)
    for p in p_values:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-values must be in [0, 1], got {p!r}")
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def bh_adjust(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the order given.

    Controls the false discovery rate, the expected share of flagged findings
    that are false, instead of the chance of any false flag: suited to a
    table of many informational metrics. Sorted ascending, the i-th smallest
    (from 1) of m is multiplied by ``m / i``, made non-decreasing from the
    largest down, and capped at 1. Raises ``ValueError`` for a value outside [0, 1].
    """
    m = len(p_values)
    for p in p_values:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-values must be in [0, 1], got {p!r}")
    order = sorted(range(m), key=lambda i: p_values[i], reverse=True)
    adjusted = [0.0] * m
    running = 1.0
    for k, i in enumerate(order):
        rank = m - k
        running = min(running, p_values[i] * m / rank)
        adjusted[i] = running
    return adjusted


# ---------------------------------------------------------------------------
# fairness index


def jain_index(xs: Sequence[float]) -> float:
    """Jain's fairness index ``(sum x)**2 / (n * sum x**2)`` of non-negative allocations.

    The value lies in ``[1/n, 1]``: 1.0 when every task got the same share,
    ``k/n`` when ``k`` tasks shared everything equally and the rest got
    nothing (so ``1/n`` when one task got everything).

    Edge cases:

    * empty input → 1.0: there is nobody to be unfair to (the convention that
      keeps "no tasks" from looking like a fairness failure);
    * all values zero (n > 0) → 0.0: the formula is 0/0 and undefined; every
      task was starved, which must not read as perfectly fair, so the worst
      possible score is returned (below the ``1/n`` floor of defined cases,
      which also makes this case recognisable).

    Raises ``ValueError`` for negative or non-finite values.
    """
    n = len(xs)
    if n == 0:
        return 1.0
    _check_finite(xs, "xs")
    if min(xs) < 0.0:
        raise ValueError("jain_index needs non-negative values")
    top = max(xs)
    if top == 0.0:
        return 0.0
    # Normalise by the maximum so squaring can neither overflow nor underflow.
    ys = [x / top for x in xs]
    s = math.fsum(ys)
    s2 = math.fsum(y * y for y in ys)
    # Clamp the last-ulp overshoot above 1 that rounding can give for equal inputs.
    return min(1.0, (s / n) * (s / s2))
